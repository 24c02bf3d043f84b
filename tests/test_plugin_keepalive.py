"""go-plugin mode's Execution API client reuses keep-alive connections (``bundle/plugin/httppool.py``).

Real sockets against local HTTP/1.1 servers that count the connections they accept: the calls of
one client, of several clients with different tokens (one per Execute), and of several Executes in
a real plugin process share one connection; a connection the server closed is replaced without an
error and without resending a request that is not safe to resend; deadlines still cut a trickling
answer, without a thread per request.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bundle.plugin import api as api_module
from bundle.plugin import httppool
from bundle.plugin import runner as runner_module


class CountingServer:
    """An HTTP/1.1 keep-alive server that counts accepted connections and records each request
    as (connection number, method, path, token). ``behaviour(n_on_connection, handler)`` decides
    per request: ``"answer"``, ``"answer-then-close"`` (answer without ``Connection: close``, then
    drop the socket, as a server whose keep-alive timeout expires) or ``"close"`` (read the request
    and drop the socket without answering: the close racing the request)."""

    def __init__(
        self,
        behaviour: Callable[[int, BaseHTTPRequestHandler], str] | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.connections = 0
        self.requests: list[tuple[int, str, str, str]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        outer = self
        decide = behaviour or (lambda n, h: "answer")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer.connections += 1
                    self.number = outer.connections
                self.seen = 0

            def _handle(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.seen += 1
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                outer.requests.append((self.number, self.command, self.path, token))
                action = decide(self.seen, self)
                if action == "close":
                    self.close_connection = True
                    return
                if action == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    while not outer.release.wait(0.05):
                        try:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                        except OSError:
                            break
                    self.close_connection = True
                    return
                body = json.dumps({"n": len(outer.requests)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if action == "answer-then-close":
                    self.wfile.flush()
                    self.close_connection = True

            do_GET = do_PUT = do_PATCH = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme, self.host = "http", "127.0.0.1"
        if tls is not None:  # the handshake happens at accept
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme, self.host = "https", "localhost"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self._server.server_address[1]}/execution/"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., CountingServer]]:
    servers: list[CountingServer] = []

    def start(
        behaviour: Callable[[int, BaseHTTPRequestHandler], str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> CountingServer:
        server = CountingServer(behaviour, tls)
        servers.append(server)
        return server

    yield start
    httppool.close_all_idle()
    for server in servers:
        server.close()


def test_requests_of_several_clients_and_tokens_share_one_connection(serve):
    server = serve()
    first = api_module.ExecutionApiClient(server.url, "token-1")
    second = api_module.ExecutionApiClient(server.url, "token-2")  # the next Execute's client
    for _ in range(3):
        first.request("PATCH", "task-instances/a/run", json_body={"state": "running"})
    second.request("PUT", "task-instances/b/heartbeat", json_body={"pid": 1})
    second.request("GET", "variables/x")
    assert server.connections == 1
    assert [(conn, token) for conn, _, _, token in server.requests] == [
        (1, "token-1"),
        (1, "token-1"),
        (1, "token-1"),
        (1, "token-2"),
        (1, "token-2"),
    ]


def test_tls_connections_are_reused_verified_and_replaced_when_closed(serve, tmp_path, monkeypatch):
    """Over TLS (the server's certificate checked against a CA the test trusts): one connection
    for several requests and tokens, a new verified one once the server closed it while idle."""
    pytest.importorskip("cryptography")
    from bundle.plugin.mtls import generate_server_cert

    identity = generate_server_cert()  # self-signed for "localhost", usable as its own CA
    (tmp_path / "cert.pem").write_bytes(identity.cert_pem)
    (tmp_path / "key.pem").write_bytes(identity.key_pem)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    monkeypatch.setattr(httppool, "_ssl_context", None)  # the process's context, rebuilt with the CA
    server = serve(lambda n, h: "answer-then-close" if n == 3 else "answer", tls)
    first = api_module.ExecutionApiClient(server.url, "token-1")
    second = api_module.ExecutionApiClient(server.url, "token-2")
    first.request("PATCH", "task-instances/a/run", json_body={})
    second.request("GET", "variables/a")
    first.request("PATCH", "task-instances/a/state", json_body={})  # answered, then the server closes
    assert server.connections == 1
    time.sleep(0.1)
    began = time.monotonic()
    assert second.request("GET", "variables/b").status == 200
    assert time.monotonic() - began < api_module.RETRY_WAIT_SECONDS[0]
    assert [(c, token) for c, _, _, token in server.requests] == [
        (1, "token-1"),
        (1, "token-2"),
        (1, "token-1"),
        (2, "token-2"),
    ]
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setattr(httppool, "_ssl_context", None)
    untrusted = api_module.ExecutionApiClient(server.url.replace("localhost", "127.0.0.1"), "t")
    with pytest.raises(api_module.ApiError, match="SSLCertVerificationError"):
        untrusted.request("GET", "variables/c", attempts=1)  # a new origin: its own, verified, connection


def test_concurrent_requests_each_get_their_own_connection(serve):
    """The heartbeat thread and the task never write on the same socket: one in flight, two sockets."""
    gate = threading.Event()

    def hold_slow(n: int, handler: BaseHTTPRequestHandler) -> str:
        if not handler.path.endswith("/fast"):
            gate.wait(5)
        return "answer"

    server = serve(hold_slow)
    client = api_module.ExecutionApiClient(server.url, "t")
    slow = threading.Thread(target=client.request, args=("GET", "slow"))
    slow.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    client.request("GET", "fast")  # answered while "slow" still holds its connection
    gate.set()
    slow.join(5)
    assert server.connections == 2
    client.request("GET", "fast")
    client.request("GET", "fast")
    assert server.connections == 2  # both went back to the pool


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(serve):
    server = serve(lambda n, h: "answer-then-close")
    client = api_module.ExecutionApiClient(server.url, "t")
    client.request("PATCH", "task-instances/a/run", json_body={})
    time.sleep(0.1)  # the server's FIN arrives while the connection idles in the pool
    began = time.monotonic()
    response = client.request("PATCH", "task-instances/a/state", json_body={})
    assert response.status == 200
    assert time.monotonic() - began < api_module.RETRY_WAIT_SECONDS[0]  # no failed attempt, no backoff
    assert server.connections == 2
    assert [method for _, method, _, _ in server.requests] == ["PATCH", "PATCH"]  # sent once each


def test_a_close_racing_an_idempotent_request_resends_it_once_at_once(serve):
    # The second request on each connection is read, then the connection dropped unanswered:
    # what a server whose keep-alive timeout fires as the request arrives does.
    server = serve(lambda n, h: "close" if n == 2 else "answer")
    client = api_module.ExecutionApiClient(server.url, "t")
    client.request("GET", "variables/a")
    began = time.monotonic()
    response = client.request("PUT", "task-instances/a/heartbeat", json_body={}, attempts=1)
    assert response.status == 200
    assert time.monotonic() - began < api_module.RETRY_WAIT_SECONDS[0]
    assert [(conn, method) for conn, method, _, _ in server.requests] == [(1, "GET"), (1, "PUT"), (2, "PUT")]


def test_a_close_racing_a_non_idempotent_request_is_not_resent_behind_the_callers_back(serve):
    """``PATCH .../run`` may have been processed: it is a failed attempt like any lost connection,
    retried (or not) by the caller's attempt count, never silently sent twice."""
    server = serve(lambda n, h: "close" if n == 2 else "answer")
    client = api_module.ExecutionApiClient(server.url, "t")
    client.request("GET", "variables/a")
    with pytest.raises(api_module.ApiError) as info:
        client.request("PATCH", "task-instances/a/run", json_body={}, attempts=1)
    assert info.value.status is None and "RemoteDisconnected" in str(info.value)
    assert [(conn, method) for conn, method, _, _ in server.requests] == [(1, "GET"), (1, "PATCH")]
    client.request("GET", "variables/b")  # the dead connection was not pooled
    assert server.connections == 2


class _BrokenSend:
    """A socket whose writes fail as on a connection reset by the peer; the rest is the real one."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_a_request_that_never_got_out_is_resent_on_a_new_connection(serve):
    server = serve()
    client = api_module.ExecutionApiClient(server.url, "t")
    client.request("GET", "variables/a")
    pool = httppool.pool_for("http", "127.0.0.1", server._server.server_address[1])
    conn, reused = pool.acquire(1.0)
    assert reused
    conn.sock = _BrokenSend(conn.sock)  # type: ignore[assignment]
    pool.release(conn)
    response = client.request("PATCH", "task-instances/a/state", json_body={"state": "success"}, attempts=1)
    assert response.status == 200
    assert [(c, method) for c, method, _, _ in server.requests] == [(1, "GET"), (2, "PATCH")]


def test_a_request_goes_out_in_one_write(serve):
    """Header block and body together: a server reads a whole request with one wake-up."""
    server = serve()
    client = api_module.ExecutionApiClient(server.url, "t")
    client.request("GET", "variables/a")
    pool = httppool.pool_for("http", "127.0.0.1", server._server.server_address[1])
    conn, _ = pool.acquire(1.0)
    writes: list[bytes] = []

    class Recording(_BrokenSend):
        def sendall(self, data: bytes) -> None:
            writes.append(bytes(data))
            self._sock.sendall(data)

    conn.sock = Recording(conn.sock)  # type: ignore[assignment]
    pool.release(conn)
    client.request("PATCH", "task-instances/a/state", json_body={"state": "success"})
    assert len(writes) == 1
    assert writes[0].startswith(b"PATCH /execution/task-instances/a/state HTTP/1.1\r\n")
    assert writes[0].endswith(b'\r\n\r\n{"state": "success"}')


def test_a_cut_answer_is_bounded_and_its_connection_not_reused(serve):
    server = serve(lambda n, h: "trickle" if h.path.endswith("/slow") else "answer")
    client = api_module.ExecutionApiClient(server.url, "t", timeout=0.2)
    client.request("GET", "variables/a")
    began = time.monotonic()
    with pytest.raises(api_module.ApiError) as info:
        client.request("GET", "slow", attempts=1)
    assert "no complete answer within 0.6 s" in str(info.value)
    assert 0.55 <= time.monotonic() - began < 1.5
    assert client.request("GET", "variables/b").status == 200
    assert [c for c, _, _, _ in server.requests] == [1, 1, 2]


def test_requests_start_no_thread_each(serve):
    """One deadline thread per process bounds every exchange: no ``threading.Timer`` per call."""
    server = serve()
    client = api_module.ExecutionApiClient(server.url, "t")
    client.request("GET", "variables/a")
    started: list[str] = []
    original = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    threading.Thread.start = spy  # type: ignore[method-assign]
    try:
        for _ in range(20):
            client.request("PATCH", "task-instances/a/run", json_body={})
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert started == []
    assert [t.name for t in threading.enumerate()].count("pybundle-api-deadlines") == 1


def test_deadlines_fire_in_order_and_not_once_disarmed():
    deadlines = httppool.Deadlines(name="test-deadlines")
    fired: list[str] = []
    late = deadlines.arm(0.3, lambda: fired.append("late"))
    early = deadlines.arm(0.05, lambda: fired.append("early"))  # earlier than every pending one
    gone = deadlines.arm(0.1, lambda: fired.append("gone"))
    assert deadlines.disarm(gone) is False
    time.sleep(0.5)
    assert fired == ["early", "late"]
    assert deadlines.disarm(early) is True and deadlines.disarm(late) is True


def test_a_task_shorter_than_the_heartbeat_interval_starts_no_heartbeat_thread(serve, monkeypatch):
    server = serve()
    client = api_module.ExecutionApiClient(server.url, "t")
    context = runner_module.build_context(
        runner_module.Workload("t", uuid.uuid4(), "d", "r", "work", 1, -1, None, "b", None, None),
        {},
        "host",
    )

    class Log:
        def log(self, *args: Any, **fields: Any) -> None:
            pass

    monkeypatch.setenv(runner_module.HEARTBEAT_INTERVAL_ENV, "5")
    quick = runner_module._Heartbeat(client, "ti", "host", context, Log())  # type: ignore[arg-type]
    with quick:
        pass
    assert quick._thread.ident is None  # never started
    monkeypatch.setenv(runner_module.HEARTBEAT_INTERVAL_ENV, "0.05")
    slow = runner_module._Heartbeat(client, "ti", "host", context, Log())  # type: ignore[arg-type]
    with slow:
        time.sleep(0.4)
    beats = [r for r in server.requests if r[2].endswith("/heartbeat")]
    assert slow._thread.ident is not None and not slow._thread.is_alive()
    assert 4 <= len(beats) <= 9  # first beat one interval in, then every interval
    assert server.connections == 1  # every beat on the same keep-alive connection


# -- the real plugin: several Executes, one connection -------------------------------------------------
BUNDLE = """
    from bundle import Bundle, Client

    bundle = Bundle("keepalive", version="1")
    dag = bundle.dag("d")


    @dag.task
    def work(client: Client) -> None:
        client.get_variable("limit")
"""


def test_executes_of_a_plugin_share_one_connection(write_bundle, tmp_path: Path):
    pytest.importorskip("airflow.api_fastapi.execution_api.datamodels")
    from tests.harness.execution_api import FakeExecutionAPI
    from tests.plugin_host import ExecutionApiServer, PluginHost, bundle_command, execute_request

    api = FakeExecutionAPI(variables={"limit": "5"})
    bundle_path = write_bundle(BUNDLE, name="keepalive_bundle.py")
    home = tmp_path / "home"
    home.mkdir()
    with ExecutionApiServer(api) as server:
        accepted: list[Any] = []
        get_request = server._server.get_request

        def counting() -> Any:
            pair = get_request()
            accepted.append(pair[1])
            return pair

        server._server.get_request = counting  # type: ignore[method-assign]
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__EXECUTION_API_URL": server.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
        }
        tis = [
            api.add_task_instance(dag_id="d", run_id=f"r{i}", task_id="work", state="queued")
            for i in range(3)
        ]
        with PluginHost.start(bundle_command(bundle_path), env=env) as host:
            for i, ti in enumerate(tis):
                host.execute(
                    execute_request(
                        ti_id=ti,
                        dag_id="d",
                        run_id=f"r{i}",
                        task_id="work",
                        token=f"token-{i}",
                        bundle_name="keepalive",
                        bundle_version="1",
                    ),
                    timeout=30,
                )
            host.kill()
        api.assert_clean()
        assert [api.ti_state(ti) for ti in tis] == ["success"] * 3
        assert len(server.requests) == 9  # run, variable, state per Execute
        tokens = [r.headers["authorization"] for r in server.requests]
        assert tokens == [f"Bearer token-{i}" for i in range(3) for _ in range(3)]
        assert len(accepted) == 1, accepted
