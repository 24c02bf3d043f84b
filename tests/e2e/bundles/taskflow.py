"""A bundle using TaskFlow data passing and params (tests/e2e/test_taskflow_equivalence.py).

tests/e2e/dags/python_taskflow.py is the same DAG written with Airflow's Python SDK: same task ids,
same computations, so the two runs' states, tries and XComs can be compared in one deployment.
Every value a task returns is derived from its inputs or ``ctx.params``, so a wrong binding or a
wrong param shows up in an XCom.
"""

from __future__ import annotations

from bundle import Bundle, Context, Param, serve

bundle = Bundle("taskflow", version="1.0.0", queue="python-bundle")
dag = bundle.dag(
    "taskflow_dag",
    schedule=None,
    params={"n": Param(3, type="integer", minimum=1, maximum=10), "label": "x"},
)


@dag.task(multiple_outputs=True)
def extract(ctx: Context) -> dict:
    """Rows 1..n and the label, from the params: one XCom per key plus the whole dict."""
    return {"rows": list(range(1, ctx.params["n"] + 1)), "label": ctx.params["label"]}


@dag.task
def count(data: dict) -> int:
    """Bound to extract's return_value (the whole dict)."""
    return len(data["rows"])


@dag.task
def total(rows: list) -> int:
    """Bound to extract's ``rows`` key (multiple_outputs)."""
    return sum(rows)


@dag.task
def report(total: int, label: str, factor: int, ctx: Context) -> dict:
    """Two references and a literal, plus every param the run sees (conf keys included)."""
    return {"total": total, "scaled": total * factor, "label": label, "params": dict(ctx.params)}


with dag:
    count(extract())
    report(total(extract.output["rows"]), extract.output["label"], factor=10)


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
