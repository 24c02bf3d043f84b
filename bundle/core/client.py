"""The ``Client`` a task uses to reach Airflow, identical in every mode.

``Client`` and its narrower protocols (``VariableClient``, ``ConnectionClient``, ``XComClient``)
are what task signatures name. ``MessageClient`` implements them once, on top of a *transport* that
carries one request body to Airflow and returns the response body: the coordinator transport frames
it over the comm socket, the go-plugin transport turns it into Execution API calls, and
``bundle.testing`` answers it from memory. Environment overrides, masking, not-found handling and
request validation therefore behave the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from .errors import AirflowApiError, ConnectionNotFound, InvalidRequest, NotFound, VariableNotFound
from .masking import is_sensitive_name, masker
from .messages import TASK_ACCESS, Workload, check_access, is_json, validate_request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Protocol

    from .connection import Connection
    from .context import TaskInstanceInfo

    Transport = Callable[[dict[str, Any]], "dict[str, Any] | None"]
    """Send one validated request body; return the response body (``None`` for an empty answer).

    Raises ``AirflowApiError`` when the peer answered in its error slot."""
else:
    # At run time the protocols are plain classes: ``typing`` would cost every task start
    # milliseconds, and nothing checks them with ``isinstance``; type checkers see Protocols.
    Protocol = object


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class VariableClient(Protocol):
    def get_variable(self, key: str, default: Any = NOTSET, deserialize_json: bool = False) -> Any: ...

    def set_variable(self, key: str, value: Any, description: str | None = None) -> None: ...

    def delete_variable(self, key: str) -> None: ...


class ConnectionClient(Protocol):
    def get_connection(self, conn_id: str) -> Connection: ...


class XComClient(Protocol):
    def get_xcom(
        self,
        task_id: str,
        key: str = "return_value",
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        default: Any = None,
    ) -> Any: ...

    def push_xcom(self, key: str, value: Any) -> None: ...


class Client(VariableClient, ConnectionClient, XComClient, Protocol):
    """Everything a task may ask Airflow for; annotate a task parameter with it to receive one."""

    def mask_secret(self, value: Any, name: str | None = None) -> None: ...


def _environment_value(name: str) -> str | None:
    """``os.environ.get(name)``, read live as Airflow's environment secrets backend does, minus
    the ``KeyError`` that a miss raises and catches inside ``Mapping.get``: nearly every variable
    read misses, and this is on every request's path."""
    environ = os.environ
    data = getattr(environ, "_data", None)
    if data is None:
        return environ.get(name)
    raw = data.get(environ.encodekey(name))
    return None if raw is None else environ.decodevalue(raw)


def _require_str(what: str, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string, got {type(value).__name__}")


class MessageClient:
    """The one implementation of ``Client``; see the module docstring."""

    # Its transport reaches Airflow: task callbacks run in a process of their own behind a
    # filtering proxy (bundle.core.confinement). A client answering from memory turns it off.
    confine_callbacks = True

    def __init__(self, transport: Transport, ti: TaskInstanceInfo | None, access: Workload = TASK_ACCESS):
        self._transport = transport
        self._ti = ti
        self._access = access

    def restricted(self, access: Workload) -> MessageClient:
        """The same transport and task instance, limited to ``access`` (a callback's client)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._access = access
        return clone

    # -- plumbing ---------------------------------------------------------------------------
    def request(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Validate and send one raw ``ToSupervisor`` body; return the answer body.

        An ``ErrorResponse`` answer is returned as is; use the typed methods for mapped errors."""
        validate_request(body, self._access)
        return self._transport(body)

    def _call(self, body: dict[str, Any], *, built_here: bool = False) -> dict[str, Any] | None:
        """Send ``body``; map an ``ErrorResponse`` to its exception.

        ``built_here``: the hottest typed methods (``get_variable``, ``push_xcom``) build their
        body from arguments they checked themselves, so only the access rule is checked again
        (the full validation cost a round trip about 6 us, measured). ``bundle.testing`` still
        validates every body in full, so a body these methods get wrong fails the unit tests."""
        if built_here:
            check_access(body["type"], self._access)
        else:
            validate_request(body, self._access)
        answer = self._transport(body)
        if (type(answer) is dict or isinstance(answer, Mapping)) and answer.get("type") == "ErrorResponse":
            raise _error_from(body, answer)
        return answer

    def _current(self) -> TaskInstanceInfo:
        if self._ti is None:
            raise RuntimeError(
                "this request needs a running task instance (not available while parsing DAGs)"
            )
        return self._ti

    # -- variables --------------------------------------------------------------------------
    def get_variable(self, key: str, default: Any = NOTSET, deserialize_json: bool = False) -> Any:
        _require_str("GetVariable.key", key)
        env_value = _environment_value("AIRFLOW_VAR_" + key.upper())
        if env_value is not None:
            value: str | None = env_value
        else:
            try:
                answer = self._call({"type": "GetVariable", "key": key}, built_here=True)
            except VariableNotFound:
                if default is NOTSET:
                    raise
                return default
            value = (answer or {}).get("value")
        if value is not None and is_sensitive_name(key):
            self.mask_secret(value, key)
        if deserialize_json and value is not None:
            import json

            return json.loads(value)
        return value

    def set_variable(
        self, key: str, value: Any, description: str | None = None, serialize_json: bool = False
    ) -> None:
        if serialize_json:
            import json

            value = json.dumps(value, indent=2)
        elif value is not None and not isinstance(value, str):
            raise TypeError(f"variable {key!r}: value must be a str (or pass serialize_json=True)")
        self._call({"type": "PutVariable", "key": key, "value": value, "description": description})

    def delete_variable(self, key: str) -> None:
        self._call({"type": "DeleteVariable", "key": key})

    def get_variable_keys(self, prefix: str | None = None, limit: int = 1000, offset: int = 0) -> list[str]:
        answer = self._call({"type": "GetVariableKeys", "prefix": prefix, "limit": limit, "offset": offset})
        return list((answer or {}).get("keys") or [])

    # -- connections ------------------------------------------------------------------------
    def get_connection(self, conn_id: str) -> Connection:
        from .connection import Connection  # only tasks that use connections pay for it

        env_value = _environment_value("AIRFLOW_CONN_" + conn_id.upper())
        if env_value is not None:
            conn = Connection.from_env_value(conn_id, env_value)
        else:
            answer = self._call({"type": "GetConnection", "conn_id": conn_id}) or {}
            conn = Connection.from_mapping(conn_id, dict(answer))
        if conn.password:
            self.mask_secret(conn.password, f"{conn_id}.password")
        if conn.extra:
            self.mask_secret(conn.extra, f"{conn_id}.extra")
            sensitive = {k: v for k, v in conn.extra_dejson.items() if is_sensitive_name(k) and v}
            if sensitive:
                self.mask_secret(sensitive, f"{conn_id}.extra")
        return conn

    # -- xcoms ------------------------------------------------------------------------------
    def _xcom_locator(
        self, task_id: str | None, key: str, dag_id: str | None, run_id: str | None
    ) -> dict[str, Any]:
        ti = self._ti
        if ti is not None:
            dag_id = dag_id if dag_id is not None else ti.dag_id
            run_id = run_id if run_id is not None else ti.run_id
            task_id = task_id if task_id is not None else ti.task_id
        elif dag_id is None or run_id is None or task_id is None:
            raise RuntimeError("dag_id, run_id and task_id are required outside a running task")
        return {"key": key, "dag_id": dag_id, "run_id": run_id, "task_id": task_id}

    def get_xcom(
        self,
        task_id: str,
        key: str = "return_value",
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        default: Any = None,
        include_prior_dates: bool = False,
    ) -> Any:
        body = {"type": "GetXCom", **self._xcom_locator(task_id, key, dag_id, run_id)}
        if map_index is not None:
            body["map_index"] = map_index
        if include_prior_dates:
            body["include_prior_dates"] = True
        try:
            answer = self._call(body)
        except NotFound:
            return default
        value = (answer or {}).get("value")
        return default if value is None else value

    def push_xcom(self, key: str, value: Any) -> None:
        ti = self._current()
        _require_str("SetXCom.key", key)
        if not is_json(value):
            raise InvalidRequest(
                f"SetXCom.value must be JSON-serialisable (str, number, bool, null, list, dict with str keys), "
                f"got {type(value).__name__}"
            )
        body = {
            "type": "SetXCom",
            "key": key,
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "value": value,
            "map_index": ti.map_index,
        }
        self._call(body, built_here=True)

    def delete_xcom(self, key: str, *, task_id: str | None = None, map_index: int | None = None) -> None:
        body = {"type": "DeleteXCom", **self._xcom_locator(task_id, key, None, None)}
        body["map_index"] = self._current().map_index if map_index is None and task_id is None else map_index
        self._call(body)

    def get_xcom_count(
        self, task_id: str, key: str = "return_value", *, dag_id: str | None = None, run_id: str | None = None
    ) -> int:
        answer = self._call({"type": "GetXComCount", **self._xcom_locator(task_id, key, dag_id, run_id)})
        return int((answer or {}).get("len", 0))

    def get_xcom_sequence_item(
        self,
        task_id: str,
        offset: int,
        key: str = "return_value",
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> Any:
        body = {
            "type": "GetXComSequenceItem",
            **self._xcom_locator(task_id, key, dag_id, run_id),
            "offset": offset,
        }
        return (self._call(body) or {}).get("root")

    def get_xcom_sequence_slice(
        self,
        task_id: str,
        start: int | None = None,
        stop: int | None = None,
        step: int | None = None,
        key: str = "return_value",
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Any]:
        body = {
            "type": "GetXComSequenceSlice",
            **self._xcom_locator(task_id, key, dag_id, run_id),
            "start": start,
            "stop": stop,
            "step": step,
        }
        return list((self._call(body) or {}).get("root") or [])

    # -- masking ----------------------------------------------------------------------------
    def mask_secret(self, value: Any, name: str | None = None) -> None:
        """Redact ``value`` from every later log line, locally and in Airflow's task log."""
        masker.add(value)
        self._call({"type": "MaskSecret", "value": value, "name": name})

    # -- dag runs and task instances --------------------------------------------------------
    def get_dag_run(self, dag_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
        return _strip(self._call({"type": "GetDagRun", **self._run_locator(dag_id, run_id)}))

    def get_dag_run_state(self, dag_id: str | None = None, run_id: str | None = None) -> str:
        return _strip(self._call({"type": "GetDagRunState", **self._run_locator(dag_id, run_id)}))["state"]

    def get_task_states(
        self,
        dag_id: str | None = None,
        *,
        run_ids: list[str] | None = None,
        task_ids: list[str] | None = None,
        task_group_id: str | None = None,
        map_index: int | None = None,
        logical_dates: list[datetime] | None = None,
    ) -> dict[str, Any]:
        body = self._filters(
            "GetTaskStates", dag_id, run_ids, task_ids, task_group_id, map_index, logical_dates
        )
        return _strip(self._call(body))["task_states"]

    def get_ti_count(
        self,
        dag_id: str | None = None,
        *,
        run_ids: list[str] | None = None,
        task_ids: list[str] | None = None,
        task_group_id: str | None = None,
        map_index: int | None = None,
        logical_dates: list[datetime] | None = None,
        states: list[str] | None = None,
    ) -> int:
        body = self._filters("GetTICount", dag_id, run_ids, task_ids, task_group_id, map_index, logical_dates)
        body["states"] = states
        return int(_strip(self._call(body))["count"])

    def get_dr_count(
        self,
        dag_id: str | None = None,
        *,
        run_ids: list[str] | None = None,
        logical_dates: list[datetime] | None = None,
        states: list[str] | None = None,
    ) -> int:
        body = {
            "type": "GetDRCount",
            "dag_id": dag_id or self._current().dag_id,
            "run_ids": run_ids,
            "logical_dates": logical_dates,
            "states": states,
        }
        return int(_strip(self._call(body))["count"])

    def get_previous_dag_run(
        self, logical_date: datetime, *, dag_id: str | None = None, state: str | None = None
    ) -> dict[str, Any] | None:
        body = {
            "type": "GetPreviousDagRun",
            "dag_id": dag_id or self._current().dag_id,
            "logical_date": logical_date,
            "state": state,
        }
        return _strip(self._call(body)).get("dag_run")

    def get_prev_successful_dag_run(self) -> dict[str, Any]:
        ti_id = self._current().id
        return _strip(self._call({"type": "GetPrevSuccessfulDagRun", "ti_id": ti_id}))

    def trigger_dag_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        logical_date: datetime | None = None,
        reset_dag_run: bool = False,
        note: str | None = None,
    ) -> None:
        """Trigger another DAG run; raises ``AirflowApiError`` with ``DAGRUN_ALREADY_EXISTS`` on a clash."""
        body = {
            "type": "TriggerDagRun",
            "dag_id": dag_id,
            "run_id": run_id,
            "conf": dict(conf) if conf is not None else None,
            "logical_date": logical_date,
            "reset_dag_run": reset_dag_run,
            "note": note,
        }
        self._call(body)

    def skip_downstream_tasks(self, tasks: list[str | list[Any] | tuple[str, int]]) -> None:
        """Skip task instances of this run (``SkipDownstreamTasks``): each a task id (map index -1)
        or ``[task_id, map_index]``. The server leaves running and finished ones alone; the current
        task is not finished by it. Branch and short-circuit tasks send it for the author."""
        items = [item if isinstance(item, str) else list(item) for item in tasks]
        self._call({"type": "SkipDownstreamTasks", "tasks": items})

    # -- assets -----------------------------------------------------------------------------
    def get_asset(self, *, name: str | None = None, uri: str | None = None) -> dict[str, Any]:
        if (name is None) == (uri is None):
            raise TypeError("get_asset() takes exactly one of name= or uri=")
        body = (
            {"type": "GetAssetByName", "name": name}
            if name is not None
            else {"type": "GetAssetByUri", "uri": uri}
        )
        return _strip(self._call(body))

    def get_asset_events(
        self,
        *,
        name: str | None = None,
        uri: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        limit: int | None = None,
        ascending: bool = True,
    ) -> list[Any]:
        """An asset's events (``GetAssetEventByAsset``), oldest first unless ``ascending=False``,
        as ``bundle.AssetEvent`` records (``.extra``, ``.asset``, ``.source_dag_id``, ...);
        ``ctx.inlet_events[asset]`` is the same for an inlet."""
        if name is None and uri is None:
            raise ValueError("Either asset_name or asset_uri must be provided")
        from .asset_events import events_from_answer  # only tasks that read events load it

        body = {
            "type": "GetAssetEventByAsset",
            "name": name,
            "uri": uri,
            "after": after,
            "before": before,
            "limit": limit,
            "ascending": ascending,
        }
        return events_from_answer(self._call(body))

    # -- task state store -------------------------------------------------------------------
    def get_task_state(self, key: str, default: Any = NOTSET) -> Any:
        try:
            answer = self._call({"type": "GetTaskStateStore", "ti_id": self._current().id, "key": key})
        except NotFound:
            if default is NOTSET:
                raise
            return default
        return (answer or {}).get("value")

    def set_task_state(self, key: str, value: Any, expires_at: datetime | None = None) -> None:
        body = {
            "type": "SetTaskStateStore",
            "ti_id": self._current().id,
            "key": key,
            "value": value,
            "expires_at": expires_at,
        }
        self._call(body)

    def delete_task_state(self, key: str) -> None:
        self._call({"type": "DeleteTaskStateStore", "ti_id": self._current().id, "key": key})

    def clear_task_state(self) -> None:
        self._call({"type": "ClearTaskStateStore", "ti_id": self._current().id})

    # -- helpers ----------------------------------------------------------------------------
    def _run_locator(self, dag_id: str | None, run_id: str | None) -> dict[str, str]:
        if dag_id is None or run_id is None:
            ti = self._current()
            dag_id, run_id = dag_id or ti.dag_id, run_id or ti.run_id
        return {"dag_id": dag_id, "run_id": run_id}

    def _filters(
        self,
        type_: str,
        dag_id: str | None,
        run_ids: list[str] | None,
        task_ids: list[str] | None,
        task_group_id: str | None,
        map_index: int | None,
        logical_dates: list[datetime] | None,
    ) -> dict[str, Any]:
        return {
            "type": type_,
            "dag_id": dag_id or self._current().dag_id,
            "run_ids": run_ids,
            "task_ids": task_ids,
            "task_group_id": task_group_id,
            "map_index": map_index,
            "logical_dates": logical_dates,
        }


def _strip(answer: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (answer or {}).items() if k != "type"}


_NOT_FOUND_ERRORS = {"XCOM_NOT_FOUND", "ASSET_NOT_FOUND", "TASK_STORE_NOT_FOUND", "ASSET_STORE_NOT_FOUND"}


def _error_from(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Exception:
    error = answer.get("error") or "GENERIC_ERROR"
    detail = answer.get("detail")
    if error == "VARIABLE_NOT_FOUND":
        return VariableNotFound(request.get("key", ""))
    if error == "CONNECTION_NOT_FOUND":
        return ConnectionNotFound(request.get("conn_id", ""))
    if error in _NOT_FOUND_ERRORS:
        return NotFound(error, detail)
    return AirflowApiError(str(request.get("type")), error, detail)
