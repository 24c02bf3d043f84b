"""What tests/e2e/bundles/sensors.py (and its Python twin) end with, in Airflow 3.3.2.

Shared by the real deployment's comparison (tests/e2e/test_sensors.py) and ``bundle-run``'s
(tests/test_sensors.py): both must reach exactly these states, tries and XComs.
"""

from __future__ import annotations

from typing import Any

BUNDLE_DAG = "sensor_dag"
PYTHON_DAG = "python_sensor_dag"

# task id -> (state, try number): a reschedule keeps the try; a sensor timeout is not retried.
TASKS = {
    "wait_third": ("success", 1),
    "after": ("success", 1),
    "never_done": ("failed", 1),
    "soft_never": ("skipped", 1),
    "poke_third": ("success", 1),
}
# (task_id, key) -> value; a pair absent here must be absent in the run.
XCOMS: dict[tuple[str, str], Any] = {
    ("wait_third", "return_value"): {"pokes": 3},
    ("after", "return_value"): 3,
    ("poke_third", "return_value"): "p3",
}
RESCHEDULED = {"wait_third": 2}  # reschedules before the poke that was done
