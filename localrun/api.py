"""The embedded Execution API: what Airflow's API server answers a worker, backed by :mod:`store`.

The supervisor and the bundle talk to Airflow only through the Execution API (``/execution``):
entering ``running``, heartbeats, the final state, variables, connections, XComs, DAG-run queries.
:class:`ExecutionAPI` answers those requests from the local SQLite state, with the status codes
and bodies the released client (``airflow.sdk.api.client.Client``, apache-airflow-task-sdk 1.3.2)
expects - a 404 where it maps "not found" to an ``ErrorResponse``, a 409 where the supervisor must
stop a task - so the supervisor behaves exactly as it would against a server.

Transport-free on purpose: the worker's ``httpx.MockTransport`` forwards each request here and
sends the answer back (see ``worker.py`` / ``workerproc.py``). Nothing here imports Airflow.

Deliberate local semantics:

* ``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` win over the state, like Airflow's environment backend.
* Entering ``running`` clears the task instance's XComs (what the server does for a new try).
* Assets, asset events, HITL and connection tests are not modelled: lookups answer "not found" /
  empty, and any request no route matches is answered 404 and listed in :attr:`problems`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from .inputs import EnvSecrets
from .store import Store, iso, parse_iso, utcnow

_DEFER_FIELDS = ("classpath", "trigger_kwargs", "trigger_timeout", "next_method", "next_kwargs")
RUNNABLE_FROM = (None, "queued", "scheduled", "restarting", "up_for_retry", "up_for_reschedule", "deferred")
TERMINAL = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
SKIP_PROTECTED = frozenset({"running", "success", "failed"})  # what skip-downstream leaves alone
_DAG_RUN_FIELDS = (
    "dag_id",
    "run_id",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "run_after",
    "start_date",
    "end_date",
    "clear_number",
    "run_type",
    "state",
    "conf",
    "note",
)


@dataclass
class ApiResponse:
    """An HTTP answer: status, JSON body (None = ``null``, or no body for 204) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def has_body(self) -> bool:
        """204 answers carry no body at all (not even ``null``), as the server's do."""
        return self.status != 204


class HTTPError(Exception):
    """An error answer with the server's ``{"detail": {"reason", "message", ...}}`` body."""

    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.detail = {"reason": reason, "message": message, **extra}


class Invalid(Exception):
    """A request body the real server would reject with 422."""


Handler = Callable[..., ApiResponse]


class ExecutionAPI:
    """Route and answer Execution API requests against the local state."""

    def __init__(
        self, store: Store, env: EnvSecrets | None = None, *, bundle_name: str = "bundle-run"
    ) -> None:
        self.store = store
        self.env = env or EnvSecrets()
        self.bundle_name = bundle_name
        self.problems: list[str] = []
        """Requests answered 404 for want of a route, or 422 for an invalid body (shown in the report)."""
        self.requests = 0
        self.deferrals: dict[str, dict[str, Any]] = {}
        """ti id -> the DeferTask fields of a task instance that deferred (its trigger, next_method...)."""
        self.resumes: dict[str, dict[str, Any]] = {}
        """ti id -> ``next_method`` / ``next_kwargs`` for its next ``/run`` (set by the runner)."""
        self.dag_ids: set[str] | None = None
        """The bundle's DAGs (``app.py`` sets them): a trigger of any other DAG is answered 404."""
        self.triggered: list[tuple[str, str]] = []
        """(dag_id, run_id) of the runs ``TriggerDagRun`` created, for the runner to run (``childruns.py``)."""
        self.running: set[tuple[str, str]] = set()
        """Those of them a runner is running now, whichever runner adopted them."""
        self._routes = self._build_routes()

    # -- entry point ----------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: Sequence[Sequence[str]] = (), body: str | bytes | None = None
    ) -> ApiResponse:
        """Answer one request. ``query`` is the list of ``(name, value)`` pairs, in order."""
        self.requests += 1
        method = method.upper()
        params: dict[str, list[str]] = {}
        for name, value in query:
            params.setdefault(name, []).append(value)
        payload: Any = None
        if body:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            try:
                payload = json.loads(text)
            except ValueError:
                return self._invalid(method, path, "request body is not JSON")
        for route_method, pattern, handler in self._routes:
            if route_method != method:
                continue
            match = pattern.fullmatch(path)
            if match is None:
                continue
            args = {k: unquote(v) for k, v in match.groupdict().items()}
            try:
                return handler(query=params, body=payload, **args)
            except HTTPError as exc:
                return ApiResponse(exc.status, {"detail": exc.detail})
            except Invalid as exc:
                return self._invalid(method, path, str(exc))
        self.problems.append(f"unhandled request {method} {path} (answered 404)")
        return ApiResponse(404, {"detail": "Not Found"})

    def _invalid(self, method: str, path: str, message: str) -> ApiResponse:
        self.problems.append(f"invalid request {method} {path}: {message} (answered 422)")
        return ApiResponse(422, {"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]})

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        seg = r"(?P<{}>[^/]+)"
        ti = "/task-instances/" + seg.format("ti_id")
        xcom = (
            "/xcoms/" + "/".join(seg.format(n) for n in ("dag_id", "run_id", "task_id")) + "/(?P<key>[^/]+)"
        )
        run = "/dag-runs/" + seg.format("dag_id") + "/" + seg.format("run_id")
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/task-instances/count", self._ti_count),
            ("GET", "/task-instances/states", self._ti_states),
            ("GET", "/task-instances/breadcrumbs", self._ti_breadcrumbs),
            (
                "GET",
                "/task-instances/previous/" + seg.format("dag_id") + "/" + seg.format("task_id"),
                self._ti_previous,
            ),
            ("PATCH", ti + "/run", self._ti_run),
            ("PATCH", ti + "/state", self._ti_state),
            ("PUT", ti + "/heartbeat", self._ti_heartbeat),
            ("PATCH", ti + "/skip-downstream", self._ti_skip_downstream),
            ("PUT", ti + "/rtif", self._ti_rtif),
            ("PATCH", ti + "/rendered-map-index", self._ti_rendered_map_index),
            ("GET", ti + "/previous-successful-dagrun", self._ti_previous_successful_dag_run),
            ("GET", ti + "/validate-inlets-and-outlets", self._ti_validate_inlets_and_outlets),
            ("GET", "/task-reschedules/" + seg.format("ti_id") + "/start_date", self._ti_reschedule_start),
            ("GET", "/variables/keys", self._variable_keys),
            ("GET", "/variables/(?P<key>.+)", self._variable_get),
            ("PUT", "/variables/(?P<key>.+)", self._variable_put),
            ("DELETE", "/variables/(?P<key>.+)", self._variable_delete),
            ("GET", "/connections/" + seg.format("conn_id"), self._connection_get),
            ("GET", xcom + r"/item/(?P<offset>-?\d+)", self._xcom_item),
            ("GET", xcom + "/slice", self._xcom_slice),
            ("HEAD", xcom, self._xcom_head),
            ("GET", xcom, self._xcom_get),
            ("POST", xcom, self._xcom_set),
            ("DELETE", xcom, self._xcom_delete),
            ("GET", "/dag-runs/count", self._dag_run_count),
            ("GET", "/dag-runs/previous", self._dag_run_previous),
            ("GET", run + "/state", self._dag_run_state),
            ("POST", run + "/clear", self._dag_run_clear),
            ("GET", run, self._dag_run_get),
            ("POST", run, self._dag_run_trigger),
            ("GET", "/dags/" + seg.format("dag_id"), self._dag_get),
            ("GET", "/assets/by-name", self._asset_not_found),
            ("GET", "/assets/by-uri", self._asset_not_found),
            ("GET", "/assets/by-alias", lambda **_: ApiResponse(200, [])),
            ("GET", "/asset-events/by-asset", self._asset_events_by_asset),
            ("GET", "/asset-events/by-asset-alias", lambda **_: ApiResponse(200, {"asset_events": []})),
            ("DELETE", "/store/ti/" + seg.format("ti_id"), self._task_store_clear),
            ("GET", "/store/ti/" + seg.format("ti_id") + "/(?P<key>.+)", self._task_store_get),
            ("PUT", "/store/ti/" + seg.format("ti_id") + "/(?P<key>.+)", self._task_store_put),
            ("DELETE", "/store/ti/" + seg.format("ti_id") + "/(?P<key>.+)", self._task_store_delete),
            ("GET", "/store/asset/(?P<by>by-name|by-uri)/value", self._asset_store_get),
            ("PUT", "/store/asset/(?P<by>by-name|by-uri)/value", self._asset_store_put),
            ("DELETE", "/store/asset/(?P<by>by-name|by-uri)/value", self._asset_store_delete),
            ("DELETE", "/store/asset/(?P<by>by-name|by-uri)/clear", self._asset_store_clear),
            ("GET", "/health", lambda **_: ApiResponse(200, {"status": "healthy"})),
        ]
        return [(m, re.compile(p + "/?"), h) for m, p, h in table]

    # -- task instances ------------------------------------------------------------------------------
    def _ti(self, ti_id: str) -> dict[str, Any]:
        ti = self.store.ti_by_id(ti_id)
        if ti is None:
            raise HTTPError(404, "not_found", "Task Instance not found")
        return ti

    def _ti_run(self, ti_id: str, body: Any, **_: Any) -> ApiResponse:
        _require(body, "pid", "hostname", "start_date")
        ti = self._ti(ti_id)
        if ti["state"] not in RUNNABLE_FROM:
            raise HTTPError(
                409,
                "invalid_state",
                "TI was not in a state where it could be marked as running",
                previous_state=ti["state"],
            )
        start = parse_iso(body["start_date"])
        self.store.update_ti(
            ti_id,
            state="running",
            pid=int(body["pid"]),
            hostname=str(body["hostname"]),
            unixname=body.get("unixname"),
            start_date=iso(start),
            last_heartbeat=iso(utcnow()),
        )
        # A new try starts without the XComs an earlier try of the same task instance pushed; a
        # resume after a deferral keeps them (core sends xcom_keys_to_clear only without next_method).
        if ti_id not in self.resumes:
            self.store.clear_xcoms(ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"])
        run = self.store.get_dag_run(ti["dag_id"], ti["run_id"])
        if run is None:
            raise HTTPError(404, "not_found", f"Dag run {ti['run_id']!r} of {ti['dag_id']!r} not found")
        if run["state"] == "queued":
            self.store.update_dag_run(ti["dag_id"], ti["run_id"], state="running", start_date=iso(start))
            run = self.store.get_dag_run(ti["dag_id"], ti["run_id"]) or run
        context = {
            "dag_run": _dag_run_body(run),
            "task_reschedule_count": len(self.store.reschedules(ti_id)),
            "max_tries": ti["max_tries"],
            "variables": [],
            "connections": [],
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": [],
            **self.resumes.pop(ti_id, {}),  # a resume after a deferral: next_method, next_kwargs
            "should_retry": ti["try_number"] <= ti["max_tries"],
            "start_date": iso(start),
        }
        return ApiResponse(200, context)

    def _ti_state(self, ti_id: str, body: Any, **_: Any) -> ApiResponse:
        _require(body, "state")
        ti = self._ti(ti_id)
        state = body["state"]
        if state == ti["state"]:
            return ApiResponse(200, None)
        if ti["state"] != "running":
            raise HTTPError(
                409,
                "invalid_state",
                "TI was not in the running state so it cannot be updated",
                previous_state=ti["state"],
            )
        end = parse_iso(body.get("end_date")) or utcnow()
        if "rendered_map_index" in body:  # as core: a terminal state's label, null included, wins
            self.store.set_label(ti, body["rendered_map_index"])
        start = parse_iso(ti["start_date"])
        fields: dict[str, Any] = {"state": state, "end_date": iso(end)}
        if start is not None:
            fields["duration"] = max(0.0, (end - start).total_seconds())
        if state == "up_for_retry":
            fields["retry_delay_override"] = body.get("retry_delay_seconds")
            fields["note"] = body.get("retry_reason")
        elif state == "up_for_reschedule":
            # Core's server: a TaskReschedule row whose start is now (not the poke's start); the
            # scheduler (here: the runner) runs the same try again at reschedule_date.
            _require(body, "reschedule_date", "end_date")
            self.store.add_reschedule(ti_id, iso(utcnow()), iso(end), iso(parse_iso(body["reschedule_date"])))
            fields["note"] = f"rescheduled: pokes again at {body['reschedule_date']}"
        elif state == "success" and body.get("task_outlets"):
            self._register_asset_events(ti, body["task_outlets"], body.get("outlet_events") or [])
        elif state == "deferred":
            # What core stores (the trigger row, next_method / next_kwargs as sent): the runner
            # hands it to bundle-run's triggerer (localrun/triggers.py) and resumes the same try.
            _require(body, "classpath", "next_method")
            self.deferrals[ti_id] = {k: body.get(k) for k in _DEFER_FIELDS}
            fields["note"] = f"deferred to {body['classpath']}"
        elif state == "awaiting_input":
            fields["note"] = f"the task asked to be {state}, which needs Airflow's triggerer or scheduler"
        self.store.update_ti(ti_id, **fields)
        return ApiResponse(204)

    def _ti_heartbeat(self, ti_id: str, body: Any, **_: Any) -> ApiResponse:
        _require(body, "pid", "hostname")
        ti = self._ti(ti_id)
        if ti["hostname"] != body["hostname"] or ti["pid"] != body["pid"]:
            raise HTTPError(
                409,
                "running_elsewhere",
                "TI is already running elsewhere",
                current_hostname=ti["hostname"],
                current_pid=ti["pid"],
            )
        if ti["state"] != "running":
            raise HTTPError(
                409,
                "not_running",
                "TI is no longer in the running state and task should terminate",
                current_state=ti["state"],
            )
        self.store.update_ti(ti_id, last_heartbeat=iso(utcnow()))
        return ApiResponse(204)

    def _ti_skip_downstream(self, ti_id: str, body: Any, **_: Any) -> ApiResponse:
        """Core's ``ti_skip_downstream``: each item is a task id (map index -1) or ``[task_id,
        map_index]``; the task instances of this run that are not running, success or failed become
        skipped, with start and end dates of now (a branch's or short-circuit's skip)."""
        _require(body, "tasks")
        me = self._ti(ti_id)
        wanted = {(item, -1) if isinstance(item, str) else (item[0], int(item[1])) for item in body["tasks"]}
        now = iso(utcnow())
        for other in self.store.task_instances(me["dag_id"], me["run_id"]):
            if (other["task_id"], other["map_index"]) in wanted and other["state"] not in SKIP_PROTECTED:
                self.store.update_ti(
                    other["id"],
                    state="skipped",
                    start_date=now,
                    end_date=now,
                    note=f"skipped by {me['task_id']}",
                )
        return ApiResponse(204)

    def _ti_rtif(self, ti_id: str, body: Any, **_: Any) -> ApiResponse:
        if not isinstance(body, dict):
            raise Invalid("rendered fields must be a JSON object")
        self._ti(ti_id)
        self.store.set_rendered_fields(ti_id, body)
        return ApiResponse(201, {"message": "Rendered task instance fields successfully set"})

    def _ti_rendered_map_index(self, ti_id: str, body: Any, **_: Any) -> ApiResponse:
        if not isinstance(body, str) or not body:
            raise Invalid("rendered_map_index must be a non-empty string")
        self.store.set_label(self._ti(ti_id), body)
        return ApiResponse(204)

    def _ti_previous_successful_dag_run(self, ti_id: str, **_: Any) -> ApiResponse:
        empty = {"data_interval_start": None, "data_interval_end": None, "start_date": None, "end_date": None}
        ti = self.store.ti_by_id(ti_id)
        run = self.store.get_dag_run(ti["dag_id"], ti["run_id"]) if ti else None
        if ti is None or run is None or not run["logical_date"]:
            return ApiResponse(200, empty)
        earlier = [
            r
            for r in self.store.dag_runs(ti["dag_id"])
            if r["state"] == "success" and r["logical_date"] and r["logical_date"] < run["logical_date"]
        ]
        if not earlier:
            return ApiResponse(200, empty)
        best = max(earlier, key=lambda r: r["logical_date"])
        return ApiResponse(200, {k: best[k] for k in empty})

    def _ti_validate_inlets_and_outlets(self, ti_id: str, **_: Any) -> ApiResponse:
        self._ti(ti_id)
        return ApiResponse(200, {"inactive_assets": []})

    def _ti_reschedule_start(self, ti_id: str, **_: Any) -> ApiResponse:
        """Core's ``get_start_date``: the first reschedule's start for the task instance (its
        ``try_number`` parameter is not used by 3.3.2's server either), or null."""
        rows = self.store.reschedules(ti_id)
        return ApiResponse(200, rows[0]["start_date"] if rows else None)

    def _filtered_tis(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        dag_id = _one(query, "dag_id")
        if dag_id is None:
            raise Invalid("query parameter dag_id is required")
        task_ids = query.get("task_ids")
        if group := _one(query, "task_group_id"):
            raise HTTPError(
                404, "not_found", f"Task group {group} not found in DAG {dag_id} (bundles have none)"
            )
        map_index = _one(query, "map_index")
        dates = [parse_iso(d) for d in query.get("logical_dates", [])]
        return self.store.select_tis(
            dag_id,
            task_ids=task_ids,
            run_ids=query.get("run_ids"),
            states=query.get("states"),
            map_index=int(map_index) if map_index is not None else None,
            logical_dates=[d for d in dates if d is not None] or None,
        )

    def _ti_count(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        return ApiResponse(200, len(self._filtered_tis(query)))

    def _ti_states(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        query = {k: v for k, v in query.items() if k != "states"}
        states: dict[str, dict[str, Any]] = {}
        for ti in self._filtered_tis(query):
            name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}_{ti['map_index']}"
            states.setdefault(ti["run_id"], {})[name] = ti["state"]
        return ApiResponse(200, {"task_states": states})

    def _ti_breadcrumbs(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        dag_id, run_id = _one(query, "dag_id"), _one(query, "run_id")
        rows = [
            {
                "task_id": ti["task_id"],
                "map_index": ti["map_index"],
                "state": ti["state"],
                "operator": None,
                "duration": ti["duration"],
            }
            for ti in sorted(self.store.task_instances(dag_id or "", run_id), key=lambda t: t["task_id"])
            if ti["state"] in TERMINAL
        ]
        return ApiResponse(200, {"breadcrumbs": rows})

    def _ti_previous(self, dag_id: str, task_id: str, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        map_index = int(_one(query, "map_index") or -1)
        before = parse_iso(_one(query, "logical_date"))
        state = _one(query, "state")
        runs = {r["run_id"]: r for r in self.store.dag_runs(dag_id)}
        candidates = []
        for ti in self.store.select_tis(dag_id, task_ids=[task_id], map_index=map_index):
            logical = parse_iso(runs.get(ti["run_id"], {}).get("logical_date"))
            if before is not None and (logical is None or logical >= before):
                continue
            if state and ti["state"] != state:
                continue
            candidates.append((iso(logical) or "", ti))
        if not candidates:
            return ApiResponse(200, None)
        ti = max(candidates, key=lambda pair: pair[0])[1]
        return ApiResponse(
            200,
            {
                "task_id": ti["task_id"],
                "dag_id": ti["dag_id"],
                "run_id": ti["run_id"],
                "logical_date": runs.get(ti["run_id"], {}).get("logical_date"),
                "start_date": ti["start_date"],
                "end_date": ti["end_date"],
                "state": ti["state"],
                "try_number": ti["try_number"],
                "map_index": ti["map_index"],
                "duration": ti["duration"],
            },
        )

    # -- variables and connections ---------------------------------------------------------------------
    def _variable_get(self, key: str, **_: Any) -> ApiResponse:
        env_value = self.env.variable(key)
        if env_value is not None:
            return ApiResponse(200, {"key": key, "value": env_value})
        found, value = self.store.get_variable(key)
        if not found:
            raise HTTPError(404, "not_found", f"Variable with key '{key}' not found")
        return ApiResponse(200, {"key": key, "value": value})

    def _variable_put(self, key: str, body: Any, **_: Any) -> ApiResponse:
        if not isinstance(body, dict) or not ({"val", "value"} & set(body)):
            raise Invalid("variable body must be an object with 'val'")
        value = body.get("val", body.get("value"))
        if value is not None and not isinstance(value, str):
            raise Invalid("variable value must be a string or null")
        self.store.set_variable(key, value, body.get("description"))
        return ApiResponse(201, {"message": "Variable successfully set"})

    def _variable_delete(self, key: str, **_: Any) -> ApiResponse:
        self.store.delete_variable(key)
        return ApiResponse(204)

    def _variable_keys(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        try:
            limit = int(_one(query, "limit") or 1000)
            offset = int(_one(query, "offset") or 0)
        except ValueError:
            raise Invalid("limit and offset must be integers") from None
        if not 1 <= limit <= 10_000 or offset < 0:
            raise Invalid(f"limit must be in 1..10000 and offset >= 0, got {limit}/{offset}")
        keys = self.store.variable_keys(_one(query, "prefix"))
        return ApiResponse(200, {"keys": keys[offset : offset + limit], "total_entries": len(keys)})

    def _connection_get(self, conn_id: str, **_: Any) -> ApiResponse:
        fields = self.env.connection(conn_id) or self.store.get_connection(conn_id)
        if fields is None:
            raise HTTPError(404, "not_found", f"Connection with ID {conn_id} not found")
        body = {k: fields.get(k) for k in ("conn_id", "conn_type", "host", "schema", "login", "password")}
        body.update(port=fields.get("port"), extra=fields.get("extra"))
        body["conn_id"] = conn_id
        return ApiResponse(200, body)

    # -- xcoms ---------------------------------------------------------------------------------------
    def _prior_run_ids(self, dag_id: str, run_id: str) -> list[str]:
        """This run and the earlier ones (by logical date), newest first: ``include_prior_dates``."""
        runs = self.store.dag_runs(dag_id)
        current = next((r for r in runs if r["run_id"] == run_id), None)
        if current is None or not current["logical_date"]:
            return [run_id]
        earlier = [r for r in runs if r["logical_date"] and r["logical_date"] <= current["logical_date"]]
        earlier.sort(key=lambda r: (r["logical_date"], r["run_id"] == run_id), reverse=True)
        return [r["run_id"] for r in earlier]

    def _xcom_get(
        self, dag_id: str, run_id: str, task_id: str, key: str, query: dict[str, list[str]], **_: Any
    ) -> ApiResponse:
        map_index = int(_one(query, "map_index") or -1)
        run_ids = self._prior_run_ids(dag_id, run_id) if _flag(query, "include_prior_dates") else [run_id]
        for candidate in run_ids:
            found, value = self.store.get_xcom(dag_id, candidate, task_id, key, map_index)
            if found:
                return ApiResponse(200, {"key": key, "value": value})
        raise HTTPError(
            404,
            "not_found",
            f"XCom with key={key!r} map_index={map_index} not found for task {task_id!r} in DAG run "
            f"{run_id!r} of {dag_id!r}",
        )

    def _xcom_set(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        query: dict[str, list[str]],
        body: Any,
        **_: Any,
    ) -> ApiResponse:
        map_index = int(_one(query, "map_index") or -1)
        mapped_length = _one(query, "mapped_length")
        if mapped_length is not None:  # core's set_xcom: a TaskMap row, within [core] max_map_length
            if int(mapped_length) > max_map_length():
                raise HTTPError(
                    400,
                    "unmappable_return_value_length",
                    "pushed value is too large to map as a downstream's dependency",
                )
            self.store.set_task_map(dag_id, run_id, task_id, map_index, int(mapped_length))
        self.store.set_xcom(dag_id, run_id, task_id, key, map_index, body)
        return ApiResponse(201, {"message": "XCom successfully set"})

    def _xcom_delete(
        self, dag_id: str, run_id: str, task_id: str, key: str, query: dict[str, list[str]], **_: Any
    ) -> ApiResponse:
        map_index = int(_one(query, "map_index") or -1)
        self.store.delete_xcom(dag_id, run_id, task_id, key, map_index)
        return ApiResponse(200, {"message": f"XCom with key: {key} successfully deleted."})

    def _xcom_head(self, dag_id: str, run_id: str, task_id: str, key: str, **_: Any) -> ApiResponse:
        count = len(self.store.xcom_values(dag_id, run_id, task_id, key))
        return ApiResponse(200, None, {"Content-Range": f"map_indexes {count}"})

    def _xcom_item(
        self, dag_id: str, run_id: str, task_id: str, key: str, offset: str, **_: Any
    ) -> ApiResponse:
        values = self.store.xcom_values(dag_id, run_id, task_id, key)
        index = int(offset)
        position = index if index >= 0 else len(values) + index
        if not 0 <= position < len(values):
            raise HTTPError(404, "not_found", f"XCom with key={key!r} offset={index} not found")
        return ApiResponse(200, values[position])

    def _xcom_slice(
        self, dag_id: str, run_id: str, task_id: str, key: str, query: dict[str, list[str]], **_: Any
    ) -> ApiResponse:
        values = self.store.xcom_values(dag_id, run_id, task_id, key)

        def bound(name: str) -> int | None:
            raw = _one(query, name)
            return int(raw) if raw is not None else None

        return ApiResponse(200, values[slice(bound("start"), bound("stop"), bound("step"))])

    # -- dag runs and dags -----------------------------------------------------------------------------
    def _run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run = self.store.get_dag_run(dag_id, run_id)
        if run is None:
            raise HTTPError(
                404, "not_found", f"Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found"
            )
        return run

    def _dag_run_get(self, dag_id: str, run_id: str, **_: Any) -> ApiResponse:
        return ApiResponse(200, _dag_run_body(self._run(dag_id, run_id)))

    def _dag_run_state(self, dag_id: str, run_id: str, **_: Any) -> ApiResponse:
        return ApiResponse(200, {"state": self._run(dag_id, run_id)["state"]})

    def _dag_run_clear(self, dag_id: str, run_id: str, **_: Any) -> ApiResponse:
        run = self._run(dag_id, run_id)
        self.store.update_dag_run(dag_id, run_id, state="queued", clear_number=(run["clear_number"] or 0) + 1)
        return ApiResponse(204)

    def _dag_run_trigger(self, dag_id: str, run_id: str, body: Any, **_: Any) -> ApiResponse:
        body = body or {}
        if not isinstance(body, dict):
            raise Invalid("trigger body must be a JSON object")
        if self.dag_ids is not None and dag_id not in self.dag_ids:
            raise HTTPError(
                404,
                "not_found",
                f"Dag with dag_id: '{dag_id}' not found (bundle-run knows only the DAGs of this bundle: "
                + ", ".join(sorted(self.dag_ids))
                + ")",
            )
        if self.store.get_dag_run(dag_id, run_id) is not None:
            raise HTTPError(
                409, "already_exists", f"A run already exists for Dag '{dag_id}' with run_id '{run_id}'"
            )
        logical = iso(parse_iso(body.get("logical_date")))
        self.store.create_dag_run(
            dag_id=dag_id,
            run_id=run_id,
            logical_date=logical,
            data_interval_start=logical,
            data_interval_end=logical,
            run_after=iso(parse_iso(body.get("run_after"))) or logical or iso(utcnow()),
            run_type="operator_triggered",
            state="queued",
            conf=body.get("conf") or {},
            note=body.get("note"),
        )
        self.triggered.append((dag_id, run_id))
        return ApiResponse(204)

    def _dag_run_count(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        dag_id = _one(query, "dag_id")
        if dag_id is None:
            raise Invalid("query parameter dag_id is required")
        dates = {iso(parse_iso(d)) for d in query.get("logical_dates", [])}
        run_ids, states = set(query.get("run_ids", [])), set(query.get("states", []))
        count = sum(
            1
            for r in self.store.dag_runs(dag_id)
            if (not dates or r["logical_date"] in dates)
            and (not run_ids or r["run_id"] in run_ids)
            and (not states or r["state"] in states)
        )
        return ApiResponse(200, count)

    def _dag_run_previous(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        dag_id, before = _one(query, "dag_id"), iso(parse_iso(_one(query, "logical_date")))
        if dag_id is None or before is None:
            raise Invalid("query parameters dag_id and logical_date are required")
        state = _one(query, "state")
        earlier = [
            r
            for r in self.store.dag_runs(dag_id)
            if r["logical_date"] and r["logical_date"] < before and (not state or r["state"] == state)
        ]
        if not earlier:
            return ApiResponse(200, None)
        return ApiResponse(200, _dag_run_body(max(earlier, key=lambda r: r["logical_date"])))

    def _dag_get(self, dag_id: str, **_: Any) -> ApiResponse:
        if not self.store.dag_runs(dag_id):
            raise HTTPError(404, "not_found", f"Dag with dag_id: '{dag_id}' not found")
        return ApiResponse(
            200,
            {
                "dag_id": dag_id,
                "is_paused": False,
                "bundle_name": self.bundle_name,
                "bundle_version": None,
                "relative_fileloc": None,
                "owners": "airflow",
                "tags": [],
                "next_dagrun": None,
            },
        )

    def _register_asset_events(self, ti: dict[str, Any], outlets: list[Any], events: list[Any]) -> None:
        """Airflow's ``register_asset_changes_in_db``, every asset active: one event per outlet of
        type Asset, or one per ``outlet_events`` entry for it (extra, partition key); entries for
        assets that are not outlets are dropped, as the API server drops them."""
        for outlet in outlets:
            if outlet.get("type") != "Asset" or not outlet.get("name") or not outlet.get("uri"):
                continue
            key = {"name": outlet["name"], "uri": outlet["uri"]}
            mine = [e for e in events if e.get("dest_asset_key") == key and "source_alias_name" not in e]
            for event in mine or [{"extra": {}}]:
                self.store.add_asset_event(
                    ti, key["name"], key["uri"], event.get("extra"), event.get("partition_key")
                )

    def _asset_events_by_asset(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        """The events bundle-run's own tasks emitted (this run and, with ``--state``, earlier ones)."""
        rows = self.store.asset_events(name=_one(query, "name"), uri=_one(query, "uri"))
        after, before = parse_iso(_one(query, "after")), parse_iso(_one(query, "before"))
        rows = [r for r in rows if _between(r["timestamp"], after, before)]
        if (_one(query, "ascending") or "true").lower() == "false":
            rows.reverse()
        if _one(query, "limit"):
            rows = rows[: int(_one(query, "limit") or 0)]
        events = [
            {
                "id": r["id"],
                "timestamp": r["timestamp"],
                "extra": r["extra"],
                "asset": {"name": r["name"], "uri": r["uri"], "group": "asset", "extra": {}},
                "created_dagruns": [],
                "source_task_id": r["source_task_id"],
                "source_dag_id": r["source_dag_id"],
                "source_run_id": r["source_run_id"],
                "source_map_index": r["source_map_index"],
                "partition_key": r["partition_key"],
            }
            for r in rows
        ]
        return ApiResponse(200, {"asset_events": events})

    def _asset_not_found(self, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        what = _one(query, "name") or _one(query, "uri")
        raise HTTPError(404, "not_found", f"Asset {what!r} not found (bundle-run does not model assets)")

    # -- state stores ----------------------------------------------------------------------------------
    def _store_ti(self, ti_id: str) -> dict[str, Any]:
        ti = self.store.ti_by_id(ti_id)
        if ti is None:
            raise HTTPError(404, "not_found", "Task Instance not found")
        return ti

    def _task_store_get(self, ti_id: str, key: str, **_: Any) -> ApiResponse:
        found, value = self.store.get_task_store(self._store_ti(ti_id), key)
        if not found:
            raise HTTPError(404, "not_found", f"Task store key {key!r} not found")
        return ApiResponse(200, {"value": value})

    def _task_store_put(self, ti_id: str, key: str, body: Any, **_: Any) -> ApiResponse:
        if not isinstance(body, dict) or "value" not in body:
            raise Invalid("task store body must be an object with 'value'")
        self.store.set_task_store(self._store_ti(ti_id), key, body["value"], body.get("expires_at"))
        return ApiResponse(204)

    def _task_store_delete(self, ti_id: str, key: str, **_: Any) -> ApiResponse:
        self.store.delete_task_store(self._store_ti(ti_id), key)
        return ApiResponse(204)

    def _task_store_clear(self, ti_id: str, **_: Any) -> ApiResponse:
        self.store.delete_task_store(self._store_ti(ti_id))
        return ApiResponse(204)

    @staticmethod
    def _asset_ident(by: str, query: dict[str, list[str]]) -> tuple[str, str]:
        kind = "name" if by == "by-name" else "uri"
        ident = _one(query, kind)
        if ident is None:
            raise Invalid(f"query parameter {kind} is required")
        return kind, ident

    def _asset_store_get(self, by: str, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        kind, ident = self._asset_ident(by, query)
        found, value = self.store.get_asset_store(kind, ident, _one(query, "key") or "")
        if not found:
            raise HTTPError(404, "not_found", "Asset store key not found")
        return ApiResponse(200, {"value": value})

    def _asset_store_put(self, by: str, query: dict[str, list[str]], body: Any, **_: Any) -> ApiResponse:
        if not isinstance(body, dict) or "value" not in body:
            raise Invalid("asset store body must be an object with 'value'")
        kind, ident = self._asset_ident(by, query)
        self.store.set_asset_store(kind, ident, _one(query, "key") or "", body["value"])
        return ApiResponse(204)

    def _asset_store_delete(self, by: str, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        kind, ident = self._asset_ident(by, query)
        self.store.delete_asset_store(kind, ident, _one(query, "key") or "")
        return ApiResponse(204)

    def _asset_store_clear(self, by: str, query: dict[str, list[str]], **_: Any) -> ApiResponse:
        kind, ident = self._asset_ident(by, query)
        self.store.delete_asset_store(kind, ident)
        return ApiResponse(204)


def max_map_length() -> int:
    """``[core] max_map_length`` as the API server reads it (1024 by default)."""
    import os

    try:
        return int(os.environ.get("AIRFLOW__CORE__MAX_MAP_LENGTH") or 1024)
    except ValueError:
        return 1024


def _dag_run_body(run: dict[str, Any]) -> dict[str, Any]:
    """A stored DAG run in the shape of the Execution API's ``DagRun`` (a closed key set)."""
    body = {k: run.get(k) for k in _DAG_RUN_FIELDS}
    body["run_after"] = body["run_after"] or body["logical_date"] or iso(utcnow())
    body["clear_number"] = body["clear_number"] or 0
    body.update(
        triggering_user_name=None,
        consumed_asset_events=[],
        partition_key=None,
        partition_date=None,
        team_name=None,
    )
    return body


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (_one(query, name) or "").lower() in ("true", "1")


def _require(body: Any, *names: str) -> None:
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    missing = [n for n in names if n not in body]
    if missing:
        raise Invalid(f"missing field(s) {', '.join(missing)}")


def _between(timestamp: str, after: datetime | None, before: datetime | None) -> bool:
    """Whether a stored event's ``timestamp`` is within the bounds given (either may be open)."""
    if after is None and before is None:
        return True
    stamp = parse_iso(timestamp)
    if stamp is None:  # pragma: no cover - the store stamps every event it adds
        raise ValueError("an asset event without a timestamp")
    return (after is None or stamp >= after) and (before is None or stamp <= before)
