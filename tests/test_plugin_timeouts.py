"""go-plugin mode: ``execution_timeout`` and ``xcom_keys_to_clear`` with a real plugin process, a
Python host and the fake Execution API over HTTP (as tests/test_plugin_execute.py).

Executes run on gRPC threads, where no signal can interrupt a task: a task past its limit is
reported at the deadline and its thread abandoned, and the plugin goes on serving."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.plugin_host import ExecutionApiServer, PluginHost, bundle_command, execute_request, iter_json_lines

pytest.importorskip("airflow.api_fastapi.execution_api.datamodels")

from tests.harness.execution_api import FakeExecutionAPI

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
LOG_PATH = "dag_id=d/run_id=manual__2026-01-01T00:00:00+00:00/task_id={task}/attempt=1.log"
BUNDLE = """
    import asyncio
    import time
    from datetime import timedelta
    from bundle import Bundle, Client

    bundle = Bundle("timeouts", version="1")
    dag = bundle.dag("d")

    @dag.task(execution_timeout=timedelta(seconds=1))
    def sleeps() -> None:
        time.sleep(60)

    @dag.task(execution_timeout=timedelta(seconds=1))
    async def sleeps_async() -> None:
        await asyncio.sleep(60)

    @dag.task(execution_timeout=timedelta(seconds=30))
    def quick(client: Client) -> str:
        client.push_xcom("side", "fresh")
        return "ok"
"""


@pytest.fixture
def api() -> FakeExecutionAPI:
    return FakeExecutionAPI()


@pytest.fixture
def env(tmp_path: Path, api: FakeExecutionAPI):
    home = tmp_path / "airflow_home"
    home.mkdir()
    with ExecutionApiServer(api) as server:
        yield {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__EXECUTION_API_URL": server.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
        }


def request_for(api: FakeExecutionAPI, task_id: str, **kwargs):
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id=task_id, state="queued")
    request = execute_request(
        ti_id=ti,
        dag_id="d",
        task_id=task_id,
        bundle_name="timeouts",
        bundle_version="1",
        log_path=LOG_PATH.format(task=task_id),
        **kwargs,
    )
    return ti, request


@pytest.mark.parametrize("task_id", ["sleeps", "sleeps_async"])
@pytest.mark.parametrize(("max_tries", "state"), [(1, "up_for_retry"), (0, "failed")])
def test_a_task_past_its_limit_is_reported_at_the_deadline_and_the_plugin_serves_on(
    api, env, write_bundle, tmp_path, task_id, max_tries, state
) -> None:
    api.max_tries = max_tries
    path = write_bundle(BUNDLE)
    ti, request = request_for(api, task_id)
    with PluginHost.start(bundle_command(path), env=env) as host:
        began = time.monotonic()
        host.execute(request, timeout=30)
        seconds = time.monotonic() - began
        assert api.ti_state(ti) == state
        # the plugin still serves, with the abandoned thread still sleeping inside it
        next_ti, next_request = request_for(api, "quick")
        host.execute(next_request, timeout=30)
        assert api.ti_state(next_ti) == "success"
        assert host.kill().graceful
    api.assert_clean()
    assert seconds < 5, seconds  # 1 s limit (+1 s for a cancelled coroutine to unwind)
    if state == "up_for_retry":
        assert api.state_updates[0]["retry_reason"].startswith("TaskTimeout: Timeout, PID: ")
    text = json.dumps(list(iter_json_lines(tmp_path / "logs" / LOG_PATH.format(task=task_id))))
    assert "Task timed out after 0:00:01 (execution_timeout), PID: " in text
    assert "TaskTimeout" in text
    if task_id == "sleeps":  # a sync task cannot be stopped: the log says it runs on
        assert "it is abandoned and may keep running in the background" in text


def test_xcom_keys_to_clear_are_deleted_before_the_task_runs(api, env, write_bundle) -> None:
    api.run_context = {"xcom_keys_to_clear": ["stale", "side"]}
    api.xcoms[("d", RUN_ID, "quick", "stale", -1)] = "try 1"
    path = write_bundle(BUNDLE)
    ti, request = request_for(api, "quick", try_number=1)
    with PluginHost.start(bundle_command(path), env=env) as host:
        host.execute(request, timeout=30)
        assert host.kill().graceful
    api.assert_clean()
    xcoms = [(c.method, c.path.rsplit("/", 1)[-1]) for c in api.calls if "/xcoms/" in c.path]
    assert xcoms == [("DELETE", "stale"), ("DELETE", "side"), ("POST", "side"), ("POST", "return_value")]
    assert ("d", RUN_ID, "quick", "stale", -1) not in api.xcoms
    assert api.ti_state(ti) == "success"
