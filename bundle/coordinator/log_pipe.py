"""The log pipe: JSON lines, queued, written to the supervisor's log socket by a writer thread.

It must never block or crash the task: ``put`` only enqueues; the writer thread does the socket
I/O. Lines are buffered until the socket is up, and everything falls back to stderr if the socket
drops. It knows nothing of ``logging`` (``logs.LogChannel`` turns records into lines), so a task
that never logs never imports it.

A supervisor that stops reading for a while is normal: its loop reads nothing while it waits on the
Execution API (a heartbeat or a request retried for up to a minute). That only delays records: the
queue holds ``MAX_QUEUED_LINES``, what overflows goes to stderr, and the writer resumes when the
supervisor reads again; it does not give the socket up for the rest of the task. If it never
reads again, ``close`` hands what is left to stderr.

No record is lost on the way: the writer tracks how much of its current batch the socket took, so
whatever it could not send (from the start of the record cut mid-write) goes to stderr, whether the
write failed, the peer closed, or the runtime is exiting while the peer stopped reading. At most
that one cut record appears twice (truncated on the socket, whole on stderr).
"""

from __future__ import annotations

import collections
import select
import socket
import sys
import threading
import time

MAX_QUEUED_LINES = 10_000
SEND_TIMEOUT_SECONDS = 5.0  # how often a writer waiting on a stalled peer re-checks it
WRITER_EXIT_SECONDS = 1.0


class LogPipe:
    def __init__(self) -> None:
        self._lines: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._fallback = False
        self._closing = False
        self._writer: threading.Thread | None = None
        self._inflight: bytes | None = None  # the batch being written, until fully sent
        self._sent = 0  # how many bytes of it the socket took
        self.dropped = 0

    def put(self, line: bytes) -> None:
        """Queue one complete line (or write it to stderr once the socket is given up)."""
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

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self, sock: socket.socket) -> None:
        """Start streaming (buffered records first) to the connected log socket."""
        sock.settimeout(SEND_TIMEOUT_SECONDS)
        self._sock = sock
        self._writer = threading.Thread(target=self._write_loop, name="pybundle-log-writer", daemon=True)
        self._writer.start()

    def fall_back_to_stderr(self) -> None:
        """From now on write records to stderr, starting with everything not yet on the socket."""
        with self._cond:
            self._fallback = True
            pending, self._lines = list(self._lines), collections.deque()
            if self._inflight is not None:
                # Resend from the start of the record the socket took only part of.
                start = self._inflight.rfind(b"\n", 0, self._sent) + 1
                pending.insert(0, self._inflight[start:])
                self._inflight = None  # taken over: the writer must not send or dump it again
            self._cond.notify_all()
        for line in pending:
            _stderr(line)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until queued lines are written (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (
                (self._lines or self._inflight is not None)
                and not self._fallback
                and self._writer is not None
            ):
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
                # Also wakes a writer blocked on a peer that stopped reading: its send fails and it
                # hands the unsent rest to stderr, before the process exits and the rest is lost.
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if self._writer is not None:
            self._writer.join(WRITER_EXIT_SECONDS)
        with self._cond:
            undelivered = self._writer is None or bool(self._lines) or self._inflight is not None
        if undelivered:
            self.fall_back_to_stderr()  # never connected, or it stopped draining: keep the records

    def _write_loop(self) -> None:
        """Send queued lines in batches until closing.

        Before every write it checks whether the socket turned readable: the supervisor never
        writes on it, so that can only mean EOF or a reset. A write into a socket the peer already
        closed still succeeds locally and the records in it vanish; caught first, they go to
        stderr instead."""
        sock = self._sock
        assert sock is not None
        poller = select.poll()  # not select(): that fails for descriptors above FD_SETSIZE
        poller.register(sock, select.POLLIN)
        while True:
            with self._cond:
                while not self._lines and not self._closing:
                    self._cond.wait()
                if not self._lines or self._fallback:
                    return
                batch = self._inflight = b"".join(self._lines)
                self._sent = 0
                self._lines.clear()
            try:
                view, sent = memoryview(batch), 0
                while sent < len(batch):
                    if poller.poll(0):  # readable: the peer closed (see the docstring)
                        raise ConnectionResetError("the supervisor closed the log socket")
                    try:
                        sent += sock.send(view[sent:])
                    except TimeoutError:
                        continue  # not reading right now (see the module docstring); try again
                    with self._cond:
                        if self._inflight is not batch:
                            return  # fell back meanwhile; the rest went to stderr
                        self._sent = sent
            except OSError:
                self.fall_back_to_stderr()
                return
            with self._cond:
                if self._inflight is batch:
                    self._inflight = None
                self._cond.notify_all()


# Re-entrant: a signal handler that logs may interrupt the main thread inside ``_stderr``.
_STDERR_LOCK = threading.RLock()


def _stderr(data: bytes) -> None:
    """Write whole lines to stderr: one write per line, never interleaved with another of ours.

    ``BufferedWriter`` lets another thread's write land inside a large write (observed: the
    fallback handing over a batch while ``emit`` writes a new record), which cuts a record in
    two and the supervisor then logs two garbled lines."""
    try:
        with _STDERR_LOCK:
            out = sys.stderr.buffer
            for line in data.splitlines(keepends=True):
                out.write(line)
                out.flush()
    except Exception:  # no stderr, closed, or re-entered from a signal handler: nowhere left to write
        pass
