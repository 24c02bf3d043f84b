"""A bundle that branches and short-circuits (tests/e2e/test_branching_equivalence.py, bundle-run).

tests/e2e/dags/python_branching.py is the same DAG written with Airflow's Python SDK
(``@task.branch``, ``@task.short_circuit``): same task ids, edges, trigger rules and return values,
so the two runs' states, tries and XComs can be compared in one deployment.

* ``pick`` follows ``left``: ``right`` is skipped; ``join`` (none_failed_min_one_success, also
  directly downstream of ``pick``) runs, as the join of a branch does in Airflow.
* ``gate`` returns False with ``ignore_downstream_trigger_rules=True``: ``gated`` and
  ``after_gated`` are skipped, although ``after_gated`` is ``all_done``.
* ``soft_gate`` returns 0 with ``ignore_downstream_trigger_rules=False``: only ``soft_next`` is
  skipped; ``soft_after`` (``all_done``) runs.
* ``open_gate`` returns "yes": ``opened`` runs, and "yes" is its return_value.
"""

from __future__ import annotations

from bundle import Bundle, serve

bundle = Bundle("branching", version="1.0.0", queue="python-bundle")
dag = bundle.dag("branching_dag", schedule=None)


@dag.branch
def pick() -> str:
    """Follow the left path."""
    return "left"


@dag.task
def left() -> str:
    return "L"


@dag.task
def right() -> str:
    return "R"


@dag.task(trigger_rule="none_failed_min_one_success")
def join() -> str:
    return "joined"


@dag.short_circuit
def gate() -> bool:
    return False


@dag.task
def gated() -> str:
    return "never"


@dag.task(trigger_rule="all_done")
def after_gated() -> str:
    return "never either"


@dag.short_circuit(ignore_downstream_trigger_rules=False)
def soft_gate() -> int:
    return 0


@dag.task
def soft_next() -> str:
    return "never"


@dag.task(trigger_rule="all_done")
def soft_after() -> str:
    return "ran"


@dag.short_circuit
def open_gate() -> str:
    return "yes"


@dag.task
def opened() -> str:
    return "opened"


pick >> [left, right, join]
[left, right] >> join
gate >> gated >> after_gated
soft_gate >> soft_next >> soft_after
open_gate >> opened

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
