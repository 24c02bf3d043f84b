"""Sensors: a bundle DAG and its Python-SDK twin (``@task.sensor``), run side by side.

tests/e2e/bundles/sensors.py (``@dag.sensor``) and tests/e2e/dags/python_sensors.py have the same
tasks, options and pokes. Both runs are triggered before either is waited for. They must end alike
(every task instance's state and try, every ``return_value`` XCom) and alike with
tests/sensors_expected.py, which ``bundle-run`` is held to as well: the reschedule-mode sensor is
done on its third poke after two ``TaskReschedule`` rows with its try number unchanged, and the
reschedule-mode sensors that never finish time out (failed, not retried; skipped with soft_fail).

Airflow's public REST API has no TaskReschedule endpoint, so the rows are read from the
deployment's own metadata database, read-only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests import sensors_expected as expected
from tests.e2e.deployment import Deployment

HERE = Path(__file__).resolve().parent
TIMED_OUT = "Sensor has timed out; run duration of"
RUN_TIMEOUT = 180.0  # three 8 s reschedules plus the scheduler's loop; observed about a minute


def _reschedules(deployment: Deployment, dag_id: str, run_id: str) -> dict[str, int]:
    """task id -> its TaskReschedule rows in the deployment's database."""
    uri = f"file:{deployment.home / 'airflow.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT ti.task_id, COUNT(tr.id) FROM task_reschedule tr JOIN task_instance ti "
            "ON tr.ti_id = ti.id WHERE ti.dag_id = ? AND ti.run_id = ? GROUP BY ti.task_id",
            (dag_id, run_id),
        ).fetchall()
    return dict(rows)


def _xcoms(deployment: Deployment, dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    found = {}
    for task_id in expected.TASKS:
        try:
            found[(task_id, "return_value")] = deployment.xcom(dag_id, run_id, task_id)
        except KeyError:
            pass  # absent: the comparison says which
    return found


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment) -> dict[str, dict[str, Any]]:
    """dag id -> run state, task states and tries, XComs, reschedule rows."""
    began = time.monotonic()
    airflow_deployment.add_bundle(
        HERE / "bundles" / "sensors.py", name="sensors", dag_ids=[expected.BUNDLE_DAG]
    )
    airflow_deployment.add_dag(HERE / "dags" / "python_sensors.py", [expected.PYTHON_DAG])
    runs = {
        dag_id: airflow_deployment.trigger_run(dag_id)
        for dag_id in (expected.BUNDLE_DAG, expected.PYTHON_DAG)
    }
    result = {}
    for dag_id, run_id in runs.items():
        state = airflow_deployment.wait_run(dag_id, run_id, RUN_TIMEOUT)
        tis = airflow_deployment.task_instances(dag_id, run_id)
        timed_out = {
            task_id: TIMED_OUT in airflow_deployment.task_log(dag_id, run_id, task_id, try_number=1).raw
            for task_id in ("never_done", "soft_never")
        }
        result[dag_id] = {
            "timed_out": timed_out,
            "state": state,
            "tasks": {task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()},
            "xcoms": _xcoms(airflow_deployment, dag_id, run_id),
            "reschedules": _reschedules(airflow_deployment, dag_id, run_id),
        }
    print(f"sensors: deployed and ran in {time.monotonic() - began:.1f} s; {result}")  # -s
    return result


def test_bundle_and_python_runs_end_alike(outcomes: dict[str, dict[str, Any]]) -> None:
    ours, python = outcomes[expected.BUNDLE_DAG], outcomes[expected.PYTHON_DAG]
    assert ours["tasks"] == python["tasks"]
    assert ours["xcoms"] == python["xcoms"]
    assert ours["state"] == python["state"] == "failed"  # never_done is a failed leaf
    assert ours["reschedules"]["wait_third"] == python["reschedules"]["wait_third"]


def test_runs_end_with_the_expected_states_tries_and_xcoms(outcomes: dict[str, dict[str, Any]]) -> None:
    ours = outcomes[expected.BUNDLE_DAG]
    assert ours["tasks"] == expected.TASKS
    assert ours["xcoms"] == expected.XCOMS


def test_the_sensors_that_never_finish_time_out(outcomes: dict[str, dict[str, Any]]) -> None:
    """Failed / skipped by the sensor's own timeout, in both DAGs, not by anything else."""
    for dag_id in (expected.BUNDLE_DAG, expected.PYTHON_DAG):
        assert outcomes[dag_id]["timed_out"] == {"never_done": True, "soft_never": True}, dag_id


def test_third_poke_after_two_reschedules(outcomes: dict[str, dict[str, Any]]) -> None:
    for dag_id in (expected.BUNDLE_DAG, expected.PYTHON_DAG):
        reschedules = outcomes[dag_id]["reschedules"]
        assert reschedules.get("wait_third") == expected.RESCHEDULED["wait_third"], (dag_id, reschedules)
        # The sensors that time out were rescheduled at least once first; a poke-mode one never is.
        assert reschedules.get("never_done", 0) >= 1 and reschedules.get("soft_never", 0) >= 1
        assert "poke_third" not in reschedules and "after" not in reschedules
