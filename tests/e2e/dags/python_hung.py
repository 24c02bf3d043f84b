"""The Airflow Python-SDK twin of tests/e2e/bundles/hung.py: the same hung task as a ``@task``."""

from __future__ import annotations

import time
from datetime import timedelta

from airflow.sdk import DAG, task

with DAG(dag_id="python_hung_dag", schedule=None):

    @task(execution_timeout=timedelta(seconds=3), retries=1, retry_delay=timedelta(seconds=1))
    def hang() -> None:
        while True:
            time.sleep(1)

    hang()
