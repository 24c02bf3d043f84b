"""Figure 9's pieces that need no deployment (the figure itself starts one: ``--only 9``)."""

from __future__ import annotations

import os

import psutil

from bench.deployment_cost import (
    Kind,
    Memory,
    TaskCost,
    cpu_seconds,
    parse_time,
    proc_pss_kib,
    proc_status_kib,
    rows,
)
from bench.figures import Row


def test_rows_take_medians_and_ratios_of_both_kinds():
    bundle = Kind("bundle", "b", [TaskCost(0.1, 0.05, 0.2, 0.04) for _ in range(3)] + [TaskCost(9, 9, 9, 9)])
    python = Kind("python", "p", [TaskCost(0.1, 0.1, 0.1, 0.05) for _ in range(4)])
    bundle.memory = [Memory(12_000, 140_000, 1, 90_000)]
    python.memory = [Memory(150_000, 141_000, 1, 120_000)]
    table = {row.figure: row for row in rows(bundle, python, Row)}
    wall = table["9 task cost: queued to success"]
    assert (
        round(wall.value, 3) == 150.0 and round(wall.baseline_value, 3) == 200.0
    )  # the outlier is not the median
    assert round(wall.ratio, 3) == 0.75 and wall.meets_target is True
    cpu = table["9 task cost: worker CPU"]
    assert round(cpu.ratio, 3) == 2.0 and cpu.meets_target is False
    rss = table["9 task cost: peak RSS"]
    assert round(rss.value * 1024) == 152_000 and round(rss.baseline_value * 1024) == 150_000
    assert rss.meets_target is False
    assert table["9 task cost: peak RSS, task process alone"].ratio < 0.1
    assert round(table["9 task cost: peak PSS, supervisor + task process"].ratio, 3) == 0.75


def test_process_counters_read_this_process():
    total, children = cpu_seconds(psutil.Process())
    assert total > 0 and 0 <= children <= total
    assert proc_status_kib(os.getpid(), "VmHWM") >= proc_status_kib(os.getpid(), "VmRSS") > 1000
    assert proc_status_kib(2**22 + 7, "VmHWM") == 0  # no such process
    assert 0 < proc_pss_kib(os.getpid()) <= proc_status_kib(os.getpid(), "VmRSS")


def test_api_timestamps_parse_with_their_zone():
    start, end = parse_time("2026-12-02T00:30:00.100000Z"), parse_time("2026-12-02T00:30:00.350000+00:00")
    assert (end - start).total_seconds() == 0.25
