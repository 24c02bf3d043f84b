"""Hardening: broken peers never hang the coordinator runtime; bad input ends it fast and clearly.

Two kinds of peer:

* the RELEASED supervisor (``tests.harness.run_task``), which the harness can signal or SIGKILL
  at a chosen point — used for every scenario it can produce;
* ``CraftedPeer``, plain sockets that inject what no healthy supervisor sends (garbage frames,
  a comm channel closed mid-request, a log socket closed or never read). It does not imitate
  the supervisor's behaviour beyond the bytes of one ``StartupDetails``; it injects bad input.

The table in ``docs/reliability.md`` lists these scenarios with the times measured here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bundle.coordinator.frames import encode_response
from tests.harness.execution_api import FakeExecutionAPI, Fault
from tests.harness.supervised import run_task

from .conftest import ROOT

DAG = "hard_dag"
RUN = "manual__2026-01-01"

HARDENING_BUNDLE = '''
"""Tasks for the coordinator hardening tests (written to a temporary file by the tests)."""

import logging
import os
import sys
import time
import warnings

from bundle import Bundle, Client, Context, serve

bundle = Bundle("hardening", version="1", queue="pybundle")
dag = bundle.dag("hard_dag", schedule=None)


@dag.task
def quick() -> str:
    return "done"


@dag.task
def asks(client: Client, log: logging.Logger) -> str:
    log.info("asking for a variable")
    return client.get_variable("anything")


@dag.task
def sleeps(log: logging.Logger) -> None:
    log.info("sleeping")
    time.sleep(60)


@dag.task
def chatty(log: logging.Logger) -> int:
    """Log HARDENING_LINES records of about 1 KB, numbered, as fast as possible."""
    count = int(os.environ.get("HARDENING_LINES", "20000"))
    padding = "x" * 1000
    for i in range(count):
        log.info("line %d %s", i, padding)
    return count


@dag.task
def chatty_forever(log: logging.Logger) -> None:
    log.info("chatty forever started")
    padding = "y" * 1000
    i = 0
    while True:
        log.info("line %d %s", i, padding)
        i += 1


@dag.task
def steady(log: logging.Logger) -> int:
    """Log a numbered record every 20 ms for HARDENING_SECONDS seconds; return how many."""
    deadline = time.monotonic() + float(os.environ.get("HARDENING_SECONDS", "8"))
    padding = "z" * int(os.environ.get("HARDENING_PADDING", "0"))
    pause = float(os.environ.get("HARDENING_PAUSE", "0.02"))
    count = 0
    while time.monotonic() < deadline:
        log.info("tick %d %s", count, padding, extra={"at": time.monotonic()})
        count += 1
        time.sleep(pause)
    return count


@dag.task
def unanswered(client: Client, log: logging.Logger) -> None:
    """Block in a request the released supervisor drops without an answer (an unknown type).

    It goes through the transport directly: the client's own validation would refuse it."""
    log.info("sending a request the supervisor will not answer")
    client._transport({"type": "NoSuchRequest"})
    log.info("the unanswered request returned")


@dag.task
def slow_api(client: Client, log: logging.Logger) -> None:
    """Block while the supervisor is busy retrying a failing Execution API call."""
    log.info("asking for a variable the API fails on")
    client.get_variable("flaky")


@dag.task
def leaks(client: Client, log: logging.Logger) -> None:
    """Every way a task can put a secret into its log; the tests assert none arrives unmasked."""
    conn = client.get_connection("db")
    password = conn.password
    token = client.get_variable("api_secret")
    log.info("message args %s and %s", password, token)
    log.warning(f"f-string {password} {token}")
    log.info(
        "extras",
        extra={"pw": password, "nested": {"items": [token, {"deep": password}]}, "pair": (password, 1)},
    )
    log.info("extra key", extra={"k_" + password: 1})
    log.info("fields the supervisor passes on by name", extra={"self": password, "method_name": token})
    log.info("connection repr %r and extra %s", conn, conn.extra_dejson)
    print(f"stdout print {password} {token}", flush=True)
    print(f"stderr print {password} {token}", file=sys.stderr, flush=True)
    warnings.warn(f"warning {password}", stacklevel=1)
    try:
        try:
            raise KeyError(password)
        except KeyError as inner:
            raise RuntimeError(f"outer {token}") from inner
    except RuntimeError as exc:
        exc.add_note(f"note {password}")
        log.exception("handled %s", password)
    raise ValueError(f"final {password} {token}")


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
'''


@pytest.fixture(scope="session")
def hardening_bundle() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pybundle-hardening-") as directory:
        path = Path(directory) / "hardening_bundle.py"
        path.write_text(textwrap.dedent(HARDENING_BUNDLE))
        yield path


def command(bundle_path: Path) -> list[str]:
    return [sys.executable, "-m", "bundle", "--bundle", str(bundle_path)]


# ---------------------------------------------------------------------------------------------------
# CraftedPeer: plain sockets that inject bad input
# ---------------------------------------------------------------------------------------------------
def startup_details(task_id: str, **overrides: Any) -> dict[str, Any]:
    """The shape of the released supervisor's first frame (spec §9), for injection tests only."""
    now = datetime.now(timezone.utc)
    body: dict[str, Any] = {
        "ti": {
            "id": str(uuid.uuid4()),
            "task_id": task_id,
            "dag_id": DAG,
            "run_id": RUN,
            "try_number": 1,
            "dag_version_id": str(uuid.uuid4()),
            "map_index": -1,
            "hostname": None,
            "context_carrier": None,
            "queue": "pybundle",
        },
        "dag_rel_path": "dags/stub.py",
        "bundle_info": {"name": "hardening", "version": None},
        "start_date": now,
        "ti_context": {
            "dag_run": {"dag_id": DAG, "run_id": RUN, "logical_date": now, "run_type": "manual", "conf": {}},
            "max_tries": 0,
            "should_retry": False,
        },
        "sentry_integration": "",
        "type": "StartupDetails",
    }
    body.update(overrides)
    return body


class _Drain(threading.Thread):
    """Reads a pipe or socket to EOF into memory, so the runtime never blocks writing to it."""

    def __init__(self, read: Any):
        super().__init__(daemon=True)
        self._read, self.data = read, bytearray()

    def run(self) -> None:
        try:
            while chunk := self._read(65536):
                self.data += chunk
        except (OSError, ValueError):
            pass


class CraftedPeer:
    """Bind comm + logs, start the runtime, accept both; then the test injects what it wants."""

    def __init__(
        self,
        bundle_path: Path,
        *,
        env: dict[str, str] | None = None,
        read_logs: bool = True,
        logs_rcvbuf: int | None = None,
    ):
        self.comm_server = socket.create_server(("127.0.0.1", 0))
        self.logs_server = socket.create_server(("127.0.0.1", 0))
        if logs_rcvbuf:
            self.logs_server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, logs_rcvbuf)
        self.proc = subprocess.Popen(
            [
                *command(bundle_path),
                f"--comm=127.0.0.1:{self.comm_server.getsockname()[1]}",
                f"--logs=127.0.0.1:{self.logs_server.getsockname()[1]}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        self.stdout, self.stderr = _Drain(self.proc.stdout.read1), _Drain(self.proc.stderr.read1)
        self.stdout.start()
        self.stderr.start()
        for server in (self.comm_server, self.logs_server):
            server.settimeout(15)
        try:
            self.comm, _ = self.comm_server.accept()
            self.logs, _ = self.logs_server.accept()
        except BaseException:  # the runtime never connected: leave nothing behind
            self.proc.kill()
            self.proc.wait(10)
            for closable in (self.comm_server, self.logs_server, self.proc.stdout, self.proc.stderr):
                closable.close()
            raise
        self.comm.settimeout(15)
        self.logs_drain: _Drain | None = None
        if read_logs:
            self.logs_drain = _Drain(self.logs.recv)
            self.logs_drain.start()
        self._rfile = self.comm.makefile("rb")

    def send_startup(self, task_id: str, **overrides: Any) -> None:
        self.comm.sendall(encode_response(0, startup_details(task_id, **overrides)))

    def read_request(self) -> tuple[int, dict[str, Any]]:
        (length,) = struct.unpack(">I", self._rfile.read(4))
        frame = msgpack.unpackb(self._rfile.read(length), timestamp=3)
        return frame[0], frame[1]

    def serve(self, answers: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer requests (``answers[type]`` or nil) until the terminal message; return its body."""
        answers = answers or {}
        while True:
            request_id, body = self.read_request()
            self.comm.sendall(encode_response(request_id, answers.get(body["type"])))
            if body["type"] in ("SucceedTask", "TaskState", "RetryTask"):
                return body

    def close_comm(self, reset: bool = False) -> None:
        """Close the comm connection for real (the buffered reader would otherwise keep it open);
        ``reset`` makes it abortive (RST), as when the supervisor's process dies."""
        if reset:
            self.comm.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.comm.shutdown(socket.SHUT_RDWR)
        self._rfile.close()
        self.comm.close()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def records(self) -> list[dict[str, Any]]:
        """JSON records received on the log socket (complete lines only)."""
        assert self.logs_drain is not None
        self.logs_drain.join(5)
        return _json_lines(bytes(self.logs_drain.data))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for thread in (self.stdout, self.stderr, self.logs_drain):
            if thread is not None:
                thread.join(5)
        self._rfile.close()
        for sock in (self.comm, self.logs, self.comm_server, self.logs_server):
            sock.close()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self) -> CraftedPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_lines(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def timed_exit(peer: CraftedPeer, since: float, limit: float = 1.0) -> tuple[int, float]:
    """Wait (a little longer than ``limit``) for the runtime to exit; report code and seconds."""
    code = peer.wait(limit + 5)
    elapsed = time.monotonic() - since
    assert code is not None, "the runtime is still running"
    print(
        f"[timing] {os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}: exit {code} after {elapsed:.3f}s"
    )
    return code, elapsed


# ---------------------------------------------------------------------------------------------------
# Garbage on the comm channel
# ---------------------------------------------------------------------------------------------------
def _prefixed(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


GARBAGE = {
    "random-bytes": _prefixed(bytes(range(256)) * 4),
    "zero-length": b"\x00\x00\x00\x00",
    "length-over-cap": struct.pack(">I", 0xFFFFFFF0),
    "not-msgpack": _prefixed(b"\xc1\xc1\xc1"),
    "map-frame": _prefixed(msgpack.packb({"id": 1, "body": {}})),
    "one-element-array": _prefixed(msgpack.packb([1])),
    "string-id": _prefixed(msgpack.packb(["0", {}, None])),
    "list-body": _prefixed(msgpack.packb([0, [1, 2], None])),
    "id-never-issued": encode_response(4242, {"type": "VariableResult", "key": "anything", "value": "x"}),
    "invalid-utf8": _prefixed(b"\x93\x00\x81\xa4type\xa3\xff\xfe\xfd\xc0"),
    "deep-nesting": _prefixed(b"\x93\x00" + b"\x91" * 1000 + b"\xc0\xc0"),
    "huge-map-header": _prefixed(b"\x93\x00\xdf\xff\xff\xff\xff"),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_right_after_startup_details_exits_1_within_a_second(hardening_bundle, name):
    with CraftedPeer(hardening_bundle) as peer:
        peer.send_startup("sleeps")
        time.sleep(0.3)  # the task is running (and sleeping) by now
        start = time.monotonic()
        peer.comm.sendall(GARBAGE[name])  # and the peer stays open: the runtime must decide alone
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0, (code, elapsed)
        # the peer still reads the log socket: the reason arrives there as a proper record
        [lost] = [r for r in peer.records() if "Lost the supervisor" in r["event"]]
        assert lost["level"] == "error" and lost["logger"] == "bundle.runtime"


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_as_the_answer_to_a_request_exits_1_within_a_second(hardening_bundle, name):
    with CraftedPeer(hardening_bundle) as peer:
        peer.send_startup("asks")
        _, body = peer.read_request()
        assert body["type"] == "GetVariable"
        start = time.monotonic()
        peer.comm.sendall(GARBAGE[name])
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0, (code, elapsed)


def test_truncated_answer_then_close_exits_1_within_a_second(hardening_bundle):
    with CraftedPeer(hardening_bundle) as peer:
        peer.send_startup("asks")
        request_id, _ = peer.read_request()
        frame = encode_response(request_id, {"type": "VariableResult", "key": "anything", "value": "v"})
        peer.comm.sendall(frame[:-3])
        time.sleep(0.2)
        assert peer.proc.poll() is None  # half a frame from a live peer: it waits, like for a slow one
        start = time.monotonic()
        peer.comm.shutdown(socket.SHUT_WR)
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"ti": "not a map"}, id="ti-string"),
        pytest.param(
            {"ti": {"task_id": "quick", "dag_id": DAG, "try_number": "three"}}, id="try-number-text"
        ),
        pytest.param({"ti": {"task_id": "quick", "dag_id": DAG, "map_index": [1]}}, id="map-index-list"),
        pytest.param({"ti_context": ["x"]}, id="ti-context-list"),
    ],
)
def test_malformed_startup_details_is_a_clean_error_exit(hardening_bundle, overrides):
    with CraftedPeer(hardening_bundle) as peer:
        start = time.monotonic()
        peer.send_startup("quick", **overrides)
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0
        [record] = [r for r in peer.records() if r["level"] == "error"]
        assert record["event"].startswith("Malformed StartupDetails from the supervisor")
        assert b"Traceback" not in bytes(peer.stderr.data)


# ---------------------------------------------------------------------------------------------------
# Broken comm channel (crafted)
# ---------------------------------------------------------------------------------------------------
def test_comm_closed_mid_request_exits_1_within_a_second(hardening_bundle):
    with CraftedPeer(hardening_bundle) as peer:
        peer.send_startup("asks")
        _, body = peer.read_request()
        assert body["type"] == "GetVariable"
        start = time.monotonic()
        peer.close_comm()  # the logs socket stays open: only the comm channel is gone
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0
        lost = [r for r in peer.records() if "Lost the supervisor" in r["event"]]
        text = bytes(peer.stderr.data).decode()
        assert lost or "Lost the supervisor" in text


@pytest.mark.parametrize("how", ["close", "reset"])
def test_comm_closed_before_startup_details_exits_1_within_a_second(hardening_bundle, how):
    with CraftedPeer(hardening_bundle) as peer:
        start = time.monotonic()
        peer.close_comm(reset=how == "reset")
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0
        assert any("No usable first frame" in r["event"] for r in peer.records())


def test_parse_request_then_comm_closed_exits_promptly(hardening_bundle):
    with CraftedPeer(hardening_bundle) as peer:
        request = {
            "file": "/b/dags.py",
            "bundle_path": "/b",
            "callback_requests": [],
            "type": "DagFileParseRequest",
        }
        peer.comm.sendall(encode_response(0, request))
        _, body = peer.read_request()
        assert body["type"] == "DagFileParsingResult"
        start = time.monotonic()
        peer.close_comm()
        code, elapsed = timed_exit(peer, start)
        assert code == 1 and elapsed < 1.0


# ---------------------------------------------------------------------------------------------------
# Broken log socket (crafted): the task must never block on it, and no record may be lost
# ---------------------------------------------------------------------------------------------------
def _line_numbers(records: list[dict[str, Any]]) -> set[int]:
    out = set()
    for r in records:
        event = str(r.get("event", ""))
        if event.startswith("line "):
            out.add(int(event.split()[1]))
    return out


def test_log_socket_closed_early_does_not_block_and_falls_back_to_stderr(hardening_bundle):
    lines = 5000
    with CraftedPeer(hardening_bundle, env={"HARDENING_LINES": str(lines)}, read_logs=False) as peer:
        peer.logs.close()  # gone before the first record
        start = time.monotonic()
        peer.send_startup("chatty")
        terminal = peer.serve()
        code, elapsed = timed_exit(peer, start, limit=10)
        assert terminal["type"] == "SucceedTask" and code == 0
        assert elapsed < 10, elapsed
        stderr_records = _json_lines(bytes(peer.stderr.data))
        assert _line_numbers(stderr_records) == set(range(lines))  # every record, on stderr


def test_log_socket_never_read_does_not_block_the_task_or_lose_records(hardening_bundle):
    lines = 20_000  # about 20 MB of records, far more than the socket buffers hold
    env = {"HARDENING_LINES": str(lines)}
    with CraftedPeer(hardening_bundle, env=env, read_logs=False, logs_rcvbuf=4096) as peer:
        start = time.monotonic()
        peer.send_startup("chatty")
        terminal = peer.serve({"SetXCom": None})
        task_done = time.monotonic() - start
        code, elapsed = timed_exit(peer, start, limit=15)
        assert terminal["type"] == "SucceedTask" and code == 0
        # Now read what did reach the socket: together with stderr it must hold every record.
        peer.logs.settimeout(5)
        received = bytearray()
        while chunk := peer.logs.recv(1 << 20):
            received += chunk
        on_socket = _line_numbers(_json_lines(bytes(received)))
        on_stderr = _line_numbers(_json_lines(bytes(peer.stderr.data)))
        assert on_socket | on_stderr == set(range(lines)), len(set(range(lines)) - on_socket - on_stderr)
        print(
            f"never-read log socket: task done {task_done:.2f}s, exit {elapsed:.2f}s, "
            f"{len(on_socket)} records on the socket, {len(on_stderr)} on stderr"
        )
        assert elapsed < 15


def test_a_peer_that_stops_reading_for_a_while_only_delays_records(hardening_bundle):
    """The released supervisor reads nothing while it retries an Execution API call (a heartbeat,
    a request: up to a minute with the default retries). Here the peer stops reading the log socket
    for 7 s — longer than the writer's 5 s send timeout — while the task logs about 1.5 MB/s, then
    reads again: the records logged after that must come over the socket again, not stderr."""
    env = {"HARDENING_SECONDS": "10", "HARDENING_PADDING": "1000", "HARDENING_PAUSE": "0.0005"}
    with CraftedPeer(hardening_bundle, env=env, read_logs=False, logs_rcvbuf=4096) as peer:
        peer.send_startup("steady")
        time.sleep(7)
        resumed = time.monotonic()
        drain = _Drain(peer.logs.recv)
        drain.start()
        terminal = peer.serve()
        code, _ = timed_exit(peer, resumed, limit=15)
        drain.join(10)
        assert terminal["type"] == "SucceedTask" and code == 0
        on_socket = _json_lines(bytes(drain.data))
        on_stderr = _json_lines(bytes(peer.stderr.data))
        ticks = {r["event"].split()[1] for r in on_socket + on_stderr if r["event"].startswith("tick ")}
        assert len(ticks) == max(int(t) for t in ticks) + 1  # none lost
        last_on_socket = max(r["at"] for r in on_socket if "at" in r)
        last_on_stderr = max((r["at"] for r in on_stderr if "at" in r), default=0.0)
        print(f"stall: {len(ticks)} ticks, {len(on_stderr)} records on stderr (overflow during the stall)")
        assert last_on_socket > last_on_stderr + 1.0, "the socket was given up after the stall"


# ---------------------------------------------------------------------------------------------------
# Under the released supervisor
# ---------------------------------------------------------------------------------------------------
def test_supervisor_killed_during_an_unanswered_request_runtime_exits_within_a_second(hardening_bundle):
    run = run_task(
        command(hardening_bundle),
        dag_id=DAG,
        task_id="unanswered",
        run_id=RUN,
        kill_supervisor_after=0.5,
        trigger_on_log="sending a request the supervisor will not answer",
        raise_on_timeout=False,
    )
    assert run.supervisor_killed and run.runtime_survived_supervisor is False, run.describe()
    assert run.runtime_exit_delay is not None and run.runtime_exit_delay < 1.0, run.runtime_exit_delay


def test_supervisor_killed_while_the_task_floods_the_log_runtime_exits_within_a_second(hardening_bundle):
    run = run_task(
        command(hardening_bundle),
        dag_id=DAG,
        task_id="chatty_forever",
        run_id=RUN,
        kill_supervisor_after=0.5,
        trigger_on_log="chatty forever started",
        raise_on_timeout=False,
    )
    assert run.supervisor_killed and run.runtime_survived_supervisor is False, run.describe()
    assert run.runtime_exit_delay is not None and run.runtime_exit_delay < 1.0, run.runtime_exit_delay


def test_sigterm_during_an_unanswered_request_reports_failed_after_the_grace_period(hardening_bundle):
    run = run_task(
        command(hardening_bundle),
        dag_id=DAG,
        task_id="unanswered",
        run_id=RUN,
        signal_after=(signal.SIGTERM, 0.3),
        trigger_on_log="sending a request the supervisor will not answer",
        env={"PYBUNDLE_CANCEL_GRACE_SECONDS": "1"},
    )
    assert (run.exit_code, run.final_state, run.server_state) == (0, "failed", "failed"), run.describe()
    assert run.find_logs(contains="did not stop within 1.0 s")
    assert run.signal_sent_at is not None
    assert run.state_updates[-1]["state"] == "failed"


def test_sigterm_while_the_supervisor_is_busy_retrying_reports_failed(hardening_bundle):
    # The supervisor's loop is blocked in the API client's retries (about 6 s) while the task waits
    # for the answer. No log trigger: the supervisor writes no task log while it is blocked.
    api = FakeExecutionAPI(faults=[Fault("GET", "/variables/flaky", 500, {"detail": "boom"})])
    run = run_task(
        command(hardening_bundle),
        dag_id=DAG,
        task_id="slow_api",
        run_id=RUN,
        api=api,
        signal_after=(signal.SIGTERM, 1.0),
        env={
            "PYBUNDLE_CANCEL_GRACE_SECONDS": "1",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "4",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "2",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "2",
        },
    )
    assert (run.exit_code, run.final_state, run.server_state) == (0, "failed", "failed"), run.describe()
    events = run.events()
    received = next(i for i, e in enumerate(events) if e.startswith("Received SIGTERM"))
    expired = next(i for i, e in enumerate(events) if "did not stop within 1.0 s" in e)
    assert received < expired  # the grace timer reported failed while the request was still blocked
    assert run.state_updates[-1]["state"] == "failed"
    assert [e.get("event") for e in run.supervisor_errors] == ["API server error"]
