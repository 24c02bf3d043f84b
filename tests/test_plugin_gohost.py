"""go-plugin mode against the real consumer: a Go go-plugin v1.7.0 host (``tests/gohost``).

The host is built once per session with ``tests/gohost/build.sh`` into a cache directory keyed by the
sources. A build failure *fails* these tests (it never skips them): the machine is expected to have
Go and the module proxy. ``gohost`` says in its first output line whether it runs on the go-sdk's own
client packages or on the hashicorp/go-plugin fallback; the test output repeats it.

Besides the example bundle, ``gorefplugin`` (a genuine Go ``dag-bundle`` server) is run under the
same host to compare answers that must be identical (GetMetadata, the InvalidArgument text).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.plugin_host import EXAMPLE, ROOT, ExecutionApiServer

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
_NOTICED: list[dict[str, Any]] = []


def _wrapper(tmp_path: Path, name: str, argv: list[str]) -> Path:
    """An executable bundle file, as the Edge Worker's discovery expects (exec'd without arguments)."""
    path = tmp_path / name
    quoted = " ".join(f"'{a}'" for a in argv)
    path.write_text(f"#!/bin/sh\nexec {quoted}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def example_bundle(tmp_path: Path) -> Path:
    return _wrapper(tmp_path, "example_dags", [sys.executable, "-m", "bundle", "--bundle", str(EXAMPLE)])


def gohost(
    tools: dict[str, Path], bundle: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    full_env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_BUNDLE_MAGIC_COOKIE"}
    full_env.update(env or {})
    proc = subprocess.run(
        [str(tools["gohost"]), "-bundle", str(bundle), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=120,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    notice = next((e for e in events if e.get("event") == "notice"), None)
    if notice and not _NOTICED:
        _NOTICED.append(notice)
        print(f"gohost implementation: {notice.get('impl')}: {notice.get('message')}")
    return proc.returncode, events, proc.stderr


def by_event(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [e for e in events if e.get("event") == name]
    assert found, f"no {name!r} event in {events}"
    return found[-1]


def test_handshake_ping_metadata_and_kill(go_tools, example_bundle, tmp_path) -> None:
    rc, events, stderr = gohost(go_tools, example_bundle, "-ping", env={"AIRFLOW_HOME": str(tmp_path)})
    assert rc == 0, (events, stderr)
    started = by_event(events, "started")
    assert (started["network"], started["negotiated_version"], started["protocol"]) == ("unix", 1, "grpc")
    assert started["address"].startswith(tempfile.gettempdir())
    assert by_event(events, "ping")["ok"] is True
    meta = by_event(events, "metadata")
    assert (meta["name"], meta["version"], meta["has_version"]) == ("example_dags", "1.0.0", True)
    killed = by_event(events, "killed")
    assert killed["exited"] is True
    assert killed["seconds"] < 1.0, killed  # well inside go-plugin's 2 s kill deadline
    assert "plugin failed to exit gracefully" not in stderr
    assert "panic" not in stderr
    assert not os.path.exists(started["address"])
    print(f"Go host Kill(): {killed['seconds']:.3f}s")


def test_direct_script_launch(go_tools, tmp_path) -> None:
    bundle = _wrapper(tmp_path, "example_script", [sys.executable, str(EXAMPLE)])
    rc, events, stderr = gohost(go_tools, bundle, env={"AIRFLOW_HOME": str(tmp_path)})
    assert rc == 0, (events, stderr)
    assert by_event(events, "metadata")["version"] == "1.0.0"
    assert by_event(events, "killed")["seconds"] < 1.0


def test_metadata_matches_a_go_plugin(go_tools, example_bundle, write_bundle, tmp_path) -> None:
    """The same host reads the same answer from a Go server and from pybundle (versioned and not)."""
    env = {"AIRFLOW_HOME": str(tmp_path)}
    _, ours, _ = gohost(go_tools, example_bundle, env=env)
    _, theirs, _ = gohost(go_tools, go_tools["ref_versioned"], env=env)
    assert by_event(ours, "metadata") == by_event(theirs, "metadata")

    unversioned = write_bundle("from bundle import Bundle\nbundle = Bundle('unversioned')\n")
    wrapper = _wrapper(
        tmp_path, "unversioned", [sys.executable, "-m", "bundle", "--bundle", str(unversioned)]
    )
    _, ours, _ = gohost(go_tools, wrapper, env=env)
    _, theirs, _ = gohost(go_tools, go_tools["ref_unversioned"], env=env)
    assert by_event(ours, "metadata") == by_event(theirs, "metadata")
    assert by_event(ours, "metadata")["has_version"] is False


def _workload(ti_id: str, task_id: str, log_path: str | None = None) -> str:
    workload: dict[str, Any] = {
        "token": "go-host-token",
        "ti": {
            "id": ti_id,
            "dag_id": "simple_dag",
            "run_id": RUN_ID,
            "task_id": task_id,
            "map_index": -1,
            "try_number": 1,
            "hostname": "edge-worker-1",
        },
        "bundle_info": {"name": "example_dags", "version": "1.0.0"},
    }
    if log_path is not None:
        workload["log_path"] = log_path
    return json.dumps(workload)


def test_bad_uuid_matches_a_go_plugin(go_tools, example_bundle, tmp_path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path)}
    for bad in (
        "not-a-uuid",
        "gggggggg-0000-4000-8000-000000000001",
        "urn:uuix:00000000-0000-4000-8000-000000000001",
    ):
        args = ("-metadata=false", "-execute-json", _workload(bad, "extract"))
        _, ours, _ = gohost(go_tools, example_bundle, *args, env=env)
        _, theirs, _ = gohost(go_tools, go_tools["ref_versioned"], *args, env=env)
        mine, ref = by_event(ours, "execute"), by_event(theirs, "execute")
        assert (
            (mine["grpc_code"], mine["message"])
            == (ref["grpc_code"], ref["message"])
            == (
                "InvalidArgument",
                ref["message"],
            )
        )
        assert mine["message"].startswith("unable to parse UUID: ")


@pytest.fixture
def api_server():
    from tests.harness.execution_api import FakeExecutionAPI

    api = FakeExecutionAPI(connections={"orders_db": {"conn_type": "postgres", "host": "db", "port": 5432}})
    with ExecutionApiServer(api) as server:
        yield server


def test_execute_success_and_unknown_task(go_tools, example_bundle, api_server, tmp_path) -> None:
    api = api_server.api
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__EXECUTION_API_URL": api_server.url,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
    }
    ok_ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="extract", state="queued")
    rc, events, stderr = gohost(
        go_tools,
        example_bundle,
        "-metadata=false",
        "-execute-json",
        _workload(ok_ti, "extract", "extract.log"),
        env=env,
    )
    assert rc == 0, (events, stderr)
    assert by_event(events, "execute")["ok"] is True
    assert by_event(events, "killed")["seconds"] < 1.0
    assert api.ti_state(ok_ti) == "success"
    assert api.xcom("simple_dag", RUN_ID, "extract", "return_value")["source"] == "db"
    lines = (tmp_path / "logs" / "extract.log").read_text().splitlines()
    assert any(json.loads(line)["event"] == "Task succeeded" for line in lines)

    missing_ti = api.add_task_instance(dag_id="simple_dag", run_id=RUN_ID, task_id="missing", state="queued")
    rc, events, stderr = gohost(
        go_tools,
        example_bundle,
        "-metadata=false",
        "-execute-json",
        _workload(missing_ti, "missing"),
        env=env,
    )
    assert rc == 0, (events, stderr)
    assert by_event(events, "execute")["ok"] is True
    assert api.ti_state(missing_ti) == "failed"
    api.assert_clean()
    assert "panic" not in stderr
