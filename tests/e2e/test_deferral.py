"""Deferral and TriggerDagRun in a real deployment (with ``airflow triggerer``), beside a Python twin.

tests/e2e/bundles/deferral.py (``ctx.defer``, ``ctx.trigger_dag_run``) and
tests/e2e/dags/python_deferral.py (``self.defer``, ``TriggerDagRunOperator``) have the same tasks.
Both runs are triggered before either is waited for; while they run the test watches the task
instances: the deferring tasks must be seen ``deferred`` (their process gone: no worker slot held)
while ``quick`` finishes, and the ``FileTrigger`` tasks fire only once the test creates their files.
States, tries and XComs must end alike (the triggered run ids differ: generated from the time).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.deferral_expected import (
    CHILD_RUN_ID_PREFIX,
    CHILD_RUN_STATE,
    CHILD_VALUES,
    DEFERRING,
    FINAL,
    POLLING,
    RESUMED,
    RUN_STATE,
    TASKS,
)
from tests.e2e.deployment import Deployment
from tests.e2e.rest import Progress

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 150.0
DAGS = {
    "bundle": ("deferral_dag", "deferral_child"),
    "python": ("python_deferral_dag", "python_deferral_child"),
}


def _watch(
    deployment: Deployment, runs: dict[str, tuple[str, str]], files: dict[str, Path]
) -> dict[str, Any]:
    """Poll both runs until they end; create each run's file once its wait_file is deferred."""
    seen: dict[str, dict[str, set[str]]] = {kind: {t: set() for t in TASKS} for kind in runs}
    quick_done_while_deferred = dict.fromkeys(runs, False)
    file_created_after_deferred = dict.fromkeys(runs, False)
    progress = Progress(RUN_TIMEOUT)
    pending = set(runs)
    while pending and not progress.expired():
        snapshot = []
        for kind in list(pending):
            dag_id, run_id = runs[kind]
            tis = deployment.task_instances(dag_id, run_id)
            snapshot.append((kind, sorted((t, ti.state or "", ti.try_number) for t, ti in tis.items())))
            for task_id, ti in tis.items():
                seen[kind][task_id].add(ti.state or "none")
            if tis["wait_time"].state == "deferred" and tis["quick"].state == "success":
                quick_done_while_deferred[kind] = True
            if (
                tis["wait_file"].state == "deferred"
                and not files[kind].exists()
                and _scheduler_saw_the_deferral(deployment, dag_id, run_id)
            ):
                files[kind].write_text("here")
                file_created_after_deferred[kind] = True
            if deployment.rest.run_state(dag_id, run_id) in ("success", "failed"):
                pending.discard(kind)
        progress.saw(snapshot)
        time.sleep(0.5)
    assert not pending, f"runs still going, {progress.describe()}: {pending}\n{deployment.log_tails()}"
    return {
        "seen": seen,
        "quick_done_while_deferred": quick_done_while_deferred,
        "file_created_after_deferred": file_created_after_deferred,
    }


def _scheduler_saw_the_deferral(deployment: Deployment, dag_id: str, run_id: str) -> bool:
    """Whether the scheduler has processed the executor's event for ``wait_file``'s deferral.

    Airflow 3.3.2's scheduler race, seen for the Python twin as for the bundle: a trigger that fires
    before the scheduler reads the executor's "success" event of the deferring process puts the task
    instance back to queued first, and the late event then marks it failed ("finished with state
    success, but the task instance's state attribute is queued"). A file created at once after
    ``deferred`` hit it on a loaded machine; a user's file arriving seconds later never does.
    """
    line = f"TaskInstance Finished: dag_id={dag_id}, task_id=wait_file, run_id={run_id},"
    return any(
        line in entry and "state=deferred" in entry
        for entry in deployment.service_log("scheduler").splitlines()
    )


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    began = time.monotonic()
    airflow_deployment.add_bundle(
        HERE / "bundles" / "deferral.py", name="deferral", dag_ids=[*DAGS["bundle"], "deferral_bad_dag"]
    )
    airflow_deployment.add_dag(HERE / "dags" / "python_deferral.py", list(DAGS["python"]))
    folder = tmp_path_factory.mktemp("deferral-files")
    files = {kind: folder / f"{kind}.ready" for kind in DAGS}
    runs = {
        kind: (dags[0], airflow_deployment.trigger_run(dags[0], {"path": str(files[kind])}))
        for kind, dags in DAGS.items()
    }
    bad_run = airflow_deployment.trigger_run("deferral_bad_dag")
    watched = _watch(airflow_deployment, runs, files)
    result: dict[str, Any] = {"watched": watched}
    for kind, (dag_id, run_id) in runs.items():
        tis = airflow_deployment.task_instances(dag_id, run_id)
        xcoms = {}
        for task_id in TASKS:
            try:
                xcoms[task_id] = airflow_deployment.xcom(dag_id, run_id, task_id)
            except KeyError:
                xcoms[task_id] = "<absent>"
        child_runs = {}
        for task_id in CHILD_VALUES:
            child_run = airflow_deployment.xcom(dag_id, run_id, task_id, key="trigger_run_id")
            child_dag = DAGS[kind][1]
            child_runs[task_id] = {
                "state": airflow_deployment.rest.run_state(child_dag, child_run),
                "value": airflow_deployment.xcom(child_dag, child_run, "child_work"),
                "run_id": child_run,
            }
        result[kind] = {
            "state": airflow_deployment.rest.run_state(dag_id, run_id),
            "tasks": {task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()},
            "xcoms": xcoms,
            "children": child_runs,
        }
    airflow_deployment.wait_run("deferral_bad_dag", bad_run, RUN_TIMEOUT)
    result["bad"] = {
        "tis": airflow_deployment.task_instances("deferral_bad_dag", bad_run),
        "log": airflow_deployment.task_log("deferral_bad_dag", bad_run, "bad_classpath", 1).raw,
        "scheduler_log": airflow_deployment.service_log("scheduler"),
    }
    print(f"deferral: deployed and ran in {time.monotonic() - began:.1f} s")  # -s
    return result


def test_bundle_and_python_runs_end_alike(outcomes: dict[str, Any]) -> None:
    ours, python = outcomes["bundle"], outcomes["python"]
    assert ours["tasks"] == python["tasks"] == FINAL
    assert ours["xcoms"] == python["xcoms"]
    for task_id, value in RESUMED.items():
        assert ours["xcoms"][task_id] == value
    assert ours["state"] == python["state"] == RUN_STATE


def test_deferred_tasks_are_seen_deferred_and_resume_with_the_same_try(outcomes: dict[str, Any]) -> None:
    for kind in DAGS:
        seen = outcomes["watched"]["seen"][kind]
        for task_id in DEFERRING:
            assert "deferred" in seen[task_id], (kind, task_id, seen[task_id])
        assert "deferred" not in seen[POLLING], (kind, seen[POLLING])  # it polls


def test_the_file_trigger_fires_only_after_the_file_exists(outcomes: dict[str, Any]) -> None:
    assert outcomes["watched"]["file_created_after_deferred"] == dict.fromkeys(DAGS, True)


def test_other_tasks_run_while_one_is_deferred(outcomes: dict[str, Any]) -> None:
    assert outcomes["watched"]["quick_done_while_deferred"] == dict.fromkeys(DAGS, True)


def test_trigger_dag_run_waits_for_the_triggered_runs(outcomes: dict[str, Any]) -> None:
    for kind in DAGS:
        children = outcomes[kind]["children"]
        assert {task_id: c["state"] for task_id, c in children.items()} == dict.fromkeys(
            CHILD_VALUES, CHILD_RUN_STATE
        )
        assert {task_id: c["value"] for task_id, c in children.items()} == CHILD_VALUES
        assert all(c["run_id"].startswith(CHILD_RUN_ID_PREFIX) for c in children.values())


def test_a_trigger_the_triggerer_cannot_import_fails_the_task(outcomes: dict[str, Any]) -> None:
    """The triggerer cannot import the classpath: the task fails on try 1, never hangs deferred.

    Usually the triggerer's ``__fail__`` resumes the task, which fails with TaskDeferralError and
    the triggerer's traceback in its log. But the triggerer fails the trigger within a second or
    two, and the executor reports the deferring process's exit later (its supervisor finishes
    about 5 s after the task deferred, for Python tasks too); when the resume is already queued by
    then, the scheduler marks the task failed as "state changed externally" before it resumes.
    That race is Airflow's (scheduler and executor), the same for a Python task; both end failed."""
    ti = outcomes["bad"]["tis"]["bad_classpath"]
    assert (ti.state, ti.try_number) == ("failed", 1)
    log = outcomes["bad"]["log"]
    resumed = "TaskDeferralError" in log and "Trigger failure" in log
    if resumed:
        assert "no_such_package" in log, log[-3000:]
    else:
        externally = [
            line
            for line in outcomes["bad"]["scheduler_log"].splitlines()
            if "deferral_bad_dag.bad_classpath" in line
            and "but the task instance's state attribute is" in line
        ]
        assert externally, log[-3000:]
