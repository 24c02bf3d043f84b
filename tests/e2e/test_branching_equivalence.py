"""Branching and short-circuit: a bundle DAG and its Python-SDK twin, run side by side.

tests/e2e/bundles/branching.py (``@dag.branch``, ``@dag.short_circuit``) and
tests/e2e/dags/python_branching.py (``@task.branch``, ``@task.short_circuit``) have the same tasks,
edges and trigger rules. Both runs are triggered before either is waited for. They must end alike
(every task instance's state and try, every ``return_value`` / ``skipmixin_key`` XCom, with the
``skipmixin_key`` lists sorted: Airflow builds them from sets) and alike with
tests/branching_expected.py, which ``bundle-run`` is held to as well.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests import branching_expected as expected
from tests.e2e.deployment import Deployment

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 90.0  # two runs of twelve tasks in parallel; observed well under a minute


def _xcoms(deployment: Deployment, dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    found = {}
    for task_id, key in expected.XCOM_KEYS:
        try:
            found[(task_id, key)] = expected.sorted_lists(deployment.xcom(dag_id, run_id, task_id, key=key))
        except KeyError:
            pass  # absent: the comparison says which
    return found


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment) -> dict[str, dict[str, Any]]:
    """dag id -> run state, task states and tries, XComs."""
    began = time.monotonic()
    airflow_deployment.add_bundle(
        HERE / "bundles" / "branching.py", name="branching", dag_ids=[expected.BUNDLE_DAG]
    )
    airflow_deployment.add_dag(HERE / "dags" / "python_branching.py", [expected.PYTHON_DAG])
    runs = {
        dag_id: airflow_deployment.trigger_run(dag_id)
        for dag_id in (expected.BUNDLE_DAG, expected.PYTHON_DAG)
    }
    result = {}
    for dag_id, run_id in runs.items():
        state = airflow_deployment.wait_run(dag_id, run_id, RUN_TIMEOUT)
        tis = airflow_deployment.task_instances(dag_id, run_id)
        result[dag_id] = {
            "state": state,
            "tasks": {task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()},
            "xcoms": _xcoms(airflow_deployment, dag_id, run_id),
        }
    print(f"branching: deployed and ran in {time.monotonic() - began:.1f} s")  # -s
    return result


def test_bundle_and_python_runs_end_alike(outcomes: dict[str, dict[str, Any]]) -> None:
    ours, python = outcomes[expected.BUNDLE_DAG], outcomes[expected.PYTHON_DAG]
    assert ours["tasks"] == python["tasks"]
    assert ours["xcoms"] == python["xcoms"]
    assert ours["state"] == python["state"] == "success"


def test_runs_end_with_the_expected_states_and_xcoms(outcomes: dict[str, dict[str, Any]]) -> None:
    ours = outcomes[expected.BUNDLE_DAG]
    # A task that ran has try 1; one skipped before it ran keeps try 0, in both DAGs.
    tries = {task_id: 1 if state == "success" else 0 for task_id, state in expected.STATES.items()}
    assert ours["tasks"] == {task_id: (state, tries[task_id]) for task_id, state in expected.STATES.items()}
    assert ours["xcoms"] == expected.XCOMS
