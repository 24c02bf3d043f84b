"""What tests/e2e/bundles/mapping.py's DAG ends with: the real deployment (tests/e2e/test_mapping.py)
and ``bundle-run`` (tests/test_bundle_run_mapping.py) are both held to it, so they agree."""

from __future__ import annotations

from typing import Any

SQUARES = [1, 4, 9, 16, 25]
# (task id, map index) -> (state, rendered label, return_value); -1 is an unmapped task (no label).
EXPECTED: dict[tuple[str, int], tuple[str, str | None, Any]] = {
    ("numbers", -1): ("success", None, [1, 2, 3, 4, 5]),
    **{("square", i): ("success", f"x={i + 1}", square) for i, square in enumerate(SQUARES)},
    ("total", -1): ("success", None, sum(SQUARES)),
    **{("scale", i): ("success", f"{square}*10", square * 10) for i, square in enumerate(SQUARES)},
    **{
        ("combine", i): ("success", label, label)
        for i, label in enumerate(["a1", "a2", "a3", "b1", "b2", "b3"])  # the last argument fastest
    },
    ("greet", 0): ("success", "ann", "hello ann!"),
    ("greet", 1): ("success", "bob", "hello bob."),
    ("nothing", -1): ("success", None, []),
    ("never", -1): ("skipped", None, None),  # nothing to expand: the scheduler skips the task
}
