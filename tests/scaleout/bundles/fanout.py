"""The scale-out load DAG's bundle half (tests/scaleout/test_celery.py).

``fanout`` has ten tasks of the same work: ``bundle_0`` … ``bundle_4`` run here, on the bundle's
queue; ``python_0`` … ``python_4`` are plain Python ``@task``s of tests/scaleout/dags/fanout.py on
the default queue. Each returns ``{"index", "run_id", "try"}``, so a lost, swapped or doubled task
shows up in its XCom and try number.
"""

from __future__ import annotations

import time

from bundle import Bundle, Context, serve

WIDTH = 5

bundle = Bundle("fanout", version="1.0.0", queue="python-bundle")
dag = bundle.dag("fanout", schedule=None, max_active_runs=32)


def _work(index: int, ctx: Context) -> dict:
    conf = ctx.dag_run.conf
    seconds = float(conf.get("sleep", 0)) if ctx.ti.task_id in conf.get("sleepers", [ctx.ti.task_id]) else 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.is_cancelled():
        time.sleep(0.05)
    return {"index": index, "run_id": ctx.ti.run_id, "try": ctx.ti.try_number}


def _register(index: int) -> None:
    def work(ctx: Context) -> dict:
        return _work(index, ctx)

    dag.add_task_with_name(f"bundle_{index}", work, retries=1, retry_delay=2)


for _index in range(WIDTH):
    _register(_index)


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
