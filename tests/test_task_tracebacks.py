"""A failed task's traceback in its task log, in every mode: source lines, no pybundle frames, chains.

The expected text is what ``traceback.format_exception`` prints for the same exception raised in
this process by the same source file, cut to that file's frames (the user's) and without the
``~~^^`` position lines. Modes: coordinator under the released supervisor (its own task-log file),
a packed executable under the released ``ExecutableCoordinator`` (source read from the extracted
cache), go-plugin ``Execute`` (the task-log file the plugin writes), ``bundle-run``'s report, and
``bundle.testing``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import bundle
from bundle.core import tracebacks
from bundle.core.log_records import record_to_event
from bundle.testing import run_task as run_in_process
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as run_supervised

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "tests" / "bundles" / "traceback_bundle.py"
DAG = "tb_dag"
TASKS = ("key_error", "chained", "during_handling")
RAISING_LINE = "    return table[key]  # the raising statement of every task below"
CAUSE = "The above exception was the direct cause of the following exception:"
CONTEXT = "During handling of the above exception, another exception occurred:"
PACKAGE_DIR = os.path.dirname(os.path.abspath(bundle.__file__)) + os.sep
CARETS = re.compile(r"\s*[~^]+\s*")
FRAME = re.compile(r'  File "(.*)", line \d+, in ')


def _load_bundle_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("traceback_bundle_expected", BUNDLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPECTED_MODULE = _load_bundle_module()


def raised_here(task_id: str) -> BaseException:
    """The exception the task raises, raised by the same file in this process."""
    try:
        getattr(EXPECTED_MODULE, task_id).fn()
    except Exception as exc:
        return exc
    raise AssertionError(f"{task_id} did not raise")


def python_text(exc: BaseException, user_file: str = str(BUNDLE)) -> list[str]:
    """``traceback.format_exception`` of ``exc``, cut to ``user_file``'s frames, carets dropped."""
    out: list[str] = []
    keep = True
    for line in "".join(traceback.format_exception(exc)).splitlines():
        frame = FRAME.match(line)
        if frame:
            keep = frame.group(1) == user_file
        elif not line.startswith("    "):
            keep = True
        if keep and not CARETS.fullmatch(line):
            out.append(line)
    return out


def frame_files(stacks: list[dict[str, Any]]) -> list[str]:
    return [frame["filename"] for stack in stacks for frame in stack["frames"]]


def failure_record(records: list[dict[str, Any]], key: str = "error_detail") -> dict[str, Any]:
    [record] = [r for r in records if r.get(key)]
    assert record["event"].startswith("Task failed with exception"), record
    return record


def assert_user_traceback(stacks: list[dict[str, Any]], task_id: str, user_file: str = str(BUNDLE)) -> None:
    """What a user must see: Python's text for their frames, the raising line, no pybundle frame."""
    lines = tracebacks.format_stacks(stacks)
    if user_file != str(BUNDLE):  # a packed bundle: the same source, read from the extracted copy
        assert all(name == user_file for name in frame_files(stacks)), frame_files(stacks)
        lines = [line.replace(f'"{user_file}"', f'"{BUNDLE}"') for line in lines]
    assert lines == python_text(raised_here(task_id)), "\n".join(lines)
    assert RAISING_LINE in lines
    assert not [name for name in frame_files(stacks) if name.startswith(PACKAGE_DIR)]
    assert lines[0] == "Traceback (most recent call last):" and lines[1].endswith(", in " + task_id)


def assert_runtime_frames_first(frames: list[dict[str, Any]], runtime_dir: str = PACKAGE_DIR) -> None:
    """With the switch on: pybundle's frames (from ``execute_task`` in ``core/execution.py`` on, source
    lines included) come before the task's own two, and no user frame is lost."""
    names = [f["name"] for f in frames]
    split = names.index("key_error")
    assert split > 0 and names[split:] == ["key_error", "lookup"], names
    assert frames[0]["name"] == "execute_task", names
    assert frames[0]["filename"] == os.path.join(runtime_dir, "core", "execution.py"), frames[0]
    assert all(f["filename"].startswith(runtime_dir) and f["line"] for f in frames[:split]), frames


# -- the record and its text, in process (bundle.testing: the same execution path as every mode) --
def test_the_record_has_source_lines_and_starts_at_the_task_function():
    result = run_in_process(EXPECTED_MODULE.bundle, DAG, "key_error")
    [record] = [r for r in result.logs if r.exc_info]
    stacks = record_to_event(record)["exception"]
    assert_user_traceback(stacks, "key_error")
    expected = [
        (f.filename, f.lineno, f.name, f.line)
        for f in traceback.extract_tb(result.error.__traceback__)
        if f.filename == str(BUNDLE)
    ]
    assert [(f["filename"], f["lineno"], f["name"], f["line"]) for f in stacks[0]["frames"]] == expected
    assert [f["name"] for f in stacks[0]["frames"]] == ["key_error", "lookup"]


def test_the_switch_brings_pybundle_frames_back(monkeypatch):
    result = run_in_process(EXPECTED_MODULE.bundle, DAG, "key_error")
    [record] = [r for r in result.logs if r.exc_info]
    monkeypatch.setenv("PYBUNDLE_TRACEBACK_INTERNAL", "1")
    assert_runtime_frames_first(record_to_event(record)["exception"][0]["frames"])
    monkeypatch.setenv("PYBUNDLE_TRACEBACK_INTERNAL", "0")
    assert [f["name"] for f in record_to_event(record)["exception"][0]["frames"]] == ["key_error", "lookup"]


@pytest.mark.parametrize("task_id, separator", [("chained", CAUSE), ("during_handling", CONTEXT)])
def test_chains_read_as_python_prints_them(task_id, separator):
    result = run_in_process(EXPECTED_MODULE.bundle, DAG, task_id)
    assert result.traceback is not None
    lines = result.traceback.splitlines()
    assert lines == python_text(raised_here(task_id))
    assert lines.count(separator) == 1 and lines.count("Traceback (most recent call last):") == 2
    assert lines[lines.index(separator) - 2].startswith("KeyError: ")  # root cause first, as Python


def test_an_error_inside_pybundle_keeps_its_frames():
    """Leaving out every frame would hide where a runtime error came from."""
    source = (
        "def fail():\n    raise ValueError('x')\ntry:\n    fail()\nexcept ValueError as e:\n    caught = e\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, os.path.join(PACKAGE_DIR, "core", "execution.py"), "exec"), namespace)
    frames = tracebacks.exception_stacks(namespace["caught"])[0]["frames"]
    assert [f["name"] for f in frames] == ["<module>", "fail"]


def test_only_the_bundle_package_is_internal():
    assert tracebacks.is_internal(os.path.join(PACKAGE_DIR, "core", "injection.py"))
    assert not tracebacks.is_internal(str(ROOT / "examples" / "bundle" / "example_dags.py"))
    assert not tracebacks.is_internal(PACKAGE_DIR.rstrip(os.sep) + "_extra" + os.sep + "x.py")
    assert not tracebacks.is_internal("<string>")


def test_format_stacks_accepts_what_another_writer_may_have_logged():
    assert tracebacks.format_stacks(None) == []
    assert tracebacks.format_stacks("text") == ["text"]
    junk = [{"exc_type": "E", "exc_value": "", "frames": "x", "is_cause": True}, 3]
    assert tracebacks.format_stacks(junk) == ["3", "", CONTEXT, "", "E"]


# -- coordinator mode under the released supervisor ----------------------------------------------
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]


def supervised(task_id: str, **env: str):
    run = run_supervised(COMMAND, dag_id=DAG, task_id=task_id, api=FakeExecutionAPI(), env=env or None)
    assert (run.exit_code, run.final_state) == (0, "failed"), run.describe()
    assert run.api.problems() == [] and run.supervisor_errors == [], run.describe()
    return run


@pytest.mark.parametrize("task_id", TASKS)
def test_coordinator_task_log_shows_the_user_traceback(task_id):
    run = supervised(task_id)
    assert_user_traceback(failure_record(run.log_records)["error_detail"], task_id)


def test_coordinator_switch_shows_pybundle_frames():
    run = supervised("key_error", PYBUNDLE_TRACEBACK_INTERNAL="1")
    assert_runtime_frames_first(failure_record(run.log_records)["error_detail"][0]["frames"])


def test_a_task_that_does_not_fail_loads_no_formatting_module():
    run = run_supervised(COMMAND, dag_id=DAG, task_id="succeeds", api=FakeExecutionAPI())
    assert run.final_state == "success", run.describe()
    assert run.api.xcom(DAG, "manual__2026-01-01", "succeeds", "return_value") == []


# -- a packed executable under the released ExecutableCoordinator --------------------------------
@pytest.fixture(scope="module")
def packed_root(tmp_path_factory) -> Path:
    from tests.fixtures.packer.support import bundle_pack

    root = tmp_path_factory.mktemp("tb-executables")
    result = bundle_pack(str(BUNDLE), "--format", "executable", "--output", str(root / "traceback_tests"))
    assert result.returncode == 0, result.stderr
    return root


def run_packed(root: Path, tmp_path: Path, task_id: str, **env: str):
    from tests.fixtures.packer.support import bare_env, run_with_executable_coordinator

    api = FakeExecutionAPI()
    task = run_with_executable_coordinator(
        [root],
        dag_id=DAG,
        task_id=task_id,
        api=api,
        workdir=tmp_path / task_id,
        env=bare_env(tmp_path, PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"), **env),
    )
    assert (task.exception, task.exit_code, task.state) == (None, 0, "failed"), task.describe()
    return task


def test_packed_executable_reads_source_lines_from_its_extracted_cache(packed_root, tmp_path):
    task = run_packed(packed_root, tmp_path, "chained")
    stacks = failure_record(task.task_log)["error_detail"]
    [user_file] = set(frame_files(stacks))
    assert user_file.startswith(str(tmp_path / "cache") + os.sep), user_file
    assert user_file.endswith(os.path.join("app", "traceback_bundle.py")), user_file
    assert_user_traceback(stacks, "chained", user_file)


def test_packed_executable_switch_shows_the_extracted_runtime_frames(packed_root, tmp_path):
    task = run_packed(packed_root, tmp_path, "key_error", PYBUNDLE_TRACEBACK_INTERNAL="1")
    frames = failure_record(task.task_log)["error_detail"][0]["frames"]
    runtime_dir = frames[0]["filename"].rsplit(os.sep + "core" + os.sep, 1)[0] + os.sep
    assert runtime_dir.startswith(str(tmp_path / "cache") + os.sep), runtime_dir
    assert runtime_dir.endswith(os.path.join("lib", "bundle") + os.sep), runtime_dir
    assert_runtime_frames_first(frames, runtime_dir)


# -- go-plugin mode: the task-log file the plugin writes for the Edge Worker ---------------------
PLUGIN_RUN = "manual__2026-01-01T00:00:00+00:00"


def run_plugin(tmp_path: Path, task_id: str, **extra_env: str) -> list[dict[str, Any]]:
    pytest.importorskip("grpc")
    from tests.plugin_host import (
        ExecutionApiServer,
        PluginHost,
        bundle_command,
        execute_request,
        iter_json_lines,
    )

    api = FakeExecutionAPI()
    log_path = f"dag_id={DAG}/task_id={task_id}/attempt=1.log"
    with ExecutionApiServer(api) as server:
        env = {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__EXECUTION_API_URL": server.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
            **extra_env,
        }
        ti = api.add_task_instance(dag_id=DAG, run_id=PLUGIN_RUN, task_id=task_id, state="queued")
        request = execute_request(
            ti_id=ti,
            dag_id=DAG,
            run_id=PLUGIN_RUN,
            task_id=task_id,
            bundle_name="traceback_tests",
            bundle_version="1",
            log_path=log_path,
        )
        with PluginHost.start(bundle_command(BUNDLE), env=env) as host:
            host.execute(request, timeout=60)
            host.kill()
    assert api.ti_state(ti) == "failed"
    return list(iter_json_lines(tmp_path / "logs" / log_path))


@pytest.mark.parametrize("task_id", ["key_error", "chained"])
def test_plugin_task_log_shows_the_user_traceback(tmp_path, task_id):
    records = run_plugin(tmp_path, task_id)
    assert_user_traceback(failure_record(records, "exception")["exception"], task_id)


def test_plugin_switch_shows_pybundle_frames(tmp_path):
    records = run_plugin(tmp_path, "key_error", PYBUNDLE_TRACEBACK_INTERNAL="1")
    assert_runtime_frames_first(failure_record(records, "exception")["exception"][0]["frames"])


# -- bundle-run's report -------------------------------------------------------------------------
def test_bundle_run_report_prints_python_tracebacks(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYBUNDLE_CACHE_DIR"] = str(tmp_path / "cache")
    report = tmp_path / "report.json"
    command = [str(Path(sys.executable).parent / "bundle-run"), str(BUNDLE), "--dag", DAG]
    proc = subprocess.run(
        [*command, "--json-report", str(report)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the report indents a record's exception lines by six spaces (two for the log, four for the record)
    printed = "\n".join(
        line[6:] if line.startswith("      ") else line.strip() for line in proc.stdout.splitlines()
    )
    for task_id in TASKS:
        expected = "\n".join(python_text(raised_here(task_id)))
        assert f"\n{expected}\n" in printed, f"{task_id}:\n{expected}\n--- stdout\n{proc.stdout}"
    assert "bundle/core/execution.py" not in proc.stdout
    notes = {task: row["note"] for task, row in json.loads(report.read_text())["tasks"].items()}
    assert notes["chained"].endswith("RuntimeError: no connection configured for orders_db"), notes
