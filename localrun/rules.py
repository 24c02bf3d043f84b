"""Trigger rules: given the final states of a task's upstream tasks, run it, skip it, or fail it.

``bundle-run`` runs one task at a time in dependency order, so a task is only decided once every
upstream task has reached a final state; the outcome of each rule is then the one Airflow's
scheduler reaches (``TriggerRuleDep`` in apache-airflow-core) when all upstreams are done:

* ``all_success``: any failed/upstream_failed upstream → upstream_failed; else any skipped →
  skipped (this is how a skip propagates down a chain); else run.
* ``all_failed`` / ``all_done`` / ``all_skipped`` / ``one_*`` / ``none_*`` /
  ``all_done_min_one_success`` / ``always``: as in Airflow (see :func:`decide`).

``all_done_setup_success`` needs setup/teardown tasks, which a bundle cannot declare: it is
reported as unsupported before anything runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

RUN = "run"
SKIPPED = "skipped"
UPSTREAM_FAILED = "upstream_failed"

SUPPORTED = frozenset(
    {
        "all_success",
        "all_failed",
        "all_done",
        "all_done_min_one_success",
        "all_skipped",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "always",
    }
)


def decide(trigger_rule: str, upstream_states: Iterable[str]) -> str:
    """:data:`RUN`, :data:`SKIPPED` or :data:`UPSTREAM_FAILED` for a task whose upstreams are all final."""
    if trigger_rule not in SUPPORTED:
        raise ValueError(f"unsupported trigger rule {trigger_rule!r}")
    counts = Counter(upstream_states)
    upstream = sum(counts.values())
    if upstream == 0 or trigger_rule == "always":
        return RUN
    success, skipped = counts["success"], counts["skipped"]
    failed, upstream_failed = counts["failed"], counts["upstream_failed"]
    any_failure = failed + upstream_failed > 0
    if trigger_rule == "all_success":
        if any_failure:
            return UPSTREAM_FAILED
        return SKIPPED if skipped else RUN
    if trigger_rule == "all_failed":
        return SKIPPED if success or skipped else RUN
    if trigger_rule == "all_done":
        return RUN
    if trigger_rule == "all_done_min_one_success":
        if skipped:
            return SKIPPED
        return RUN if success else UPSTREAM_FAILED
    if trigger_rule == "all_skipped":
        return SKIPPED if success or any_failure else RUN
    if trigger_rule == "one_success":
        if skipped == upstream:
            return SKIPPED
        return RUN if success else UPSTREAM_FAILED
    if trigger_rule == "one_failed":
        return RUN if any_failure else SKIPPED
    if trigger_rule == "one_done":
        return RUN if success or failed else SKIPPED
    if trigger_rule == "none_failed":
        return UPSTREAM_FAILED if any_failure else RUN
    if trigger_rule == "none_failed_min_one_success":
        if any_failure:
            return UPSTREAM_FAILED
        if skipped == upstream:
            return SKIPPED
        return RUN if success else UPSTREAM_FAILED
    # none_skipped
    return SKIPPED if skipped else RUN
