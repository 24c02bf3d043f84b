"""Dynamic task mapping in a real deployment: a bundle DAG and its Python-SDK twin, run side by side.

tests/e2e/bundles/mapping.py (``partial`` / ``expand`` / ``expand_kwargs`` on bundle tasks, through
the generated ``@task.stub`` DAG file) and tests/e2e/dags/python_mapping.py (the same calls on
``@task``) are expanded by the same scheduler. Both runs are triggered before either is waited for.
They must end alike: the same task instances (task id and map index: how many each mapped task got),
each one's state, try and rendered label (the bundle's ``str.format`` label sent with
``SetRenderedMapIndex`` and repeated in its terminal message, the twin's Jinja one), and each one's
``return_value`` XCom, the reduce's sum among them; the zero-length expansion ends skipped in both.
The expected values are written out too, so "alike" cannot mean "alike and wrong".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment
from tests.mapping_expected import EXPECTED

HERE = Path(__file__).resolve().parent
BUNDLE_DAG, PYTHON_DAG = "mapping_dag", "python_mapping_dag"
RUN_TIMEOUT = 240.0  # two runs of 21 task instances each, every one a process start; 2 cores


def _outcome(deployment: Deployment, dag_id: str, run_id: str) -> dict[str, Any]:
    instances = deployment.rest.task_instances(dag_id, run_id)
    found = {}
    for (task_id, map_index), ti in sorted(instances.items()):
        try:
            value = deployment.xcom(dag_id, run_id, task_id, map_index=map_index)
        except KeyError:
            value = None
        found[(task_id, map_index)] = (ti.state, ti.try_number, ti.rendered_map_index, value)
    return found


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment) -> dict[str, dict[str, Any]]:
    """dag id -> {"state": run state, "instances": {(task id, map index): (state, try, label, xcom)}}."""
    began = time.monotonic()
    airflow_deployment.add_bundle(HERE / "bundles" / "mapping.py", name="mapping", dag_ids=[BUNDLE_DAG])
    airflow_deployment.add_dag(HERE / "dags" / "python_mapping.py", [PYTHON_DAG])
    runs = {dag_id: airflow_deployment.trigger_run(dag_id) for dag_id in (BUNDLE_DAG, PYTHON_DAG)}
    result = {}
    for dag_id, run_id in runs.items():
        state = airflow_deployment.wait_run(dag_id, run_id, RUN_TIMEOUT)
        result[dag_id] = {"state": state, "instances": _outcome(airflow_deployment, dag_id, run_id)}
    print(f"mapping: deployed and ran in {time.monotonic() - began:.1f} s")  # -s
    return result


def test_bundle_and_python_runs_expand_alike(outcomes: dict[str, dict[str, Any]]) -> None:
    ours, python = outcomes[BUNDLE_DAG], outcomes[PYTHON_DAG]
    assert list(ours["instances"]) == list(python["instances"])  # the same mapped instances
    for key, outcome in ours["instances"].items():
        assert outcome == python["instances"][key], key
    assert ours["state"] == python["state"] == "success"


def test_the_deployment_ends_with_the_expected_instances(outcomes: dict[str, dict[str, Any]]) -> None:
    instances = outcomes[BUNDLE_DAG]["instances"]
    assert sorted(instances) == sorted(EXPECTED)
    for key, (state, label, value) in EXPECTED.items():
        got_state, tries, got_label, got_value = instances[key]
        assert (got_state, got_label, got_value) == (state, label, value), key
        assert tries == (1 if state == "success" else 0), key
