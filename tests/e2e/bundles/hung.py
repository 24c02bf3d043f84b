"""A bundle whose task hangs, bounded by ``execution_timeout`` (tests/e2e/test_execution_timeout.py).

tests/e2e/dags/python_hung.py is the same task as an Airflow Python ``@task``: both get a 3 s limit
and one retry, so each must be killed twice and end failed on try 2.
"""

from __future__ import annotations

import time
from datetime import timedelta

from bundle import Bundle, serve

bundle = Bundle("hung", version="1.0.0", queue="python-bundle")
dag = bundle.dag("hung_dag", schedule=None)


@dag.task(execution_timeout=timedelta(seconds=3), retries=1, retry_delay=timedelta(seconds=1))
def hang() -> None:
    while True:  # never returns, never checks for cancellation
        time.sleep(1)


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
