"""The ``bundle-run`` set-up figure's bundle: one DAG of ``BENCH_WIDE_TASKS`` independent no-op tasks.

The width comes from the environment so the same file serves every size (the figure runs it at
1,000 and 10,000 tasks); nothing else about the DAG changes with it.
"""

from __future__ import annotations

import os

from bundle import Bundle, serve

WIDTH = int(os.environ.get("BENCH_WIDE_TASKS", "1000"))


def _noop() -> None:
    """Nothing: the figure stops the run when the first task starts."""


bundle = Bundle("bench_wide", version="1.0.0")
dag = bundle.dag("bench_wide", schedule=None)
for number in range(WIDTH):
    dag.add_task_with_name(f"task_{number:05d}", _noop)


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
