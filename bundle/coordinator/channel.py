"""The comm channel: request/response over frames, with a reader thread that watches the peer.

The supervisor answers requests one at a time, in order, but a task may also be busy computing
when the supervisor disappears. A dedicated reader thread therefore owns the socket's read side:
it hands each response to the request waiting for its id, and the moment the peer closes the
channel (or sends garbage) it calls ``on_lost`` so the runtime can exit instead of hanging.
Writes are serialised with a lock; each frame is one ``sendall``.

An answer must match an outstanding request. The supervisor answers every request exactly once,
so an id that was never issued, or was already answered, means the peer is broken; dropping such a
frame silently would leave the request it was meant for waiting forever. The one legitimate
unmatched answer is a late one for a request that timed out, and those ids are remembered.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from ..core.errors import AirflowApiError
from .frames import ChannelClosed, Frame, ProtocolError, encode_request, read_frame


class _Pending:
    __slots__ = ("event", "frame")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.frame: Frame | None = None


class CommChannel:
    def __init__(self, sock: socket.socket, max_frame_bytes: int):
        self._sock = sock
        self._rfile = sock.makefile("rb", buffering=64 * 1024)
        self._limit = max_frame_bytes
        self._write_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._next_id = 0
        self._abandoned: set[int] = set()  # timed-out requests whose late answer is still due
        self._failure: ProtocolError | None = None
        self._reader: threading.Thread | None = None
        self.on_lost: Callable[[ProtocolError], None] | None = None

    def read_first(self) -> Frame:
        """The supervisor's unsolicited first frame (StartupDetails or DagFileParseRequest).

        No timeout: the supervisor sends it only after ``PATCH /run``, which may retry for long."""
        return read_frame(self._rfile, self._limit)

    def start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read_loop, name="pybundle-comm-reader", daemon=True)
        self._reader.start()

    def request(self, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any] | None:
        """Send ``body`` and wait for its answer; raises ``AirflowApiError`` for the error slot."""
        pending = _Pending()
        with self._pending_lock:
            if self._failure is not None:
                raise self._failure
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = pending
        try:
            self._send(encode_request(request_id, body))
            if not pending.event.wait(timeout):
                raise TimeoutError(f"no answer to {body.get('type')} within {timeout} s")
        finally:
            with self._pending_lock:
                self._pending.pop(request_id, None)
                if pending.frame is None and self._failure is None:
                    self._abandoned.add(request_id)
        frame = pending.frame
        if frame is None:
            raise self._failure or ChannelClosed("the comm channel closed before the answer arrived")
        if frame.error is not None:
            raise AirflowApiError(
                str(body.get("type")), str(frame.error.get("error")), frame.error.get("detail")
            )
        return frame.body

    def _send(self, data: bytes) -> None:
        with self._write_lock:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                raise ChannelClosed(f"cannot write to the comm channel: {exc}") from None

    def _read_loop(self) -> None:
        try:
            while True:
                frame = read_frame(self._rfile, self._limit)
                with self._pending_lock:
                    pending = self._pending.pop(frame.id, None)
                    late = pending is None and frame.id in self._abandoned
                    self._abandoned.discard(frame.id)
                    if pending is not None:
                        pending.frame = frame  # under the lock: ``request`` decides "abandoned" by it
                if pending is not None:
                    pending.event.set()
                elif not late:
                    raise ProtocolError(
                        f"the supervisor answered request id {frame.id}, which is not outstanding"
                    )
        except (ProtocolError, OSError, ValueError) as exc:
            failure = exc if isinstance(exc, ProtocolError) else ChannelClosed(f"comm channel error: {exc}")
            self._fail(failure)
        except Exception as exc:  # e.g. MemoryError: a dead reader would leave every request hanging
            self._fail(ProtocolError(f"comm reader failed: {type(exc).__name__}: {exc}"))

    def _fail(self, failure: ProtocolError) -> None:
        with self._pending_lock:
            self._failure = failure
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.event.set()
        if self.on_lost is not None:
            self.on_lost(failure)

    def close(self) -> None:
        self.on_lost = None
        # Shut the socket down first: it wakes the reader thread, which holds the buffered
        # reader's lock while it waits; closing the reader before that would deadlock.
        for closer in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._rfile.close, self._sock.close):
            try:
                closer()
            except OSError:
                pass
