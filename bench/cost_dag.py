"""Figure 9's Python twin of ``bench/cost_bundle.py``: the same no-op task as a Python ``@task``."""

from __future__ import annotations

from airflow.sdk import DAG, task

with DAG(dag_id="bench_cost_python", schedule=None):

    @task
    def noop() -> None:
        """Nothing: what is measured is what running a task costs."""

    noop()
