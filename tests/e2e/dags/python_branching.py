"""The Airflow Python-SDK twin of tests/e2e/bundles/branching.py: same task ids, edges and values."""

from __future__ import annotations

from airflow.sdk import DAG, task

with DAG(dag_id="python_branching_dag", schedule=None):

    @task.branch
    def pick() -> str:
        return "left"

    @task
    def left() -> str:
        return "L"

    @task
    def right() -> str:
        return "R"

    @task(trigger_rule="none_failed_min_one_success")
    def join() -> str:
        return "joined"

    @task.short_circuit
    def gate() -> bool:
        return False

    @task
    def gated() -> str:
        return "never"

    @task(trigger_rule="all_done")
    def after_gated() -> str:
        return "never either"

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def soft_gate() -> int:
        return 0

    @task
    def soft_next() -> str:
        return "never"

    @task(trigger_rule="all_done")
    def soft_after() -> str:
        return "ran"

    @task.short_circuit
    def open_gate() -> str:
        return "yes"

    @task
    def opened() -> str:
        return "opened"

    pick_task, left_task, right_task, join_task = pick(), left(), right(), join()
    pick_task >> [left_task, right_task, join_task]
    [left_task, right_task] >> join_task
    gate() >> gated() >> after_gated()
    soft_gate() >> soft_next() >> soft_after()
    open_gate() >> opened()
