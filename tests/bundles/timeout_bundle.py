"""Tasks for ``execution_timeout`` and ``xcom_keys_to_clear`` (tests/test_timeouts.py).

Every slow task would sleep far longer than any test waits, so only the timeout can end it in time.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import timedelta

from bundle import Bundle, Client, Context, TaskTimeout, serve

bundle = Bundle("timeout_tests", version="1", queue="pybundle")
dag = bundle.dag("timeout_dag")
LIMIT = timedelta(seconds=1)


@dag.task(execution_timeout=LIMIT, retries=1)
def sleeps(ctx: Context) -> None:
    time.sleep(60)


@dag.task(execution_timeout=LIMIT, retries=1)
async def sleeps_async(ctx: Context) -> None:
    import asyncio  # here, so that without_limit can tell the runtime did not load it

    await asyncio.sleep(60)


@dag.task(execution_timeout=LIMIT)
def ignores_signals() -> None:
    """Stands for a C call that never returns to the interpreter: SIGALRM is never delivered."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)


@dag.task(execution_timeout=LIMIT)
def catches_the_timeout() -> None:
    try:
        time.sleep(60)
    except TaskTimeout:
        time.sleep(60)  # a task that carries on regardless


@dag.task(execution_timeout=timedelta(seconds=30))
def fast_with_limit(client: Client) -> str:
    client.push_xcom("side", "pushed within the limit")
    return "done"


@dag.task
def without_limit(client: Client) -> dict:
    client.push_xcom("side", "no limit")
    time.sleep(1.5)  # longer than LIMIT: nothing may interrupt a task that has none
    return {"loaded": sorted(m for m in ("asyncio", "bundle.core.timeouts") if m in sys.modules)}


@dag.task(execution_timeout=timedelta(seconds=-1))
def negative_limit() -> str:
    return "never runs: Airflow fails a limit that is already spent"


@dag.task(execution_timeout=timedelta(0))
def zero_limit() -> str:
    time.sleep(0.2)
    return "timedelta(0) is no limit"


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
