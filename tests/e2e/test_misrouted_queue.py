"""A task routed wrong ends in a clear failure, not a hang (docs/deploy.md "A misrouted task").

Two ways to get it wrong: the task's queue is not in ``[sdk] queue_to_coordinator`` (the task runs in
Airflow's Python task runner, which refuses a stub), or the queue is mapped but no executable in
executables_root lists the dag id (the ExecutableCoordinator cannot find a bundle).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.deployment import Deployment

BUNDLES = Path(__file__).parent / "bundles"
# The generated stubs have no retries: one failed try fails the run.
FAILURE_TIMEOUT = 90.0


def _failed_try(deployment: Deployment, dag_id: str) -> tuple[str, str]:
    run_id = deployment.trigger_run(dag_id)
    state = deployment.wait_run(dag_id, run_id, FAILURE_TIMEOUT)
    ti = deployment.task_instances(dag_id, run_id)["hello"]
    assert (state, ti.state, ti.try_number) == ("failed", "failed", 1)
    return run_id, deployment.task_log(dag_id, run_id, "hello", try_number=1).raw


def test_unmapped_queue_fails_in_the_python_runner_saying_stub(airflow_deployment: Deployment) -> None:
    # The DAG file is generated from the bundle (bundle-pack dag-file): its stub has the bundle's
    # queue, "etl-bundle", which [sdk] queue_to_coordinator does not map.
    airflow_deployment.add_bundle(BUNDLES / "misrouted.py", name="misrouted", dag_ids=["misrouted_dag"])
    run_id, _ = _failed_try(airflow_deployment, "misrouted_dag")
    log = airflow_deployment.task_log("misrouted_dag", run_id, "hello", try_number=1)
    failures = [r for r in log.records if r.get("event") == "Task failed with exception"]
    assert len(failures) == 1, log.events()
    detail = failures[0]["error_detail"][0]
    assert (detail["exc_type"], detail["exc_value"]) == (
        "RuntimeError",
        "@task.stub should not be executed directly -- we expected this to go to a remote worker."
        " Check your pool and worker configs",
    )


def test_mapped_queue_without_a_bundle_for_the_dag_id_fails_naming_it(
    airflow_deployment: Deployment,
) -> None:
    # The DAG file is deployed, the executable is not.
    dag_file = airflow_deployment.generate_dag_file(BUNDLES / "orphan.py", "orphan")
    airflow_deployment.add_dag(dag_file, ["orphan_dag"])
    _, task_log = _failed_try(airflow_deployment, "orphan_dag")
    message = "cannot find executable bundle containing dag_id='orphan_dag' in " + str(
        airflow_deployment.executables_root
    )
    # The coordinator raises before the task process exists: the task's own log stays empty and
    # the reason is in the worker's log (LocalExecutor: the scheduler's output).
    assert message not in task_log
    assert f"FileNotFoundError: {message}" in airflow_deployment.service_log("scheduler")
