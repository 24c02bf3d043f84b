"""Figure 4's two sides, built from the same DAG shape: a chain of ``tasks`` tasks per DAG."""

from __future__ import annotations

import time
from datetime import datetime, timezone

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _noop() -> None:
    pass


def pybundle_seconds(dags: int, tasks: int) -> float:
    from bundle import Bundle
    from bundle.introspection.serialization import serialize_registry

    bundle = Bundle("parse_bench", queue="bench")
    for d in range(dags):
        dag = bundle.dag(f"dag_{d}", schedule="0 3 * * *", start_date=START, tags=["bench"])
        previous = None
        for t in range(tasks):
            task = dag.add_task_with_name(f"task_{t}", _noop, retries=1)
            if previous is not None:
                previous >> task
            previous = task
    started = time.perf_counter()
    serialize_registry(bundle.registry, fileloc="/bench/parse_bench.py")
    return time.perf_counter() - started


def airflow_seconds(dags: int, tasks: int) -> float:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    built = []
    for d in range(dags):
        with DAG(f"dag_{d}", schedule="0 3 * * *", start_date=START, tags=["bench"]) as dag:
            previous = None
            for t in range(tasks):
                task = EmptyOperator(task_id=f"task_{t}", retries=1, queue="bench")
                if previous is not None:
                    previous >> task
                previous = task
        built.append(dag)
    started = time.perf_counter()
    for dag in built:
        DagSerialization.to_dict(dag)
    return time.perf_counter() - started
