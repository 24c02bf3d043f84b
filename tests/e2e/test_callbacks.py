"""Task callbacks in a real Airflow 3.3.2 deployment: the bundle's runtime runs them in the task's
process, after the terminal message, with read + logging access only; the task log shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment

HERE = Path(__file__).resolve().parent
DAG = "callbacks_dag"
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def callback_run(airflow_deployment: Deployment) -> dict[str, Any]:
    airflow_deployment.add_bundle(HERE / "bundles" / "callbacks.py", name="callbacks", dag_ids=[DAG])
    run_id = airflow_deployment.trigger_run(DAG)
    state = airflow_deployment.wait_run(DAG, run_id, RUN_TIMEOUT)
    return {"deployment": airflow_deployment, "run_id": run_id, "state": state}


def _events(callback_run: dict[str, Any], task_id: str, try_number: int) -> list[str]:
    log = callback_run["deployment"].task_log(DAG, callback_run["run_id"], task_id, try_number=try_number)
    return log.events()


def test_a_failing_tasks_failure_callback_logs_in_its_task_log(callback_run: dict[str, Any]) -> None:
    assert callback_run["state"] == "failed"  # doomed failed; the callback changed nothing
    states = {
        tid: ti.state
        for tid, ti in callback_run["deployment"].task_instances(DAG, callback_run["run_id"]).items()
    }
    assert states == {"doomed": "failed", "flaky": "success"}
    events = _events(callback_run, "doomed", 1)
    assert (
        "on_failure_callback for doomed try 1: ValueError('the warehouse is on fire'); min_amount=5; "
        "PutVariable (write) refused for a callback"
    ) in events, events


def test_a_retry_callback_runs_on_the_failed_try_only(callback_run: dict[str, Any]) -> None:
    first = _events(callback_run, "flaky", 1)
    assert (
        "on_retry_callback for flaky try 1: RuntimeError('first try fails'); min_amount=5; "
        "PutVariable (write) refused for a callback"
    ) in first, first
    second = _events(callback_run, "flaky", 2)
    assert not [e for e in second if "_callback for" in e], second  # it succeeded: no retry callback
    assert callback_run["deployment"].xcom(DAG, callback_run["run_id"], "flaky") == "second try"
