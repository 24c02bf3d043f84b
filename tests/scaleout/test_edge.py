"""pybundle on the Edge executor (apache-airflow-providers-edge3): the example through an
``airflow edge worker`` that consumes the bundle's queue and alone has the coordinator settings.

The Edge worker pulls its jobs from the api-server's edge API over HTTP (as a remote site does) and
runs each under the released task supervisor, which hands it to the bundle's coordinator.
"""

from __future__ import annotations

import re

from tests.e2e.deployment import ROOT
from tests.scaleout.deployment import BUNDLE_WORKER, EdgeDeployment

EXAMPLE = ROOT / "examples" / "bundle"
RUN_TIMEOUT = 300.0
_JOB = re.compile(r"Received job: dag_id=(\S+) task_id=(\S+) run_id=(\S+) map_index=(-?\d+) try_number=(\d+)")


def test_example_runs_through_the_edge_worker(edge_deployment: EdgeDeployment) -> None:
    deployment = edge_deployment
    deployment.add_bundle(
        EXAMPLE / "example_dags.py",
        name="example_dags",
        dag_ids=["simple_dag"],
        dag_file=EXAMPLE / "dags" / "simple_dag.py",
    )
    run_id = deployment.trigger_run("simple_dag")
    state = deployment.wait_run("simple_dag", run_id, RUN_TIMEOUT)
    tis = deployment.task_instances("simple_dag", run_id)
    assert state == "success", {t: (ti.state, ti.try_number) for t, ti in tis.items()}
    ran = {t: ti for t, ti in tis.items() if ti.state != "skipped"}
    assert ran and all(ti.state == "success" for ti in ran.values())
    # Every try of every task instance (each map index of check_order too) was a job of the Edge
    # worker, and nothing else was (a task skipped by the branch never started: try 0; notify
    # started and skipped itself: try 1).
    jobs = {
        (task_id, int(map_index), int(try_number))
        for dag_id, task_id, job_run, map_index, try_number in _JOB.findall(
            deployment.service_log(BUNDLE_WORKER)
        )
        if dag_id == "simple_dag" and job_run == run_id
    }
    every = deployment.rest.task_instances("simple_dag", run_id)
    tries = {(t, i, n) for (t, i), ti in every.items() for n in range(1, ti.try_number + 1)}
    assert jobs == tries
    assert sorted(i for t, i in every if t == "check_order") == [0, 1, 2]  # mapped: one per kept row
    assert deployment.xcom("simple_dag", run_id, "extract")["source"] == "orders.db.internal"
