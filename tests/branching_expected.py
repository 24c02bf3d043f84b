"""What tests/e2e/bundles/branching.py (and its Python twin) end with, in Airflow 3.3.2.

Shared by the real deployment's comparison (tests/e2e/test_branching_equivalence.py) and
``bundle-run``'s (tests/test_bundle_run.py): both must reach exactly these states and XComs. Lists
inside ``skipmixin_key`` values are compared sorted: Airflow builds them from sets.
"""

from __future__ import annotations

from typing import Any

BUNDLE_DAG = "branching_dag"
PYTHON_DAG = "python_branching_dag"

STATES = {
    "pick": "success",
    "left": "success",
    "right": "skipped",
    "join": "success",
    "gate": "success",
    "gated": "skipped",
    "after_gated": "skipped",
    "soft_gate": "success",
    "soft_next": "skipped",
    "soft_after": "success",
    "open_gate": "success",
    "opened": "success",
}
# (task_id, key) -> value; a pair absent here must be absent in the run.
XCOMS: dict[tuple[str, str], Any] = {
    ("pick", "skipmixin_key"): {"followed": ["join", "left"]},
    ("left", "return_value"): "L",
    ("join", "return_value"): "joined",
    ("gate", "skipmixin_key"): {"skipped": ["after_gated", "gated"]},
    ("soft_gate", "skipmixin_key"): {"skipped": ["soft_next"]},
    ("soft_after", "return_value"): "ran",
    ("open_gate", "return_value"): "yes",
    ("opened", "return_value"): "opened",
}
XCOM_KEYS = sorted({(task_id, key) for task_id in STATES for key in ("return_value", "skipmixin_key")})


def sorted_lists(value: Any) -> Any:
    """``{"followed": [...]}`` with its list sorted (Airflow's order is a set's)."""
    if isinstance(value, dict):
        return {k: sorted(v) if isinstance(v, list) else v for k, v in value.items()}
    return value
