"""The Airflow side of the example bundle: the DAG file Airflow's DAG processor, scheduler and UI read.

Airflow 3.3 does not parse DAGs from a bundle program, so a deployment declares the bundle's tasks
in an ordinary Python DAG file like this one: one ``@task.stub`` per bundle task, with the same task
ids, dependencies and retries as ``../example_dags.py``. A stub has no code; its ``queue`` routes it
(``[sdk] queue_to_coordinator``, see ``../airflow.cfg.example``) to the ``ExecutableCoordinator``,
which finds the packed bundle listing ``simple_dag`` and runs the task there.

Keep this file and the bundle in step: ``tests/test_bundle_run.py`` checks that they match.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, task

# The queue the bundle declares (Bundle(..., queue="python-bundle")); the mapping in airflow.cfg
# sends it to the executable-bundle coordinator.
QUEUE = "python-bundle"

with DAG(
    dag_id="simple_dag",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["example", "etl"],
    description="Extract orders, transform them with a threshold, load them into the warehouse.",
) as dag:

    @task.stub(queue=QUEUE)
    def extract():
        """Reads the orders_db connection; returns the rows (XCom)."""

    @task.stub(queue=QUEUE, retries=2)
    def transform():
        """Applies the min_amount / transform_settings variables to extract's rows."""

    @task.stub(queue=QUEUE, retries=1, retry_delay=timedelta(seconds=5))
    def load():
        """Fails on its first try, succeeds on the retry."""

    @task.stub(queue=QUEUE)
    def notify():
        """Skipped unless the notify_channel variable is set."""

    @task.stub(queue=QUEUE)
    def audit():
        """Implemented by the bundle's @bundle.task_handler("simple_dag", "audit")."""

    extract() >> transform() >> load() >> [notify(), audit()]
