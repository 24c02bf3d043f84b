"""The benchmark suite keeps working (a quick run, no thresholds: timing is measured, not tested)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_quick_benchmark_run_produces_every_figure():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    figures = {row["figure"].split()[0] for row in report["rows"]}
    assert figures == {"1", "2", "3", "4", "5", "6", "7", "8", "10", "11", "12"}
    subjects = {row["subject"] for row in report["rows"]}
    assert {"packed executable, warm cache", "packed executable, first run"} <= subjects
    assert [row["figure"] for row in report["rows"]] == sorted(
        (row["figure"] for row in report["rows"]), key=lambda figure: int(figure.split()[0])
    )
    [execute] = [row for row in report["rows"] if row["figure"] == "5 plugin Execute"]
    assert execute["extra"]["overhead_ms"] > 0
    bound = {
        row["subject"]: row["extra"]["requests"]
        for row in report["rows"]
        if row["figure"] == "8 bound arguments"
    }
    assert bound == {
        "task with 0 bound argument(s)": {"SucceedTask": 1},
        "task with 1 bound argument(s)": {"GetXCom": 1, "SucceedTask": 1},
        "task with 5 bound argument(s)": {"GetXCom": 5, "SucceedTask": 1},
    }
    mapped = {
        row["subject"]: row["extra"]["requests"]
        for row in report["rows"]
        if row["figure"] == "10 mapped 1,000-wide"
    }
    assert mapped["wide map index 0"] == mapped["wide map index 999"]  # O(1) whatever the index
    assert mapped["over_mapped map index 999"] == {
        "GetXComCount": 1,
        "GetXComSequenceItem": 1,
        "SetXCom": 1,
        "SucceedTask": 1,
    }
    assert mapped["reduce of 1,000 results"]["GetXComSequenceSlice"] == 1
    [setup] = [row for row in report["rows"] if row["figure"] == "12 bundle-run set-up"]
    assert (
        setup["subject"] == "bundle-run set-up, 10,000 tasks"
        and setup["baseline"] == "bundle-run set-up, 1,000 tasks"
    )
    assert set(setup["extra"]["seconds"]) == {"1000", "10000"} and setup["target"] == "<= 20"
    for row in report["rows"]:
        assert row["value"] > 0, row
        if row["baseline"]:
            assert row["baseline_value"] > 0 and row["ratio"] > 0, row
