"""Figure 9's bundle: one task that does nothing, run by a real deployment's LocalExecutor.

``bench/cost_dag.py`` is its twin, the same no-op as an Airflow Python ``@task``.
"""

from __future__ import annotations

from bundle import Bundle, serve

bundle = Bundle("bench_cost", version="1.0.0", queue="python-bundle")
dag = bundle.dag("bench_cost_bundle", schedule=None)


@dag.task
def noop() -> None:
    """Nothing: what is measured is what running a task costs."""


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
