"""The scale-out load DAG: five pybundle tasks (``@task.stub`` on the bundle's queue, run by
tests/scaleout/bundles/fanout.py) beside five Python ``@task``s of the same work (default queue).

Hand-written because it mixes the two kinds: the stubs' ids, queue and retries must match the
bundle's (tests/scaleout/test_celery.py checks every task ran where its queue says).
"""

from __future__ import annotations

import time
from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

WIDTH = 5


def _runs_in_the_bundle() -> None: ...


@dag(dag_id="fanout", schedule=None, max_active_runs=32)
def fanout():
    for index in range(WIDTH):
        task.stub(
            task_id=f"bundle_{index}", queue="python-bundle", retries=1, retry_delay=timedelta(seconds=2)
        )(_runs_in_the_bundle)()

        @task(task_id=f"python_{index}", queue="default", retries=1, retry_delay=timedelta(seconds=2))
        def work(index: int = index) -> dict:
            ctx = get_current_context()
            conf, task_id = ctx["dag_run"].conf, ctx["ti"].task_id
            if task_id in conf.get("sleepers", [task_id]):
                time.sleep(float(conf.get("sleep", 0)))
            return {"index": index, "run_id": ctx["run_id"], "try": ctx["ti"].try_number}

        work()


fanout()
