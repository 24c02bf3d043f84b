"""The Airflow Python-SDK twin of tests/e2e/bundles/groups.py: same task ids, groups, dependencies
and computations."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, TaskGroup, get_current_context, task

with DAG(dag_id="python_groups_dag", schedule=None):

    @task
    def start() -> list:
        return [1, 2, 3]

    @task
    def double(rows: list) -> list:
        return [row * 2 for row in rows]

    @task
    def total(values: list) -> int:
        return sum(values)

    @task
    def peak(values: list) -> int:
        if get_current_context()["ti"].try_number == 1:
            raise RuntimeError("first try fails on purpose")
        return max(values)

    @task
    def check() -> str:
        return "checked"

    @task
    def finish(total: int, peak: int) -> dict:
        return {"total": total, "peak": peak}

    rows = start()
    with TaskGroup(
        "process",
        tooltip="Process the rows",
        default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
    ) as process:
        doubled = double(rows)
        with TaskGroup("stats", ui_color="#ffeedd", ui_fgcolor="#333"):
            summed, highest = total(doubled), peak(doubled)
    with TaskGroup("audit", prefix_group_id=False) as audit:
        check()
    finish(summed, highest)
    rows >> process
    process >> audit
