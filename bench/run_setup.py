"""Figure 12: ``bundle-run``'s set-up for a DAG of 1,000 and of 10,000 independent tasks.

Set-up is everything before the first task runs: reading the bundle (``--dump-bundle-spec``),
starting the worker (importing Airflow's supervisor: about a second, whatever the size), parsing
the DAG over the coordinator protocol, ordering its tasks and creating the run's task instances.
Each sample is one real ``bundle-run`` of ``bench/wide_bundle.py``, from exec to the progress line
saying the first task is running; the run is then stopped (SIGTERM, which bundle-run treats as
Ctrl-C). The row is the larger size beside the smaller one: a linear set-up grows about 10x from
1,000 to 10,000 tasks (less, with the fixed supervisor import), a quadratic one 100x; the target,
<= 20x, says "well under quadratic". ``extra`` has each size's time and the part after the
supervisor import (from bundle-run's own progress clock), and whether 10,000 tasks start within
``TARGET_SECONDS``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from .figures import Row
from .measure import PYTHON, Sample, Series, subject_env

WIDE_BUNDLE = Path(__file__).with_name("wide_bundle.py")
FIGURE = "12 bundle-run set-up"
TARGET_SECONDS = 10.0
"""'A few seconds' for 10,000 tasks, with room for a shared machine (measured: ~3 s idle)."""
_CLOCK = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")
_STOP_TIMEOUT = 60.0
SETUP_TIMEOUT = 300.0
"""A set-up that has not started a task by then has failed the figure (it used to never start)."""


def first_task_start(width: int) -> tuple[Sample, float]:
    """One ``bundle-run`` of a ``width``-task DAG: (exec to its first task running, and the part
    of that after the supervisor import, by bundle-run's progress clock)."""
    env = subject_env({"BENCH_WIDE_TASKS": str(width)})
    started = time.monotonic()
    proc = subprocess.Popen(
        [PYTHON, "-m", "localrun", str(WIDE_BUNDLE), "--no-task-logs"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    parse_clock: float | None = None
    watchdog = threading.Timer(SETUP_TIMEOUT, proc.send_signal, (signal.SIGTERM,))
    watchdog.start()
    try:
        for line in proc.stderr:
            seen.append(line.rstrip())
            match = _CLOCK.match(line.rstrip())
            if match and match.group(2).startswith("parsing the bundle"):
                parse_clock = float(match.group(1))
            if match and ": running (try " in match.group(2):
                elapsed = time.monotonic() - started
                after_import = float(match.group(1)) - (parse_clock or 0.0)
                return Sample(elapsed), after_import
        raise RuntimeError(
            f"bundle-run of {width} tasks ended (or was stopped after {SETUP_TIMEOUT:g} s) before a "
            f"task ran: {seen[-5:]}"
        )
    finally:
        watchdog.cancel()
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (bundle-run stops its worker and removes its work directory), then the group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def run_setup(sizes: tuple[int, int], runs: int) -> list[Row]:
    """The figure's row: set-up at ``sizes[1]`` tasks beside ``sizes[0]``, medians of ``runs``."""
    small, large = sizes
    series = {n: Series(f"bundle-run set-up, {n:,} tasks") for n in sizes}
    after_import: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(runs):  # interleaved, so drift hits both sizes alike
        for n in sizes:
            sample, rest = first_task_start(n)
            series[n].samples.append(sample)
            after_import[n].append(rest)
    subject, baseline = series[large], series[small]
    return [
        Row(
            FIGURE,
            subject.name,
            subject.median,
            "s",
            baseline.name,
            baseline.median,
            subject.median / baseline.median,
            "<= 20",
            {
                "seconds": {n: round(series[n].median, 3) for n in sizes},
                "after_supervisor_import_s": {
                    n: round(sorted(v)[len(v) // 2], 3) for n, v in after_import.items()
                },
                "target_s": TARGET_SECONDS,
                "meets": subject.median <= TARGET_SECONDS,
            },
        )
    ]
