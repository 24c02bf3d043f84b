"""``execution_timeout`` and ``xcom_keys_to_clear``, as Airflow's Python task runner handles them.

Coordinator mode runs under the released supervisor (tests/harness) against the fake Execution API,
which validates every body with core's models; ``bundle.testing`` and the timeout primitives run in
process; ``bundle-run`` runs as the installed console script. Go-plugin mode: test_plugin_timeouts.py.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bundle import Bundle, Client, TaskTimeout
from bundle.core import timeouts
from bundle.testing import FakeClient
from bundle.testing import run_task as run_in_process
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task

BUNDLE = Path(__file__).parent / "bundles" / "timeout_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG, RUN = "timeout_dag", "manual__2026-01-01"
# The limit is 1 s; the rest is the supervisor's start (it imports Airflow) on a loaded machine.
BOUND_SECONDS = 20.0


def supervised(task_id: str, api: FakeExecutionAPI | None = None, **kwargs):
    run = run_task(COMMAND, dag_id=DAG, task_id=task_id, run_id=RUN, api=api, timeout=60, **kwargs)
    assert run.api.problems() == [], run.describe()
    assert run.supervisor_errors == [], run.describe()
    return run


def timeout_errors(run) -> list[dict]:
    return [
        detail
        for record in run.log_records
        for detail in record.get("error_detail") or []
        if detail.get("exc_type") == "TaskTimeout"
    ]


# -- coordinator mode, under the released supervisor --------------------------------------------------
@pytest.mark.parametrize("task_id", ["sleeps", "sleeps_async"])
@pytest.mark.parametrize(("max_tries", "state"), [(1, "up_for_retry"), (0, "failed")])
def test_a_task_past_its_limit_times_out_and_retries_by_airflow_rules(task_id, max_tries, state):
    run = supervised(task_id, FakeExecutionAPI(max_tries=max_tries))
    assert (run.exit_code, run.final_state, run.server_state) == (0, state, state), run.describe()
    assert run.duration < BOUND_SECONDS, run.describe()
    [record] = run.find_logs(contains="Task timed out after 0:00:01 (execution_timeout)")
    assert record["level"] == "error" and f"PID: {run.runtime_pid}" in record["event"]
    [error] = timeout_errors(run)
    assert error["exc_value"] == f"Timeout, PID: {run.runtime_pid}"  # Airflow's AirflowTaskTimeout text
    if state == "up_for_retry":
        assert run.state_updates[-1]["retry_reason"] == f"TaskTimeout: Timeout, PID: {run.runtime_pid}"


@pytest.mark.parametrize("task_id", ["ignores_signals", "catches_the_timeout"])
def test_a_task_no_signal_stops_is_reported_after_the_grace_and_the_process_exits(task_id):
    run = supervised(task_id, FakeExecutionAPI(max_tries=1), env={"PYBUNDLE_CANCEL_GRACE_SECONDS": "1"})
    assert (run.exit_code, run.final_state, run.server_state) == (0, "up_for_retry", "up_for_retry")
    assert run.duration < BOUND_SECONDS, run.describe()
    assert not run.runtime_alive()
    assert run.find_logs(contains="Task timed out after 0:00:01 (execution_timeout)")
    assert run.find_logs(contains="Task did not stop within 1.0 s of its execution_timeout")
    assert run.state_updates[-1]["retry_reason"].startswith("TaskTimeout: Timeout, PID: ")


def test_a_task_without_a_limit_is_not_interrupted_and_loads_nothing_for_it():
    run = supervised("without_limit")
    assert run.final_state == "success", run.describe()
    assert run.api.xcom(DAG, RUN, "without_limit", "return_value") == {"loaded": []}


@pytest.mark.parametrize(
    ("task_id", "state"),
    [("fast_with_limit", "success"), ("zero_limit", "success"), ("negative_limit", "failed")],
)
def test_a_task_within_its_limit_succeeds_and_limits_follow_airflow(task_id, state):
    run = supervised(task_id)
    assert run.final_state == state, run.describe()
    if task_id == "negative_limit":  # spent before it starts: Airflow fails at once, the task never runs
        assert timeout_errors(run) and not run.find_logs(contains="Task timed out after")


def test_xcom_keys_to_clear_are_deleted_before_the_task_s_own_requests():
    api = FakeExecutionAPI(
        xcoms={
            (DAG, RUN, "fast_with_limit", "stale"): "try 1",
            (DAG, RUN, "fast_with_limit", "side"): "try 1",
        },
        run_context={"xcom_keys_to_clear": ["stale", "side"]},
    )
    run = supervised("fast_with_limit", api, try_number=2)
    assert run.final_state == "success", run.describe()
    xcom_calls = [(c.method, c.path.rsplit("/", 1)[-1], c.query) for c in run.calls if "/xcoms/" in c.path]
    assert xcom_calls == [
        ("DELETE", "stale", {}),  # the supervisor leaves out map_index -1
        ("DELETE", "side", {}),
        ("POST", "side", {}),
        ("POST", "return_value", {}),
    ], run.describe()
    assert (DAG, RUN, "fast_with_limit", "stale", -1) not in api.xcoms
    assert api.xcom(DAG, RUN, "fast_with_limit", "side") == "pushed within the limit"


# -- bundle.testing ----------------------------------------------------------------------------------
bundle = Bundle("timeouts_in_process", version="1")
dag = bundle.dag("d")


@dag.task(execution_timeout=timedelta(seconds=0.3))
def slow() -> None:
    time.sleep(30)


@dag.task(execution_timeout=timedelta(seconds=0.3))
async def slow_async() -> None:
    await asyncio.sleep(30)


@dag.task(execution_timeout=timedelta(seconds=5))
def quick(client: Client) -> str:
    client.push_xcom("side", 1)
    return "ok"


@pytest.mark.parametrize("task_id", ["slow", "slow_async"])
@pytest.mark.parametrize(("max_tries", "state"), [(1, "up_for_retry"), (0, "failed")])
def test_run_task_enforces_the_limit(task_id, max_tries, state):
    began = time.monotonic()
    result = run_in_process(bundle, "d", task_id, max_tries=max_tries)
    assert time.monotonic() - began < 5
    assert result.state == state and isinstance(result.error, TaskTimeout)
    assert result.error.timeout == timedelta(seconds=0.3)
    assert any(
        m.startswith("Task timed out after 0:00:00.300000 (execution_timeout)") for m in result.messages
    )


def test_run_task_clears_xcoms_first():
    client = FakeClient(xcoms={"quick.stale": "old"})
    result = run_in_process(bundle, "d", "quick", client=client, xcom_keys_to_clear=["stale"])
    assert result.state == "success" and result.xcoms == {"side": 1, "return_value": "ok"}
    assert [r["type"] for r in client.requests] == ["DeleteXCom", "SetXCom", "SetXCom"]
    assert client.requests[0] | {"type": None} == {
        "type": None,
        "key": "stale",
        "dag_id": "d",
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "task_id": "quick",
        "map_index": -1,
    }


# -- the primitives --------------------------------------------------------------------------------
def test_off_the_main_thread_the_task_thread_is_abandoned_at_the_deadline():
    release = threading.Event()
    seen: dict[str, object] = {}

    def caller() -> None:
        began = time.monotonic()
        try:
            timeouts.call_with_timeout(release.wait, (30,), {}, is_async=False, limit=timedelta(seconds=0.2))
        except TaskTimeout as exc:
            seen["error"], seen["seconds"] = exc, time.monotonic() - began

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join(5)
    release.set()
    assert isinstance(seen["error"], TaskTimeout) and seen["seconds"] < 2


def test_the_alarm_waits_for_a_protected_function_to_return():
    log: list[str] = []

    def half_written_frame() -> None:
        time.sleep(0.4)  # the alarm (0.1 s) arrives in here
        log.append("frame complete")

    timeouts.protect_from_alarm(half_written_frame)

    def task() -> None:
        half_written_frame()
        time.sleep(30)

    with pytest.raises(TaskTimeout):
        timeouts.call_with_timeout(task, (), {}, is_async=False, limit=timedelta(seconds=0.1))
    assert log == ["frame complete"]


def test_the_alarm_is_cancelled_and_the_previous_handler_restored():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    assert timeouts.call_with_timeout(lambda: 7, (), {}, is_async=False, limit=timedelta(seconds=0.2)) == 7
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before


def test_a_timeout_error_the_async_task_raises_itself_is_not_a_task_timeout():
    async def own_timeout() -> None:
        raise TimeoutError("the task's own")

    with pytest.raises(TimeoutError, match="the task's own"):
        timeouts.call_with_timeout(own_timeout, (), {}, is_async=True, limit=timedelta(seconds=5))


# -- bundle-run ---------------------------------------------------------------------------------------
def test_bundle_run_retries_a_timed_out_task_then_fails_it(tmp_path):
    from tests.test_bundle_run import bundle_run

    target = Path(__file__).parent / "bundles" / "bundle_run_timeout.py"
    run = bundle_run(target, "--retry-delay-scale", "0", tmp_path=tmp_path)
    assert run.returncode == 1, run.describe()
    assert run.states() == {"times_out": "failed"}
    tries = run.tries("times_out")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "up_for_retry"), (2, "failed")]
    for one in tries:
        events = [r["event"] for r in one["log"]]
        assert "Task timed out after 0:00:02 (execution_timeout), PID: " in " ".join(events), events
        assert one["duration"] < BOUND_SECONDS
