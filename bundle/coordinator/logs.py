"""The logs channel: a ``logging.Handler`` that streams JSON lines to the supervisor's log socket.

Installed on the root logger before the bundle's tasks run, so the injected logger, plain
``logging.getLogger(__name__)`` and ``warnings`` all reach Airflow's task log. It must never block
or crash the task: ``emit`` only formats and enqueues; a writer thread does the socket I/O. Records
are buffered until the socket is up, and everything falls back to stderr if the socket drops or
stops draining.
"""

from __future__ import annotations

import collections
import logging
import socket
import sys
import threading
import time

from ..core.log_records import LevelPolicy, encode_event, record_to_event

MAX_QUEUED_LINES = 10_000
SEND_TIMEOUT_SECONDS = 5.0


class LogChannel(logging.Handler):
    def __init__(self, policy: LevelPolicy):
        super().__init__(logging.NOTSET)
        self.policy = policy
        self._lines: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._fallback = False
        self._closing = False
        self._writer: threading.Thread | None = None
        self.dropped = 0

    # -- logging.Handler -------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self.policy.allows(record):
                return
            line = encode_event(record_to_event(record))
        except Exception:  # a broken record must never break the task
            self.handleError(record)
            return
        with self._cond:
            if self._fallback:
                _stderr(line)
                return
            if len(self._lines) >= MAX_QUEUED_LINES:
                self.dropped += 1
                _stderr(line)  # nothing is lost: it goes to stderr, which the supervisor also logs
                return
            self._lines.append(line)
            self._cond.notify()

    def handleError(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"pybundle: could not format a log record from {record.name!r}\n")
        except Exception:
            pass

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self, sock: socket.socket) -> None:
        """Start streaming (buffered records first) to the connected log socket."""
        sock.settimeout(SEND_TIMEOUT_SECONDS)
        self._sock = sock
        self._writer = threading.Thread(target=self._write_loop, name="pybundle-log-writer", daemon=True)
        self._writer.start()

    def fall_back_to_stderr(self) -> None:
        with self._cond:
            self._fallback = True
            pending, self._lines = list(self._lines), collections.deque()
            self._cond.notify_all()
        for line in pending:
            _stderr(line)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until queued lines are written (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._lines or self._busy) and not self._fallback and self._writer is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if self._writer is None or self._lines:
            self.fall_back_to_stderr()  # never connected, or it stopped draining: keep the records
        super().close()

    _busy = False

    def _write_loop(self) -> None:
        assert self._sock is not None
        while True:
            with self._cond:
                while not self._lines and not self._closing:
                    self._cond.wait()
                if not self._lines:
                    return
                batch = b"".join(self._lines)
                self._lines.clear()
                self._busy = True
            try:
                self._sock.sendall(batch)
            except OSError:
                with self._cond:
                    self._busy = False
                _stderr(batch)
                self.fall_back_to_stderr()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()


def _stderr(data: bytes) -> None:
    try:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    except (AttributeError, OSError, ValueError):
        pass


def install(channel: LogChannel) -> None:
    """Route every logger and ``warnings`` through ``channel``, filtered by its level policy."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(channel)
    root.setLevel(channel.policy.lowest)
    logging.captureWarnings(True)
