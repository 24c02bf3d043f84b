"""A bundle whose queue nobody mapped: ``[sdk] queue_to_coordinator`` knows only "python-bundle".

The platform forgot to add "etl-bundle" to the mapping, so Airflow never sends these tasks to the
ExecutableCoordinator (tests/e2e/test_misrouted_queue.py shows what the user sees instead).
"""

from __future__ import annotations

from bundle import Bundle, serve

bundle = Bundle("misrouted", version="1.0.0", queue="etl-bundle")
dag = bundle.dag("misrouted_dag", schedule=None)


@dag.task
def hello() -> str:
    return "never reached: the queue is not mapped to a coordinator"


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
