"""``bundle-run`` end to end: real supervisor (apache-airflow-task-sdk 1.3.2), real bundle processes.

Every run is the installed console script in a subprocess, as a user would type it. The example
bundle runs in both forms (source target through a ``SubprocessCoordinator``, packed executable
through ``ExecutableCoordinator``); ``tests/bundles/bundle_run_*.py`` cover failure propagation,
timeouts and ``--state``. Each supervised try costs about a second, plus a few seconds per run
to import the supervisor.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = ROOT / "examples" / "bundle"
EXAMPLE = EXAMPLE_DIR / "example_dags.py"
VARS = EXAMPLE_DIR / "local" / "variables.yaml"
CONNS = EXAMPLE_DIR / "local" / "connections.yaml"
FAILING = ROOT / "tests" / "bundles" / "bundle_run_failing.py"
STATEFUL = ROOT / "tests" / "bundles" / "bundle_run_state.py"
SECRETS = ("s3cret-local-pw", "local-dev-token-7f3a9c")  # from examples/bundle/local/*.yaml
BIN = Path(sys.executable).parent


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    def states(self) -> dict[str, str]:
        assert self.report is not None, self.stderr
        return {task: row["state"] for task, row in self.report["tasks"].items()}

    def tries(self, task_id: str) -> list[dict[str, Any]]:
        assert self.report is not None
        return self.report["tasks"][task_id]["tries_detail"]

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        assert self.report is not None
        matches = [x["value"] for x in self.report["xcoms"] if (x["task_id"], x["key"]) == (task_id, key)]
        assert len(matches) == 1, self.report["xcoms"]
        return matches[0]

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stderr\n{self.stderr}\n--- stdout\n{self.stdout}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_", "AIRFLOW__")) and k not in ("NO_COLOR", "PYTHONSTARTUP")
    }
    env.update(extra)
    return env


def bundle_run(
    *args: str | Path, tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> Run:
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*.json')))}.json"
    command = [str(BIN / "bundle-run"), *map(str, args), "--json-report", str(report)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env or clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "cache")),
        cwd=tmp_path,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    data = json.loads(report.read_text()) if report.exists() else None
    return Run(proc.returncode, proc.stdout, proc.stderr, data)


def assert_example_run(run: Run) -> None:
    """What the example DAG does on every run, whichever form the bundle takes: data passing through
    the ``transform`` task group, ``check_order`` mapped over the kept rows (one instance each, with
    its label), ``route`` branching into ``load`` (``report_empty`` skipped), the ``audit`` join
    (``none_failed_min_one_success``) running, ``notify`` skipping itself."""
    assert run.returncode == 0, run.describe()
    assert run.states() == {
        "extract": "success",
        "transform.filter_rows": "success",
        "transform.summarise": "success",
        **{f"check_order[{i}]": "success" for i in range(3)},  # one instance per kept row
        "route": "success",
        "load": "success",
        "report_empty": "skipped",  # by the branch: never started
        "audit": "success",  # the join runs although one of its upstreams is skipped
        "notify": "skipped",  # SkipTask: no notify_channel variable
    }
    # load fails on its first try and succeeds on the retry; everything else needs one try
    assert [t["state"] for t in run.tries("load")] == ["up_for_retry", "success"]
    assert run.tries("load")[0]["note"] == (
        "ConnectionError: warehouse is not accepting connections yet; Airflow will retry"
    )
    assert {task: (row["tries"], row["max_tries"]) for task, row in run.report["tasks"].items()} == {
        "extract": (1, 1),
        "transform.filter_rows": (1, 3),  # retries=2 from the task group's default_args
        "transform.summarise": (1, 3),
        **{f"check_order[{i}]": (1, 1) for i in range(3)},
        "route": (1, 1),
        "load": (2, 2),
        "report_empty": (0, 1),
        "audit": (1, 1),
        "notify": (1, 1),
    }
    assert run.report["tasks"]["report_empty"]["note"] == "skipped by route"
    extracted = run.xcom("extract")
    assert extracted["source"] == "orders.db.internal" and len(extracted["rows"]) == 4
    kept = [
        {"order_id": 1, "amount": 12.5},
        {"order_id": 2, "amount": 7.0},
        {"order_id": 3, "amount": 31.25},
    ]
    assert run.xcom("transform.filter_rows") == kept  # extract's output arrived as `extracted`
    assert run.xcom("transform.summarise") == {"currency": "EUR", "rows": kept, "total": 50.75}
    assert run.xcom("route", "skipmixin_key") == {"followed": ["load"]}
    checked = [(x["map_index"], x["value"]) for x in run.report["xcoms"] if x["task_id"] == "check_order"]
    assert sorted(checked) == [(i, row["amount"]) for i, row in enumerate(kept)]
    labels = [run.report["tasks"][f"check_order[{i}]"]["rendered_map_index"] for i in range(3)]
    assert labels == ["order 1", "order 2", "order 3"]  # map_index_template="order {row[order_id]}"
    assert run.xcom("load") == 3
    assert run.xcom("audit") == {"run_id": run.report["run_id"], "loaded_rows": 3}
    assert {(x["task_id"], x["key"]) for x in run.report["xcoms"]} == {
        ("extract", "return_value"),
        ("transform.filter_rows", "return_value"),
        ("transform.summarise", "return_value"),
        ("check_order", "return_value"),
        ("route", "skipmixin_key"),  # a branch that skipped pushes no return_value, as in Airflow
        ("load", "return_value"),
        ("audit", "return_value"),
        # `-> dict` infers multiple_outputs, as Airflow's @task does: each key is its own XCom too
        *(("extract", key) for key in ("source", "rows")),
        *(("transform.summarise", key) for key in ("currency", "rows", "total")),
        *(("audit", key) for key in ("run_id", "loaded_rows")),
    }
    assert run.xcom("transform.summarise", "total") == 50.75

    # The supervisor's own task log, masked by the supervisor: the connection password (logged
    # at debug) and the token variable (logged at info) never appear in clear.
    started = [t for t in run.report["tasks"] if run.tries(t)]  # all but report_empty
    events = {t: [r.get("event") for r in run.tries(t)[-1]["log"]] for t in started}
    assert "Connecting as etl with password ***" in events["extract"]
    assert [e for e in events["load"] if "with token" in e] == [
        "Loading 3 rows (total 50.75 EUR) with token ***"
    ]
    levels = {r["level"] for t in started for r in run.tries(t)[-1]["log"]}
    assert {"debug", "info", "warning"} <= levels
    for secret in SECRETS:
        assert secret not in run.stdout and secret not in run.stderr
    assert "DEBUG    example_dags: Connecting as etl with password ***" in run.stdout

    # The report ends with the summary table.
    summary = run.stdout.split("== Summary\n")[1].rstrip().splitlines()
    assert summary[-1].strip() == "DAG run success: 9 success, 2 skipped (exit status 0)"
    load_row = next(line for line in summary if line.strip().startswith("load "))
    assert re.match(r"\s*load\s+success\s+2/2\s", load_row), load_row
    rows = {line.split()[0]: line.split() for line in summary if line.startswith("  ") and line.split()}
    assert rows["transform.summarise"][1:3] == ["success", "1/3"]  # the task group's path
    assert rows["report_empty"][1:] == ["skipped", "0/1", "skipped", "by", "route"]
    assert rows["check_order[2]"][1:4] == ["(order", "3)", "success"]  # each map index, labelled
    assert run.report["problems"] == []


def test_example_bundle_from_source(tmp_path):
    state = tmp_path / "state.db"
    run = bundle_run(
        EXAMPLE,
        "--vars",
        VARS,
        "--conns",
        CONNS,
        "--retry-delay-scale",
        "0.2",
        "--log-level",
        "debug",
        "--state",
        state,
        tmp_path=tmp_path,
    )
    assert_example_run(run)
    assert "(source target, python -m bundle --bundle)" in run.stdout
    # Plain progress lines (stderr is not a terminal), with the scaled retry delay (5 s x 0.2)
    assert re.search(r"\] load: up_for_retry \(try 1/2, [\d.]+s\), retrying in (0\.9|1\.0)s\n", run.stderr), (
        run.stderr
    )
    assert re.search(r"\] load: success \(try 2/2, [\d.]+s\)\n", run.stderr), run.stderr
    # ... and the retry really waited: try 2 entered running >= 1 s after try 1 ended
    db = sqlite3.connect(state)
    (first_end,) = db.execute("SELECT end_date FROM ti_history WHERE task_id = 'load'").fetchone()
    (second_start, try_number) = db.execute(
        "SELECT start_date, try_number FROM task_instances WHERE task_id = 'load'"
    ).fetchone()
    assert try_number == 2
    assert (datetime.fromisoformat(second_start) - datetime.fromisoformat(first_end)).total_seconds() >= 1.0


def test_example_bundle_packed_as_executable(tmp_path):
    packed = tmp_path / "dist" / "example_dags"
    pack = subprocess.run(
        [str(BIN / "bundle-pack"), str(EXAMPLE), "--format", "executable", "--output", str(packed)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )
    assert pack.returncode == 0, pack.stderr
    run = bundle_run(
        packed,
        "--vars",
        VARS,
        "--conns",
        CONNS,
        "--retry-delay-scale",
        "0.1",
        "--log-level",
        "debug",
        tmp_path=tmp_path,
    )
    assert_example_run(run)
    assert f"{packed} (packed executable bundle, ExecutableCoordinator)" in run.stdout


def test_example_bundle_takes_the_other_branch_when_no_row_passes_the_threshold(tmp_path):
    """AIRFLOW_VAR_MIN_AMOUNT wins over --vars, as on a worker: no row is left, so route follows
    report_empty and skips load; the audit join still runs, with load's output missing (None)."""
    env = clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"), AIRFLOW_VAR_MIN_AMOUNT="100")
    run = bundle_run(EXAMPLE, "--vars", VARS, "--conns", CONNS, tmp_path=tmp_path, env=env)
    assert run.returncode == 0, run.describe()
    states = run.states()
    assert (states["route"], states["load"], states["report_empty"]) == ("success", "skipped", "success")
    assert (states["audit"], states["notify"]) == ("success", "skipped")
    assert states["check_order"] == "skipped"  # mapped over no row: zero instances, as in Airflow
    assert run.tries("load") == [] and run.report["tasks"]["load"]["note"] == "skipped by route"
    assert run.xcom("route", "skipmixin_key") == {"followed": ["report_empty"]}
    assert run.xcom("transform.summarise")["rows"] == []
    assert run.xcom("audit") == {"run_id": run.report["run_id"], "loaded_rows": 0}
    warnings = [r["event"] for r in run.tries("report_empty")[0]["log"] if r["level"] == "warning"]
    assert warnings == ["No order reached min_amount: nothing to load"]


def test_failing_task_marks_downstream_upstream_failed_and_skips_propagate(tmp_path):
    run = bundle_run(FAILING, "--dag", "failing_dag", "--retry-delay-scale", "0", tmp_path=tmp_path)
    assert run.returncode == 1, run.describe()
    assert run.states() == {
        "prepare": "success",
        "explode": "failed",
        "after_explode": "upstream_failed",
        "cleanup": "success",  # trigger_rule all_done
        "maybe": "skipped",
        "after_maybe": "skipped",  # a skip propagates under all_success
    }
    assert [(t["try_number"], t["state"]) for t in run.tries("explode")] == [
        (1, "up_for_retry"),
        (2, "failed"),
    ]
    assert run.report["tasks"]["explode"]["note"].endswith("RuntimeError: boom on try 2")
    assert run.tries("after_explode") == [] and run.tries("after_maybe") == []
    assert run.report["state"] == "failed"
    assert run.xcom("cleanup") == "cleaned up"
    assert run.stdout.rstrip().endswith(
        "DAG run failed: 2 success, 1 failed, 1 upstream_failed, 2 skipped (exit status 1)"
    )


def test_task_timeout_stops_a_hanging_task(tmp_path):
    # 6 s, not less: the clock starts with the supervisor, which imports Airflow first (3-4 s on a
    # loaded VM); a SIGTERM before the runtime is up would test nothing of ours.
    run = bundle_run(FAILING, "--dag", "slow_dag", "--task-timeout", "6", tmp_path=tmp_path)
    assert run.returncode == 1, run.describe()
    assert run.states() == {"hang": "failed"}
    (only,) = run.tries("hang")
    assert only["note"].startswith("timed out after 6s (--task-timeout)")
    assert "hanging" in [r["event"] for r in only["log"]]
    assert only["duration"] < 20
    assert "Received SIGTERM" in " ".join(r["event"] for r in only["log"])


def test_a_lost_worker_fails_its_try_and_a_new_worker_runs_the_rest(tmp_path):
    run = bundle_run(FAILING, "--dag", "crash_dag", tmp_path=tmp_path)
    assert run.returncode == 1, run.describe()
    assert run.states() == {"kill_supervisor": "failed", "after_crash": "success"}
    (crashed,) = run.tries("kill_supervisor")
    assert "the worker process died while task kill_supervisor" in crashed["note"]
    assert run.xcom("after_crash") == "ran under a new worker"
    assert "starting a new worker (the previous one was lost)" in run.stderr


def test_state_file_carries_variables_xcoms_and_history_to_the_next_run(tmp_path):
    state = tmp_path / "state.db"
    env = clean_env(AIRFLOW_VAR_GREETING="hello from the environment")
    first = bundle_run(STATEFUL, "--state", state, tmp_path=tmp_path, env=env)
    assert first.returncode == 0, first.describe()
    assert first.xcom("look_back") == {
        "dag_runs": 1,
        "previous_run_id": None,
        "previous_count": None,
        "count": 1,
        "greeting": "hello from the environment",
    }
    second = bundle_run(STATEFUL, "--state", state, "--no-task-logs", tmp_path=tmp_path, env=env)
    assert second.returncode == 0, second.describe()
    assert second.xcom("count") == 2  # the variable written by the first run
    assert second.xcom("look_back") == {
        "dag_runs": 2,
        "previous_run_id": first.report["run_id"],
        "previous_count": 1,  # the first run's XCom
        "count": 2,
        "greeting": "hello from the environment",
    }
    assert "== Task logs" not in second.stdout
    db = sqlite3.connect(state)
    assert db.execute("SELECT value FROM variables WHERE key = 'runs_counted'").fetchone() == ("2",)
    assert [r[0] for r in db.execute("SELECT state FROM dag_runs ORDER BY run_after")] == [
        "success",
        "success",
    ]
    # A third run of one task only (and what it depends on: nothing here)
    third = bundle_run(
        STATEFUL, "--state", state, "--task", "count", "--run-id", "only-count", tmp_path=tmp_path, env=env
    )
    assert third.returncode == 0, third.describe()
    assert third.states() == {"count": "success"} and third.report["run_id"] == "only-count"
    assert third.xcom("count") == 3
    again = bundle_run(STATEFUL, "--state", state, "--run-id", "only-count", tmp_path=tmp_path, env=env)
    assert again.returncode == 2 and "already has run 'only-count'" in again.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((EXAMPLE, "--dag", "nope"), 2, "has no DAG 'nope'; its DAGs: simple_dag"),
        ((EXAMPLE, "--task", "nope"), 2, "DAG 'simple_dag' has no task 'nope'"),
        ((FAILING,), 2, "has 3 DAGs (crash_dag, failing_dag, slow_dag): choose one with --dag"),
        ((EXAMPLE, "--vars", "missing.yaml"), 2, "variables file missing.yaml does not exist"),
        ((EXAMPLE, "--vars", "bad.yaml"), 2, "variables file bad.yaml is not valid YAML"),
        ((EXAMPLE, "--conns", "bad.yaml"), 2, "connections file bad.yaml is not valid YAML"),
        ((EXAMPLE, "--state", "bad.yaml"), 2, "not a bundle-run state database"),
        (("no_such_file.py",), 2, "no such bundle file"),
        ((EXAMPLE, "--retry-delay-scale", "-1"), 2, "Invalid value for '--retry-delay-scale'"),
        ((EXAMPLE, "--run-id", "a/b"), 2, "Invalid value for '--run-id': 'a/b' does not match"),
        (("broken.py",), 4, "broken.py --dump-bundle-spec failed with exit status 2"),
    ],
)
def test_bad_input_fails_fast_with_a_defined_exit_status(tmp_path, args, code, message):
    (tmp_path / "bad.yaml").write_text("key: [unclosed\n")
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    run = bundle_run(*args, tmp_path=tmp_path, timeout=60)
    assert run.returncode == code, run.describe()
    assert message in run.stderr and run.stderr.startswith("error: "), run.stderr
    assert run.stdout == "" and run.report is None


def test_without_the_airflow_extra_it_says_what_to_install(tmp_path):
    """A real venv holding pybundle and its base dependencies, but not apache-airflow-task-sdk."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = tmp_path / "deps"  # only pybundle's declared dependencies, taken from this environment
    deps.mkdir()
    import click
    import msgpack
    import yaml

    for module in (click, msgpack, yaml):
        (deps / module.__name__).symlink_to(Path(module.__file__).parent)
    (Path(site) / "pybundle.pth").write_text(f"{ROOT}\n{deps}\n")
    probe = subprocess.run([str(python), "-c", "import airflow"], capture_output=True, env=clean_env())
    assert probe.returncode == 1  # the premise: no Airflow in this venv
    proc = subprocess.run(
        [str(python), "-m", "localrun", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == (
        "error: bundle-run runs tasks under Airflow's task supervisor, but apache-airflow-task-sdk is not "
        "installed. Install it with: pip install 'pybundle[airflow]'\n"
    )
    help_text = subprocess.run(
        [str(python), "-m", "localrun", "--help"], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert help_text.returncode == 0 and "pip install 'pybundle[airflow]'" in help_text.stdout


def test_airflow_cfg_example_routes_the_queue_to_the_executable_coordinator():
    """The example's [sdk] options are what the released coordinator accepts (the DAG file itself is
    generated and checked by tests/test_dagfile.py)."""
    from airflow.sdk.coordinators.executable import ExecutableCoordinator

    config = configparser.ConfigParser()
    config.read(EXAMPLE_DIR / "airflow.cfg.example")
    coordinators = json.loads(config["sdk"]["coordinators"])
    routes = json.loads(config["sdk"]["queue_to_coordinator"])
    key = routes["python-bundle"]
    assert coordinators[key]["classpath"] == "airflow.sdk.coordinators.executable.ExecutableCoordinator"
    ExecutableCoordinator(**coordinators[key]["kwargs"])  # the kwargs are accepted as written


def test_help_lists_every_option_and_exit_status():
    proc = subprocess.run([str(BIN / "bundle-run"), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for option in (
        "--dag",
        "--task",
        "--vars",
        "--conns",
        "--state",
        "--retry-delay-scale",
        "--task-timeout",
        "--conf",
    ):
        assert option in proc.stdout
    lines = [line.strip() for line in proc.stdout.splitlines()]
    for status, meaning in (
        (0, "every task succeeded or was skipped"),
        (1, "a task failed, is upstream_failed or was removed"),
        (2, "bad input: option, DAG/task id, variables/connections/state file"),
        (3, "apache-airflow-task-sdk is missing: pip install 'pybundle[airflow]'"),
        (4, "the bundle does not load, introspect or parse"),
    ):
        assert f"{status}    {meaning}" in lines
    assert "or a --conf the DAG's params refuse (nothing runs, as with Airflow's trigger)" in lines


def test_branch_and_short_circuit_end_as_in_airflow(tmp_path):
    """The DAG tests/e2e runs beside its Python twin: the same final states and XComs here
    (``SkipDownstreamTasks`` through the embedded API, then trigger rules decide the joins)."""
    from tests import branching_expected as expected

    bundle = ROOT / "tests" / "e2e" / "bundles" / "branching.py"
    run = bundle_run(bundle, "--dag", expected.BUNDLE_DAG, tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    assert run.states() == expected.STATES
    xcoms = {(x["task_id"], x["key"]): expected.sorted_lists(x["value"]) for x in run.report["xcoms"]}
    assert xcoms == expected.XCOMS
    assert run.report["tasks"]["right"]["note"] == "skipped by pick"
    assert run.tries("right") == [] and run.tries("after_gated") == []
