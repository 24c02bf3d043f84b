"""The coordinator starts without ``logging``, ``typing`` and ``json``, and loses no record for it.

The log handler is installed by ``bundle.coordinator.log_hook`` when ``logging`` is first imported;
these tests run under the released supervisor and read its task log."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from bundle.coordinator.log_hook import when_imported
from tests.harness.supervised import run_task

BUNDLE = Path(__file__).parent / "bundles" / "late_logging_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG, RUN = "late_logging_dag", "manual__2026-01-01"


def test_a_task_that_never_logs_runs_without_logging_typing_or_json():
    run = run_task(COMMAND, dag_id=DAG, task_id="never_logs", run_id=RUN)
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "success", run.describe()
    assert run.api.xcom(DAG, RUN, "never_logs", "return_value") == {"loaded": []}


def test_records_after_a_late_import_of_logging_reach_the_task_log():
    run = run_task(COMMAND, dag_id=DAG, task_id="imports_logging_late", run_id=RUN)
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "success", run.describe()
    assert run.api.xcom(DAG, RUN, "imports_logging_late", "return_value") == {
        "loaded_before_the_task_imported_logging": []
    }
    [record] = run.find_logs("logged after a late import of logging")
    assert record["level"] == "warning" and record["logger"] == "late.module"


def test_when_imported_calls_back_after_the_module_ran_and_leaves_no_finder_behind(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe_module.py").write_text(
        textwrap.dedent("""
        VALUE = 42
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    finders_before = list(sys.meta_path)
    when_imported("lazy_probe_module", lambda module: seen.append(module.VALUE))
    assert seen == [] and len(sys.meta_path) == len(finders_before) + 1
    import colorsys  # noqa: F401 - any other import passes through untouched

    assert seen == []
    import lazy_probe_module

    assert seen == [42] and lazy_probe_module.VALUE == 42
    assert sys.meta_path == finders_before
    when_imported("lazy_probe_module", lambda module: seen.append("again"))  # already imported: at once
    assert seen == [42, "again"]
    del sys.modules["lazy_probe_module"]
