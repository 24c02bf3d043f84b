"""A pure-Python go-plugin host for tests, behaving like go-plugin v1.7.0's client as Airflow uses it.

``PluginHost.start`` launches a bundle with the host's environment plus the magic cookie and
``PLUGIN_MIN_PORT`` / ``PLUGIN_MAX_PORT`` / ``PLUGIN_PROTOCOL_VERSIONS`` (stdin shared, stdout and
stderr piped), reads the *first* stdout line, validates it the way ``client.go`` does (raising
``HandshakeError`` with go-plugin's wording), dials the address, and opens the stdio and broker
streams a real host opens on connect. ``kill()`` is ``Client.Kill()``: Shutdown RPC, close the
connection, wait up to 2 s, then SIGKILL.

Every stderr line is parsed like go-plugin's ``logStderr``: a JSON object is an hclog record whose
``@message``/``@level``/``@timestamp`` must be strings (the real host panics otherwise, so
``hclog_problems`` collects violations for tests to assert on).

``ExecutionApiServer`` serves ``tests.harness.execution_api.FakeExecutionAPI`` over real HTTP on
127.0.0.1, so the plugin's stdlib client talks to a socket while the fake validates every body with
the Execution API's own pydantic models.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bundle.plugin._generated.bundle.v1 import plugin_pb2, plugin_pb2_grpc
from bundle.plugin._generated.plugin import (
    grpc_broker_pb2,
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bundle" / "example_dags.py"
COOKIE_KEY = "AIRFLOW_BUNDLE_MAGIC_COOKIE"
COOKIE_VALUE = "23C6AB18-91F9-4760-B3E8-328EF3C861AB"
CORE_PROTOCOL_VERSION = 1
KILL_GRACE_SECONDS = 2.0
HCLOG_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


class HandshakeError(Exception):
    """What go-plugin's ``Client.Start`` would have returned."""


@dataclass
class Handshake:
    raw: str
    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str
    server_cert: str
    multiplex: str | None
    seconds: float


@dataclass
class KillResult:
    graceful: bool  # the process exited within the grace period after Shutdown
    seconds: float  # Shutdown call → process exit
    shutdown_seconds: float  # how long the Shutdown RPC itself took
    returncode: int | None


@dataclass
class PluginHost:
    """One plugin process and the host-side connection to it."""

    proc: subprocess.Popen[bytes]
    handshake: Handshake | None = None
    channel: grpc.Channel | None = None
    stderr_lines: list[str] = field(default_factory=list)
    stdio: list[tuple[int, bytes]] = field(default_factory=list)
    later_stdout: list[bytes] = field(default_factory=list)
    _lines: queue.Queue[bytes | None] = field(default_factory=queue.Queue)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stdio_call: Any = None
    _broker_call: Any = None

    # -- launch -----------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cookie: str | None = COOKIE_VALUE,
        versions: Sequence[int] = (1,),
        cwd: Path | None = None,
        timeout: float = 30.0,
        connect: bool = True,
    ) -> PluginHost:
        """Launch like ``Client.Start`` and (by default) connect like ``Client.Client``."""
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in (COOKIE_KEY, "PYTHONUNBUFFERED") and not k.startswith("PLUGIN_")
        }
        full_env.update(env or {})
        if cookie is not None:
            full_env[COOKIE_KEY] = cookie
        full_env.setdefault("PLUGIN_MIN_PORT", "10000")
        full_env.setdefault("PLUGIN_MAX_PORT", "25000")
        full_env.setdefault("PLUGIN_PROTOCOL_VERSIONS", ",".join(str(v) for v in versions))
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv), env=full_env, cwd=cwd or ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        host = cls(proc)
        host._pump(proc.stdout, host._on_stdout)
        host._pump(proc.stderr, host._on_stderr)
        try:
            host.handshake = host._read_handshake(started, timeout, versions)
            if connect:
                host.connect()
        except BaseException:
            host.terminate()
            raise
        return host

    def _pump(self, stream: Any, sink: Any) -> None:
        def run() -> None:
            for line in iter(stream.readline, b""):
                sink(line)
            sink(None)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _on_stdout(self, line: bytes | None) -> None:
        if self.handshake is not None and line is not None:
            self.later_stdout.append(line)  # a real host drains and discards these
        self._lines.put(line)

    def _on_stderr(self, line: bytes | None) -> None:
        if line is not None:
            self.stderr_lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def _read_handshake(self, started: float, timeout: float, versions: Sequence[int]) -> Handshake:
        try:
            first = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise HandshakeError("timeout while waiting for plugin to start") from None
        if first is None:
            self.proc.wait(5)
            raise HandshakeError(
                f"plugin exited before we could connect (exit {self.proc.returncode}): "
                f"Unrecognized remote plugin message: \n{self.stderr_text()}"
            )
        seconds = time.monotonic() - started
        raw = first.decode("utf-8", "replace")
        line = raw.strip()
        parts = line.split("|")
        if len(parts) < 4:
            raise HandshakeError(f"Unrecognized remote plugin message: {line}")
        core = int(parts[0])
        if core != CORE_PROTOCOL_VERSION:
            raise HandshakeError(
                f"Incompatible core API version with plugin. Plugin version: {parts[0]}, "
                f"Core version: {CORE_PROTOCOL_VERSION}"
            )
        app = int(parts[1])
        if app not in versions:
            raise HandshakeError(
                f"Incompatible API version with plugin. Plugin version: {app}, "
                f"Client versions: [{' '.join(str(v) for v in versions)}]"
            )
        network, address = parts[2], parts[3]
        if network not in ("unix", "tcp"):
            raise HandshakeError("unknown address type")
        protocol = parts[4] if len(parts) > 4 else "netrpc"
        if protocol != "grpc":
            raise HandshakeError(f"unsupported plugin protocol {protocol!r}")
        cert = parts[5] if len(parts) > 5 else ""
        mux = parts[6] if len(parts) > 6 else None
        return Handshake(raw, core, app, network, address, protocol, cert, mux, seconds)

    def connect(self, *, client_cert: tuple[bytes, bytes] | None = None) -> None:
        """Dial and open the stdio and broker streams, as go-plugin's gRPC client does."""
        hs = self.handshake
        assert hs is not None
        target = f"unix:{hs.address}" if hs.network == "unix" else hs.address
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        if len(hs.server_cert) > 50:  # go-plugin treats field 6 as a certificate only then
            der = base64.b64decode(hs.server_cert + "=" * (-len(hs.server_cert) % 4), validate=True)
            import ssl

            pem = ssl.DER_cert_to_PEM_cert(der).encode()
            key, chain = client_cert or (None, None)
            creds = grpc.ssl_channel_credentials(
                root_certificates=pem, private_key=key, certificate_chain=chain
            )
            options.append(("grpc.ssl_target_name_override", "localhost"))
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self._stdio_call = grpc_stdio_pb2_grpc.GRPCStdioStub(self.channel).StreamStdio(empty_pb2.Empty())
        self._broker_requests: queue.Queue[Any] = queue.Queue()
        self._broker_call = grpc_broker_pb2_grpc.GRPCBrokerStub(self.channel).StartStream(
            iter(self._broker_requests.get, None)
        )
        self._consume(self._stdio_call, lambda m: self.stdio.append((int(m.channel), bytes(m.data))))
        self._consume(self._broker_call, lambda m: None)

    def _consume(self, call: Any, sink: Any) -> None:
        def run() -> None:
            try:
                for message in call:
                    sink(message)
            except grpc.RpcError:
                pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- RPCs -------------------------------------------------------------------------------
    def ping(self, service: str = "plugin") -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status

    def metadata(self) -> plugin_pb2.BundleInfo:
        stub = plugin_pb2_grpc.DagBundleStub(self.channel)
        return stub.GetMetadata(plugin_pb2.GetMetadata.Request(), timeout=30).bundle

    def execute(
        self, request: plugin_pb2.Execute.Request, timeout: float | None = 60
    ) -> plugin_pb2.Execute.Response:
        return plugin_pb2_grpc.DagBundleStub(self.channel).Execute(request, timeout=timeout)

    def send_broker(self, service_id: int = 1) -> None:
        self._broker_requests.put(
            grpc_broker_pb2.ConnInfo(service_id=service_id, network="unix", address="/nowhere")
        )

    def kill(self) -> KillResult:
        """``Client.Kill()``: Shutdown (no deadline), close the connection, wait 2 s, then SIGKILL."""
        began = time.monotonic()
        shutdown_seconds = 0.0
        if self.channel is not None:
            try:
                grpc_controller_pb2_grpc.GRPCControllerStub(self.channel).Shutdown(
                    grpc_controller_pb2.Empty()
                )
            except grpc.RpcError:
                pass
            shutdown_seconds = time.monotonic() - began
            self._broker_requests.put(None)
            self.channel.close()
        graceful = True
        try:
            self.proc.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            graceful = False
            self.proc.kill()
            self.proc.wait(10)
        seconds = time.monotonic() - began
        self._join()
        return KillResult(graceful, seconds, shutdown_seconds, self.proc.returncode)

    def terminate(self) -> None:
        """Test cleanup: make sure the process is gone (SIGTERM first, so it removes its socket;
        a real host SIGKILLs, which leaves the socket file behind for Go plugins too)."""
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._join()

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5)

    # -- inspection -------------------------------------------------------------------------
    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)

    def hclog_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.stderr_lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
        return records

    def hclog_problems(self) -> list[str]:
        """Stderr JSON lines that would crash or confuse the Go host."""
        problems = []
        for record in self.hclog_records():
            for key in ("@message", "@level", "@timestamp"):
                if key in record and not isinstance(record[key], str):
                    problems.append(f"{key} is {type(record[key]).__name__} in {record}")
            stamp = record.get("@timestamp")
            if isinstance(stamp, str):
                try:
                    datetime.strptime(stamp, HCLOG_TIMESTAMP)
                except ValueError:
                    problems.append(f"bad @timestamp {stamp!r}")
            if record.get("@level") not in (None, "trace", "debug", "info", "warn", "error"):
                problems.append(f"unknown @level in {record}")
        return problems

    def stdio_text(self, channel: int | None = None) -> str:
        return b"".join(d for c, d in list(self.stdio) if channel is None or c == channel).decode(
            "utf-8", "replace"
        )

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


def bundle_command(target: Path = EXAMPLE, *, module_mode: bool = True) -> list[str]:
    """``python -m bundle --bundle FILE`` or the file run directly (its ``serve(bundle)`` main)."""
    if module_mode:
        return [sys.executable, "-m", "bundle", "--bundle", str(target)]
    return [sys.executable, str(target)]


def execute_request(
    *,
    ti_id: str,
    dag_id: str = "simple_dag",
    run_id: str = "manual__2026-01-01T00:00:00+00:00",
    task_id: str = "extract",
    try_number: int = 1,
    map_index: int | None = -1,
    token: str = "workload-token",
    bundle_name: str = "example_dags",
    bundle_version: str | None = "1.0.0",
    log_path: str | None = None,
    hostname: str | None = None,
) -> plugin_pb2.Execute.Request:
    """What the Edge Worker's ``ExecuteTaskWorkload`` builds (absent optionals stay absent)."""
    ti = plugin_pb2.TaskInstance(
        id=plugin_pb2.UUID(value=ti_id), dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number
    )
    if map_index is not None:
        ti.map_index = map_index
    if hostname is not None:
        ti.hostname = hostname
    info = plugin_pb2.BundleInfo(name=bundle_name)
    if bundle_version is not None:
        info.version = bundle_version
    task = plugin_pb2.ExecuteTaskWorkload(token=token, ti=ti, bundle_info=info)
    if log_path is not None:
        task.log_path = log_path
    return plugin_pb2.Execute.Request(task=task)


# -- a real HTTP front for the fake Execution API ---------------------------------------------------
def write_response(
    handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], content: bytes
) -> None:
    """Answer with ``content`` and its length; hop-by-hop headers from the fake are dropped."""
    handler.send_response(status)
    for key, value in headers.items():
        if key.lower() not in ("content-length", "transfer-encoding", "connection"):
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(content)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(content)


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ExecutionApiServer:
    """``FakeExecutionAPI`` behind ``http.server`` on 127.0.0.1 (ephemeral port), under ``prefix``."""

    def __init__(self, api: Any, prefix: str = "/execution"):
        import httpx

        self.api = api
        self.prefix = prefix
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(SeenRequest(self.command, self.path, headers, body))
                path = self.path
                if outer.prefix and path.startswith(outer.prefix + "/"):
                    path = path[len(outer.prefix) :]
                request = httpx.Request(
                    self.command, f"http://execution-api.test{path}", headers=headers, content=body
                )
                try:
                    with outer._lock:
                        response = outer.api(request)
                    status, content = response.status_code, response.content
                    out_headers = dict(response.headers)
                except Exception as exc:  # a bug in the fake: answer 4xx so the plugin does not retry
                    status, content, out_headers = 418, json.dumps({"detail": str(exc)}).encode(), {}
                write_response(self, status, out_headers, content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}/"

    def __enter__(self) -> ExecutionApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every call the fake recorded, in order."""
        return [(c.method, c.path) for c in self.api.calls]


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def iter_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text().splitlines():
        if line.strip():
            yield json.loads(line)


__all__ = [
    "EXAMPLE",
    "ExecutionApiServer",
    "HandshakeError",
    "PluginHost",
    "bundle_command",
    "execute_request",
    "iter_json_lines",
    "wait_for",
]
