"""go-plugin mode on a shared host: what another local user or a hostile request can (not) do.

* ``Execute``'s ``log_path`` cannot reach outside the base log folder (absolute, ``..``, a symlink
  out of it, NUL): INVALID_ARGUMENT before anything is created or sent, whatever the token.
* The Unix socket is private whatever the umask: a second uid (``nobody``) cannot connect.
* Requests are bounded (4 MiB by default, configurable): a larger one is RESOURCE_EXHAUSTED and the
  plugin keeps serving.
* What a task prints reaches the host (``GRPCStdio``) masked, like its log records.

A real plugin process and the Python go-plugin host of ``tests/plugin_host.py``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.plugin_host import (
    ExecutionApiServer,
    PluginHost,
    bundle_command,
    execute_request,
    iter_json_lines,
    wait_for,
)

pytest.importorskip("airflow.api_fastapi.execution_api.datamodels")

from bundle.plugin.settings import DEFAULT_MAX_RECEIVE_BYTES, MAX_RECEIVE_KEY, env_key
from tests.harness.execution_api import FakeExecutionAPI
from tests.peers.second_user import NOBODY, as_user

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
PASSWORD = "hunter22-conn-password"
SECRET_VARIABLE = "s3cr3t-warehouse-token"

BUNDLE = """
    import sys
    from bundle import Bundle, Client

    bundle = Bundle("trust", version="1")
    dag = bundle.dag("d")


    @dag.task
    def noisy(client: Client) -> None:
        password = client.get_connection("orders_db").password
        token = client.get_variable("warehouse_api_token")
        print(f"password={password} token={token}")
        print(f"partial {password}", end="", flush=True)
        sys.stderr.write(f"stderr {token}\\n")
        sys.stderr.flush()
"""


@pytest.fixture
def api() -> FakeExecutionAPI:
    return FakeExecutionAPI(
        variables={"warehouse_api_token": SECRET_VARIABLE},
        connections={"orders_db": {"conn_type": "postgres", "host": "db", "password": PASSWORD}},
    )


@pytest.fixture
def server(api: FakeExecutionAPI) -> Iterator[ExecutionApiServer]:
    with ExecutionApiServer(api) as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: ExecutionApiServer) -> dict[str, str]:
    home = tmp_path / "airflow_home"
    home.mkdir()
    (tmp_path / "logs").mkdir()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__EXECUTION_API_URL": server.url,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
    }


def request(ti: str, task_id: str = "noisy", **kwargs) -> object:
    return execute_request(
        ti_id=ti, dag_id="d", task_id=task_id, bundle_name="trust", bundle_version="1", **kwargs
    )


# -- log_path ----------------------------------------------------------------------------------
def test_a_log_path_outside_the_log_folder_is_refused_before_anything_is_written(
    api, env, tmp_path, write_bundle
):
    logs = tmp_path / "logs"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (logs / "escape").symlink_to(tmp_path)  # a symlink inside the folder that points out of it
    (logs / "link.log").symlink_to(victim)
    bad = [
        "../victim.txt",
        str(victim),
        "a/../../victim.txt",
        "escape/victim.txt",
        "escape/new-dir/x.log",
        "link.log",
        "x\x00.log",
        "",
        ".",
    ]
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id="noisy", state="queued")
    path = write_bundle(BUNDLE, name="trust_bundle.py")
    before = sorted(p.name for p in tmp_path.iterdir())
    with PluginHost.start(bundle_command(path), env=env) as host:
        for log_path in bad:
            with pytest.raises(grpc.RpcError) as caught:
                host.execute(request(ti, log_path=log_path, token="bogus"), timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (log_path, caught.value)
            assert "log_path" in caught.value.details()
        assert host.ping() == 1  # still serving
        assert host.kill().graceful
    assert victim.read_text() == "precious"
    assert not (tmp_path / "new-dir").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert sorted(p.name for p in logs.iterdir()) == ["escape", "link.log"]
    assert api.calls == []  # refused before the Execution API is asked anything


def test_a_log_path_inside_the_folder_still_works(api, env, tmp_path, write_bundle):
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id="noisy", state="queued")
    path = write_bundle(BUNDLE, name="trust_bundle.py")
    with PluginHost.start(bundle_command(path), env=env) as host:
        host.execute(request(ti, log_path="dag_id=d/a/../attempt=1.log"), timeout=60)
        assert host.kill().graceful
    assert api.ti_state(ti) == "success"
    assert (tmp_path / "logs" / "dag_id=d" / "attempt=1.log").is_file()


def test_task_log_file_keeps_every_path_inside_the_folder(tmp_path):
    from bundle.plugin.tasklog import LogPathError, task_log_file

    base = tmp_path / "logs"
    base.mkdir()
    (base / "out").symlink_to(tmp_path)
    (base / "in").symlink_to(base / "sub", target_is_directory=True)
    assert task_log_file(str(base), "a/b.log") == base / "a" / "b.log"
    assert task_log_file(str(base), "a/../b.log") == base / "b.log"
    assert task_log_file(str(base), "in/c.log") == base / "sub" / "c.log"  # a link that stays inside
    for bad in ("", ".", "a/..", "..", "../x", "/etc/passwd", "out/x", "out/../../x", "x\x00y"):
        with pytest.raises(LogPathError):
            task_log_file(str(base), bad)
    assert sorted(p.name for p in base.iterdir()) == ["in", "out"]  # checking creates nothing


# -- who can connect -------------------------------------------------------------------------------
def connect_as(uid: int, path: str) -> int:
    """Connect to the Unix socket ``path`` from a child running as ``uid``; 0 or the errno."""
    return as_user(uid, lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_another_user_cannot_connect_even_under_umask_000(env, tmp_path):
    # A socket parent every user can enter and write, like /tmp: only the plugin's own directory
    # and socket modes can keep the second user out.
    shared = tempfile.mkdtemp(prefix="pybundle-shared-sockets-", dir="/tmp")
    os.chmod(shared, 0o1777)
    old = os.umask(0)
    try:
        host = PluginHost.start(bundle_command(), env={**env, "PLUGIN_UNIX_SOCKET_DIR": shared})
    finally:
        os.umask(old)
    try:
        address = host.handshake.address
        assert host.handshake.network == "unix"
        assert connect_as(NOBODY, address) == errno.EACCES
        assert Path(address).parent.parent == Path(shared)
        assert stat.S_IMODE(os.stat(Path(address).parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(address).st_mode) == 0o600
        assert connect_as(os.getuid(), address) == 0  # the plugin's own user (the host) can
        assert host.ping() == 1
        assert host.kill().graceful
        assert os.listdir(shared) == []  # socket and its directory removed
    finally:
        host.terminate()
        os.rmdir(shared)


# -- message size ----------------------------------------------------------------------------------
def huge(size: int) -> object:
    return request("0" * 36, token="x" * size)


def test_a_request_over_4_mib_is_resource_exhausted_and_the_plugin_keeps_serving(env):
    assert DEFAULT_MAX_RECEIVE_BYTES == 4 * 1024 * 1024
    with PluginHost.start(bundle_command(), env=env) as host:
        with pytest.raises(grpc.RpcError) as caught:
            host.execute(huge(DEFAULT_MAX_RECEIVE_BYTES + 1024), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # just under the bound is read (and refused for its bad UUID, not for its size)
        with pytest.raises(grpc.RpcError) as caught:
            host.execute(huge(DEFAULT_MAX_RECEIVE_BYTES - 1024), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert host.ping() == 1 and host.metadata().name == "example_dags"
        assert host.kill().graceful


def test_the_request_bound_is_configurable(env, tmp_path):
    limited = {**env, env_key(MAX_RECEIVE_KEY): str(64 * 1024)}
    with PluginHost.start(bundle_command(), env=limited) as host:
        with pytest.raises(grpc.RpcError) as caught:
            host.execute(huge(100 * 1024), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert host.ping() == 1
        assert host.kill().graceful
    home = Path(env["AIRFLOW_HOME"])
    (home / "go-sdk.yaml").write_text("pybundle:\n  max-receive-message-bytes: 65536\n")
    with PluginHost.start(bundle_command(), env=env) as host:
        with pytest.raises(grpc.RpcError) as caught:
            host.execute(huge(100 * 1024), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert host.kill().graceful


@pytest.mark.parametrize("value", ["-1", "0", "lots", "4294967296"])
def test_a_bad_request_bound_is_one_init_error(env, value):
    from tests.plugin_host import HandshakeError

    with pytest.raises(HandshakeError) as caught:
        PluginHost.start(bundle_command(), env={**env, env_key(MAX_RECEIVE_KEY): value})
    errors = [json.loads(line) for line in str(caught.value).splitlines() if line.startswith("{")]
    errors = [e for e in errors if e.get("@level") == "error"]
    assert len(errors) == 1 and MAX_RECEIVE_KEY in errors[0]["error"], caught.value
    assert "exit 1" in str(caught.value)


# -- masking -------------------------------------------------------------------------------------
def test_a_tasks_prints_are_masked_like_its_log_records(api, env, tmp_path, write_bundle):
    ti = api.add_task_instance(dag_id="d", run_id=RUN_ID, task_id="noisy", state="queued")
    path = write_bundle(BUNDLE, name="trust_bundle.py")
    with PluginHost.start(bundle_command(path), env=env) as host:
        host.execute(request(ti, log_path="noisy.log"), timeout=60)
        # a line without its newline goes out after a short silence
        assert wait_for(lambda: "partial" in host.stdio_text(), timeout=5), host.stdio_text()
        killed = host.kill()
    assert killed.graceful
    assert api.ti_state(ti) == "success"
    stdio = host.stdio_text()
    assert "password=*** token=***" in stdio, stdio  # the prints did arrive, masked
    assert "partial ***" in stdio and "stderr ***" in stdio, stdio
    log_text = (tmp_path / "logs" / "noisy.log").read_text()
    everything = (
        stdio
        + host.stderr_text()
        + log_text
        + "".join(json.dumps(event) for event in iter_json_lines(tmp_path / "logs" / "noisy.log"))
    )
    assert PASSWORD not in everything and SECRET_VARIABLE not in everything
