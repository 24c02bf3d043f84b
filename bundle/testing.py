"""Unit-test bundles without Airflow: a fake client and ``run_task``.

``run_task`` goes through the very same binding, execution and outcome path as the real modes
(``bundle.core.execution``), and ``FakeClient`` is the real ``MessageClient`` answering from memory,
so request validation, masking and not-found handling behave as they do under the supervisor::

    from bundle.testing import FakeClient, run_task

    result = run_task(bundle, "simple_dag", "extract",
                      client=FakeClient(connections={"db": {"conn_type": "postgres", "host": "h"}}))
    assert result.state == "success"
    assert result.xcoms["return_value"] == {...}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .core.client import MessageClient
from .core.context import Context, DagRunInfo, TaskInstanceInfo
from .core.errors import AirflowApiError
from .core.execution import TaskOutcome, execute_task, run_finalizers
from .core.masking import masker
from .core.messages import TASK_ACCESS, validate_request
from .core.provider import BundleProvider, registry_of

__all__ = ["FakeClient", "TaskRunResult", "run_task"]


class _MemoryAirflow:
    """Answers request bodies the way the supervisor and the Execution API would."""

    def __init__(
        self,
        variables: Mapping[str, str | None],
        connections: Mapping[str, Mapping[str, Any]],
        xcoms: Mapping[tuple[str, ...] | str, Any],
    ):
        self.variables = dict(variables)
        self.connections = {cid: {"conn_id": cid, **dict(c)} for cid, c in connections.items()}
        self.xcoms: dict[tuple[str, str, str, str, int], Any] = {}
        self.default_locator: tuple[str, str] | None = None
        self._initial_xcoms = dict(xcoms)
        self.requests: list[dict[str, Any]] = []
        self.masked: list[Any] = []
        self.skipped_downstream: list[Any] = []
        self.asset_events: list[dict[str, Any]] = []

    def seed_xcoms(self, dag_id: str, run_id: str, task_ids: Collection[str] = ()) -> None:
        for key, value in self._initial_xcoms.items():
            if isinstance(key, str):  # "task_id" or "task_id.key" shorthand for the current run
                task_id, xcom_key = _task_and_key(key, task_ids)
                locator = (dag_id, run_id, task_id, xcom_key, -1)
            else:  # (dag_id, run_id, task_id, key[, map_index]): padded to five, a length mypy cannot follow
                locator = tuple(key) + (-1,) * (5 - len(key))  # type: ignore[assignment]
            self.xcoms[locator] = value
        self._initial_xcoms.clear()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | None:
        validate_request(body, TASK_ACCESS)  # in full, also for bodies the Client built itself
        self.requests.append(body)
        kind = body["type"]
        if kind == "GetVariable":
            if body["key"] not in self.variables:
                return _error("VARIABLE_NOT_FOUND", {"key": body["key"]})
            return {"key": body["key"], "value": self.variables[body["key"]], "type": "VariableResult"}
        if kind == "PutVariable":
            self.variables[body["key"]] = body["value"]
            return None
        if kind == "DeleteVariable":
            self.variables.pop(body["key"], None)
            return {"ok": True, "type": "OKResponse"}
        if kind == "GetVariableKeys":
            keys = sorted(k for k in self.variables if k.startswith(body.get("prefix") or ""))
            return {"keys": keys, "total_entries": len(keys), "type": "VariableKeysResult"}
        if kind == "GetConnection":
            conn = self.connections.get(body["conn_id"])
            if conn is None:
                return _error("CONNECTION_NOT_FOUND", {"conn_id": body["conn_id"]})
            return {**conn, "type": "ConnectionResult"}
        if kind in (
            "GetXCom",
            "SetXCom",
            "DeleteXCom",
            "GetXComCount",
            "GetXComSequenceItem",
            "GetXComSequenceSlice",
        ):
            return self._xcom(kind, body)
        if kind == "MaskSecret":
            self.masked.append(body["value"])
            return None
        if kind == "SetRenderedMapIndex":  # a map_index_template's label (PATCH /rendered-map-index)
            return None
        if kind == "SkipDownstreamTasks":  # the Execution API answers it with no body
            self.skipped_downstream.extend(body["tasks"])
            return None
        if kind == "ValidateInletsAndOutlets":  # every asset is active here
            return {"inactive_assets": [], "type": "InactiveAssetsResult"}
        if kind == "GetAssetEventByAsset":
            return self._asset_events(body)
        raise AirflowApiError(kind, "API_SERVER_ERROR", {"status_code": 400, "message": "Unhandled request"})

    def _asset_events(self, body: dict[str, Any]) -> dict[str, Any]:
        """``FakeClient(asset_events=...)`` of the asset, by timestamp (newest first when
        ``ascending`` is false), ``after`` / ``before`` / ``limit`` applied."""

        def moment(value: Any) -> datetime:
            return datetime.fromisoformat(value) if isinstance(value, str) else value

        found = [
            event
            for event in self.asset_events
            if (body["name"] is None or event["asset"]["name"] == body["name"])
            and (body["uri"] is None or event["asset"]["uri"] == body["uri"])
            and (body.get("after") is None or moment(event["timestamp"]) >= body["after"])
            and (body.get("before") is None or moment(event["timestamp"]) <= body["before"])
        ]
        found.sort(key=lambda event: moment(event["timestamp"]), reverse=not body.get("ascending", True))
        if body.get("limit") is not None:
            found = found[: body["limit"]]
        return {"asset_events": found, "type": "AssetEventsResult"}

    def _xcom(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        base = (body["dag_id"], body["run_id"], body["task_id"], body["key"])
        map_index = body.get("map_index")
        if kind == "SetXCom":
            # the keys are built beside the subscript: mypy 2.4 reads ``d[(*a, b)]`` as 3.11-only syntax
            locator = (*base, -1 if map_index is None else map_index)
            self.xcoms[locator] = json.loads(json.dumps(body["value"]))
            return None
        rows = sorted((k[4], v) for k, v in self.xcoms.items() if k[:4] == base)
        if kind == "DeleteXCom":
            for index, _ in rows:
                if map_index is None or index == map_index:
                    locator = (*base, index)
                    del self.xcoms[locator]
            return None
        if kind == "GetXCom":
            found = [v for index, v in rows if map_index is None or index == map_index]
            return {"key": body["key"], "value": found[0] if found else None, "type": "XComResult"}
        sequence = [v for _, v in rows]  # a mapped task's values, ordered by map index
        if kind == "GetXComCount":
            return {"len": len(sequence), "type": "XComCountResponse"}
        if kind == "GetXComSequenceItem":
            try:
                return {"root": sequence[body["offset"]], "type": "XComSequenceIndexResult"}
            except IndexError:
                return _error("XCOM_NOT_FOUND", {"offset": body["offset"]})
        window = sequence[body["start"] : body["stop"] : body["step"]]
        return {"root": window, "type": "XComSequenceSliceResult"}


def _error(error: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"error": error, "detail": detail, "type": "ErrorResponse"}


def _task_and_key(shorthand: str, task_ids: Collection[str]) -> tuple[str, str]:
    """``"extract"`` / ``"extract.rows"``; a task id of the DAG wins over the split at its first dot,
    so a task in a group (``"transform.filter_rows"``, ``"transform.filter_rows.rows"``) is found."""
    for task_id in sorted(task_ids, key=len, reverse=True):
        if shorthand == task_id:
            return task_id, "return_value"
        if shorthand.startswith(task_id + "."):
            return task_id, shorthand[len(task_id) + 1 :]
    task_id, _, key = shorthand.partition(".")
    return task_id, key or "return_value"


class FakeClient(MessageClient):
    """A ``Client`` backed by memory.

    ``variables``: ``{key: str}``; ``connections``: ``{conn_id: {conn_type, host, login, ...}}``;
    ``xcoms``: ``{"task_id": value}`` or ``{"task_id.key": value}`` for the run under test (a task
    id in a task group, ``"group.task"``, is read as that task), or
    ``{(dag_id, run_id, task_id, key[, map_index]): value}``. After a run, ``pushed`` holds the XComs
    the task pushed (``{key: value}``), ``variables`` the variables, ``masked`` what was masked,
    ``skipped_downstream`` what a branch or short-circuit task skipped (``SkipDownstreamTasks``'s
    items: ``[task_id, map_index]`` for a branch, task ids for a short-circuit, as Airflow sends them)
    and ``requests`` every request body in order. ``asset_events``: Airflow's ``AssetEventResponse``
    dicts (``{"id", "timestamp", "extra", "asset": {"name", "uri", "group", "extra"}, ...}``) that
    ``GetAssetEventByAsset`` (``ctx.inlet_events[asset]``) answers from."""

    # Answers from memory, so callbacks run in process (limited to read + logging by this
    # client's checks only), where a test can see what they did.
    confine_callbacks = False

    def __init__(
        self,
        variables: Mapping[str, str | None] | None = None,
        connections: Mapping[str, Mapping[str, Any]] | None = None,
        xcoms: Mapping[Any, Any] | None = None,
        asset_events: Sequence[Mapping[str, Any]] = (),
    ):
        self._memory = _MemoryAirflow(variables or {}, connections or {}, xcoms or {})
        self._memory.asset_events = [dict(event) for event in asset_events]
        super().__init__(self._memory, None)

    def bind(self, ti: TaskInstanceInfo, task_ids: Collection[str] = ()) -> FakeClient:
        """The client of one run of a task; ``task_ids``: the DAG's, to read the XCom shorthand."""
        self._ti = ti
        self._memory.seed_xcoms(ti.dag_id, ti.run_id, task_ids)
        return self

    @property
    def variables(self) -> dict[str, str | None]:
        return self._memory.variables

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._memory.requests

    @property
    def masked(self) -> list[Any]:
        return self._memory.masked

    @property
    def skipped_downstream(self) -> list[Any]:
        return self._memory.skipped_downstream

    @property
    def pushed(self) -> dict[str, Any]:
        ti = self._ti
        if ti is None:
            return {}
        own = (ti.dag_id, ti.run_id, ti.task_id)
        return {k[3]: v for k, v in self._memory.xcoms.items() if k[:3] == own and k[4] == ti.map_index}


@dataclass
class TaskRunResult:
    state: str
    return_value: Any
    error: BaseException | None
    reason: str | None
    xcoms: dict[str, Any]
    logs: list[logging.LogRecord] = field(repr=False)
    client: FakeClient = field(repr=False)
    # What SucceedTask would carry (bundle.core.asset_events): the task's outlets as AssetProfiles
    # and one {"dest_asset_key", "extra"} per asset it touched through ctx.outlet_events
    task_outlets: list[dict[str, Any]] = field(default_factory=list)
    outlet_events: list[dict[str, Any]] = field(default_factory=list)
    # The rendered map_index_template the terminal message repeats (bundle.core.mapped); each
    # SetRenderedMapIndex sent is in client.requests.
    rendered_map_index: str | None = None

    @property
    def skipped_downstream(self) -> list[Any]:
        """What the task skipped with ``SkipDownstreamTasks`` (branch / short-circuit), in order."""
        return self.client.skipped_downstream

    @property
    def messages(self) -> list[str]:
        """The log messages, masked the way Airflow's task log shows them."""
        return [masker.redact(r.getMessage()) for r in self.logs]

    @property
    def traceback(self) -> str | None:
        """The task's exception as its task log shows it (source lines, chained exceptions,
        pybundle's own frames left out unless ``PYBUNDLE_TRACEBACK_INTERNAL=1``), masked; ``None``
        when the task raised nothing. Handy as an assertion message:
        ``assert result.state == "success", result.traceback``."""
        if self.error is None:
            return None
        from .core.tracebacks import format_exception

        return masker.redact(format_exception(self.error))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def run_task(
    bundle: BundleProvider,
    dag_id: str,
    task_id: str,
    *,
    client: FakeClient | None = None,
    try_number: int = 1,
    max_tries: int = 0,
    map_index: int = -1,
    run_id: str = "manual__2026-01-01T00:00:00+00:00",
    logical_date: datetime | None = None,
    conf: Mapping[str, Any] | None = None,
    xcom_keys_to_clear: Sequence[str] = (),
    arguments: Mapping[str, Any] | None = None,
    triggering_asset_events: Sequence[Mapping[str, Any]] = (),
) -> TaskRunResult:
    """Run one task like a worker would and return its terminal state, XComs and log records.

    A retry is allowed when ``try_number <= max_tries``, as Airflow computes ``should_retry``.
    ``xcom_keys_to_clear`` are the keys Airflow's run context lists for a retry: deleted (one
    ``DeleteXCom`` each, in ``client.requests``) before the task runs. ``execution_timeout`` is
    enforced as under the supervisor when called from the main thread (SIGALRM; off it, the task
    runs on a thread that is abandoned at the deadline); there is no backstop for a task blocked
    where no signal reaches it, which would hang the test.

    Bound arguments (``load(rows=extract.output["rows"])``) are read from ``client``'s XComs, one
    ``GetXCom`` each, as on a worker; ``arguments={"rows": 4}`` gives values directly instead
    (type-checked like XCom values). ``conf`` meets the DAG's params as a triggered run's does
    (``result.error`` is the ``ParamValidationError`` of an invalid one). ``triggering_asset_events``
    are the run's ``consumed_asset_events`` (Airflow's ``AssetEventDagRunReference`` dicts), what
    ``ctx.triggering_asset_events`` reads; ``result.task_outlets`` / ``result.outlet_events`` what
    the success would report."""
    client = client or FakeClient()
    logical_date = logical_date or datetime(2026, 1, 1, tzinfo=timezone.utc)
    ti = TaskInstanceInfo(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        map_index=map_index,
        id="00000000-0000-4000-8000-000000000001",
        max_tries=max_tries,
    )
    dag_run = DagRunInfo(
        dag_id=dag_id,
        run_id=run_id,
        logical_date=logical_date,
        data_interval_start=logical_date,
        data_interval_end=logical_date,
        run_after=logical_date,
        start_date=logical_date,
        run_type="manual",
        conf=dict(conf or {}),
        consumed_asset_events=list(triggering_asset_events),
    )
    context = Context(ti=ti, dag_run=dag_run, should_retry=try_number <= max_tries)
    dag = registry_of(bundle).dags.get(dag_id)
    client.bind(ti, dag.tasks if dag is not None else ())
    capture = _Capture()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        registry = registry_of(bundle)
        outcome: TaskOutcome = execute_task(
            registry,
            context,
            client,
            xcom_keys_to_clear=xcom_keys_to_clear,
            arguments=arguments,
        )
        run_finalizers(registry, context, client, outcome)  # on_*_callback, as after a terminal message
    finally:
        root.removeHandler(capture)
        root.setLevel(previous_level)
    return TaskRunResult(
        state=outcome.state,
        return_value=outcome.return_value,
        error=outcome.error,
        reason=outcome.reason,
        xcoms=client.pushed,
        logs=capture.records,
        client=client,
        **(outcome.assets or {}),
        rendered_map_index=getattr(context.map_label, "text", None),
    )
