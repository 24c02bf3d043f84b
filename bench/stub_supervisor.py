"""A minimal local supervisor for timing: binds comm + logs, sends StartupDetails, answers requests.

It measures; it is not used to test behaviour (the tests drive the released supervisor). Answers are
the shapes the 1.3.2 supervisor sends: ``[id, body, None]`` frames, ``VariableResult`` for
``GetVariable``, ``XComResult`` (value 1) for ``GetXCom``, ``None`` bodies for writes and terminal messages.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import msgpack

_HEADER = struct.Struct(">I")
# What figure 3's subjects send, alternately; the key tells them from the task's other requests.
ROUND_TRIP_TYPES = ("GetVariable", "SetXCom")
ROUND_TRIP_KEY = "bench"


def startup_details(dag_id: str = "bench_dag", task_id: str = "first_request") -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    run_id = "manual__bench"
    return {
        "ti": {
            "id": str(uuid.uuid4()),
            "task_id": task_id,
            "dag_id": dag_id,
            "run_id": run_id,
            "try_number": 1,
            "dag_version_id": str(uuid.uuid4()),
            "map_index": -1,
            "hostname": None,
            "context_carrier": None,
            "queue": "bench",
        },
        "dag_rel_path": "dags/bench.py",
        "bundle_info": {"name": "bench", "version": None},
        "start_date": now,
        "ti_context": {
            "dag_run": {
                "dag_id": dag_id,
                "run_id": run_id,
                "logical_date": now,
                "data_interval_start": now,
                "data_interval_end": now,
                "run_after": now,
                "start_date": now,
                "end_date": None,
                "clear_number": 0,
                "run_type": "manual",
                "state": "running",
                "conf": {},
                "triggering_user_name": None,
                "consumed_asset_events": [],
                "partition_key": None,
                "partition_date": None,
                "note": None,
                "team_name": None,
            },
            "task_reschedule_count": 0,
            "max_tries": 0,
            "variables": [],
            "connections": [],
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": [],
            "should_retry": False,
            "start_date": None,
        },
        "sentry_integration": "",
        "type": "StartupDetails",
    }


def frame(request_id: int, body: Any, error: Any = None) -> bytes:
    payload = msgpack.packb([request_id, body, error], datetime=True)
    return _HEADER.pack(len(payload)) + payload


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def peak_rss_kib(pid: int) -> int:
    """``VmHWM`` of a live process: its own peak, unlike ``wait4``'s ``ru_maxrss``, which on Linux
    also counts the memory of the (large) benchmark process it was forked from."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class StubSupervisor:
    """One task's worth of supervisor. ``first_request_at`` is the monotonic time the first request
    frame arrived; ``requests`` counts every request (``request_types`` by type); ``terminal`` is
    the terminal body, if any; ``startup_sent_at``/``terminal_at`` bound the task as the stub sees it."""

    def __init__(
        self, first_frame: dict[str, Any] | None = None, answer: Callable[[dict[str, Any]], Any] | None = None
    ):
        # ``answer(body)``: a reply body for the requests a figure needs answered its own way
        # (figure 10: XCom counts and sequence items), ``NotImplemented`` for the usual answers.
        self.answer = answer
        self.arrivals: list[tuple[str, float]] = []  # (request type, monotonic arrival), in order
        self.comm = socket.create_server(("127.0.0.1", 0))
        self.logs = socket.create_server(("127.0.0.1", 0))
        self.first_frame = first_frame or startup_details()
        self.first_request_at: float | None = None
        self.requests = 0
        self.request_types: dict[str, int] = {}  # figure 8 asserts one GetXCom per bound argument
        self.get_xcom_times: list[float] = []  # figure 8: arrivals, for the interval between two
        self.startup_sent_at: float | None = None
        self.terminal_at: float | None = None
        self.round_trip_times: list[float] = []
        self.terminal: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.pid: int | None = (
            None  # set by the caller; the runtime's peak RSS is read at its terminal message
        )
        self.peak_rss_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._log_thread = threading.Thread(target=self._drain_logs, daemon=True)

    @property
    def args(self) -> list[str]:
        return [
            f"--comm=127.0.0.1:{self.comm.getsockname()[1]}",
            f"--logs=127.0.0.1:{self.logs.getsockname()[1]}",
        ]

    def start(self) -> StubSupervisor:
        self._thread.start()
        self._log_thread.start()
        return self

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        for sock in (self.comm, self.logs):
            sock.close()

    def _drain_logs(self) -> None:
        try:
            conn, _ = self.logs.accept()
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def _run(self) -> None:
        try:
            conn, _ = self.comm.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(frame(0, self.first_frame))
            self.startup_sent_at = time.monotonic()
            while True:
                (length,) = _HEADER.unpack(_read_exact(conn, 4))
                request_id, body, *_ = msgpack.unpackb(_read_exact(conn, length), timestamp=3)
                arrived = time.monotonic()
                if self.first_request_at is None:
                    self.first_request_at = arrived
                self.requests += 1
                kind = body.get("type")
                self.request_types[kind] = self.request_types.get(kind, 0) + 1
                self.arrivals.append((kind, arrived))
                if kind == "GetXCom":
                    self.get_xcom_times.append(arrived)
                if kind in ROUND_TRIP_TYPES and body.get("key") == ROUND_TRIP_KEY:
                    self.round_trip_times.append(arrived)
                if kind in ("SucceedTask", "TaskState", "RetryTask", "DagFileParsingResult") and self.pid:
                    self.peak_rss_kib = peak_rss_kib(self.pid)
                reply = self.answer(body) if self.answer is not None else NotImplemented
                if reply is not NotImplemented:
                    conn.sendall(frame(request_id, reply))
                elif kind == "GetVariable":
                    conn.sendall(
                        frame(request_id, {"key": body["key"], "value": "v", "type": "VariableResult"})
                    )
                elif kind == "GetXCom":  # figure 8: every bound argument reads one, an int
                    conn.sendall(frame(request_id, {"key": body["key"], "value": 1, "type": "XComResult"}))
                else:
                    conn.sendall(frame(request_id, None))
                if kind in ("SucceedTask", "TaskState", "RetryTask", "DagFileParsingResult"):
                    self.terminal = body
                    self.terminal_at = arrived
        except EOFError:
            pass
        except BaseException as exc:  # reported by the caller
            self.error = exc
