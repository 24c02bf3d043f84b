"""A fake Airflow Execution API for driving the released supervisor in tests.

``FakeExecutionAPI`` is an ``httpx.MockTransport`` handler: pass an instance to
``httpx.MockTransport`` and give that transport to the real
``airflow.sdk.api.client.Client``.  It keeps an in-memory model of the few
server-side tables the task SDK touches (variables, connections, XComs, task
instances, Dag runs, assets, state stores), records every request it receives
and validates every request body with the Execution API's *own* pydantic
models (apache-airflow-core ``airflow.api_fastapi.execution_api.datamodels``).
An invalid body is answered ``422`` and recorded in ``validation_errors``; a
request no route matches is answered ``404`` and recorded in ``unhandled``.

The object is JSON-serialisable (``to_dict`` / ``from_dict`` / ``load_dict``)
so that a test process can configure it, ship it to the fresh supervisor
process the harness starts, and read the final state back.

Only the standard library and httpx are imported at module level; the
Airflow models are imported lazily on the first request, so constructing and
inspecting a ``FakeExecutionAPI`` in the test process is cheap.
"""

from __future__ import annotations

import fnmatch
import json
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import httpx

__all__ = ["Call", "FakeExecutionAPI", "Fault"]

DEFAULT_DATE = "2026-01-01T00:00:00Z"
TERMINAL_TI_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Call:
    """One request the fake received, with the answer it gave."""

    method: str
    path: str
    query: dict[str, Any]
    json: Any
    status: int
    response: Any = None
    validation_error: Any = None
    fault: bool = False
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Call:
        return cls(**d)

    def __repr__(self) -> str:  # compact, readable in assertion diffs
        q = f"?{self.query}" if self.query else ""
        return f"<{self.method} {self.path}{q} -> {self.status} json={self.json!r}>"


@dataclass
class Fault:
    """
    Answer matching requests with a canned response instead of the normal behaviour.

    ``path`` is an fnmatch glob on the URL path (e.g. ``/task-instances/*/heartbeat``).
    The first ``skip`` matching requests are served normally, then ``times`` requests
    (``None`` = all following) get ``status`` / ``json``.
    """

    method: str
    path: str
    status: int
    json: Any = None
    skip: int = 0
    times: int | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method.upper() and fnmatch.fnmatchcase(path, self.path)

    def take(self) -> bool:
        """Account for one matching request; return True if the fault answers it."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


class _HTTPError(Exception):
    def __init__(self, status: int, detail: Any = None):
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


class _Invalid(Exception):
    def __init__(self, errors: Any):
        super().__init__(errors)
        self.errors = errors


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------
def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    s = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _xcom_key(dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> tuple:
    return (dag_id, run_id, task_id, key, int(map_index))


def _normalise_xcoms(xcoms: Any) -> dict[tuple, Any]:
    out: dict[tuple, Any] = {}
    if not xcoms:
        return out
    if isinstance(xcoms, dict):
        items: Iterable = xcoms.items()
    else:  # list of [dag, run, task, key, map_index, value] (the JSON form)
        items = ((tuple(row[:-1]), row[-1]) for row in xcoms)
    for k, v in items:
        k = tuple(k)
        if len(k) == 4:
            k = (*k, -1)
        if len(k) != 5:
            raise ValueError(f"XCom key must be (dag_id, run_id, task_id, key[, map_index]), got {k!r}")
        out[_xcom_key(*k)] = v
    return out


_lazy: dict[str, Any] = {}


def _callable_discriminated(annotated: Any) -> Any:
    """
    Rebuild ``Annotated[Union[...], Field(discriminator=<function>)]`` with ``Discriminator(<function>)``.

    ``TIStateUpdate`` declares its callable discriminator through ``Field(discriminator=...)``; a bare
    ``TypeAdapter`` (pydantic 2.14) rejects that form, so rebuild the same union with the same function.
    """
    from typing import Annotated, get_args

    from pydantic import Discriminator

    union, *metadata = get_args(annotated)
    fn = next(m.discriminator for m in metadata if getattr(m, "discriminator", None) is not None)
    return Annotated[union, Discriminator(fn)] if callable(fn) else annotated


def _models() -> dict[str, Any]:
    """Import the Execution API's own (server-side) models, once."""
    if _lazy:
        return _lazy
    from airflow.api_fastapi.execution_api.datamodels import (
        asset as m_asset,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        asset_event as m_asset_event,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        asset_state_store as m_asset_store,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        connection as m_conn,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        dagrun as m_dagrun,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        dags as m_dags,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        hitl as m_hitl,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        task_state_store as m_task_store,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        taskinstance as m_ti,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        variable as m_var,
    )
    from airflow.api_fastapi.execution_api.datamodels import (
        xcom as m_xcom,
    )
    from pydantic import JsonValue, TypeAdapter

    _lazy.update(
        TIEnterRunningPayload=TypeAdapter(m_ti.TIEnterRunningPayload),
        TIStateUpdate=TypeAdapter(_callable_discriminated(m_ti.TIStateUpdate)),
        TIHeartbeatInfo=TypeAdapter(m_ti.TIHeartbeatInfo),
        TISkippedDownstreamTasksStatePayload=TypeAdapter(m_ti.TISkippedDownstreamTasksStatePayload),
        RTIF=TypeAdapter(dict[str, JsonValue]),
        NonEmptyStr=TypeAdapter(str),
        JsonValue=TypeAdapter(JsonValue),
        VariablePostBody=TypeAdapter(m_var.VariablePostBody),
        TriggerDAGRunPayload=TypeAdapter(m_dagrun.TriggerDAGRunPayload),
        TaskStateStorePutBody=TypeAdapter(m_task_store.TaskStateStorePutBody),
        AssetStateStorePutBody=TypeAdapter(m_asset_store.AssetStateStorePutBody),
        HITLDetailRequest=TypeAdapter(m_hitl.HITLDetailRequest),
        UpdateHITLDetailPayload=TypeAdapter(m_hitl.UpdateHITLDetailPayload),
        # response models, used to self-check what the fake answers
        TIRunContext=m_ti.TIRunContext,
        DagRun=m_ti.DagRun,
        PreviousTIResponse=m_ti.PreviousTIResponse,
        PrevSuccessfulDagRunResponse=m_ti.PrevSuccessfulDagRunResponse,
        TaskStatesResponse=m_ti.TaskStatesResponse,
        VariableResponse=m_var.VariableResponse,
        VariableKeysResponse=m_var.VariableKeysResponse,
        ConnectionResponse=m_conn.ConnectionResponse,
        XComResponse=m_xcom.XComResponse,
        DagRunStateResponse=m_dagrun.DagRunStateResponse,
        DagResponse=m_dags.DagResponse,
        AssetResponse=m_asset.AssetResponse,
        AssetEventsResponse=m_asset_event.AssetEventsResponse,
        HITLDetailResponse=m_hitl.HITLDetailResponse,
    )
    return _lazy


def _validate(name: str, data: Any) -> Any:
    """Validate a request body like FastAPI does (python mode on the decoded JSON)."""
    from pydantic import ValidationError

    try:
        return _models()[name].validate_python(data)
    except ValidationError as e:
        raise _Invalid(_jsonable(e.errors(include_url=False))) from None


def _check_response(name: str, data: Any) -> Any:
    """Self-check an answer against the server's response model; return its JSON form."""
    model = _models()[name]
    return json.loads(model.model_validate(data).model_dump_json(by_alias=True))


# ---------------------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------------------
_Route = tuple[str, "re.Pattern[str]", Callable[..., Any]]


class FakeExecutionAPI:
    """
    In-memory Execution API, usable as an ``httpx.MockTransport`` handler.

    Configuration (all optional, all JSON-friendly):

    * ``variables`` ``{key: value}``; ``connections`` ``{conn_id: {conn_type, host, schema, login,
      password, port, extra}}`` (missing keys → ``None``, ``conn_type`` → ``"generic"``).
    * ``xcoms`` ``{(dag_id, run_id, task_id, key[, map_index]): value}``.
    * ``max_tries`` for the ``/run`` answer; ``should_retry`` (``None`` = compute it like the
      server: ``max_tries != 0 and try_number <= max_tries``).
    * ``run_context``: extra/overriding keys for the ``TIRunContext`` answer (``next_method``,
      ``variables``, ``task_reschedule_count``, ``start_date``, ...).
    * ``dag_runs`` ``{(dag_id, run_id): {DagRun fields}}`` (missing fields get defaults).
    * ``dags`` ``{dag_id: {DagResponse fields}}``; ``assets`` ``[{name, uri, group, extra}]``;
      ``asset_aliases`` ``{alias: [asset name, ...]}``; ``asset_events`` ``[AssetEventResponse dicts]``.
    * ``task_groups`` ``{dag_id: {group_id: [task_id, ...]}}`` for ``task_group_id`` filters.
    * ``task_state_store`` ``{(ti_id, key): value}``; ``asset_state_store``
      ``{("name"|"uri", name_or_uri, key): value}``; ``reschedule_start_dates`` ``{ti_id: iso}``.
    * ``faults``: list of :class:`Fault` (or ``add_fault(...)``).

    Recorded: ``calls`` (every request, :class:`Call`), ``validation_errors`` (422s),
    ``unhandled`` (404 no-route), ``harness_errors`` (bugs in the fake itself).
    """

    def __init__(
        self,
        *,
        variables: dict[str, str | None] | None = None,
        connections: dict[str, dict[str, Any]] | None = None,
        xcoms: Any = None,
        max_tries: int = 0,
        should_retry: bool | None = None,
        run_context: dict[str, Any] | None = None,
        dag_runs: dict[tuple[str, str], dict[str, Any]] | None = None,
        task_instances: dict[str, dict[str, Any]] | None = None,
        dags: dict[str, dict[str, Any]] | None = None,
        assets: list[dict[str, Any]] | None = None,
        asset_aliases: dict[str, list[str]] | None = None,
        asset_events: list[dict[str, Any]] | None = None,
        task_groups: dict[str, dict[str, list[str]]] | None = None,
        task_state_store: dict[tuple[str, str], Any] | None = None,
        asset_state_store: dict[tuple[str, str, str], Any] | None = None,
        reschedule_start_dates: dict[str, str] | None = None,
        faults: list[Fault] | None = None,
    ):
        self.variables: dict[str, str | None] = dict(variables or {})
        self.variable_descriptions: dict[str, str | None] = {}
        self.connections: dict[str, dict[str, Any]] = {
            k: self._full_conn(k, v) for k, v in (connections or {}).items()
        }
        self.xcoms: dict[tuple, Any] = _normalise_xcoms(xcoms)
        self.xcom_meta: dict[tuple, dict[str, Any]] = {}
        self.max_tries = max_tries
        self.should_retry = should_retry
        self.run_context: dict[str, Any] = dict(run_context or {})
        self.dag_runs: dict[tuple[str, str], dict[str, Any]] = {}
        for (dag_id, run_id), dr in (dag_runs or {}).items():
            self.add_dag_run(dag_id, run_id, **dr)
        self.task_instances: dict[str, dict[str, Any]] = {}
        for ti_id, ti in (task_instances or {}).items():
            self.task_instances[str(ti_id)] = dict(ti)
        self.dags: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (dags or {}).items()}
        self.assets: list[dict[str, Any]] = [dict(a) for a in (assets or [])]
        self.asset_aliases: dict[str, list[str]] = dict(asset_aliases or {})
        self.asset_events: list[dict[str, Any]] = list(asset_events or [])
        self.task_groups: dict[str, dict[str, list[str]]] = dict(task_groups or {})
        self.task_state_store: dict[tuple, Any] = {tuple(k): v for k, v in (task_state_store or {}).items()}
        self.asset_state_store: dict[tuple, Any] = {tuple(k): v for k, v in (asset_state_store or {}).items()}
        self.reschedule_start_dates: dict[str, str] = dict(reschedule_start_dates or {})
        self.rtif: dict[str, dict[str, Any]] = {}
        self.rendered_map_index: dict[str, str] = {}
        self.hitl: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = list(faults or [])

        self.calls: list[Call] = []
        self.validation_errors: list[dict[str, Any]] = []
        self.unhandled: list[dict[str, Any]] = []
        self.harness_errors: list[str] = []
        self.call_log_path: str | None = None  # if set, every Call is appended there as a JSON line
        self.snapshot_path: str | None = None  # if set, the whole state is rewritten there after each call
        self._routes: list[_Route] | None = None

    # -----------------------------------------------------------------------------------------------------
    # Setup helpers
    # -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _full_conn(conn_id: str, c: dict[str, Any]) -> dict[str, Any]:
        extra = c.get("extra")
        if isinstance(extra, dict):
            extra = json.dumps(extra)
        return {
            "conn_id": conn_id,
            "conn_type": c.get("conn_type") or "generic",
            "host": c.get("host"),
            "schema": c.get("schema"),
            "login": c.get("login"),
            "password": c.get("password"),
            "port": c.get("port"),
            "extra": extra,
        }

    def add_dag_run(self, dag_id: str, run_id: str, **fields: Any) -> dict[str, Any]:
        """Create (or update) a Dag run; unspecified DagRun fields get sensible defaults."""
        dr = self.dag_runs.get((dag_id, run_id)) or {
            "dag_id": dag_id,
            "run_id": run_id,
            "logical_date": DEFAULT_DATE,
            "data_interval_start": DEFAULT_DATE,
            "data_interval_end": DEFAULT_DATE,
            "run_after": DEFAULT_DATE,
            "start_date": DEFAULT_DATE,
            "end_date": None,
            "clear_number": 0,
            "run_type": "manual",
            "state": "running",
            "conf": {},
            "triggering_user_name": None,
            "consumed_asset_events": [],
            "partition_key": None,
            "partition_date": None,
            "note": None,
            "team_name": None,
        }
        dr.update(fields)
        dr["dag_id"], dr["run_id"] = dag_id, run_id
        self.dag_runs[(dag_id, run_id)] = dr
        return dr

    def add_task_instance(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        state: str | None = None,
        try_number: int = 1,
        ti_id: str | None = None,
        **extra: Any,
    ) -> str:
        """Register a task instance (the one being run, or others for count/states queries)."""
        import uuid

        ti_id = str(ti_id or uuid.uuid4())
        if (dag_id, run_id) not in self.dag_runs:
            self.add_dag_run(dag_id, run_id)
        self.task_instances[ti_id] = {
            "id": ti_id,
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "state": state,
            "try_number": try_number,
            "hostname": None,
            "pid": None,
            "start_date": None,
            "end_date": None,
            **extra,
        }
        return ti_id

    def add_fault(
        self,
        method: str,
        path: str,
        status: int,
        json: Any = None,
        *,
        skip: int = 0,
        times: int | None = None,
    ) -> Fault:
        f = Fault(method=method, path=path, status=status, json=json, skip=skip, times=times)
        self.faults.append(f)
        return f

    # -----------------------------------------------------------------------------------------------------
    # Queries for tests
    # -----------------------------------------------------------------------------------------------------
    def calls_to(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Recorded calls, filtered by method and an fnmatch glob on the path."""
        return [
            c
            for c in self.calls
            if (method is None or c.method == method.upper())
            and (path is None or fnmatch.fnmatchcase(c.path, path))
        ]

    @property
    def state_updates(self) -> list[dict[str, Any]]:
        """Bodies of every ``PATCH /task-instances/{id}/state`` call, in order."""
        return [c.json for c in self.calls_to("PATCH", "/task-instances/*/state")]

    def ti_state(self, ti_id: str | None = None) -> str | None:
        """State of the given TI (default: the only TI that was ever started)."""
        if ti_id is None:
            started = [t for t in self.task_instances.values() if t.get("pid") is not None]
            if len(started) != 1:
                raise ValueError(f"ambiguous: {len(started)} started task instances; pass ti_id")
            return started[0]["state"]
        return self.task_instances[str(ti_id)]["state"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        return self.xcoms[_xcom_key(dag_id, run_id, task_id, key, map_index)]

    def problems(self) -> list[str]:
        """Human-readable list of every validation error, unhandled request and fake bug."""
        out = [f"422 {v['method']} {v['path']}: {v['errors']}" for v in self.validation_errors]
        out += [f"404 unhandled {u['method']} {u['path']}" for u in self.unhandled]
        out += [f"fake error: {e}" for e in self.harness_errors]
        return out

    def assert_clean(self) -> None:
        """Fail if any request was invalid or unhandled (or the fake itself broke)."""
        if probs := self.problems():
            raise AssertionError("Execution API saw problems:\n  " + "\n  ".join(probs))

    # -----------------------------------------------------------------------------------------------------
    # (De)serialisation, for shipping the fake across processes
    # -----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "variables": self.variables,
                "variable_descriptions": self.variable_descriptions,
                "connections": self.connections,
                "xcoms": [[*k, v] for k, v in self.xcoms.items()],
                "xcom_meta": [[*k, v] for k, v in self.xcom_meta.items()],
                "max_tries": self.max_tries,
                "should_retry": self.should_retry,
                "run_context": self.run_context,
                "dag_runs": list(self.dag_runs.values()),
                "task_instances": self.task_instances,
                "dags": self.dags,
                "assets": self.assets,
                "asset_aliases": self.asset_aliases,
                "asset_events": self.asset_events,
                "task_groups": self.task_groups,
                "task_state_store": [[*k, v] for k, v in self.task_state_store.items()],
                "asset_state_store": [[*k, v] for k, v in self.asset_state_store.items()],
                "reschedule_start_dates": self.reschedule_start_dates,
                "rtif": self.rtif,
                "rendered_map_index": self.rendered_map_index,
                "hitl": self.hitl,
                "faults": [asdict(f) for f in self.faults],
                "calls": [c.to_dict() for c in self.calls],
                "validation_errors": self.validation_errors,
                "unhandled": self.unhandled,
                "harness_errors": self.harness_errors,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FakeExecutionAPI:
        api = cls()
        api.load_dict(d)
        return api

    def load_dict(self, d: dict[str, Any]) -> None:
        """Replace this object's state by the one in ``d`` (as produced by ``to_dict``)."""
        self.variables = dict(d.get("variables", {}))
        self.variable_descriptions = dict(d.get("variable_descriptions", {}))
        self.connections = dict(d.get("connections", {}))
        self.xcoms = _normalise_xcoms(d.get("xcoms", []))
        self.xcom_meta = {tuple(r[:-1]): r[-1] for r in d.get("xcom_meta", [])}
        self.max_tries = d.get("max_tries", 0)
        self.should_retry = d.get("should_retry")
        self.run_context = dict(d.get("run_context", {}))
        self.dag_runs = {(r["dag_id"], r["run_id"]): r for r in d.get("dag_runs", [])}
        self.task_instances = dict(d.get("task_instances", {}))
        self.dags = dict(d.get("dags", {}))
        self.assets = list(d.get("assets", []))
        self.asset_aliases = dict(d.get("asset_aliases", {}))
        self.asset_events = list(d.get("asset_events", []))
        self.task_groups = dict(d.get("task_groups", {}))
        self.task_state_store = {tuple(r[:-1]): r[-1] for r in d.get("task_state_store", [])}
        self.asset_state_store = {tuple(r[:-1]): r[-1] for r in d.get("asset_state_store", [])}
        self.reschedule_start_dates = dict(d.get("reschedule_start_dates", {}))
        self.rtif = dict(d.get("rtif", {}))
        self.rendered_map_index = dict(d.get("rendered_map_index", {}))
        self.hitl = dict(d.get("hitl", {}))
        self.faults = [Fault(**f) for f in d.get("faults", [])]
        self.calls = [Call.from_dict(c) for c in d.get("calls", [])]
        self.validation_errors = list(d.get("validation_errors", []))
        self.unhandled = list(d.get("unhandled", []))
        self.harness_errors = list(d.get("harness_errors", []))

    # -----------------------------------------------------------------------------------------------------
    # The transport handler
    # -----------------------------------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.method.upper()
        path = request.url.path
        query: dict[str, Any] = {}
        for k, v in request.url.params.multi_items():
            if k in query:
                query[k] = [*query[k], v] if isinstance(query[k], list) else [query[k], v]
            else:
                query[k] = v
        raw = request.content
        body: Any = None
        body_error = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                body_error = [{"type": "json_invalid", "msg": str(e), "input": raw.decode(errors="replace")}]
                body = raw.decode(errors="replace")

        call = Call(method=method, path=path, query=query, json=body, status=0, seq=len(self.calls))
        headers: dict[str, str] = {}
        try:
            fault = next((f for f in self.faults if f.matches(method, path) and f.take()), None)
            if fault is not None:
                call.fault = True
                status = fault.status
                payload = fault.json if fault.json is not None else {"detail": "fault injected by test"}
            elif body_error is not None:
                raise _Invalid(body_error)
            else:
                status, payload, headers = self._dispatch(method, path, query, body, raw)
        except _Invalid as e:
            status, payload = 422, {"detail": e.errors}
            call.validation_error = e.errors
            self.validation_errors.append({"method": method, "path": path, "body": body, "errors": e.errors})
        except _HTTPError as e:
            status, payload = e.status, {"detail": e.detail}
        except Exception as e:
            # A bug in the fake itself. Do not answer 5xx (the client would retry for ~30 s): record it and
            # raise, so the client call fails at once and the supervisor logs it.
            tb = traceback.format_exc()
            self.harness_errors.append(f"{method} {path}: {tb}")
            call.status, call.response = -1, {"fake_error": tb}
            self._record(call)
            raise RuntimeError(f"FakeExecutionAPI internal error on {method} {path}: {e!r}") from e

        call.status = status
        call.response = payload
        self._record(call)
        if status == 204 or method == "HEAD":
            return httpx.Response(status, headers=headers)
        content = json.dumps(payload).encode()  # a 200 with ``None`` is a JSON ``null`` body
        return httpx.Response(
            status, content=content, headers={"content-type": "application/json", **headers}
        )

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        if self.call_log_path:
            with open(self.call_log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(_jsonable(call.to_dict())) + "\n")
        if self.snapshot_path:
            # Lets a test that kills the supervisor still see the server-side state it left behind.
            tmp = f"{self.snapshot_path}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f)
            import os

            os.replace(tmp, self.snapshot_path)

    # -----------------------------------------------------------------------------------------------------
    # Routing
    # -----------------------------------------------------------------------------------------------------
    def _routes_table(self) -> list[_Route]:
        if self._routes is not None:
            return self._routes
        seg = r"(?P<{}>[^/]+)"
        ti = "/task-instances/" + seg.format("ti_id")
        xc = "/xcoms/" + seg.format("dag_id") + "/" + seg.format("run_id") + "/" + seg.format("task_id")
        dr = "/dag-runs/" + seg.format("dag_id") + "/" + seg.format("run_id")
        table: list[tuple[str, str, Callable[..., Any]]] = [
            # task instances (static paths before the {id} ones)
            ("GET", r"/task-instances/count", self._ti_count),
            ("GET", r"/task-instances/states", self._ti_states),
            ("GET", r"/task-instances/breadcrumbs", self._ti_breadcrumbs),
            ("GET", r"/task-instances/previous/(?P<dag_id>[^/]+)/(?P<task_id>[^/]+)", self._ti_previous),
            ("PATCH", ti + r"/run", self._ti_run),
            ("PATCH", ti + r"/state", self._ti_state),
            ("PUT", ti + r"/heartbeat", self._ti_heartbeat),
            ("PATCH", ti + r"/skip-downstream", self._ti_skip_downstream),
            ("PUT", ti + r"/rtif", self._ti_rtif),
            ("PATCH", ti + r"/rendered-map-index", self._ti_rendered_map_index),
            ("GET", ti + r"/previous-successful-dagrun", self._ti_prev_successful_dagrun),
            ("GET", ti + r"/validate-inlets-and-outlets", self._ti_validate_inlets_outlets),
            ("GET", r"/task-reschedules/(?P<ti_id>[^/]+)/start_date", self._reschedule_start_date),
            # variables
            ("GET", r"/variables/keys", self._var_keys),
            ("GET", r"/variables/(?P<key>.+)", self._var_get),
            ("PUT", r"/variables/(?P<key>.+)", self._var_put),
            ("DELETE", r"/variables/(?P<key>.+)", self._var_delete),
            # connections
            ("GET", r"/connections/(?P<conn_id>[^/]+)", self._conn_get),
            # xcoms
            ("GET", xc + r"/(?P<key>.+)/item/(?P<offset>-?\d+)", self._xcom_item),
            ("GET", xc + r"/(?P<key>.+)/slice", self._xcom_slice),
            ("HEAD", xc + r"/(?P<key>.+)", self._xcom_head),
            ("GET", xc + r"/(?P<key>.+)", self._xcom_get),
            ("POST", xc + r"/(?P<key>.+)", self._xcom_post),
            ("DELETE", xc + r"/(?P<key>.+)", self._xcom_delete),
            # dag runs
            ("GET", r"/dag-runs/count", self._dr_count),
            ("GET", r"/dag-runs/previous", self._dr_previous),
            ("GET", dr + r"/state", self._dr_state),
            ("POST", dr + r"/clear", self._dr_clear),
            ("GET", dr, self._dr_get),
            ("POST", dr, self._dr_trigger),
            # dags
            ("GET", r"/dags/(?P<dag_id>[^/]+)", self._dag_get),
            # assets
            ("GET", r"/assets/by-name", self._asset_by_name),
            ("GET", r"/assets/by-uri", self._asset_by_uri),
            ("GET", r"/assets/by-alias", self._asset_by_alias),
            ("GET", r"/asset-events/by-asset", self._asset_events_by_asset),
            ("GET", r"/asset-events/by-asset-alias", self._asset_events_by_alias),
            # state stores
            ("GET", r"/store/ti/(?P<ti_id>[^/]+)/(?P<key>.+)", self._ts_get),
            ("PUT", r"/store/ti/(?P<ti_id>[^/]+)/(?P<key>.+)", self._ts_put),
            ("DELETE", r"/store/ti/(?P<ti_id>[^/]+)/(?P<key>.+)", self._ts_delete),
            ("DELETE", r"/store/ti/(?P<ti_id>[^/]+)", self._ts_clear),
            ("GET", r"/store/asset/(?P<by>by-name|by-uri)/value", self._as_get),
            ("PUT", r"/store/asset/(?P<by>by-name|by-uri)/value", self._as_put),
            ("DELETE", r"/store/asset/(?P<by>by-name|by-uri)/value", self._as_delete),
            ("DELETE", r"/store/asset/(?P<by>by-name|by-uri)/clear", self._as_clear),
            # human in the loop
            ("POST", r"/hitlDetails/(?P<ti_id>[^/]+)", self._hitl_post),
            ("PATCH", r"/hitlDetails/(?P<ti_id>[^/]+)", self._hitl_patch),
            ("GET", r"/hitlDetails/(?P<ti_id>[^/]+)", self._hitl_get),
            # health
            ("GET", r"/health", lambda **_: (200, {"status": "healthy"})),
        ]
        self._routes = [(m, re.compile(p + r"/?"), h) for m, p, h in table]
        return self._routes

    def _dispatch(self, method: str, path: str, query: dict[str, Any], body: Any, raw: bytes):
        for m, pattern, handler in self._routes_table():
            if m != method:
                continue
            if (match := pattern.fullmatch(path)) is None:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            result = handler(query=query, body=body, raw=raw, **params)
            if len(result) == 2:
                return (*result, {})
            return result
        self.unhandled.append({"method": method, "path": path, "query": query, "body": body})
        return 404, {"detail": "Not Found"}, {}

    # -----------------------------------------------------------------------------------------------------
    # Task instances
    # -----------------------------------------------------------------------------------------------------
    def _get_ti(self, ti_id: str) -> dict[str, Any]:
        if (ti := self.task_instances.get(ti_id)) is None:
            raise _HTTPError(404, {"reason": "not_found", "message": "Task Instance not found"})
        return ti

    def _ti_run(self, ti_id: str, body: Any, **_):
        payload = _validate("TIEnterRunningPayload", body)
        ti = self._get_ti(ti_id)
        if ti["state"] not in (None, "queued", "restarting", "up_for_retry", "up_for_reschedule", "deferred"):
            raise _HTTPError(
                409,
                {
                    "reason": "invalid_state",
                    "message": "TI was not in a state where it could be marked as running",
                    "previous_state": ti["state"],
                },
            )
        previous_state = ti["state"]
        ti.update(
            state="running",
            pid=payload.pid,
            hostname=payload.hostname,
            unixname=payload.unixname,
            start_date=payload.start_date.isoformat(),
        )
        dag_run = self.dag_runs.get((ti["dag_id"], ti["run_id"])) or self.add_dag_run(
            ti["dag_id"], ti["run_id"]
        )
        should_retry = self.should_retry
        if should_retry is None:
            should_retry = previous_state == "restarting" or (
                self.max_tries != 0 and ti["try_number"] <= self.max_tries
            )
        ctx = {
            "dag_run": dag_run,
            "task_reschedule_count": 0,
            "max_tries": self.max_tries,
            "variables": [],
            "connections": [],
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": [],
            "should_retry": should_retry,
            "start_date": None,
        }
        ctx.update(self.run_context)
        return 200, _check_response("TIRunContext", ctx)

    def _ti_state(self, ti_id: str, body: Any, **_):
        payload = _validate("TIStateUpdate", body)
        ti = self._get_ti(ti_id)
        new_state = getattr(payload.state, "value", payload.state)
        if new_state == ti["state"]:
            return 200, None
        if ti["state"] != "running":
            raise _HTTPError(
                409,
                {
                    "reason": "invalid_state",
                    "message": "TI was not in the running state so it cannot be updated",
                    "previous_state": ti["state"],
                },
            )
        ti["state"] = new_state
        data = payload.model_dump(mode="json")
        if data.get("end_date"):
            ti["end_date"] = data["end_date"]
        for k in ("task_outlets", "outlet_events", "rendered_map_index", "next_method", "retry_reason"):
            if k in data:
                ti[k] = data[k]
        if data.get("rendered_map_index") is not None:
            self.rendered_map_index[ti_id] = data["rendered_map_index"]
        return 204, None

    def _ti_heartbeat(self, ti_id: str, body: Any, **_):
        payload = _validate("TIHeartbeatInfo", body)
        ti = self._get_ti(ti_id)
        if ti.get("hostname") != payload.hostname or ti.get("pid") != payload.pid:
            raise _HTTPError(
                409,
                {
                    "reason": "running_elsewhere",
                    "message": "TI is already running elsewhere",
                    "current_hostname": ti.get("hostname"),
                    "current_pid": ti.get("pid"),
                },
            )
        if ti["state"] != "running":
            raise _HTTPError(
                409,
                {
                    "reason": "not_running",
                    "message": "TI is no longer in the running state and task should terminate",
                    "current_state": ti["state"],
                },
            )
        ti["last_heartbeat_at"] = _now_iso()
        return 204, None

    def _ti_skip_downstream(self, ti_id: str, body: Any, **_):
        payload = _validate("TISkippedDownstreamTasksStatePayload", body)
        me = self._get_ti(ti_id)
        for item in payload.tasks:
            task_id, map_index = (item, None) if isinstance(item, str) else tuple(item)
            for t in self.task_instances.values():
                if (
                    t["dag_id"] == me["dag_id"]
                    and t["run_id"] == me["run_id"]
                    and t["task_id"] == task_id
                    and (map_index is None or t["map_index"] == map_index)
                ):
                    t["state"] = "skipped"
        return 204, None

    def _ti_rtif(self, ti_id: str, body: Any, **_):
        payload = _validate("RTIF", body)
        self._get_ti(ti_id)
        self.rtif[ti_id] = _jsonable(payload)
        return 201, {"message": "Rendered task instance fields successfully set"}

    def _ti_rendered_map_index(self, ti_id: str, body: Any, **_):
        value = _validate("NonEmptyStr", body)
        if not value:
            raise _HTTPError(422, "rendered_map_index cannot be empty")
        self._get_ti(ti_id)
        self.rendered_map_index[ti_id] = value
        return 204, None

    def _dr_logical_date(self, ti: dict[str, Any]) -> datetime | None:
        dr = self.dag_runs.get((ti["dag_id"], ti["run_id"]))
        return _parse_dt(dr.get("logical_date")) if dr else None

    def _ti_prev_successful_dagrun(self, ti_id: str, **_):
        ti = self.task_instances.get(ti_id)
        empty = {"data_interval_start": None, "data_interval_end": None, "start_date": None, "end_date": None}
        if not ti or not (ld := self._dr_logical_date(ti)):
            return 200, empty
        candidates = [
            dr
            for (dag_id, _r), dr in self.dag_runs.items()
            if dag_id == ti["dag_id"]
            and dr.get("state") == "success"
            and dr.get("logical_date")
            and _parse_dt(dr["logical_date"]) < ld
        ]
        if not candidates:
            return 200, empty
        dr = max(candidates, key=lambda d: _parse_dt(d["logical_date"]))
        return 200, _check_response("PrevSuccessfulDagRunResponse", {k: dr.get(k) for k in empty})

    def _ti_validate_inlets_outlets(self, ti_id: str, **_):
        self._get_ti(ti_id)
        return 200, {"inactive_assets": []}

    def _reschedule_start_date(self, ti_id: str, **_):
        return 200, self.reschedule_start_dates.get(ti_id)

    def _select_tis(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        def as_list(v: Any) -> list[str] | None:
            return None if v is None else (v if isinstance(v, list) else [v])

        if "dag_id" not in query:
            raise _Invalid([{"type": "missing", "loc": ["query", "dag_id"], "msg": "Field required"}])
        dag_id = query["dag_id"]
        task_ids = as_list(query.get("task_ids"))
        run_ids = as_list(query.get("run_ids"))
        states = as_list(query.get("states"))
        logical_dates = as_list(query.get("logical_dates"))
        lds = {_parse_dt(d) for d in logical_dates} if logical_dates else None
        map_index = int(query["map_index"]) if "map_index" in query else None
        out = []
        for t in self.task_instances.values():
            if t["dag_id"] != dag_id:
                continue
            if task_ids and t["task_id"] not in task_ids:
                continue
            if run_ids and t["run_id"] not in run_ids:
                continue
            if states and t["state"] not in states:
                continue
            if map_index is not None and t["map_index"] != map_index:
                continue
            if lds and self._dr_logical_date(t) not in lds:
                continue
            out.append(t)
        if group := query.get("task_group_id"):
            members = self.task_groups.get(dag_id, {}).get(group)
            if members is None:
                raise _HTTPError(
                    404, {"reason": "not_found", "message": f"Task group {group} not found in DAG {dag_id}"}
                )
            grouped = [
                t
                for t in self.task_instances.values()
                if t["dag_id"] == dag_id
                and t["task_id"] in members
                and (not run_ids or t["run_id"] in run_ids)
                and (map_index is None or t["map_index"] == map_index)
                and (not lds or self._dr_logical_date(t) in lds)
            ]
            out = out + grouped if task_ids else grouped
        return out

    def _ti_count(self, query: dict[str, Any], **_):
        return 200, len(self._select_tis(query))

    def _ti_states(self, query: dict[str, Any], **_):
        query = {k: v for k, v in query.items() if k != "states"}
        result: dict[str, dict[str, Any]] = {}
        for t in self._select_tis(query):
            name = t["task_id"] if t["map_index"] < 0 else f"{t['task_id']}_{t['map_index']}"
            result.setdefault(t["run_id"], {})[name] = t["state"]
        return 200, _check_response("TaskStatesResponse", {"task_states": result})

    def _ti_breadcrumbs(self, query: dict[str, Any], **_):
        rows = [
            {
                "task_id": t["task_id"],
                "map_index": t["map_index"],
                "state": t["state"],
                "operator": t.get("operator"),
                "duration": t.get("duration"),
            }
            for t in sorted(self.task_instances.values(), key=lambda t: (t["task_id"], t["map_index"]))
            if t["dag_id"] == query.get("dag_id")
            and t["run_id"] == query.get("run_id")
            and t["state"] in TERMINAL_TI_STATES
        ]
        return 200, {"breadcrumbs": rows}

    def _ti_previous(self, dag_id: str, task_id: str, query: dict[str, Any], **_):
        map_index = int(query.get("map_index", -1))
        before = _parse_dt(query.get("logical_date"))
        state = query.get("state")
        candidates = []
        for t in self.task_instances.values():
            if t["dag_id"] != dag_id or t["task_id"] != task_id or t["map_index"] != map_index:
                continue
            ld = self._dr_logical_date(t)
            if before and (ld is None or ld >= before):
                continue
            if state and t["state"] != state:
                continue
            candidates.append((ld or datetime.min.replace(tzinfo=timezone.utc), t))
        if not candidates:
            return 200, None
        ld, t = max(candidates, key=lambda p: p[0])
        dr = self.dag_runs.get((t["dag_id"], t["run_id"]), {})
        return 200, _check_response(
            "PreviousTIResponse",
            {
                "task_id": t["task_id"],
                "dag_id": t["dag_id"],
                "run_id": t["run_id"],
                "logical_date": dr.get("logical_date"),
                "start_date": t.get("start_date"),
                "end_date": t.get("end_date"),
                "state": t["state"],
                "try_number": t.get("try_number", 1),
                "map_index": t["map_index"],
                "duration": t.get("duration"),
            },
        )

    # -----------------------------------------------------------------------------------------------------
    # Variables / connections
    # -----------------------------------------------------------------------------------------------------
    def _var_get(self, key: str, **_):
        if key not in self.variables:
            raise _HTTPError(404, {"reason": "not_found", "message": f"Variable with key '{key}' not found"})
        return 200, _check_response("VariableResponse", {"key": key, "value": self.variables[key]})

    def _var_put(self, key: str, body: Any, **_):
        payload = _validate("VariablePostBody", body)
        self.variables[key] = payload.value
        self.variable_descriptions[key] = payload.description
        return 201, {"message": "Variable successfully set"}

    def _var_delete(self, key: str, **_):
        self.variables.pop(key, None)
        self.variable_descriptions.pop(key, None)
        return 204, None

    def _var_keys(self, query: dict[str, Any], **_):
        try:
            limit = int(query.get("limit", 1000))
            offset = int(query.get("offset", 0))
        except ValueError as e:
            raise _Invalid([{"type": "int_parsing", "msg": str(e)}]) from None
        if not 1 <= limit <= 10_000 or offset < 0:
            raise _Invalid([{"type": "range", "msg": f"bad limit/offset {limit}/{offset}"}])
        prefix = query.get("prefix")
        keys = sorted(k for k in self.variables if prefix is None or k.startswith(prefix))
        return 200, _check_response(
            "VariableKeysResponse", {"keys": keys[offset : offset + limit], "total_entries": len(keys)}
        )

    def _conn_get(self, conn_id: str, **_):
        if conn_id not in self.connections:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Connection with ID {conn_id} not found"}
            )
        return 200, _check_response("ConnectionResponse", self.connections[conn_id])

    # -----------------------------------------------------------------------------------------------------
    # XComs
    # -----------------------------------------------------------------------------------------------------
    def _xcom_rows(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[tuple[int, Any]]:
        return sorted((k[4], v) for k, v in self.xcoms.items() if k[:4] == (dag_id, run_id, task_id, key))

    def _xcom_get(self, dag_id: str, run_id: str, task_id: str, key: str, query: dict[str, Any], **_):
        rows = self._xcom_rows(dag_id, run_id, task_id, key)
        if (offset := query.get("offset")) is not None:
            values = [v for _m, v in rows if v is not None]
            offset = int(offset)
            idx = offset if offset >= 0 else len(values) + offset
            found = 0 <= idx < len(values)
            value = values[idx] if found else None
        else:
            mi = int(query.get("map_index", -1))
            found = _xcom_key(dag_id, run_id, task_id, key, mi) in self.xcoms
            value = self.xcoms.get(_xcom_key(dag_id, run_id, task_id, key, mi))
        if not found:
            raise _HTTPError(
                404,
                {
                    "reason": "not_found",
                    "message": f"XCom with key={key!r} not found for task {task_id!r} in DAG run "
                    f"{run_id!r} of {dag_id!r}",
                },
            )
        return 200, _check_response("XComResponse", {"key": key, "value": value})

    def _xcom_post(self, dag_id: str, run_id: str, task_id: str, key: str, query, body, **_):
        value = _validate("JsonValue", body)
        mi = int(query.get("map_index", -1))
        k = _xcom_key(dag_id, run_id, task_id, key, mi)
        self.xcoms[k] = value
        meta = {}
        if "mapped_length" in query:
            meta["mapped_length"] = int(query["mapped_length"])
        if "dag_result" in query:
            meta["dag_result"] = str(query["dag_result"]).lower() == "true"
        if meta:
            self.xcom_meta[k] = meta
        return 201, {"message": "XCom successfully set"}

    def _xcom_delete(self, dag_id: str, run_id: str, task_id: str, key: str, query, **_):
        mi = int(query.get("map_index", -1))
        self.xcoms.pop(_xcom_key(dag_id, run_id, task_id, key, mi), None)
        return 200, {"message": f"XCom with key: {key} successfully deleted."}

    def _xcom_head(self, dag_id: str, run_id: str, task_id: str, key: str, query, **_):
        if "map_index" in query:
            raise _HTTPError(
                400, {"reason": "invalid_request", "message": "Cannot specify map_index in a HEAD request"}
            )
        n = len(self._xcom_rows(dag_id, run_id, task_id, key))
        return 200, None, {"Content-Range": f"map_indexes {n}"}

    def _xcom_item(self, dag_id: str, run_id: str, task_id: str, key: str, offset: str, **_):
        values = [v for _m, v in self._xcom_rows(dag_id, run_id, task_id, key)]
        off = int(offset)
        idx = off if off >= 0 else len(values) + off
        if not 0 <= idx < len(values):
            raise _HTTPError(
                404,
                {"reason": "not_found", "message": f"XCom with key={key!r} offset={off} not found"},
            )
        return 200, values[idx]

    def _xcom_slice(self, dag_id: str, run_id: str, task_id: str, key: str, query, **_):
        values = [v for _m, v in self._xcom_rows(dag_id, run_id, task_id, key)]

        def opt(name: str) -> int | None:
            return int(query[name]) if name in query else None

        return 200, values[slice(opt("start"), opt("stop"), opt("step"))]

    # -----------------------------------------------------------------------------------------------------
    # Dag runs / dags
    # -----------------------------------------------------------------------------------------------------
    def _get_dr(self, dag_id: str, run_id: str) -> dict[str, Any]:
        if (dr := self.dag_runs.get((dag_id, run_id))) is None:
            raise _HTTPError(
                404,
                {
                    "reason": "not_found",
                    "message": f"Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found",
                },
            )
        return dr

    def _dr_get(self, dag_id: str, run_id: str, **_):
        return 200, _check_response("DagRun", self._get_dr(dag_id, run_id))

    def _dr_state(self, dag_id: str, run_id: str, **_):
        return 200, _check_response("DagRunStateResponse", {"state": self._get_dr(dag_id, run_id)["state"]})

    def _dr_trigger(self, dag_id: str, run_id: str, body: Any, **_):
        payload = _validate("TriggerDAGRunPayload", body if body is not None else {})
        if (dag := self.dags.get(dag_id)) is not None and dag.get("_missing"):
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Dag with dag_id: '{dag_id}' not found"}
            )
        if (dag_id, run_id) in self.dag_runs:
            raise _HTTPError(
                409,
                {
                    "reason": "already_exists",
                    "message": f"A run already exists for Dag '{dag_id}' with run_id '{run_id}'",
                },
            )
        ld = payload.logical_date.isoformat() if payload.logical_date else None
        ra = payload.run_after.isoformat() if payload.run_after else (ld or _now_iso())
        self.add_dag_run(
            dag_id,
            run_id,
            logical_date=ld,
            data_interval_start=ld,
            data_interval_end=ld,
            run_after=ra,
            start_date=None,
            run_type="operator_triggered",
            state="queued",
            conf=payload.conf,
            partition_key=payload.partition_key,
            note=payload.note,
        )
        return 204, None

    def _dr_clear(self, dag_id: str, run_id: str, **_):
        dr = self._get_dr(dag_id, run_id)
        dr["state"] = "queued"
        dr["clear_number"] = dr.get("clear_number", 0) + 1
        return 204, None

    def _dr_count(self, query: dict[str, Any], **_):
        def as_list(v: Any) -> list[str]:
            return [] if v is None else (v if isinstance(v, list) else [v])

        if "dag_id" not in query:
            raise _Invalid([{"type": "missing", "loc": ["query", "dag_id"], "msg": "Field required"}])
        lds = {_parse_dt(d) for d in as_list(query.get("logical_dates"))}
        run_ids = as_list(query.get("run_ids"))
        states = as_list(query.get("states"))
        n = 0
        for (dag_id, run_id), dr in self.dag_runs.items():
            if dag_id != query["dag_id"]:
                continue
            if lds and _parse_dt(dr.get("logical_date")) not in lds:
                continue
            if run_ids and run_id not in run_ids:
                continue
            if states and dr.get("state") not in states:
                continue
            n += 1
        return 200, n

    def _dr_previous(self, query: dict[str, Any], **_):
        if "dag_id" not in query or "logical_date" not in query:
            raise _Invalid([{"type": "missing", "loc": ["query"], "msg": "dag_id and logical_date required"}])
        before = _parse_dt(query["logical_date"])
        state = query.get("state")
        candidates = [
            dr
            for (dag_id, _r), dr in self.dag_runs.items()
            if dag_id == query["dag_id"]
            and dr.get("logical_date")
            and _parse_dt(dr["logical_date"]) < before
            and (not state or dr.get("state") == state)
        ]
        if not candidates:
            return 200, None
        return 200, _check_response("DagRun", max(candidates, key=lambda d: _parse_dt(d["logical_date"])))

    def _dag_get(self, dag_id: str, **_):
        dag = self.dags.get(dag_id)
        if dag is None and any(t["dag_id"] == dag_id for t in self.task_instances.values()):
            dag = {}
        if dag is None or dag.get("_missing"):
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Dag with dag_id: '{dag_id}' not found"}
            )
        full = {
            "dag_id": dag_id,
            "is_paused": False,
            "bundle_name": None,
            "bundle_version": None,
            "relative_fileloc": None,
            "owners": "airflow",
            "tags": [],
            "next_dagrun": None,
            **{k: v for k, v in dag.items() if not k.startswith("_")},
        }
        return 200, _check_response("DagResponse", full)

    # -----------------------------------------------------------------------------------------------------
    # Assets
    # -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _full_asset(a: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": a["name"],
            "uri": a.get("uri", a["name"]),
            "group": a.get("group", "asset"),
            "extra": a.get("extra", {}),
        }

    def _find_asset(self, field_name: str, value: str | None) -> dict[str, Any]:
        for a in self.assets:
            full = self._full_asset(a)
            if full[field_name] == value:
                return full
        raise _HTTPError(
            404, {"reason": "not_found", "message": f"Asset with {field_name} {value} not found"}
        )

    def _asset_by_name(self, query, **_):
        return 200, _check_response("AssetResponse", self._find_asset("name", query.get("name")))

    def _asset_by_uri(self, query, **_):
        return 200, _check_response("AssetResponse", self._find_asset("uri", query.get("uri")))

    def _asset_by_alias(self, query, **_):
        names = self.asset_aliases.get(query.get("alias_name"), [])
        return 200, [self._find_asset("name", n) for n in names]

    def _filter_events(self, match: Callable[[dict[str, Any]], bool], query: dict[str, Any]):
        after, before = _parse_dt(query.get("after")), _parse_dt(query.get("before"))
        events = []
        for e in self.asset_events:
            if not match(e.get("asset", {})):
                continue
            ts = _parse_dt(e.get("timestamp"))
            if (after and ts and ts < after) or (before and ts and ts > before):
                continue
            events.append(e)
        events.sort(
            key=lambda e: str(e.get("timestamp")), reverse=str(query.get("ascending")).lower() == "false"
        )
        if limit := query.get("limit"):
            events = events[: int(limit)]
        return 200, _check_response("AssetEventsResponse", {"asset_events": events})

    def _asset_events_by_asset(self, query, **_):
        name, uri = query.get("name"), query.get("uri")
        return self._filter_events(
            lambda a: (name is None or a.get("name") == name) and (uri is None or a.get("uri") == uri), query
        )

    def _asset_events_by_alias(self, query, **_):
        names = set(self.asset_aliases.get(query.get("name"), []))
        return self._filter_events(lambda a: a.get("name") in names, query)

    # -----------------------------------------------------------------------------------------------------
    # State stores
    # -----------------------------------------------------------------------------------------------------
    def _ts_get(self, ti_id: str, key: str, **_):
        if (ti_id, key) not in self.task_state_store:
            raise _HTTPError(404, {"reason": "not_found", "message": f"Task store key {key!r} not found"})
        return 200, {"value": self.task_state_store[(ti_id, key)]}

    def _ts_put(self, ti_id: str, key: str, body: Any, **_):
        payload = _validate("TaskStateStorePutBody", body)
        self.task_state_store[(ti_id, key)] = payload.value
        return 204, None

    def _ts_delete(self, ti_id: str, key: str, **_):
        self.task_state_store.pop((ti_id, key), None)
        return 204, None

    def _ts_clear(self, ti_id: str, **_):
        for k in [k for k in self.task_state_store if k[0] == ti_id]:
            del self.task_state_store[k]
        return 204, None

    @staticmethod
    def _as_ident(by: str, query: dict[str, Any]) -> tuple[str, str]:
        kind = "name" if by == "by-name" else "uri"
        if kind not in query:
            raise _Invalid([{"type": "missing", "loc": ["query", kind], "msg": "Field required"}])
        return kind, query[kind]

    def _as_get(self, by: str, query, **_):
        kind, ident = self._as_ident(by, query)
        k = (kind, ident, query.get("key"))
        if k not in self.asset_state_store:
            raise _HTTPError(404, {"reason": "not_found", "message": f"Asset store key {k[2]!r} not found"})
        return 200, {"value": self.asset_state_store[k]}

    def _as_put(self, by: str, query, body, **_):
        payload = _validate("AssetStateStorePutBody", body)
        kind, ident = self._as_ident(by, query)
        self.asset_state_store[(kind, ident, query.get("key"))] = payload.value
        return 204, None

    def _as_delete(self, by: str, query, **_):
        kind, ident = self._as_ident(by, query)
        self.asset_state_store.pop((kind, ident, query.get("key")), None)
        return 204, None

    def _as_clear(self, by: str, query, **_):
        kind, ident = self._as_ident(by, query)
        for k in [k for k in self.asset_state_store if k[:2] == (kind, ident)]:
            del self.asset_state_store[k]
        return 204, None

    # -----------------------------------------------------------------------------------------------------
    # HITL
    # -----------------------------------------------------------------------------------------------------
    def _hitl_post(self, ti_id: str, body: Any, **_):
        payload = _validate("HITLDetailRequest", body)
        self.hitl[ti_id] = {"request": payload.model_dump(mode="json"), "response": None}
        return 201, payload.model_dump(mode="json")

    def _hitl_patch(self, ti_id: str, body: Any, **_):
        payload = _validate("UpdateHITLDetailPayload", body)
        entry = self.hitl.setdefault(ti_id, {"request": None, "response": None})
        entry["response"] = payload.model_dump(mode="json")
        return 200, self._hitl_get(ti_id)[1]

    def _hitl_get(self, ti_id: str, **_):
        resp = (self.hitl.get(ti_id) or {}).get("response")
        data = {
            "response_received": resp is not None,
            "responded_by_user": None,
            "responded_at": _now_iso() if resp else None,
            "chosen_options": resp["chosen_options"] if resp else None,
            "params_input": resp["params_input"] if resp else {},
        }
        return 200, _check_response("HITLDetailResponse", data)
