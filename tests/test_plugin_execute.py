"""go-plugin mode, Execute: a real plugin process, a Python host, and a real HTTP Execution API.

The fake Execution API (``tests.harness.execution_api.FakeExecutionAPI``) validates every request
body with the Execution API's own pydantic models; ``assert_clean()`` fails on any body the real
server would have rejected.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.plugin_host import (
    ExecutionApiServer,
    PluginHost,
    bundle_command,
    execute_request,
    iter_json_lines,
)

pytest.importorskip("airflow.api_fastapi.execution_api.datamodels")

from tests.harness.execution_api import FakeExecutionAPI

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
LOG_PATH = "dag_id=simple_dag/run_id=manual__2026-01-01T00:00:00+00:00/task_id={task}/attempt={n}.log"


@pytest.fixture
def api() -> FakeExecutionAPI:
    return FakeExecutionAPI(
        variables={"warehouse_api_token": "s3cr3t-warehouse-token", "min_amount": "5"},
        connections={
            "orders_db": {
                "conn_type": "postgres",
                "host": "db.example",
                "port": 5432,
                "login": "etl",
                "password": "hunter22",
            }
        },
    )


@pytest.fixture
def server(api: FakeExecutionAPI):
    with ExecutionApiServer(api) as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: ExecutionApiServer) -> dict[str, str]:
    home = tmp_path / "airflow_home"
    home.mkdir()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__EXECUTION_API_URL": server.url,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
    }


def run(
    env: dict[str, str],
    request: Any,
    *,
    argv: list[str] | None = None,
    timeout: float | None = 60,
) -> tuple[PluginHost, grpc.RpcError | None, float]:
    """Start a plugin, Execute once, Kill; return the host, the RPC error (if any) and Execute time."""
    with PluginHost.start(argv or bundle_command(), env=env) as host:
        began = time.monotonic()
        error = None
        try:
            host.execute(request, timeout=timeout)
        except grpc.RpcError as exc:
            error = exc
        seconds = time.monotonic() - began
        killed = host.kill()
        assert killed.graceful and killed.seconds < 1.0, (killed, host.stderr_text())
        assert host.hclog_problems() == []
        return host, error, seconds


def calls(api: FakeExecutionAPI) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in api.calls if not c.path.endswith("/heartbeat")]


def log_events(tmp_path: Path, task: str, attempt: int = 1) -> list[dict[str, Any]]:
    return list(iter_json_lines(tmp_path / "logs" / LOG_PATH.format(task=task, n=attempt)))


def test_success_run_xcom_and_state(api, server, env, tmp_path) -> None:
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="queued")
    request = execute_request(ti_id=ti, log_path=LOG_PATH.format(task="extract", n=1))
    host, error, _ = run({**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"}, request)
    assert error is None, error
    api.assert_clean()
    xcom = f"/xcoms/simple_dag/{RUN_ID}/extract"
    assert calls(api) == [
        ("PATCH", f"/task-instances/{ti}/run"),
        ("GET", "/connections/orders_db"),
        # extract is `-> dict`: multiple_outputs inferred as by Airflow's @task, keys first
        ("POST", f"{xcom}/source"),
        ("POST", f"{xcom}/rows"),
        ("POST", f"{xcom}/return_value"),
        ("PATCH", f"/task-instances/{ti}/state"),
    ]
    assert api.ti_state(ti) == "success"
    assert api.state_updates[-1]["state"] == "success"
    pushed = api.xcom("simple_dag", RUN_ID, "extract", "return_value")
    assert pushed["source"] == "db.example" and len(pushed["rows"]) == 4
    run_body = api.calls[0].json
    assert run_body["state"] == "running" and run_body["pid"] == host.proc.pid

    # headers of every request: workload token, the task SDK's API version, a UUIDv7 correlation id
    for seen in server.requests:
        assert seen.headers["authorization"] == "Bearer workload-token"
        assert seen.headers["airflow-api-version"] == "2026-06-30"
        assert uuid.UUID(seen.headers["correlation-id"]).version == 7
        assert seen.path.startswith("/execution/")

    events = log_events(tmp_path, "extract")
    assert all({"timestamp", "level", "event", "logger"} <= set(e) for e in events)
    assert all(e["level"] == e["level"].lower() for e in events)
    messages = [e["event"] for e in events]
    assert f"Extracting orders from db.example:5432 for run {RUN_ID}" in messages
    assert "Connecting as etl with password ***" in messages  # masked in the file we write ourselves
    assert "hunter22" not in json.dumps(events)
    assert "Task succeeded" in messages


SUMMARY = {"currency": "EUR", "rows": [{"order_id": 1, "amount": 12.5}], "total": 12.5}


def test_task_group_tasks_pass_data_through_xcoms(api, env) -> None:
    """transform.filter_rows gets extract's output as its argument (GET /xcoms/...), and
    transform.summarise gets filter_rows' output the same way: TaskFlow data passing in plugin mode."""
    api.xcoms[("simple_dag", RUN_ID, "extract", "return_value", -1)] = {
        "source": "db",
        "rows": [{"order_id": 1, "amount": 12.5}, {"order_id": 2, "amount": 3.0}],
    }
    for task_id in ("transform.filter_rows", "transform.summarise"):
        ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id=task_id, state="queued")
        _, error, _ = run(env, execute_request(ti_id=ti, task_id=task_id))
        assert error is None
        api.assert_clean()
        assert api.ti_state(ti) == "success"
    assert api.xcom("simple_dag", RUN_ID, "transform.summarise", "return_value") == SUMMARY
    paths = [p for _, p in calls(api)]
    assert f"/xcoms/simple_dag/{RUN_ID}/extract/return_value" in paths
    assert f"/xcoms/simple_dag/{RUN_ID}/transform.filter_rows/return_value" in paths
    assert "/variables/min_amount" in paths and "/variables/transform_settings" in paths


def test_branch_skips_the_path_not_followed(api, env) -> None:
    api.xcoms[("simple_dag", RUN_ID, "transform.summarise", "return_value", -1)] = {**SUMMARY, "rows": []}
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="route", state="queued")
    _, error, _ = run(env, execute_request(ti_id=ti, task_id="route"))
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == "success"
    [skip] = [c for c in api.calls if c.path.endswith("/skip-downstream")]
    assert skip.json == {"tasks": [["load", -1]]}
    assert api.xcom("simple_dag", RUN_ID, "route", "skipmixin_key") == {"followed": ["report_empty"]}


def test_task_failure_is_reported_and_execute_succeeds(api, env, tmp_path) -> None:
    api.xcoms[("simple_dag", RUN_ID, "transform.summarise", "return_value", -1)] = SUMMARY
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="load", state="queued")
    _, error, _ = run(
        env, execute_request(ti_id=ti, task_id="load", log_path=LOG_PATH.format(task="load", n=1))
    )
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == "failed"
    assert api.state_updates == [{"state": "failed", "end_date": api.state_updates[0]["end_date"]}]
    failures = [e for e in log_events(tmp_path, "load") if e.get("exception")]
    assert failures and failures[0]["exception"][0]["exc_type"] == "ConnectionError"


def test_failure_with_retries_left_is_up_for_retry(api, env) -> None:
    api.max_tries = 1
    api.xcoms[("simple_dag", RUN_ID, "transform.summarise", "return_value", -1)] = SUMMARY
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="load", state="queued")
    _, error, _ = run(env, execute_request(ti_id=ti, task_id="load"))
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == "up_for_retry"
    assert "ConnectionError" in api.state_updates[0]["retry_reason"]


def test_retry_succeeds_and_masks_sensitive_variable(api, env, tmp_path) -> None:
    api.xcoms[("simple_dag", RUN_ID, "transform.summarise", "return_value", -1)] = SUMMARY
    ti = api.add_task_instance(
        dag_id="simple_dag", run_id=RUN_ID, task_id="load", state="queued", try_number=2
    )
    request = execute_request(
        ti_id=ti, task_id="load", try_number=2, log_path=LOG_PATH.format(task="load", n=2)
    )
    _, error, _ = run(env, request)
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == "success"
    assert api.xcom("simple_dag", RUN_ID, "load", "return_value") == 1
    text = json.dumps(log_events(tmp_path, "load", 2))
    assert "Loading 1 rows (total 12.50 EUR) with token ***" in text
    assert "s3cr3t-warehouse-token" not in text


def test_skip(api, env) -> None:
    api.xcoms[("simple_dag", RUN_ID, "audit", "return_value", -1)] = {"run_id": RUN_ID, "loaded_rows": 1}
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="notify", state="queued")
    _, error, _ = run(env, execute_request(ti_id=ti, task_id="notify"))
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == "skipped"


def test_unknown_task_is_failed_and_execute_succeeds(api, env, tmp_path) -> None:
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="nope", state="queued")
    request = execute_request(ti_id=ti, task_id="nope", log_path=LOG_PATH.format(task="nope", n=1))
    _, error, _ = run(env, request)
    assert error is None
    api.assert_clean()
    assert calls(api) == [("PATCH", f"/task-instances/{ti}/run"), ("PATCH", f"/task-instances/{ti}/state")]
    assert api.ti_state(ti) == "failed"
    events = log_events(tmp_path, "nope")
    assert [e["event"] for e in events] == ["Task not registered"]
    assert events[0]["task_id"] == "nope" and events[0]["level"] == "error"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not-a-uuid", "unable to parse UUID: invalid UUID length: 10"),
        ("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "unable to parse UUID: invalid UUID format"),
        (
            "urn:uuix:00000000-0000-4000-8000-000000000001",
            'unable to parse UUID: invalid urn prefix: "urn:uuix:"',
        ),
    ],
)
def test_bad_uuid_is_invalid_argument(api, env, value: str, message: str) -> None:
    _, error, _ = run(env, execute_request(ti_id=value))
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message
    assert api.calls == []


def test_workload_not_set_is_unimplemented(api, env) -> None:
    from bundle.plugin._generated.bundle.v1 import plugin_pb2

    _, error, _ = run(env, plugin_pb2.Execute.Request())
    assert error is not None and error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == 'Unimplmeneted workload "not set"'


def test_without_log_path_task_logs_go_to_stderr_as_hclog(api, env, tmp_path) -> None:
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="queued")
    host, error, _ = run(env, execute_request(ti_id=ti))
    assert error is None
    assert not (tmp_path / "logs").exists()
    messages = [r["@message"] for r in host.hclog_records()]
    assert f"Extracting orders from db.example:5432 for run {RUN_ID}" in messages


def test_run_refused_is_an_execute_error(api, env) -> None:
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="success")
    _, error, _ = run(env, execute_request(ti_id=ti))
    assert error is not None and error.code() == grpc.StatusCode.UNKNOWN
    assert "starting the task instance" in error.details() and "409" in error.details()
    assert [m for m, _ in calls(api)] == ["PATCH"]


def test_state_update_refused_is_an_execute_error(api, env) -> None:
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="queued")
    api.add_fault("PATCH", "/task-instances/*/state", 409, {"detail": {"reason": "invalid_state"}})
    _, error, _ = run(env, execute_request(ti_id=ti))
    assert error is not None and error.code() == grpc.StatusCode.UNKNOWN
    assert "reporting state success" in error.details()


def test_no_execution_api_url(api, env) -> None:
    env = {k: v for k, v in env.items() if k != "AIRFLOW__EXECUTION_API_URL"}
    _, error, _ = run(env, execute_request(ti_id=str(uuid.uuid4())))
    assert error is not None and error.code() == grpc.StatusCode.UNKNOWN
    assert "AIRFLOW__EXECUTION_API_URL" in error.details()


def test_url_and_log_folder_from_go_sdk_yaml(api, server, env, tmp_path) -> None:
    home = Path(env["AIRFLOW_HOME"])
    (home / "go-sdk.yaml").write_text(
        f"# written by the test\nexecution-api-url: '{server.url}'\nlogging:\n  base_log_folder: {tmp_path / 'yaml-logs'}\n"
    )
    env = {"AIRFLOW_HOME": str(home)}
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="queued")
    _, error, _ = run(env, execute_request(ti_id=ti, log_path="extract.log"))
    assert error is None
    assert api.ti_state(ti) == "success"
    assert (tmp_path / "yaml-logs" / "extract.log").is_file()


def test_registration_failure_is_not_found(api, env, write_bundle) -> None:
    path = write_bundle(
        """
        from bundle import BundleInfo

        class Broken:
            def get_bundle_version(self):
                return BundleInfo("broken", "2")

            def register_dags(self, registry):
                raise RuntimeError("no dags today")

        bundle = Broken()
        """
    )
    request = execute_request(ti_id=str(uuid.uuid4()), bundle_name="broken", bundle_version=None)
    host, error, _ = run(env, request, argv=bundle_command(path))
    assert error is not None and error.code() == grpc.StatusCode.NOT_FOUND
    assert (
        error.details() == 'dag bundle not found: bundlev1.BundleInfo{Name:"broken", Version:(*string)(nil)}'
    )
    assert "no dags today" in host.stderr_text()
    assert api.calls == []


CANCELLABLE = """
    import time
    from bundle import Bundle, Client, Context

    bundle = Bundle("cancellable", version="1")
    dag = bundle.dag("d")

    @dag.task
    def wait(ctx: Context) -> None:
        if not ctx.wait_cancelled(20):
            raise RuntimeError("never cancelled")

    @dag.task
    def mapped(ctx: Context, client: Client) -> int:
        return ctx.ti.map_index
"""


def test_heartbeat_refusal_cancels_the_task(api, env, write_bundle) -> None:
    path = write_bundle(CANCELLABLE)
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id="wait", state="queued")
    api.add_fault("PUT", "/task-instances/*/heartbeat", 409, {"detail": {"reason": "not_running"}}, skip=1)
    env = {**env, "PYBUNDLE_HEARTBEAT_INTERVAL_SECONDS": "0.2"}
    _, error, seconds = run(
        env, execute_request(ti_id=ti, dag_id="d", task_id="wait"), argv=bundle_command(path)
    )
    assert error is None
    assert seconds < 5
    assert len(api.calls_to("PUT", "/task-instances/*/heartbeat")) == 2  # one accepted, one refused
    assert api.state_updates[-1]["state"] == "failed"
    api.assert_clean()


def test_host_cancellation_reaches_the_task(api, env, write_bundle) -> None:
    path = write_bundle(CANCELLABLE)
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id="wait", state="queued")
    request = execute_request(ti_id=ti, dag_id="d", task_id="wait")
    with PluginHost.start(bundle_command(path), env=env) as host:
        with pytest.raises(grpc.RpcError) as info:
            host.execute(request, timeout=1.0)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        from tests.plugin_host import wait_for

        assert wait_for(lambda: api.state_updates, timeout=5)
        assert host.kill().graceful
    assert api.state_updates[-1]["state"] == "failed"


@pytest.mark.parametrize("map_index", [None, 0, 3])
def test_map_index_presence(api, env, write_bundle, map_index: int | None) -> None:
    path = write_bundle(CANCELLABLE)
    ti = api.add_task_instance(
        dag_id="d",
        run_id=RUN_ID,
        task_id="mapped",
        state="queued",
        map_index=-1 if map_index is None else map_index,
    )
    request = execute_request(ti_id=ti, dag_id="d", task_id="mapped", map_index=map_index)
    _, error, _ = run(env, request, argv=bundle_command(path))
    assert error is None
    api.assert_clean()
    stored = -1 if map_index is None else map_index
    assert api.xcom("d", RUN_ID, "mapped", "return_value", stored) == stored
    post = api.calls_to("POST", "/xcoms/*")[0]
    assert post.query == ({} if map_index is None else {"map_index": str(map_index)})


CLIENT_TOUR = """
    from datetime import datetime, timezone
    from bundle import Bundle, Client, ConnectionNotFound, Context, VariableNotFound

    bundle = Bundle("tour", version="1")
    dag = bundle.dag("d")

    @dag.task
    def tour(ctx: Context, client: Client) -> dict:
        out = {}
        client.set_variable("written", "value", description="by the tour")
        out["written"] = client.get_variable("written")
        out["keys"] = client.get_variable_keys(prefix="wr")
        client.delete_variable("written")
        try:
            client.get_variable("written")
        except VariableNotFound:
            out["deleted"] = True
        out["default"] = client.get_variable("missing", default="fallback")
        try:
            client.get_connection("nope")
        except ConnectionNotFound:
            out["conn_missing"] = True
        client.push_xcom("k", [1, 2, 3])
        out["xcom"] = client.get_xcom("tour", key="k")
        out["missing_xcom"] = client.get_xcom("other", default="dflt")
        out["count"] = client.get_xcom_count("tour", key="k")
        client.delete_xcom("k")
        out["after_delete"] = client.get_xcom("tour", key="k", default="gone")
        out["dag_run_state"] = client.get_dag_run_state()
        client.trigger_dag_run("d", "triggered_1", conf={"a": 1})
        try:
            client.trigger_dag_run("d", "triggered_1")
        except Exception as exc:
            out["trigger_again"] = type(exc).__name__ + ":" + getattr(exc, "error", "")
        client.set_task_state("cursor", {"at": 5})
        out["task_state"] = client.get_task_state("cursor")
        client.delete_task_state("cursor")
        out["task_state_default"] = client.get_task_state("cursor", default=None)
        out["ti_count"] = client.get_ti_count(task_ids=["tour"])
        out["dr_count"] = client.get_dr_count()
        out["task_states"] = client.get_task_states(run_ids=[ctx.run_id])
        client.mask_secret("tour-secret-value")
        out["logical_date"] = ctx.dag_run.logical_date.isoformat()
        return out
"""


def test_client_requests_map_to_valid_execution_api_calls(api, env, write_bundle) -> None:
    path = write_bundle(CLIENT_TOUR)
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id="tour", state="queued")
    _, error, _ = run(env, execute_request(ti_id=ti, dag_id="d", task_id="tour"), argv=bundle_command(path))
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == "success", api.state_updates
    result = api.xcom("d", RUN_ID, "tour", "return_value")
    assert result == {
        "written": "value",
        "keys": ["written"],
        "deleted": True,
        "default": "fallback",
        "conn_missing": True,
        "xcom": [1, 2, 3],
        "missing_xcom": "dflt",
        "count": 1,
        "after_delete": "gone",
        "dag_run_state": "running",
        "trigger_again": "AirflowApiError:DAGRUN_ALREADY_EXISTS",
        "task_state": {"at": 5},
        "task_state_default": None,
        "ti_count": 1,
        "dr_count": 2,
        "task_states": {RUN_ID: {"tour": "running"}},
        "logical_date": "2026-01-01T00:00:00+00:00",
    }
    assert api.variable_descriptions.get("written") in (None, "by the tour")
    assert not [c for c in api.calls if "tour-secret-value" in json.dumps(c.json)]


def test_unwritable_log_folder_is_an_execute_error(api, env, tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {**env, "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(blocker)}
    ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="queued")
    _, error, _ = run(env, execute_request(ti_id=ti, log_path="a/b.log"))
    assert error is not None and error.code() == grpc.StatusCode.UNKNOWN
    assert "could not create the task log" in error.details()
    assert api.calls == []
