"""The Airflow Python-SDK twin of tests/e2e/bundles/taskflow.py: same task ids, same computations."""

from __future__ import annotations

from airflow.sdk import DAG, Param, get_current_context, task

with DAG(
    dag_id="python_taskflow_dag",
    schedule=None,
    params={"n": Param(3, type="integer", minimum=1, maximum=10), "label": "x"},
):

    @task(multiple_outputs=True)
    def extract() -> dict:
        params = get_current_context()["params"]
        return {"rows": list(range(1, params["n"] + 1)), "label": params["label"]}

    @task
    def count(data: dict) -> int:
        return len(data["rows"])

    @task
    def total(rows: list) -> int:
        return sum(rows)

    @task
    def report(total: int, label: str, factor: int) -> dict:
        params = get_current_context()["params"]
        return {"total": total, "scaled": total * factor, "label": label, "params": dict(params)}

    extracted = extract()
    count(extracted)
    report(total(extracted["rows"]), extracted["label"], factor=10)
