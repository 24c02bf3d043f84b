"""Task groups: a bundle DAG with nested groups beside its Python-SDK twin, in one deployment.

tests/e2e/bundles/groups.py and tests/e2e/dags/python_groups.py declare the same groups (nested,
one with ``prefix_group_id=False``, group ``default_args`` giving a retry), the same group
dependencies and data passing across the group boundaries. Both runs are triggered before either
is waited for. They must end alike (task ids, states, tries, XComs), alike with the values written
here, and the UI must show the same groups: the structure the graph view reads
(``GET /ui/structure/structure_data``, built from the serialized ``task_group``) is compared node
for node and edge for edge.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.deployment import Deployment

HERE = Path(__file__).resolve().parent
BUNDLE_DAG = "groups_dag"
PYTHON_DAG = "python_groups_dag"
RUN_TIMEOUT = 90.0
EXPECTED_TASKS = {
    "start": ("success", 1),
    "process.double": ("success", 1),
    "process.stats.total": ("success", 1),
    "process.stats.peak": ("success", 2),  # failed its first try; the group's default_args retried it
    "check": ("success", 1),
    "finish": ("success", 1),
}
EXPECTED_XCOMS = {
    "start": [1, 2, 3],
    "process.double": [2, 4, 6],
    "process.stats.total": 12,
    "process.stats.peak": 6,
    "check": "checked",
    "finish": {"total": 12, "peak": 6},
}


def _outcome(deployment: Deployment, dag_id: str, run_id: str) -> dict[str, Any]:
    state = deployment.wait_run(dag_id, run_id, RUN_TIMEOUT)
    tis = deployment.task_instances(dag_id, run_id)
    return {
        "state": state,
        "tasks": {task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()},
        "xcoms": {task_id: deployment.xcom(dag_id, run_id, task_id) for task_id in tis},
        # finish is `-> dict`: both SDKs infer multiple_outputs and push each key too
        "finish_keys": {key: deployment.xcom(dag_id, run_id, "finish", key=key) for key in ("total", "peak")},
    }


def _structure(deployment: Deployment, dag_id: str) -> dict[str, Any]:
    """The graph view's data, without what names the operator class (a stub vs ``@task``)."""
    data = deployment.rest._json("GET", "/ui/structure/structure_data", params={"dag_id": dag_id})

    def strip(node: dict[str, Any]) -> dict[str, Any]:
        node = {key: value for key, value in node.items() if key != "operator"}
        if node.get("children"):
            node["children"] = [strip(child) for child in node["children"]]
        return node

    return {"nodes": [strip(node) for node in data["nodes"]], "edges": data["edges"]}


def test_task_groups_run_and_show_like_the_python_twin(airflow_deployment: Deployment) -> None:
    began = time.monotonic()
    airflow_deployment.add_bundle(HERE / "bundles" / "groups.py", name="groups", dag_ids=[BUNDLE_DAG])
    airflow_deployment.add_dag(HERE / "dags" / "python_groups.py", [PYTHON_DAG])
    runs = {dag_id: airflow_deployment.trigger_run(dag_id) for dag_id in (BUNDLE_DAG, PYTHON_DAG)}
    ours, python = (_outcome(airflow_deployment, dag_id, run) for dag_id, run in runs.items())
    print(f"task groups: deployed and ran in {time.monotonic() - began:.1f} s")  # -s
    assert ours == python
    assert ours == {
        "state": "success",
        "tasks": EXPECTED_TASKS,
        "xcoms": EXPECTED_XCOMS,
        "finish_keys": EXPECTED_XCOMS["finish"],
    }
    structure = _structure(airflow_deployment, BUNDLE_DAG)
    assert structure == _structure(airflow_deployment, PYTHON_DAG)
    process = next(node for node in structure["nodes"] if node["id"] == "process")
    assert process["tooltip"] == "Process the rows"
    assert {child["id"] for child in process["children"]} >= {"process.double", "process.stats"}
