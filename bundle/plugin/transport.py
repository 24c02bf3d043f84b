"""The go-plugin ``Client`` transport: each request body becomes Execution API calls.

Under the task supervisor a request body (``GetVariable``, ``SetXCom``...) is answered by the
supervisor, which calls the Execution API and sends back a result body. In go-plugin mode there is
no supervisor, so this module does its part: the same HTTP calls the released supervisor makes
(``airflow.sdk.execution_time.supervisor`` / ``request_handlers`` with ``airflow.sdk.api.client``
of apache-airflow-task-sdk 1.3.2) and the same answer bodies, so ``MessageClient`` and therefore task
code behave identically in both modes:

* a missing variable, connection, XCom item, asset or state-store key answers an ``ErrorResponse``
  *body* (``VARIABLE_NOT_FOUND``...), exactly where the supervisor puts it;
* any other error status raises ``AirflowApiError("API_SERVER_ERROR", {status_code, message,
  detail})``, the supervisor's error-slot answer;
* ``MaskSecret`` only registers the value with the process-wide masker, which redacts the task log
  file this process writes itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from ..core.errors import AirflowApiError
from ..core.masking import masker
from .api import ApiError, ExecutionApiClient, Response, path_segment

log = logging.getLogger("bundle.plugin.transport")

Handler = Callable[["ExecutionApiTransport", dict[str, Any]], "dict[str, Any] | None"]
_HANDLERS: dict[str, Handler] = {}


def _handles(*types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for type_ in types:
            _HANDLERS[type_] = fn
        return fn

    return register


def _error(error: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "type": "ErrorResponse"}


def _compact(body: Any, type_: str) -> dict[str, Any]:
    """``Result.from_api_response`` + ``exclude_defaults``: the API body without its null fields."""
    fields = {k: v for k, v in (body or {}).items() if v is not None} if isinstance(body, dict) else {}
    return {**fields, "type": type_}


_OK = {"ok": True, "type": "OKResponse"}


class ExecutionApiTransport:
    """``Transport`` for ``MessageClient``: ``transport(body) -> answer body``."""

    def __init__(self, api: ExecutionApiClient, ti_id: str):
        self.api = api
        self.ti_id = ti_id

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | None:
        type_ = str(body.get("type"))
        handler = _HANDLERS.get(type_)
        if handler is None:
            log.error("Unhandled request %s", type_)
            raise AirflowApiError(
                type_, "API_SERVER_ERROR", {"status_code": 400, "message": "Unhandled request"}
            )
        try:
            return handler(self, body)
        except ApiError as exc:
            if exc.status is None:
                detail: dict[str, Any] = {
                    "status_code": None,
                    "message": exc.message,
                    "exception_type": type(exc.__cause__ or exc).__name__,
                }
            else:
                detail = {"status_code": exc.status, "message": exc.message, "detail": exc.detail}
            raise AirflowApiError(type_, "API_SERVER_ERROR", detail) from exc

    # plumbing -------------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> Response:
        """One Execution API request (``ApiError`` on failure, mapped by ``__call__``)."""
        return self.api.request(method, path, **kwargs)

    def xcom_path(self, body: dict[str, Any]) -> str:
        """``xcoms/{dag_id}/{run_id}/{task_id}/{key}`` with every segment escaped."""
        parts = (body["dag_id"], body["run_id"], body["task_id"], body["key"])
        return "xcoms/" + "/".join(path_segment(p) for p in parts)


# -- variables ---------------------------------------------------------------------------------
@_handles("GetVariable")
def _get_variable(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    key = body["key"]
    try:
        answer = t.call("GET", f"variables/{path_segment(key)}").body or {}
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return _error("VARIABLE_NOT_FOUND", {"key": key})
        if exc.status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            return _error("PERMISSION_DENIED", {"key": key, "status_code": exc.status})
        raise
    return {"key": answer.get("key", key), "value": answer.get("value"), "type": "VariableResult"}


@_handles("GetVariableKeys")
def _get_variable_keys(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {"limit": body.get("limit", 1000), "offset": body.get("offset", 0), "prefix": body.get("prefix")}
    answer = t.call("GET", "variables/keys", params=params).body or {}
    return {
        "keys": answer.get("keys", []),
        "total_entries": answer.get("total_entries", 0),
        "type": "VariableKeysResult",
    }


@_handles("PutVariable")
def _put_variable(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    payload = {"val": body.get("value"), "description": body.get("description")}
    t.call("PUT", f"variables/{path_segment(body['key'])}", json_body=payload)
    return None


@_handles("DeleteVariable")
def _delete_variable(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    t.call("DELETE", f"variables/{path_segment(body['key'])}")
    return dict(_OK)


# -- connections -------------------------------------------------------------------------------
@_handles("GetConnection")
def _get_connection(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    conn_id = body["conn_id"]
    try:
        answer = t.call("GET", f"connections/{path_segment(conn_id)}").body
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return _error("CONNECTION_NOT_FOUND", {"conn_id": conn_id})
        if exc.status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            return _error("PERMISSION_DENIED", {"conn_id": conn_id, "status_code": exc.status})
        raise
    return _compact(answer, "ConnectionResult")


# -- xcoms -------------------------------------------------------------------------------------
def _map_index_param(value: Any) -> dict[str, Any]:
    return {"map_index": value} if value is not None and value >= 0 else {}


@_handles("GetXCom")
def _get_xcom(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = _map_index_param(body.get("map_index"))
    if body.get("include_prior_dates"):
        params["include_prior_dates"] = True
    try:
        answer = t.call("GET", t.xcom_path(body), params=params).body or {}
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:  # Airflow answers a missing XCom with value None
            return {"key": body["key"], "value": None, "type": "XComResult"}
        raise
    return {"key": answer.get("key", body["key"]), "value": answer.get("value"), "type": "XComResult"}


@_handles("GetXComCount")
def _get_xcom_count(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    response = t.call("HEAD", t.xcom_path(body))
    content_range = response.headers.get("content-range", "")
    if not content_range.startswith("map_indexes "):
        raise AirflowApiError(
            "GetXComCount",
            "API_SERVER_ERROR",
            {"status_code": None, "message": f"Unable to parse Content-Range header {content_range!r}"},
        )
    return {"len": int(content_range[len("map_indexes ") :]), "type": "XComCountResponse"}


@_handles("GetXComSequenceItem")
def _get_xcom_item(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = t.call("GET", f"{t.xcom_path(body)}/item/{int(body['offset'])}").body
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            keys = ("dag_id", "run_id", "task_id", "key", "offset")
            return _error("XCOM_NOT_FOUND", {k: body[k] for k in keys})
        raise
    return {"root": answer, "type": "XComSequenceIndexResult"}


@_handles("GetXComSequenceSlice")
def _get_xcom_slice(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {k: body.get(k) for k in ("start", "stop", "step")}
    if body.get("include_prior_dates"):
        params["include_prior_dates"] = True
    answer = t.call("GET", f"{t.xcom_path(body)}/slice", params=params).body
    return {"root": list(answer or []), "type": "XComSequenceSliceResult"}


@_handles("SetXCom")
def _set_xcom(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    params = _map_index_param(body.get("map_index"))
    if body.get("dag_result"):
        params["dag_result"] = True
    mapped_length = body.get("mapped_length")
    if mapped_length is not None and mapped_length >= 0:
        params["mapped_length"] = mapped_length
    t.call("POST", t.xcom_path(body), params=params, json_body=body["value"], has_body=True)
    return None


@_handles("DeleteXCom")
def _delete_xcom(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    t.call("DELETE", t.xcom_path(body), params=_map_index_param(body.get("map_index")))
    return None


# -- dag runs, dags and task instances ---------------------------------------------------------
def _dag_run_path(body: dict[str, Any]) -> str:
    return f"dag-runs/{path_segment(body['dag_id'])}/{path_segment(body['run_id'])}"


def _iso_list(values: Any) -> list[str] | None:
    return None if values is None else [v.isoformat() for v in values]


@_handles("GetDagRun")
def _get_dag_run(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    return _compact(t.call("GET", _dag_run_path(body)).body, "DagRunResult")


@_handles("GetDagRunState")
def _get_dag_run_state(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    return _compact(t.call("GET", f"{_dag_run_path(body)}/state").body, "DagRunStateResult")


@_handles("GetDag")
def _get_dag(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    return _compact(t.call("GET", f"dags/{path_segment(body['dag_id'])}").body, "DagResult")


@_handles("GetDRCount")
def _get_dr_count(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {
        "dag_id": body["dag_id"],
        "logical_dates": _iso_list(body.get("logical_dates")),
        "run_ids": body.get("run_ids"),
        "states": body.get("states"),
    }
    return {"count": int(t.call("GET", "dag-runs/count", params=params).body), "type": "DRCount"}


@_handles("GetPreviousDagRun")
def _get_previous_dag_run(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {
        "dag_id": body["dag_id"],
        "logical_date": body["logical_date"],
        "state": body.get("state") or None,
    }
    return {"dag_run": t.call("GET", "dag-runs/previous", params=params).body, "type": "PreviousDagRunResult"}


@_handles("TriggerDagRun")
def _trigger_dag_run(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    # TriggerDAGRunPayload dumped with exclude_defaults, as the task SDK client sends it.
    payload: dict[str, Any] = {"conf": body.get("conf") or {}}
    for key in ("logical_date", "run_after", "note"):
        if body.get(key) is not None:
            payload[key] = body[key]
    if body.get("reset_dag_run"):
        payload["reset_dag_run"] = True
    try:
        t.call("POST", _dag_run_path(body), json_body=payload)
    except ApiError as exc:
        if exc.status != HTTPStatus.CONFLICT:
            raise
        if body.get("reset_dag_run"):
            t.call("POST", f"{_dag_run_path(body)}/clear")
            return dict(_OK)
        return _error("DAGRUN_ALREADY_EXISTS")
    return dict(_OK)


def _ti_filters(body: dict[str, Any]) -> dict[str, Any]:
    params = {
        "dag_id": body["dag_id"],
        "task_ids": body.get("task_ids"),
        "task_group_id": body.get("task_group_id"),
        "logical_dates": _iso_list(body.get("logical_dates")),
        "run_ids": body.get("run_ids"),
    }
    params.update(_map_index_param(body.get("map_index")))
    return params


@_handles("GetTICount")
def _get_ti_count(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {**_ti_filters(body), "states": body.get("states")}
    return {"count": int(t.call("GET", "task-instances/count", params=params).body), "type": "TICount"}


@_handles("GetTaskStates")
def _get_task_states(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    return _compact(t.call("GET", "task-instances/states", params=_ti_filters(body)).body, "TaskStatesResult")


@_handles("GetTaskBreadcrumbs")
def _get_breadcrumbs(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {"dag_id": body["dag_id"], "run_id": body["run_id"]}
    return _compact(t.call("GET", "task-instances/breadcrumbs", params=params).body, "TaskBreadcrumbsResult")


@_handles("GetPreviousTI")
def _get_previous_ti(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"map_index": body.get("map_index", -1)}
    if body.get("logical_date"):
        params["logical_date"] = body["logical_date"]
    if body.get("state"):
        params["state"] = body["state"]
    path = f"task-instances/previous/{path_segment(body['dag_id'])}/{path_segment(body['task_id'])}"
    return {"task_instance": t.call("GET", path, params=params).body, "type": "PreviousTIResult"}


@_handles("GetPrevSuccessfulDagRun")
def _get_prev_successful(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    # The supervisor asks about the running task instance, whatever id the body names.
    answer = t.call("GET", f"task-instances/{t.ti_id}/previous-successful-dagrun").body
    return _compact(answer, "PrevSuccessfulDagRunResult")


@_handles("GetTaskRescheduleStartDate")
def _get_reschedule_start(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {"try_number": body.get("try_number", 1)}
    answer = t.call("GET", f"task-reschedules/{path_segment(body['ti_id'])}/start_date", params=params).body
    return {"start_date": answer, "type": "TaskRescheduleStartDate"}


@_handles("SkipDownstreamTasks")
def _skip_downstream(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    t.call("PATCH", f"task-instances/{t.ti_id}/skip-downstream", json_body={"tasks": list(body["tasks"])})
    return None


@_handles("SetRenderedFields")
def _set_rtif(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    try:
        t.call("PUT", f"task-instances/{t.ti_id}/rtif", json_body=dict(body["rendered_fields"]))
    except ApiError as exc:
        if exc.status != HTTPStatus.GONE:  # the task instance was archived by a retry/clear
            raise
    return None


@_handles("SetRenderedMapIndex")
def _set_rendered_map_index(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    t.call("PATCH", f"task-instances/{t.ti_id}/rendered-map-index", json_body=body["rendered_map_index"])
    return None


@_handles("ValidateInletsAndOutlets")
def _validate_inlets_outlets(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    answer = t.call("GET", f"task-instances/{path_segment(body['ti_id'])}/validate-inlets-and-outlets").body
    return _compact(answer, "InactiveAssetsResult")


# -- assets ------------------------------------------------------------------------------------
def _asset(t: ExecutionApiTransport, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = t.call("GET", endpoint, params=params).body
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return _error("ASSET_NOT_FOUND", params)
        raise
    return _compact(answer, "AssetResult")


@_handles("GetAssetByName")
def _get_asset_by_name(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    return _asset(t, "assets/by-name", {"name": body["name"]})


@_handles("GetAssetByUri")
def _get_asset_by_uri(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    return _asset(t, "assets/by-uri", {"uri": body["uri"]})


@_handles("GetAssetsByAlias")
def _get_assets_by_alias(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    answer = t.call("GET", "assets/by-alias", params={"alias_name": body["alias_name"]}).body or []
    return {"assets": [_compact(a, "AssetResult") for a in answer], "type": "AssetsByAliasResult"}


def _event_params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if body.get("after"):
        params["after"] = body["after"]
    if body.get("before"):
        params["before"] = body["before"]
    params["ascending"] = body.get("ascending", True)
    if body.get("limit"):
        params["limit"] = body["limit"]
    return params


@_handles("GetAssetEventByAsset")
def _get_events_by_asset(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {"name": body.get("name"), "uri": body.get("uri"), **_event_params(body)}
    return _compact(t.call("GET", "asset-events/by-asset", params=params).body, "AssetEventsResult")


@_handles("GetAssetEventByAssetAlias")
def _get_events_by_alias(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    params = {"name": body["alias_name"], **_event_params(body)}
    return _compact(t.call("GET", "asset-events/by-asset-alias", params=params).body, "AssetEventsResult")


# -- state stores ------------------------------------------------------------------------------
def _task_store_path(body: dict[str, Any], with_key: bool = True) -> str:
    path = f"store/ti/{path_segment(body['ti_id'])}"
    return f"{path}/{path_segment(body['key'])}" if with_key else path


@_handles("GetTaskStateStore")
def _get_task_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = t.call("GET", _task_store_path(body)).body
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return _error("TASK_STORE_NOT_FOUND", {"key": body["key"]})
        raise
    return _compact(answer, "TaskStateStoreResult")


@_handles("SetTaskStateStore")
def _set_task_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    payload = {"value": body["value"], "expires_at": body.get("expires_at")}
    t.call("PUT", _task_store_path(body), json_body=payload)
    return dict(_OK)


@_handles("DeleteTaskStateStore")
def _delete_task_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    t.call("DELETE", _task_store_path(body))
    return dict(_OK)


@_handles("ClearTaskStateStore")
def _clear_task_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    t.call("DELETE", _task_store_path(body, with_key=False))
    return dict(_OK)


def _asset_store(body: dict[str, Any], op: str) -> tuple[str, dict[str, Any]]:
    if body.get("name"):
        endpoint, params = f"store/asset/by-name/{op}", {"name": body["name"]}
    else:
        endpoint, params = f"store/asset/by-uri/{op}", {"uri": body["uri"]}
    if op == "value":
        params["key"] = body["key"]
    return endpoint, params


@_handles("GetAssetStateStoreByName", "GetAssetStateStoreByUri")
def _get_asset_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    endpoint, params = _asset_store(body, "value")
    try:
        answer = t.call("GET", endpoint, params=params).body
    except ApiError as exc:
        if exc.status == HTTPStatus.NOT_FOUND:
            return _error("ASSET_STORE_NOT_FOUND", {"key": body["key"]})
        raise
    return _compact(answer, "AssetStateStoreResult")


@_handles("SetAssetStateStoreByName", "SetAssetStateStoreByUri")
def _set_asset_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    endpoint, params = _asset_store(body, "value")
    t.call("PUT", endpoint, params=params, json_body={"value": body["value"]})
    return dict(_OK)


@_handles("DeleteAssetStateStoreByName", "DeleteAssetStateStoreByUri")
def _delete_asset_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    endpoint, params = _asset_store(body, "value")
    t.call("DELETE", endpoint, params=params)
    return dict(_OK)


@_handles("ClearAssetStateStoreByName", "ClearAssetStateStoreByUri")
def _clear_asset_store(t: ExecutionApiTransport, body: dict[str, Any]) -> dict[str, Any]:
    endpoint, params = _asset_store(body, "clear")
    t.call("DELETE", endpoint, params=params)
    return dict(_OK)


# -- logging -----------------------------------------------------------------------------------
@_handles("MaskSecret")
def _mask_secret(t: ExecutionApiTransport, body: dict[str, Any]) -> None:
    masker.add(body["value"])
    return None
