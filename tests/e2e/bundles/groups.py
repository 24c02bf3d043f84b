"""A bundle with nested task groups and data passing across their boundaries
(tests/e2e/test_task_groups.py, tests/test_task_groups.py).

tests/e2e/dags/python_groups.py is the same DAG written with Airflow's Python SDK (``TaskGroup``,
``@task``): same task ids, groups, group dependencies and computations. ``process`` gives its tasks
``retries=1`` through the group's ``default_args``, and ``process.stats.peak`` fails its first try, so
the group's defaults visibly reach the scheduler (two tries).
"""

from __future__ import annotations

from datetime import timedelta

from bundle import Bundle, Context, serve

bundle = Bundle("groups", version="1.0.0", queue="python-bundle")
dag = bundle.dag("groups_dag", schedule=None)


@dag.task
def start() -> list:
    return [1, 2, 3]


with dag.task_group(
    "process",
    tooltip="Process the rows",
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
) as process:

    @dag.task
    def double(rows: list) -> list:
        """Bound to start's output, from outside the group."""
        return [row * 2 for row in rows]

    with dag.task_group("stats", ui_color="#ffeedd", ui_fgcolor="#333"):

        @dag.task
        def total(values: list) -> int:
            return sum(values)

        @dag.task
        def peak(values: list, ctx: Context) -> int:
            """Fails its first try; the group's default_args give it a retry."""
            if ctx.ti.try_number == 1:
                raise RuntimeError("first try fails on purpose")
            return max(values)


with dag.task_group("audit", prefix_group_id=False) as audit:

    @dag.task
    def check() -> str:
        return "checked"


@dag.task
def finish(total: int, peak: int) -> dict:
    """Bound to two tasks of the nested group, from outside it."""
    return {"total": total, "peak": peak}


with dag:
    doubled = double(start())
    finish(total(doubled), peak(doubled))
    start >> process
    process >> audit

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
