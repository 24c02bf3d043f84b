"""bundle-run's task-log lines: every line of a record stays visibly inside it."""

from __future__ import annotations

from localrun.tasklog import format_record


def test_multi_line_message_is_indented_under_its_record() -> None:
    record = {
        "timestamp": "2026-12-01T22:34:50.027000Z",
        "level": "info",
        "logger": "example_dags",
        "event": "Audit:\nrun    rows\n\n-----  ----",
        "run": 3,
    }
    assert format_record(record) == [
        "22:34:50.027 INFO     example_dags: Audit: run=3",
        "    run    rows",
        "",
        "    -----  ----",
    ]


def test_one_line_message_is_one_line() -> None:
    assert format_record({"timestamp": "2026-12-01T00:00:00.000Z", "level": "warning", "event": "x"}) == [
        "00:00:00.000 WARNING  x"
    ]
