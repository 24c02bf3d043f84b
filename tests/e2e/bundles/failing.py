"""A bundle whose task raises ``KeyError`` from a chained exception (traceback tests).

tests/e2e/dags/python_failing.py is the same code as an Airflow Python ``@task``, so the two task
logs can be compared in one deployment.
"""

from __future__ import annotations

from bundle import Bundle, serve

bundle = Bundle("failing", version="1.0.0", queue="python-bundle")
dag = bundle.dag("failing_dag", schedule=None)


def lookup(settings: dict, key: str) -> str:
    return settings[key]


@dag.task
def explode() -> None:
    try:
        lookup({"region": "eu"}, "warehouse")
    except KeyError as exc:
        raise RuntimeError("no warehouse configured") from exc


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
