"""Latency figures of task instances, from the timestamps Airflow's REST API reports."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from tests.e2e.rest import TaskInstance
from tests.e2e.rest import seconds_between as seconds


def latency_summary(tis: Iterable[TaskInstance]) -> dict[str, float]:
    """Median and p95 of queued -> running (``start_date``) and queued -> end, in seconds."""
    tis = list(tis)
    to_start = sorted(seconds(ti.queued_when, ti.start_date) for ti in tis)
    to_end = sorted(seconds(ti.queued_when, ti.end_date) for ti in tis)
    running = sorted(seconds(ti.start_date, ti.end_date) for ti in tis)

    def p95(values: list[float]) -> float:
        return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]

    return {
        "count": len(tis),
        "queued_to_running_median": statistics.median(to_start),
        "queued_to_running_p95": p95(to_start),
        "running_median": statistics.median(running),
        "queued_to_end_median": statistics.median(to_end),
        "queued_to_end_p95": p95(to_end),
    }


def format_summary(kind: str, summary: dict[str, float]) -> str:
    return (
        f"{kind}: {summary['count']} TIs; queued->running median {summary['queued_to_running_median']:.2f} s "
        f"(p95 {summary['queued_to_running_p95']:.2f}), running median {summary['running_median']:.2f} s, "
        f"queued->end median {summary['queued_to_end_median']:.2f} s (p95 {summary['queued_to_end_p95']:.2f})"
    )
