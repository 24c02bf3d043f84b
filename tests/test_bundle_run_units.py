"""``bundle-run``'s parts without a supervisor: trigger rules, the DAG model, inputs, the target
check, the state store, the embedded Execution API (answers validated with the task SDK's own
client models), the worker channel and the output formatting. Milliseconds each."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from localrun.api import ExecutionAPI
from localrun.channel import Channel, ChannelClosed
from localrun.dagmodel import DagSpec, TaskSpec
from localrun.errors import BundleError, UsageError
from localrun.inputs import EnvSecrets, load_connections, load_variables
from localrun.progress import LineProgress
from localrun.rules import RUN, SKIPPED, UPSTREAM_FAILED, decide
from localrun.store import Store, iso, utcnow
from localrun.target import resolve_target
from localrun.tasklog import format_log, last_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bundle" / "example_dags.py"


# -- trigger rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "upstream", "expected"),
    [
        ("all_success", [], RUN),
        ("all_success", ["success", "success"], RUN),
        ("all_success", ["success", "failed"], UPSTREAM_FAILED),
        ("all_success", ["upstream_failed", "skipped"], UPSTREAM_FAILED),
        ("all_success", ["success", "skipped"], SKIPPED),
        ("all_success", ["success", "removed"], RUN),
        ("all_failed", ["failed", "upstream_failed"], RUN),
        ("all_failed", ["failed", "success"], SKIPPED),
        ("all_done", ["failed", "skipped", "success"], RUN),
        ("one_success", ["failed", "success"], RUN),
        ("one_success", ["skipped", "skipped"], SKIPPED),
        ("one_success", ["failed", "skipped"], UPSTREAM_FAILED),
        ("one_failed", ["success", "upstream_failed"], RUN),
        ("one_failed", ["success", "skipped"], SKIPPED),
        ("one_done", ["upstream_failed", "skipped"], SKIPPED),
        ("one_done", ["failed"], RUN),
        ("none_failed", ["success", "skipped"], RUN),
        ("none_failed", ["success", "upstream_failed"], UPSTREAM_FAILED),
        ("none_failed_min_one_success", ["skipped", "skipped"], SKIPPED),
        ("none_failed_min_one_success", ["skipped", "success"], RUN),
        ("none_failed_min_one_success", ["removed"], UPSTREAM_FAILED),
        ("none_skipped", ["success", "failed"], RUN),
        ("none_skipped", ["skipped"], SKIPPED),
        ("all_skipped", ["skipped", "skipped"], RUN),
        ("all_skipped", ["skipped", "success"], SKIPPED),
        ("all_done_min_one_success", ["failed", "success"], RUN),
        ("all_done_min_one_success", ["failed", "upstream_failed"], UPSTREAM_FAILED),
        ("all_done_min_one_success", ["success", "skipped"], SKIPPED),
        ("always", ["failed", "upstream_failed"], RUN),
    ],
)
def test_trigger_rules_decide_like_airflow_once_upstream_is_done(rule, upstream, expected):
    assert decide(rule, upstream) == expected


def test_setup_teardown_rule_is_refused():
    with pytest.raises(ValueError, match="unsupported trigger rule 'all_done_setup_success'"):
        decide("all_done_setup_success", ["success"])


# -- DAG model ---------------------------------------------------------------------------------------
def _dag() -> DagSpec:
    def task(task_id: str, up: tuple[str, ...], down: tuple[str, ...]) -> TaskSpec:
        return TaskSpec(task_id, up, down)

    return DagSpec(
        "d",
        {
            "c": task("c", ("a", "b"), ()),
            "a": task("a", (), ("c",)),
            "b": task("b", (), ("c", "e")),
            "e": task("e", ("b",), ()),
        },
    )


def test_topological_order_keeps_declared_order_among_ready_tasks():
    assert _dag().topological_order() == ["a", "b", "c", "e"]


def test_task_selection_adds_upstream_tasks():
    dag = _dag()
    assert dag.with_upstream(["c"]) == ["a", "b", "c"]
    assert dag.with_upstream(["e"]) == ["b", "e"]
    assert sorted(dag.leaves(["a", "b", "c"])) == ["c"]


def test_a_cycle_is_reported():
    dag = DagSpec("d", {"a": TaskSpec("a", ("b",), ("b",)), "b": TaskSpec("b", ("a",), ("a",))})
    with pytest.raises(ValueError, match="cycle through a, b"):
        dag.topological_order()


def test_retry_wait_follows_airflow():
    plain = TaskSpec("t", (), (), retries=3, retry_delay=5.0)
    assert [plain.retry_wait(n) for n in (1, 2, 3)] == [5.0, 5.0, 5.0]
    assert plain.retry_wait(1, override=2.5) == 2.5  # RetryTask's delay wins
    backoff = TaskSpec("t", (), (), retry_delay=2.0, retry_exponential_backoff=3.0, max_retry_delay=30.0)
    assert [backoff.retry_wait(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 30.0]


# -- inputs -----------------------------------------------------------------------------------------
def test_variables_file_stores_non_strings_as_json(tmp_path):
    path = tmp_path / "vars.yaml"
    path.write_text("plain: text\nnumber: 5\nsettings:\n  currency: EUR\nempty:\n")
    assert load_variables(path) == {
        "plain": "text",
        "number": "5",
        "settings": '{"currency": "EUR"}',
        "empty": None,
    }


def test_connections_file_takes_uris_and_field_mappings(tmp_path):
    path = tmp_path / "conns.json"
    path.write_text(
        json.dumps(
            {
                "db": {
                    "conn_type": "postgres",
                    "host": "h",
                    "port": 5432,
                    "password": "pw",
                    "extra": {"a": 1},
                },
                "api": "http://user:p%40ss@example.com:8080/base?timeout=3",
            }
        )
    )
    conns = load_connections(path)
    assert conns["db"]["extra"] == '{"a": 1}' and conns["db"]["port"] == 5432
    assert conns["api"]["password"] == "p@ss"
    assert (conns["api"]["host"], conns["api"]["port"], conns["api"]["schema"]) == (
        "example.com",
        8080,
        "base",
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("v.yaml", "a: [1, 2\n", "is not valid YAML: .*line 2"),
        ("v.json", "{'a': 1}", "is not valid JSON"),
        ("v.yaml", "- a\n- b\n", "must hold a mapping at the top level, got list"),
    ],
)
def test_bad_variables_files_are_usage_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_variables(path)


def test_missing_and_malformed_connection_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_connections(tmp_path / "nope.yaml")
    path = tmp_path / "c.yaml"
    path.write_text("db:\n  hostname: x\n")
    with pytest.raises(UsageError, match=r"connection 'db': unknown field.*hostname"):
        load_connections(path)
    path.write_text("db:\n  port: eighty\n")
    with pytest.raises(UsageError, match="port must be an integer"):
        load_connections(path)


def test_environment_secrets_are_looked_up_like_airflow():
    env = EnvSecrets.from_environ(
        {
            "AIRFLOW_VAR_MY_KEY": "v",
            "AIRFLOW_CONN_DB": "postgres://u:pw@h:1/s",
            "AIRFLOW_CONN_BAD": "nonsense",
        }
    )
    assert env.variable("my_key") == "v"
    assert env.connection("db")["password"] == "pw"
    assert env.connection("bad") is None
    assert env.problems() == [
        "AIRFLOW_CONN_BAD is neither a connection URI nor a JSON object: the value is not a connection "
        "URI (it needs a scheme, the connection type, as in 'postgres://login:password@host:5432/schema')"
    ]  # never the value itself: it may hold a password (tests/test_connection_secrets.py)


# -- target -----------------------------------------------------------------------------------------
def _fake_packed(
    tmp_path: Path, name: str = "packed", *, damage: bool = False, executable: bool = True
) -> Path:
    import hashlib
    import struct

    binary, source, manifest = b"#!/bin/sh\nexit 0\n", b"# dags\n", b'dags:\n  d:\n    tasks: ["t"]\n'
    trailer = struct.pack("<III", len(source), len(manifest), 1) + hashlib.sha256(binary).digest()
    trailer += bytes(12) + b"AFBNDL01"
    path = tmp_path / name
    path.write_bytes((b"#!/bin/sh\nexit 1\n" if damage else binary) + source + manifest + trailer)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_packed_and_source_targets_are_told_apart(tmp_path):
    packed = resolve_target(str(_fake_packed(tmp_path)))
    assert packed.packed and packed.manifest["dags"] == {"d": {"tasks": ["t"]}}
    assert packed.command == [str((tmp_path / "packed").resolve())]
    source = resolve_target(f"{EXAMPLE}:bundle")
    assert not source.packed and source.command[-3:] == ["bundle", "--bundle", str(EXAMPLE)]
    assert resolve_target("some.module:obj").command[-1] == "some.module:obj"


def test_damaged_or_unusable_packed_bundles_are_refused(tmp_path):
    with pytest.raises(BundleError, match="does not match the trailer's SHA-256"):
        resolve_target(str(_fake_packed(tmp_path, "damaged", damage=True)))
    with pytest.raises(UsageError, match="not executable; run: chmod \\+x"):
        resolve_target(str(_fake_packed(tmp_path, "plain", executable=False)))
    with pytest.raises(UsageError, match="no such bundle file"):
        resolve_target(str(tmp_path / "missing.py"))
    import zipfile

    with zipfile.ZipFile(tmp_path / "b.zip", "w") as archive:
        archive.writestr("airflow-metadata.yaml", "dags: {}")
    with pytest.raises(UsageError, match="is a ZIP bundle"):
        resolve_target(str(tmp_path / "b.zip"))


# -- store and API ----------------------------------------------------------------------------------
def _api(store: Store | None = None, env: EnvSecrets | None = None) -> tuple[ExecutionAPI, Store, str]:
    store = store or Store()
    now = iso(utcnow())
    if store.get_dag_run("d", "r") is None:
        store.create_dag_run(dag_id="d", run_id="r", logical_date=now, run_after=now, state="queued")
        store.create_task_instance(dag_id="d", run_id="r", task_id="t", max_tries=1, queue="q")
    ti_id = store.start_next_try(store.ti("d", "r", "t")["id"])["id"]
    return ExecutionAPI(store, env), store, ti_id


def _call(api: ExecutionAPI, method: str, path: str, body=None, query=()):
    response = api.handle(method, path, list(query), json.dumps(body) if body is not None else None)
    return response.status, response.body, response.headers


def _run_body() -> dict:
    return {"state": "running", "hostname": "h", "unixname": "u", "pid": 42, "start_date": iso(utcnow())}


def test_api_lifecycle_retry_and_heartbeat_conflicts():
    api, store, ti_id = _api()
    status, context, _ = _call(api, "PATCH", f"/task-instances/{ti_id}/run", _run_body())
    assert status == 200 and context["should_retry"] is True and context["dag_run"]["state"] == "running"
    assert _call(api, "PATCH", f"/task-instances/{ti_id}/run", _run_body())[0] == 409  # already running
    assert _call(api, "PUT", f"/task-instances/{ti_id}/heartbeat", {"hostname": "h", "pid": 42})[0] == 204
    assert _call(api, "PUT", f"/task-instances/{ti_id}/heartbeat", {"hostname": "h", "pid": 7})[0] == 409
    retry = {
        "state": "up_for_retry",
        "end_date": iso(utcnow()),
        "retry_delay_seconds": 1.5,
        "retry_reason": "x",
    }
    assert _call(api, "PATCH", f"/task-instances/{ti_id}/state", retry)[0] == 204
    ti = store.ti_by_id(ti_id)
    assert (ti["state"], ti["retry_delay_override"], ti["note"]) == ("up_for_retry", 1.5, "x")
    assert _call(api, "PUT", f"/task-instances/{ti_id}/heartbeat", {"hostname": "h", "pid": 42})[0] == 409
    second = store.start_next_try(ti_id)
    assert second["id"] != ti_id and second["try_number"] == 2
    assert store.history("d", "r", "t")[0]["state"] == "up_for_retry"
    _, context, _ = _call(api, "PATCH", f"/task-instances/{second['id']}/run", _run_body())
    assert context["should_retry"] is False  # try 2 of 1 retry


def test_api_variables_connections_and_env_precedence():
    env = EnvSecrets.from_environ({"AIRFLOW_VAR_SHADOWED": "from env", "AIRFLOW_CONN_ENVDB": "mysql://h"})
    api, store, _ = _api(env=env)
    store.set_variable("shadowed", "from state")
    assert _call(api, "GET", "/variables/shadowed")[1] == {"key": "shadowed", "value": "from env"}
    assert _call(api, "GET", "/variables/missing")[0] == 404
    assert _call(api, "PUT", "/variables/a/b", {"val": "v", "description": None})[0] == 201
    assert _call(api, "GET", "/variables/keys", query=[("prefix", "a")])[1] == {
        "keys": ["a/b"],
        "total_entries": 1,
    }
    assert _call(api, "DELETE", "/variables/a/b")[0] == 204
    assert _call(api, "GET", "/connections/envdb")[1]["conn_type"] == "mysql"
    assert _call(api, "GET", "/connections/nope")[0] == 404


def test_api_xcoms_are_cleared_for_a_new_try_and_sequences_work():
    api, _, ti_id = _api()
    base = "/xcoms/d/r/t/return_value"
    assert _call(api, "POST", base, {"a": 1})[0] == 201
    assert _call(api, "GET", base)[1] == {"key": "return_value", "value": {"a": 1}}
    for index, value in enumerate(["x", "y", "z"]):
        _call(api, "POST", "/xcoms/d/r/m/seq", value, query=[("map_index", str(index))])
    assert _call(api, "HEAD", "/xcoms/d/r/m/seq")[2] == {"Content-Range": "map_indexes 3"}
    assert _call(api, "GET", "/xcoms/d/r/m/seq/item/-1")[1] == "z"
    assert _call(api, "GET", "/xcoms/d/r/m/seq/slice", query=[("start", "1")])[1] == ["y", "z"]
    _call(api, "PATCH", f"/task-instances/{ti_id}/run", _run_body())
    assert _call(api, "GET", base)[0] == 404  # entering running cleared the task's own XComs


def test_api_records_unhandled_requests():
    api, _, _ = _api()
    assert _call(api, "GET", "/no/such/route")[0] == 404
    assert api.problems == ["unhandled request GET /no/such/route (answered 404)"]


def test_api_answers_validate_against_the_task_sdk_client_models():
    models = pytest.importorskip("airflow.sdk.api.datamodels._generated")
    api, store, ti_id = _api()
    store.put_connection({"conn_id": "db", "conn_type": "postgres", "host": "h", "port": 1, "extra": "{}"})
    store.set_variable("v", "1")
    _, context, _ = _call(api, "PATCH", f"/task-instances/{ti_id}/run", _run_body())
    checks = [
        (models.TIRunContext, context),
        (models.DagRun, _call(api, "GET", "/dag-runs/d/r")[1]),
        (models.DagRunStateResponse, _call(api, "GET", "/dag-runs/d/r/state")[1]),
        (models.ConnectionResponse, _call(api, "GET", "/connections/db")[1]),
        (models.VariableResponse, _call(api, "GET", "/variables/v")[1]),
        (models.VariableKeysResponse, _call(api, "GET", "/variables/keys")[1]),
        (models.TaskStatesResponse, _call(api, "GET", "/task-instances/states", query=[("dag_id", "d")])[1]),
        (
            models.PrevSuccessfulDagRunResponse,
            _call(api, "GET", f"/task-instances/{ti_id}/previous-successful-dagrun")[1],
        ),
        (models.DagResponse, _call(api, "GET", "/dags/d")[1]),
        (models.PreviousTIResponse, _call(api, "GET", "/task-instances/previous/d/t")[1]),
        (
            models.InactiveAssetsResponse,
            _call(api, "GET", f"/task-instances/{ti_id}/validate-inlets-and-outlets")[1],
        ),
    ]
    for model, body in checks:
        model.model_validate(body)
    assert _call(api, "GET", "/task-instances/count", query=[("dag_id", "d"), ("states", "running")])[1] == 1
    assert _call(api, "GET", "/dag-runs/count", query=[("dag_id", "d")])[1] == 1
    assert api.problems == []


def test_state_file_survives_and_rejects_foreign_files(tmp_path):
    path = tmp_path / "state.db"
    store = Store(path)
    store.set_variable("k", "v")
    store.close()
    assert Store(path).get_variable("k") == (True, "v")
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    with pytest.raises(UsageError, match="not a bundle-run state database"):
        Store(junk)


# -- channel ----------------------------------------------------------------------------------------
def test_channel_round_trips_large_messages_and_reports_eof():
    left, right = socket.socketpair()
    a, b = Channel(left), Channel(right)
    payload = {"op": "api", "body": "x" * 300_000}
    thread = threading.Thread(target=a.send, args=(payload,))
    thread.start()
    assert b.recv(timeout=5) == payload
    thread.join()
    assert b.recv(timeout=0.05) is None
    a.close()
    with pytest.raises(ChannelClosed):
        b.recv(timeout=1)


# -- output -----------------------------------------------------------------------------------------
def test_task_log_lines_are_readable_and_keep_masking():
    log = "\n".join(
        json.dumps(r)
        for r in (
            {
                "timestamp": "2026-01-01T10:00:00.123456Z",
                "level": "debug",
                "event": "password ***",
                "logger": "x",
            },
            {
                "timestamp": "2026-01-01T10:00:01.000000Z",
                "level": "error",
                "event": "Task failed",
                "logger": "bundle.runtime",
                "try": 1,
                "error_detail": [
                    {
                        "exc_type": "ValueError",
                        "exc_value": "bad",
                        "frames": [{"filename": "f.py", "lineno": 3, "name": "task"}],
                    }
                ],
            },
        )
    )
    lines = format_log(log + "\nnot json\n")
    assert lines[0] == "10:00:00.123 DEBUG    x: password ***"
    assert lines[1] == "10:00:01.000 ERROR    bundle.runtime: Task failed try=1"
    assert lines[2:5] == [
        "    Traceback (most recent call last):",
        '      File "f.py", line 3, in task',
        "    ValueError: bad",
    ]
    assert lines[-1].endswith("not json")
    assert last_error(log) == "ValueError: bad"


def test_plain_progress_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = LineProgress(stream)
    progress.begin("d", "r", ["a", "b"], {"a": 2, "b": 1})
    progress.update("a", "running", 1, None, None)
    progress.retry_at("a", __import__("time").time() + 3)
    progress.update("a", "up_for_retry", 1, 0.5, None)
    progress.update("b", "upstream_failed", 0, None, "trigger rule all_success: upstream failed")
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines[0] == "a: running (try 1/2)"
    assert lines[1].startswith("a: up_for_retry (try 1/2, 0.5s), retrying in ")
    assert lines[2] == "b: upstream_failed (not run) - trigger rule all_success: upstream failed"


def test_worker_environment_drops_airflow_config_but_keeps_secrets():
    from localrun.app import worker_env

    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = "/somewhere"
    os.environ["AIRFLOW_VAR_KEEP"] = "1"
    try:
        env = worker_env(Path(os.environ.get("TMPDIR", "/tmp")), "debug")
    finally:
        del os.environ["AIRFLOW__CORE__DAGS_FOLDER"], os.environ["AIRFLOW_VAR_KEEP"]
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in env and env["AIRFLOW_VAR_KEEP"] == "1"
    assert env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "DEBUG"
    assert env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _screen(raw: str) -> list[str]:
    """Replay the cursor-up / clear-line sequences the live view writes; return the final screen."""
    import re

    screen: list[str] = []
    row = 0
    for token in re.split(r"(\x1b\[\d*[FK]|\n)", raw):
        if not token:
            continue
        if match := re.fullmatch(r"\x1b\[(\d*)F", token):
            row -= int(match.group(1) or 1)
        elif token == "\x1b[2K":
            if row < len(screen):
                screen[row] = ""
        elif token == "\n":
            row += 1
        else:
            while len(screen) <= row:
                screen.append("")
            screen[row] += re.sub(r"\x1b\[[\d;]*m", "", token)
    return [line for line in screen if line]


def test_live_progress_redraws_in_place_and_fits_small_terminals(monkeypatch):
    from localrun.progress import LiveProgress

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "40")
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    live = LiveProgress(terminal)
    live.status("starting")
    live.begin("d", "r1", ["extract", "load"], {"extract": 1, "load": 2})
    live.update("extract", "running", 1, None, None)
    live.update("extract", "success", 1, 1.25, None)
    live.update("load", "failed", 2, 0.5, "RuntimeError: boom")
    live.status(None)
    live.end()
    screen = _screen(terminal.getvalue())
    assert screen[0].startswith("bundle-run d · r1")
    assert screen[1].split() == ["extract", "✔", "success", "try", "1/1", "1.2s"]
    assert screen[2].split()[:6] == ["load", "✘", "failed", "try", "2/2", "0.5s"]
    assert screen[2].endswith("RuntimeError: boom") and len(screen) == 3  # the status line is gone

    monkeypatch.setenv("LINES", "5")
    terminal = _Terminal()
    live = LiveProgress(terminal)
    live.begin("d", "r1", [f"t{i}" for i in range(10)], {})
    live.update("t3", "running", 1, None, None)
    live.end()
    screen = _screen(terminal.getvalue())
    assert (
        len(screen) == 3
        and screen[1].strip() == "9 waiting"
        and screen[2].split()[:3] == ["t3", "▶", "running"]
    )
