"""Figure 5's second half: what an ``Execute`` costs beyond a no-op gRPC call on the same server.

The plugin runs a task that does nothing, so an ``Execute`` is the RPC plus the Execution API
calls every task makes (``PATCH .../run``, ``PATCH .../state``; heartbeats run on a thread) against
a local HTTP stub that answers at once. The no-op call is ``grpc.health.v1.Health/Check`` on the
same channel: the floor of any RPC to that server.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bundle._stdout import COOKIE_KEY
from bundle.plugin import COOKIE_VALUE

from .measure import BENCH_BUNDLE, PYTHON, subject_env
from .stub_supervisor import startup_details

# What the go-plugin host sets for a plugin (the product's own cookie constants).
COOKIE = {COOKIE_KEY: COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "1"}


class _ExecutionApiStub(BaseHTTPRequestHandler):
    """Answers the calls a no-op task makes; anything else is a 404 the figure reports."""

    unexpected: list[str] = []
    connections = 0  # accepted: the plugin's keep-alive reuse shows as 1 for the whole figure
    disable_nagle_algorithm = True  # as uvicorn does: headers and body go out as two writes
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server offers

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def _answer(self, status: int, body: object = None) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b"" if body is None else json.dumps(body, default=lambda d: d.isoformat()).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PATCH(self) -> None:
        if self.path.endswith("/run"):
            self._answer(200, startup_details(task_id="noop")["ti_context"])
        elif self.path.endswith("/state"):
            self._answer(204)
        else:
            self.unexpected.append(f"PATCH {self.path}")
            self._answer(404, {"detail": "not in the benchmark stub"})

    def do_PUT(self) -> None:
        if self.path.endswith("/heartbeat"):
            self._answer(204)
        else:
            self.unexpected.append(f"PUT {self.path}")
            self._answer(404, {"detail": "not in the benchmark stub"})

    def log_message(self, *args: object) -> None:
        pass


def execute_overhead(calls: int) -> tuple[float, float, list[str], int]:
    """Median seconds of an ``Execute`` (no-op task) and of a ``Health/Check``, alternated; the
    unexpected requests; the connections the plugin opened to the Execution API."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from bundle.plugin._generated.bundle.v1 import plugin_pb2, plugin_pb2_grpc

    http = ThreadingHTTPServer(("127.0.0.1", 0), _ExecutionApiStub)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    _ExecutionApiStub.unexpected = []
    _ExecutionApiStub.connections = 0
    with tempfile.TemporaryDirectory(prefix="bench-execute-") as scratch:
        env = subject_env(
            {
                **COOKIE,
                "PLUGIN_UNIX_SOCKET_DIR": scratch,
                "AIRFLOW__EXECUTION_API_URL": f"http://127.0.0.1:{http.server_address[1]}/execution",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": scratch,
                "AIRFLOW_HOME": scratch,
            }
        )
        proc = subprocess.Popen(
            [PYTHON, "-m", "bundle", "--bundle", str(BENCH_BUNDLE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            line = proc.stdout.readline().decode()
            fields = line.strip().split("|")
            if len(fields) < 5 or fields[2] != "unix":
                raise RuntimeError(f"no go-plugin handshake line: {line!r}")
            with grpc.insecure_channel(f"unix:{fields[3]}") as channel:
                bundle_stub = plugin_pb2_grpc.DagBundleStub(channel)
                health_stub = health_pb2_grpc.HealthStub(channel)

                def execute() -> float:
                    ti = plugin_pb2.TaskInstance(
                        id=plugin_pb2.UUID(value=str(uuid.uuid4())),
                        dag_id="bench_dag",
                        run_id="manual__bench",
                        task_id="noop",
                        try_number=1,
                    )
                    ti.map_index = -1
                    info = plugin_pb2.BundleInfo(name="bench")
                    info.version = "1"
                    request = plugin_pb2.Execute.Request(
                        task=plugin_pb2.ExecuteTaskWorkload(token="bench", ti=ti, bundle_info=info)
                    )
                    started = time.perf_counter()
                    bundle_stub.Execute(request, timeout=30)
                    return time.perf_counter() - started

                def check() -> float:
                    started = time.perf_counter()
                    health_stub.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=30)
                    return time.perf_counter() - started

                execute(), check()  # warm-up: the first Execute loads the runner
                executes, checks = [], []
                for _ in range(calls):
                    executes.append(execute())
                    checks.append(check())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            http.shutdown()
            http.server_close()
    return (
        statistics.median(executes),
        statistics.median(checks),
        list(_ExecutionApiStub.unexpected),
        _ExecutionApiStub.connections,
    )


if __name__ == "__main__":  # a quick look: python -m bench.plugin_execute
    print(execute_overhead(int(os.environ.get("CALLS", "20"))))
