"""Coordinator mode under the RELEASED Airflow supervisor (apache-airflow-task-sdk 1.3.2).

Every test runs the runtime as the supervisor does (``--comm``/``--logs`` appended by the peer) with
the real ``airflow.sdk.api.client.Client`` in front of a fake Execution API that validates every body
with the Execution API's own models; assertions read what the peer recorded and its own task log.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task

BUNDLE = Path(__file__).parent / "bundles" / "coordinator_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG = "coord_dag"
RUN = "manual__2026-01-01"
CONN = {
    "conn_id": "db",
    "conn_type": "postgres",
    "host": "db.internal",
    "port": 5432,
    "login": "etl",
    "password": "hunter2-pw",
    "schema": "orders",
    "extra": '{"sslmode": "require"}',
}


def supervised(task_id: str, api: FakeExecutionAPI | None = None, **kwargs):
    run = run_task(COMMAND, dag_id=DAG, task_id=task_id, run_id=RUN, api=api, **kwargs)
    assert run.api.problems() == [], run.describe()
    return run


def test_success_pushes_return_value_then_succeeds():
    run = supervised("returns_value", try_number=3)
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success")
    assert run.api.xcom(DAG, RUN, "returns_value", "return_value") == {
        "answer": 42,
        "try": 3,
        "run": RUN,
        "map_index": -1,
    }
    paths = [(c.method, c.path.rsplit("/", 1)[-1]) for c in run.calls]
    assert paths.index(("POST", "return_value")) < paths.index(("PATCH", "state"))
    assert run.state_updates[-1]["state"] == "success"
    assert run.supervisor_errors == []


def test_variable_connection_and_xcom_round_trips():
    api = FakeExecutionAPI(
        variables={"plain": "hello", "json_var": '{"a": [1, 2]}', "plenty": "x", "doomed": "bye"},
        connections={"db": CONN},
        xcoms={(DAG, RUN, "upstream", "return_value"): {"rows": 3}, (DAG, RUN, "upstream", "other"): "o"},
    )
    run = supervised("round_trips", api, env={"AIRFLOW_VAR_OVERRIDDEN": "from env"})
    assert run.final_state == "success", run.describe()
    assert run.api.xcom(DAG, RUN, "round_trips", "return_value") == {
        "plain": "hello",
        "json": {"a": [1, 2]},
        "conn": ["postgres", "db.internal", 5432, "etl", "orders", {"sslmode": "require"}],
        "upstream": {"rows": 3},
        "upstream_other_key": "o",
        "xcom_count": 1,
        "keys": ["plain", "plenty"],
        "dag_run_state": "running",
        "env_override": "from env",
    }
    assert run.api.xcom(DAG, RUN, "round_trips", "side") == {"nested": [1, 2.5, None, True]}
    assert run.api.variables["written"] == "by the task"
    assert "doomed" not in run.api.variables
    assert not [c for c in run.calls if c.path.endswith("/variables/overridden")]  # env wins, no API call


def test_every_other_request_type_round_trips():
    api = FakeExecutionAPI(
        xcoms={(DAG, RUN, "mapped", "return_value", i): value for i, value in enumerate("abc")},
        assets=[{"name": "orders", "uri": "s3://bucket/orders", "group": "asset", "extra": {}}],
    )
    run = supervised("everything_else", api)
    assert run.final_state == "success", run.describe()
    result = run.api.xcom(DAG, RUN, "everything_else", "return_value")
    assert (
        result["cursor"] == {"offset": 10}
        and result["after_delete"] == "gone"
        and result["after_clear"] is None
    )
    assert result["dag_run"] == RUN
    assert (result["seq_item"], result["seq_slice"]) == ("b", ["a", "b"])
    assert result["task_states"] == {RUN: {"everything_else": "running"}}
    assert result["ti_count"] >= 1 and result["dr_count"] >= 1
    assert result["asset_by_name"] == "s3://bucket/orders" and result["asset_by_uri"] == "orders"
    assert result["deleted_xcom"] == "deleted"
    assert "prev_success" in result and "previous" in result
    [trigger] = run.api.calls_to("POST", "/dag-runs/downstream_dag/triggered__1")
    assert trigger.json["conf"] == {"from": "everything_else"}


def test_not_found_is_an_exception_or_default_never_a_hang():
    run = supervised("not_found")
    assert run.final_state == "success", run.describe()
    assert run.api.xcom(DAG, RUN, "not_found", "return_value") == {
        "variable": "variable 'missing' not found",
        "connection": "connection 'missing' not found",
        "xcom": "fallback",
        "variable_default": "dflt",
    }


def test_exception_fails_with_traceback_in_task_log():
    run = supervised("raises")
    assert (run.exit_code, run.final_state, run.server_state) == (0, "failed", "failed")
    [record] = run.find_logs(contains="Task failed with exception")
    assert record["level"] == "error"
    stacks = record["error_detail"]
    assert stacks[0]["exc_type"] == "ValueError" and stacks[0]["exc_value"] == "boom from inner"
    assert [f["name"] for f in stacks[0]["frames"]][-2:] == ["raises", "inner"]


def test_exception_with_retry_left_sends_retry_task():
    run = supervised("raises", FakeExecutionAPI(max_tries=2, should_retry=True))
    assert (run.exit_code, run.final_state, run.server_state) == (0, "up_for_retry", "up_for_retry")
    assert run.state_updates[-1]["state"] == "up_for_retry"


def test_fail_task_skips_retry_and_skip_and_removed():
    failed = supervised("fails_hard", FakeExecutionAPI(max_tries=2, should_retry=True))
    assert (failed.final_state, failed.server_state) == ("failed", "failed")
    skipped = supervised("skips")
    assert (skipped.final_state, skipped.server_state) == ("skipped", "skipped")
    assert skipped.find_logs(contains="nothing to do today")
    removed = supervised("no_such_task")
    assert (removed.exit_code, removed.final_state, removed.server_state) == (0, "removed", "removed")


def test_non_json_return_value_fails_the_task_instead_of_hanging():
    run = supervised("pushes_bytes")
    assert run.final_state == "failed"
    assert run.find_logs(contains="Task failed with exception")
    assert run.supervisor_errors == []  # nothing invalid ever reached the supervisor


def test_invalid_request_is_refused_locally():
    run = supervised("forbidden_write")
    assert run.final_state == "success"
    assert run.api.xcom(DAG, RUN, "forbidden_write", "return_value") == (
        "InvalidRequest: SetXCom: missing required field(s) dag_id, run_id, task_id"
    )


def test_async_task():
    run = supervised("async_task", FakeExecutionAPI(variables={"plain": "async ok"}))
    assert run.api.xcom(DAG, RUN, "async_task", "return_value") == "async ok"


def test_level_filtering_masking_warnings_and_extras_in_the_supervisors_task_log():
    api = FakeExecutionAPI(variables={"api_token": "tok-123456"}, connections={"db": CONN})
    run = supervised("logs", api, logging_level="INFO", namespace_levels="tests.module=DEBUG noisy=ERROR")
    assert run.final_state == "success", run.describe()
    events = run.events()
    assert "debug from the injected logger" not in events  # below INFO
    assert "module debug (namespace level DEBUG)" in events  # longest prefix tests.module=DEBUG
    assert "noisy info (namespace level ERROR)" not in events
    assert any("a warning through the warnings module" in e for e in events)
    [extra] = run.find_logs("info with extra")
    assert extra["rows"] == 3 and extra["extra_target"] == "collides"
    assert extra["extra_level"] == 99 and extra["extra_timestamp"] == 12.5 and extra["level"] == "info"
    assert "token is *** and password is ***" in events
    text = "\n".join(str(r) for r in run.log_records)
    assert "tok-123456" not in text and "hunter2-pw" not in text
    [handled] = run.find_logs("handled error")
    assert handled["error_detail"][0]["exc_value"] == "failed using ***"
    assert run.supervisor_errors == []


def test_sigterm_cancels_a_cooperative_task_and_reports_failed():
    run = supervised(
        "cooperative", signal_after=(signal.SIGTERM, 0.5), trigger_on_log="waiting for cancellation"
    )
    assert (run.exit_code, run.final_state, run.server_state) == (0, "failed", "failed")
    assert "cancelled, stopping" in run.events()


def test_sigterm_on_a_stubborn_task_reports_failed_after_the_grace_period():
    run = supervised(
        "stubborn",
        signal_after=(signal.SIGTERM, 0.2),
        trigger_on_log="sleeping and ignoring cancellation",
        env={"PYBUNDLE_CANCEL_GRACE_SECONDS": "1"},
    )
    assert (run.exit_code, run.final_state, run.server_state) == (0, "failed", "failed")
    assert run.find_logs(contains="did not stop within 1.0 s")
    assert run.duration < 20


def test_supervisor_disappearing_mid_task_makes_the_runtime_exit_within_a_second():
    run = run_task(
        COMMAND,
        dag_id=DAG,
        task_id="slow",
        run_id=RUN,
        kill_supervisor_after=0.5,
        trigger_on_log="slow task started",
        raise_on_timeout=False,
    )
    assert run.supervisor_killed
    assert run.runtime_survived_supervisor is False
    assert run.runtime_exit_delay is not None and run.runtime_exit_delay < 1.0


def test_coordinator_mode_never_imports_grpc_protobuf_yaml_or_airflow():
    run = supervised("heavy_modules")
    assert run.final_state == "success"
    assert run.api.xcom(DAG, RUN, "heavy_modules", "return_value") == []
