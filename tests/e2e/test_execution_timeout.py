"""``execution_timeout`` in the real deployment: a hung bundle task is killed, retried once, then
fails, exactly as the same task written as a Python ``@task`` (the 1.3.2 supervisor does not enforce
the limit; the bundle's runtime does, as Airflow's Python task runner does for Python tasks)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.deployment import Deployment
from tests.e2e.rest import seconds_between

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 180.0
LIMIT = 3.0


def test_a_hung_task_is_killed_at_its_limit_retried_once_then_failed(airflow_deployment: Deployment) -> None:
    deployment = airflow_deployment
    deployment.add_bundle(HERE / "bundles" / "hung.py", name="hung", dag_ids=["hung_dag"])
    deployment.add_dag(HERE / "dags" / "python_hung.py", ["python_hung_dag"])
    runs = {dag_id: deployment.trigger_run(dag_id) for dag_id in ("hung_dag", "python_hung_dag")}
    outcome = {}
    for dag_id, run_id in runs.items():
        assert deployment.wait_run(dag_id, run_id, RUN_TIMEOUT) == "failed"
        ti = deployment.task_instances(dag_id, run_id)["hang"]
        outcome[dag_id] = (ti.state, ti.try_number)
        # the last try ran about as long as the limit: killed at it, not left hanging
        assert LIMIT <= seconds_between(ti.start_date, ti.end_date) < LIMIT + 10, (dag_id, ti)
        for try_number in (1, 2):
            log = deployment.task_log(dag_id, run_id, "hang", try_number=try_number)
            assert any("timed out" in line.lower() for line in log.events()), (
                dag_id,
                try_number,
                log.events(),
            )
    assert outcome["hung_dag"] == outcome["python_hung_dag"] == ("failed", 2), outcome
