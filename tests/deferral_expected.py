"""What tests/e2e/bundles/deferral.py's ``deferral_dag`` ends with: the real deployment
(tests/e2e/test_deferral.py) and ``bundle-run`` (tests/test_deferral_bundle_run.py) are both held
to it, so they agree."""

from __future__ import annotations

from typing import Any

TASKS = ("wait_time", "wait_file", "quick", "trigger_child", "trigger_child_deferred")
FINAL: dict[str, tuple[str, int]] = {t: ("success", 1) for t in TASKS}
"""task id -> (final state, try number): a deferral resumes the same try."""
RUN_STATE = "success"
RESUMED: dict[str, Any] = {
    "wait_time": {"n": 3, "event_is_datetime": True},
    "wait_file": {"event": True},
}
"""The return values of the resume methods, built from the triggers' events."""
DEFERRING = ("wait_time", "wait_file", "trigger_child_deferred")
"""Seen ``deferred`` before they end; ``trigger_child`` polls instead and is never deferred."""
POLLING = "trigger_child"
CHILD_DAG = "deferral_child"
CHILD_RUN_STATE = "success"
CHILD_VALUES = {"trigger_child": "child of poll", "trigger_child_deferred": "child of defer"}
"""The triggered run's ``child_work`` return value, from the conf each trigger passes."""
CHILD_RUN_ID_PREFIX = "manual__"
"""``trigger_run_id``: ``manual__<logical date>``, the run id TriggerDagRun names."""
