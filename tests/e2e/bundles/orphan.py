"""A bundle whose DAG file is deployed but whose executable is not (the platform forgot to copy it).

Its queue is mapped to the ExecutableCoordinator, yet no file in executables_root lists orphan_dag
(tests/e2e/test_misrouted_queue.py).
"""

from __future__ import annotations

from bundle import Bundle, serve

bundle = Bundle("orphan", version="1.0.0", queue="python-bundle")
dag = bundle.dag("orphan_dag", schedule=None)


@dag.task
def hello() -> str:
    return "never reached: the executable was not deployed"


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
