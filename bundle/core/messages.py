"""The requests a bundle may send to Airflow, their fields, and the access level of each.

These are the ``ToSupervisor`` bodies of apache-airflow-task-sdk 1.3.2 (supervisor schema
``2026-06-16``). The released supervisor *silently drops* a body that fails its pydantic validation
and never answers, so a runtime that sent one would wait forever. Every body is therefore checked
here before it leaves the process: known ``type``, required fields present, no unknown keys, JSON-only
values where Airflow stores JSON, timezone-aware datetimes.

Access levels follow the grouping proposed on the Airflow dev list (read, write, logging, task
lifecycle, task metadata, orchestration, HITL): every ``ToSupervisor`` type of 1.3.2 is in exactly
one group (``REQUEST_GROUPS``, the public table of docs/access-levels.md), and each kind of process
is a ``Workload`` composing the requests it may send (``TASK_ACCESS``, ``CALLBACK_ACCESS``,
``DAG_PARSING_ACCESS``, ``DAG_CALLBACK_ACCESS``); anything else raises ``RequestNotAllowed`` before it leaves the process.

Pure Python and import-light: this module is on the coordinator's start-up path.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from .errors import InvalidRequest, RequestNotAllowed

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

    Check = Callable[[Any], bool]


class Access(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()
    LOGGING = enum.auto()
    LIFECYCLE = enum.auto()
    TASK_METADATA = enum.auto()
    ORCHESTRATION = enum.auto()
    PARSE_RESULT = enum.auto()  # not a ToSupervisor type: the answer a DAG parse sends (ToManager)
    HITL = enum.auto()
    TASK_LIFECYCLE = LIFECYCLE  # the name the docs use; an alias of the same flag


# How the docs and RequestNotAllowed name each group.
GROUP_NAMES = {
    Access.READ: "read",
    Access.WRITE: "write",
    Access.LOGGING: "logging",
    Access.LIFECYCLE: "task lifecycle",
    Access.TASK_METADATA: "task metadata",
    Access.ORCHESTRATION: "orchestration",
    Access.HITL: "HITL",
    Access.PARSE_RESULT: "DAG-parsing result",
}


class Workload:
    """A kind of process and exactly the request types it may send.

    Composed from whole groups (``groups``), plus or minus single types where the released peer
    answers only part of a group (DAG parsing). Checking a request is one set lookup."""

    __slots__ = ("groups", "name", "summary", "types")

    def __init__(self, name: str, types: frozenset[str], groups: Access, summary: str):
        self.name = name
        self.types = types
        self.groups = groups
        self.summary = summary  # what it may send, in words: the end of every RequestNotAllowed

    def __or__(self, other: Workload) -> Workload:
        return Workload(
            f"{self.name} or {other.name}",
            self.types | other.types,
            self.groups | other.groups,
            f"{self.summary}; or {other.summary}",
        )

    def __contains__(self, type_: object) -> bool:
        return type_ in self.types

    def __repr__(self) -> str:
        return f"<Workload {self.name}: {len(self.types)} request types>"


def _nullable(check: Check) -> Check:
    def nullable(value: Any) -> bool:
        return value is None or check(value)

    nullable.__doc__ = f"{check.__doc__} or null"
    return nullable


def _str(value: Any) -> bool:
    """a string"""
    return isinstance(value, str)


def _int(value: Any) -> bool:
    """an integer"""
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(value: Any) -> bool:
    """a bool"""
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    """a finite number"""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _aware_datetime(value: Any) -> bool:
    """a timezone-aware datetime"""
    return isinstance(value, datetime) and value.utcoffset() is not None


_UUID_TEXT = re.compile(r"^(urn:uuid:)?\{?[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?$")


def _uuid(value: Any) -> bool:
    """a UUID string"""
    if type(value).__name__ == "UUID":  # uuid.UUID; the uuid module is not imported at start-up
        return True
    return isinstance(value, str) and bool(_UUID_TEXT.match(value))


def _mapping(value: Any) -> bool:
    """a map"""
    return isinstance(value, Mapping)


def _map(value: Any) -> bool:
    """a JSON object"""
    return isinstance(value, Mapping) and is_json(value)


def _list_of(check: Check) -> Check:
    def list_of(value: Any) -> bool:
        return isinstance(value, (list, tuple)) and all(check(item) for item in value)

    list_of.__doc__ = f"a list of {check.__doc__}s"
    return list_of


def is_json(value: Any, _depth: int = 0) -> bool:
    """True when ``value`` is plain JSON (what Airflow's ``JsonValue`` fields accept)."""
    if _depth > 200:
        return False
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_json(item, _depth + 1) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_json(v, _depth + 1) for k, v in value.items())
    return False


def _json(value: Any) -> bool:
    """JSON-serialisable (str, number, bool, null, list, dict with str keys)"""
    return is_json(value)


STR, INT, BOOL, NUMBER, JSON, UUID_STR, MAP = _str, _int, _bool, _number, _json, _uuid, _map
DATETIME = _aware_datetime
O_STR, O_INT, O_BOOL, O_NUMBER = _nullable(_str), _nullable(_int), _nullable(_bool), _nullable(_number)
O_DATETIME, O_MAP, O_JSON = _nullable(_aware_datetime), _nullable(_map), _nullable(_json)
O_LIST_STR, O_LIST_DATETIME = _nullable(_list_of(_str)), _nullable(_list_of(_aware_datetime))
ANY_LIST = _list_of(_json)


def _skip_item(value: Any) -> bool:
    """a task id or [task_id, map_index]"""
    if isinstance(value, str):
        return True
    return isinstance(value, (list, tuple)) and len(value) == 2 and _str(value[0]) and _int(value[1])


O_LIST_MAP = _nullable(_list_of(_map))


class MessageSpec:
    __slots__ = ("access", "access_bits", "fields", "required", "type")

    def __init__(self, type_: str, access: Access, required: dict[str, Check], optional: dict[str, Check]):
        self.type = type_
        self.access = access
        self.access_bits = access.value  # every request checks it: an int test, not a Flag operation
        self.required = frozenset(required)
        self.fields = {**required, **optional}


def _spec(type_: str, access: Access, required: dict[str, Check], **optional: Check) -> MessageSpec:
    return MessageSpec(type_, access, required, optional)


_XCOM_KEYS: dict[str, Check] = {"key": STR, "dag_id": STR, "run_id": STR, "task_id": STR}
_R, _W, _L = Access.READ, Access.WRITE, Access.LOGGING
_LC, _TM, _OR = Access.LIFECYCLE, Access.TASK_METADATA, Access.ORCHESTRATION

SPECS: dict[str, MessageSpec] = {
    s.type: s
    for s in (
        # read
        _spec("GetConnection", _R, {"conn_id": STR}),
        _spec("GetVariable", _R, {"key": STR}),
        _spec("GetVariableKeys", _R, {}, prefix=O_STR, limit=INT, offset=INT),
        _spec("GetXCom", _R, _XCOM_KEYS, map_index=O_INT, include_prior_dates=BOOL),
        _spec("GetXComCount", _R, _XCOM_KEYS),
        _spec("GetXComSequenceItem", _R, {**_XCOM_KEYS, "offset": INT}),
        _spec(
            "GetXComSequenceSlice",
            _R,
            {**_XCOM_KEYS, "start": O_INT, "stop": O_INT, "step": O_INT},
            include_prior_dates=BOOL,
        ),
        _spec("GetDagRun", _R, {"dag_id": STR, "run_id": STR}),
        _spec("GetDagRunState", _R, {"dag_id": STR, "run_id": STR}),
        _spec("GetDag", _R, {"dag_id": STR}),
        _spec(
            "GetDRCount",
            _R,
            {"dag_id": STR},
            logical_dates=O_LIST_DATETIME,
            run_ids=O_LIST_STR,
            states=O_LIST_STR,
        ),
        _spec(
            "GetTICount",
            _R,
            {"dag_id": STR},
            map_index=O_INT,
            task_ids=O_LIST_STR,
            task_group_id=O_STR,
            logical_dates=O_LIST_DATETIME,
            run_ids=O_LIST_STR,
            states=O_LIST_STR,
        ),
        _spec(
            "GetTaskStates",
            _R,
            {"dag_id": STR},
            map_index=O_INT,
            task_ids=O_LIST_STR,
            task_group_id=O_STR,
            logical_dates=O_LIST_DATETIME,
            run_ids=O_LIST_STR,
        ),
        _spec("GetTaskBreadcrumbs", _R, {"dag_id": STR, "run_id": STR}),
        _spec("GetPreviousDagRun", _R, {"dag_id": STR, "logical_date": DATETIME}, state=O_STR),
        _spec(
            "GetPreviousTI",
            _R,
            {"dag_id": STR, "task_id": STR},
            logical_date=O_DATETIME,
            map_index=INT,
            state=O_STR,
        ),
        _spec("GetPrevSuccessfulDagRun", _R, {"ti_id": UUID_STR}),
        _spec("GetTaskRescheduleStartDate", _R, {"ti_id": UUID_STR}, try_number=INT),
        _spec("GetAssetByName", _R, {"name": STR}),
        _spec("GetAssetByUri", _R, {"uri": STR}),
        _spec("GetAssetsByAlias", _R, {"alias_name": STR}),
        _spec(
            "GetAssetEventByAsset",
            _R,
            {"name": O_STR, "uri": O_STR},
            after=O_DATETIME,
            before=O_DATETIME,
            limit=O_INT,
            ascending=BOOL,
        ),
        _spec(
            "GetAssetEventByAssetAlias",
            _R,
            {"alias_name": STR},
            after=O_DATETIME,
            before=O_DATETIME,
            limit=O_INT,
            ascending=BOOL,
        ),
        _spec("GetTaskStateStore", _R, {"ti_id": UUID_STR, "key": STR}),
        _spec("GetAssetStateStoreByName", _R, {"name": STR, "key": STR}),
        _spec("GetAssetStateStoreByUri", _R, {"uri": STR, "key": STR}),
        # write
        _spec("PutVariable", _W, {"key": STR, "value": O_STR, "description": O_STR}),
        _spec("DeleteVariable", _W, {"key": STR}),
        _spec(
            "SetXCom",
            _W,
            {**_XCOM_KEYS, "value": JSON},
            map_index=O_INT,
            dag_result=BOOL,
            mapped_length=O_INT,
        ),
        _spec("DeleteXCom", _W, _XCOM_KEYS, map_index=O_INT),
        _spec(
            "SetTaskStateStore", _W, {"ti_id": UUID_STR, "key": STR, "value": JSON, "expires_at": O_DATETIME}
        ),
        _spec("DeleteTaskStateStore", _W, {"ti_id": UUID_STR, "key": STR}),
        _spec("ClearTaskStateStore", _W, {"ti_id": UUID_STR}),
        _spec("SetAssetStateStoreByName", _W, {"name": STR, "key": STR, "value": JSON}),
        _spec("SetAssetStateStoreByUri", _W, {"uri": STR, "key": STR, "value": JSON}),
        _spec("DeleteAssetStateStoreByName", _W, {"name": STR, "key": STR}),
        _spec("DeleteAssetStateStoreByUri", _W, {"uri": STR, "key": STR}),
        _spec("ClearAssetStateStoreByName", _W, {"name": STR}),
        _spec("ClearAssetStateStoreByUri", _W, {"uri": STR}),
        # logging
        _spec("MaskSecret", _L, {"value": JSON}, name=O_STR),
        # task lifecycle
        _spec(
            "SucceedTask",
            _LC,
            {"end_date": DATETIME},
            state=STR,
            task_outlets=O_LIST_MAP,
            outlet_events=O_LIST_MAP,
            rendered_map_index=O_STR,
        ),
        _spec(
            "RetryTask",
            _LC,
            {"end_date": DATETIME},
            state=STR,
            rendered_map_index=O_STR,
            retry_delay_seconds=O_NUMBER,
            retry_reason=O_STR,
        ),
        _spec("TaskState", _LC, {"state": STR}, end_date=O_DATETIME, rendered_map_index=O_STR),
        _spec("RescheduleTask", _LC, {"reschedule_date": DATETIME, "end_date": DATETIME}, state=STR),
        _spec(
            "DeferTask",
            _LC,
            {"classpath": STR, "next_method": STR},
            state=STR,
            trigger_kwargs=O_MAP,
            trigger_timeout=O_NUMBER,
            queue=O_STR,
            next_kwargs=O_MAP,
            rendered_map_index=O_STR,
        ),
        _spec("SkipDownstreamTasks", _LC, {"tasks": _list_of(_skip_item)}),
        # task metadata
        _spec("SetRenderedFields", _TM, {"rendered_fields": MAP}),
        _spec("SetRenderedMapIndex", _TM, {"rendered_map_index": STR}),
        _spec("ValidateInletsAndOutlets", _TM, {"ti_id": UUID_STR}),
        # orchestration
        _spec(
            "TriggerDagRun",
            _OR,
            {"dag_id": STR, "run_id": STR},
            logical_date=O_DATETIME,
            run_after=O_DATETIME,
            conf=O_MAP,
            reset_dag_run=O_BOOL,
            partition_key=O_STR,
            note=O_STR,
        ),
        # the DAG-parsing answer
        _spec(
            "DagFileParsingResult",
            Access.PARSE_RESULT,
            {"fileloc": STR, "serialized_dags": _list_of(_mapping)},
            warnings=_nullable(ANY_LIST),
            import_errors=O_MAP,
        ),
    )
}

# The ToSupervisor types of 1.3.2 a bundle never sends (so they have no spec above) still belong to
# a group: the vocabulary covers the whole union. AwaitInputTask is a judgment call: the seed lists
# it nowhere; it is here as task lifecycle because, like DeferTask, it ends the task's process in a
# state about itself (the supervisor records it as the terminal state).
_UNSENT_GROUPS = {
    "RescheduleTask": _LC,
    "AwaitInputTask": _LC,
    "ResendLoggingFD": _L,
    "CreateHITLDetailPayload": Access.HITL,
    "UpdateHITLDetail": Access.HITL,
    "GetHITLDetailResponse": Access.HITL,
}
REQUEST_GROUPS: dict[str, Access] = {
    **_UNSENT_GROUPS,
    **{type_: spec.access for type_, spec in SPECS.items() if spec.access is not Access.PARSE_RESULT},
}
"""Every ``ToSupervisor`` request type of 1.3.2 -> its one group (docs/access-levels.md)."""


def _types_in(groups: Access) -> frozenset[str]:
    return frozenset(t for t, g in REQUEST_GROUPS.items() if g & groups)


_ALL_GROUPS = _R | _W | _L | _LC | _TM | _OR | Access.HITL
TASK_ACCESS = Workload("task", _types_in(_ALL_GROUPS), _ALL_GROUPS, "every group")
"""A task may send everything its protocol (the ToSupervisor union) allows."""
CALLBACK_ACCESS = Workload("callback", _types_in(_R | _L), _R | _L, "read and logging requests only")
"""A callback (arbitrary user code outside the task's lifecycle): read and logging only."""
# Exactly what the 1.3.2 DAG processor answers (``ToManager`` of airflow/dag_processing/processor.py):
# part of read, two variable writes, logging, and the parsing result itself.
DAG_PARSING_ACCESS = Workload(
    "DAG parse",
    frozenset(
        {
            "GetConnection",
            "GetVariable",
            "GetVariableKeys",
            "GetTaskStates",
            "GetTICount",
            "GetPrevSuccessfulDagRun",
            "GetPreviousDagRun",
            "GetPreviousTI",
            "GetXCom",
            "GetXComCount",
            "GetXComSequenceItem",
            "GetXComSequenceSlice",
            "PutVariable",
            "DeleteVariable",
            "MaskSecret",
            "DagFileParsingResult",
        }
    ),
    _R | _W | _L | Access.PARSE_RESULT,
    "only what the DAG processor answers: connections, variables (read, put, delete), XComs, "
    "task states and counts, previous runs and task instances, MaskSecret, the parsing result",
)
# A DAG's on_success/on_failure_callback, run by the bundle started from the DAG processor
# (bundle.dag_callback.mode): that process has no channel to Airflow at all, so the one request it
# may "send" is MaskSecret, applied to its own masker.
DAG_CALLBACK_ACCESS = Workload(
    "DAG callback",
    frozenset({"MaskSecret"}),
    _L,
    "MaskSecret only (there is no supervisor channel: variables and connections are read from "
    "AIRFLOW_VAR_* / AIRFLOW_CONN_* environment variables; see docs/callbacks.md)",
)
WORKLOADS = (TASK_ACCESS, CALLBACK_ACCESS, DAG_PARSING_ACCESS, DAG_CALLBACK_ACCESS)

# Values the supervisor's pydantic models accept for constrained string fields.
_STATE_VALUES = {
    "TaskState": {"failed", "skipped", "removed"},
    "SucceedTask": {"success"},
    "RetryTask": {"up_for_retry"},
    "RescheduleTask": {"up_for_reschedule"},
    "DeferTask": {"deferred"},
}


def validate_request(body: Any, allowed: Workload = TASK_ACCESS) -> MessageSpec:
    """Raise ``InvalidRequest`` / ``RequestNotAllowed`` unless the supervisor would accept ``body``.

    Every request of every task goes through here, so the common path avoids ABC checks, Flag
    arithmetic and temporary sets."""
    if type(body) is not dict and not isinstance(body, Mapping):
        raise InvalidRequest(f"a request body must be a mapping, got {type(body).__name__}")
    type_ = body.get("type")
    spec = SPECS.get(type_) if isinstance(type_, str) else None
    if spec is None:
        raise InvalidRequest(f"unknown request type {type_!r}")
    if type_ not in allowed.types:
        raise not_allowed(spec.type, allowed)
    if not body.keys() >= spec.required:
        missing = spec.required.difference(body)
        raise InvalidRequest(f"{type_}: missing required field(s) {', '.join(sorted(missing))}")
    fields = spec.fields
    for name, value in body.items():
        check = fields.get(name)
        if check is None:
            if name == "type":
                continue
            raise InvalidRequest(f"{type_}: unknown field {name!r} (the supervisor would drop the request)")
        if not check(value):
            raise InvalidRequest(f"{type_}.{name} must be {check.__doc__}, got {_describe(value)}")
    allowed_states = _STATE_VALUES.get(type_)
    if allowed_states and "state" in body and body["state"] not in allowed_states:
        raise InvalidRequest(f"{type_}.state must be one of {sorted(allowed_states)}, got {body['state']!r}")
    return spec


def check_access(type_: str, allowed: Workload) -> None:
    """Only the workload's access rule for a body built by the ``Client`` itself from checked
    arguments; ``validate_request`` does the full check for everything else."""
    if type_ not in allowed.types:
        raise not_allowed(type_, allowed)


def not_allowed(type_: str, workload: Workload) -> RequestNotAllowed:
    """The error naming the request, its group and the workload, and what the workload may send."""
    group = GROUP_NAMES[SPECS[type_].access if type_ in SPECS else REQUEST_GROUPS[type_]]
    return RequestNotAllowed(
        f"{type_} is a {group} request, which a {workload.name} may not send "
        f"(a {workload.name} may send {workload.summary}; see docs/access-levels.md)",
        request_type=type_,
        group=group,
        workload=workload.name,
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"
