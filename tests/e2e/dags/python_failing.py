"""The Airflow Python-SDK twin of tests/e2e/bundles/failing.py: the same task code as a ``@task``."""

from __future__ import annotations

from airflow.sdk import DAG, task


def lookup(settings: dict, key: str) -> str:
    return settings[key]


with DAG(dag_id="python_failing_dag", schedule=None):

    @task
    def explode() -> None:
        try:
            lookup({"region": "eu"}, "warehouse")
        except KeyError as exc:
            raise RuntimeError("no warehouse configured") from exc

    explode()
