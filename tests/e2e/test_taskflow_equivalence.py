"""TaskFlow data passing and params: a bundle DAG and its Python-SDK twin, run side by side.

tests/e2e/bundles/taskflow.py and tests/e2e/dags/python_taskflow.py compute the same values from the
same bindings and params. For each conf — the defaults, one that overrides a param (plus an undeclared
key, which Airflow adds to ``params``), one that violates a param's maximum — the two DAGs must end
alike (every task's state and try, every XCom), and alike with the values written here, so that both
being wrong the same way still fails. All runs are triggered before any is waited for: the runs of
both DAGs overlap and the added e2e time stays small.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment
from tests.e2e.rest import AirflowRestError

HERE = Path(__file__).resolve().parent
BUNDLE_DAG = "taskflow_dag"
PYTHON_DAG = "python_taskflow_dag"
DAG_IDS = (BUNDLE_DAG, PYTHON_DAG)
RUN_TIMEOUT = 120.0  # four runs of four tasks in parallel; observed well under a minute
CONFS: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "override": {"n": 5, "note": "undeclared"},
    "violation": {"n": 11},  # maximum=10
}
# (task_id, key) -> value, for the confs whose runs exist.
XCOM_KEYS = (
    ("extract", "return_value"),
    ("extract", "rows"),
    ("extract", "label"),
    ("count", "return_value"),
    ("total", "return_value"),
    ("report", "return_value"),
    # report is `-> dict`: both SDKs infer multiple_outputs and push each key too
    *(("report", key) for key in ("total", "scaled", "label", "params")),
)
EXPECTED_XCOMS = {
    "defaults": {
        ("extract", "return_value"): {"rows": [1, 2, 3], "label": "x"},
        ("extract", "rows"): [1, 2, 3],
        ("extract", "label"): "x",
        ("count", "return_value"): 3,
        ("total", "return_value"): 6,
        ("report", "return_value"): {
            "total": 6,
            "scaled": 60,
            "label": "x",
            "params": {"n": 3, "label": "x"},
        },
    },
    "override": {
        ("extract", "return_value"): {"rows": [1, 2, 3, 4, 5], "label": "x"},
        ("extract", "rows"): [1, 2, 3, 4, 5],
        ("extract", "label"): "x",
        ("count", "return_value"): 5,
        ("total", "return_value"): 15,
        ("report", "return_value"): {
            "total": 15,
            "scaled": 150,
            "label": "x",
            "params": {"n": 5, "label": "x", "note": "undeclared"},
        },
    },
}
for _expected in EXPECTED_XCOMS.values():
    _expected.update({("report", k): v for k, v in _expected[("report", "return_value")].items()})
ALL_SUCCEEDED_FIRST_TRY = {task_id: ("success", 1) for task_id in ("extract", "count", "total", "report")}


@dataclass(frozen=True)
class Outcome:
    """One DAG's result for one conf: a finished run, or the REST API's refusal to create it."""

    run_state: str | None = None
    tasks: dict[str, tuple[str | None, int]] | None = None
    xcoms: dict[tuple[str, str], Any] | None = None
    rejected: tuple[int, str] | None = None  # (HTTP status, message)


def _trigger(deployment: Deployment, dag_id: str, conf: dict[str, Any] | None) -> str | AirflowRestError:
    try:
        return deployment.trigger_run(dag_id, conf=conf)
    except AirflowRestError as error:
        return error


def _xcoms(deployment: Deployment, dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    found = {}
    for task_id, key in XCOM_KEYS:
        try:
            found[(task_id, key)] = deployment.xcom(dag_id, run_id, task_id, key=key)
        except KeyError:
            pass  # absent: the comparison says which
    return found


def _outcome(deployment: Deployment, dag_id: str, started: str | AirflowRestError) -> Outcome:
    if isinstance(started, AirflowRestError):
        return Outcome(rejected=(started.status, started.body))
    state = deployment.wait_run(dag_id, started, RUN_TIMEOUT)
    tis = deployment.task_instances(dag_id, started)
    return Outcome(
        run_state=state,
        tasks={task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()},
        xcoms=_xcoms(deployment, dag_id, started),
    )


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment) -> dict[str, dict[str, Outcome]]:
    """conf name -> dag id -> outcome, every run triggered before the first wait."""
    began = time.monotonic()
    airflow_deployment.add_bundle(HERE / "bundles" / "taskflow.py", name="taskflow", dag_ids=[BUNDLE_DAG])
    airflow_deployment.add_dag(HERE / "dags" / "python_taskflow.py", [PYTHON_DAG])
    started = {
        name: {dag_id: _trigger(airflow_deployment, dag_id, conf) for dag_id in DAG_IDS}
        for name, conf in CONFS.items()
    }
    finished = {
        name: {dag_id: _outcome(airflow_deployment, dag_id, run) for dag_id, run in runs.items()}
        for name, runs in started.items()
    }
    refusal = finished["violation"][BUNDLE_DAG].rejected
    print(f"taskflow: deployed and ran in {time.monotonic() - began:.1f} s; violation -> {refusal}")  # -s
    return finished


@pytest.mark.parametrize("conf_name", ["defaults", "override"])
def test_runs_end_alike_with_the_expected_xcoms(
    outcomes: dict[str, dict[str, Outcome]], conf_name: str
) -> None:
    ours, python = outcomes[conf_name][BUNDLE_DAG], outcomes[conf_name][PYTHON_DAG]
    assert ours.tasks == python.tasks
    assert ours.xcoms == python.xcoms
    assert (ours.run_state, ours.tasks) == ("success", ALL_SUCCEEDED_FIRST_TRY)
    assert ours.xcoms == EXPECTED_XCOMS[conf_name]


def test_a_conf_violating_a_param_is_refused_alike_before_any_run(
    outcomes: dict[str, dict[str, Outcome]],
) -> None:
    # Airflow 3.3.2 validates the conf against the DAG's params when the run is created (the
    # params of the generated DAG file for the bundle): POST .../dagRuns answers 400, no run exists,
    # no task of either DAG starts.
    ours, python = outcomes["violation"][BUNDLE_DAG], outcomes["violation"][PYTHON_DAG]
    assert ours == python
    assert ours.rejected is not None and ours.rejected[0] == 400, ours
    assert "Invalid input for param n: 11 is greater than the maximum of 10" in ours.rejected[1]
