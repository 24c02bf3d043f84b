"""Figure 8: what bound arguments (TaskFlow data passing) cost a task: one ``GetXCom`` each.

The same task process three times, with 0, 1 and 5 bound arguments, against the local stub
supervisor (which answers ``GetXCom``). Two timings per run: the whole process (exec to exit, what a
worker waits for) and the stub's view of the task (``StartupDetails`` sent to the terminal message
received: no interpreter start-up or exit, so the few round trips are not lost in start-up noise).
The stub counts the requests by type and the figure fails unless each task made exactly one
``GetXCom`` per bound argument and nothing else but its ``SucceedTask``.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .figures import Row
from .measure import PYTHON, Sample, Series, alternate, subject_env
from .stub_supervisor import StubSupervisor, startup_details

BOUND_BUNDLE = Path(__file__).with_name("bound_bundle.py")
COMMAND = [PYTHON, "-m", "bundle", "--bundle", str(BOUND_BUNDLE)]
COUNTS = (0, 1, 5)
FIGURE = "8 bound arguments"


@dataclass
class _TaskSample(Sample):
    """A whole-process sample that also carries the stub's span of the task and what it was asked."""

    span: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    interval: float | None = None  # first to last GetXCom over their number less one


def _run_task(bound: int) -> _TaskSample:
    """One task process with ``bound`` bound arguments; checks the requests the stub saw."""
    stub = StubSupervisor(startup_details(dag_id="bench_bound_dag", task_id=f"bound_{bound}")).start()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*COMMAND, *stub.args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subject_env(),
    )
    proc.wait()
    ended = time.monotonic()
    stub.join()
    expected = {"GetXCom": bound, "SucceedTask": 1} if bound else {"SucceedTask": 1}
    if proc.returncode != 0 or stub.error or stub.request_types != expected:
        raise RuntimeError(
            f"bound_{bound}: exit {proc.returncode}, stub error {stub.error!r}, "
            f"requests {stub.request_types} (expected {expected})"
        )
    assert stub.startup_sent_at is not None and stub.terminal_at is not None
    times = stub.get_xcom_times
    return _TaskSample(
        ended - started,
        span=stub.terminal_at - stub.startup_sent_at,
        requests=dict(stub.request_types),
        interval=(times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None,
    )


def _median(series: Series, attribute: str) -> float:
    return statistics.median(getattr(sample, attribute) for sample in series.samples)


def bound_arguments(runs: int) -> list[Row]:
    """Rows for 0, 1 and 5 bound arguments: wall time per task (ratio to 0) and, in ``extra``, the
    requests the stub saw, its span of the task, and the cost per bound argument three ways: wall
    and span differences over the count (start-up noise is in both), and the interval from one
    ``GetXCom`` to the next (5 arguments only: the steadiest, start-up is not in it)."""
    series = alternate(
        runs,
        {f"task with {n} bound argument(s)": (lambda n=n: _run_task(n)) for n in COUNTS},
    )
    baseline = series[f"task with {COUNTS[0]} bound argument(s)"]
    return [_row(count, s, baseline) for count, s in zip(COUNTS, series.values(), strict=True)]


def _row(count: int, s: Series, baseline: Series) -> Row:
    span = _median(s, "span")
    extra: dict[str, object] = {
        "requests": s.samples[-1].requests,  # type: ignore[attr-defined]  # the same in every run
        "task_span_ms": round(span * 1000, 3),
    }
    if not count:
        return Row(FIGURE, s.name, s.median * 1000, "ms", extra=extra)
    extra["wall_per_bound_arg_us"] = round((s.median - baseline.median) / count * 1e6, 1)
    extra["span_per_bound_arg_us"] = round((span - _median(baseline, "span")) / count * 1e6, 1)
    if count > 1:
        extra["get_xcom_interval_us"] = round(_median(s, "interval") * 1e6, 1)
    return Row(
        FIGURE,
        s.name,
        s.median * 1000,
        "ms",
        baseline.name,
        baseline.median * 1000,
        s.median / baseline.median,
        None,
        extra,
    )
