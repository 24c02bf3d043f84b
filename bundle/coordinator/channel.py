"""The comm channel: request/response over frames, read by the thread that is waiting.

A request sends its frame and then reads the socket itself until its answer arrives: no hand-off
to another thread, which would cost a thread wake-up per round trip (most of a round trip's time
on a local socket). When several threads have requests in flight, one of them reads at a time and
hands frames meant for the others to them.

While no request is in flight a watcher thread keeps an eye on the socket, because a task may
compute for hours while the supervisor disappears: end of file, a reset, or a frame nobody asked
for fail the channel and call ``on_lost`` so the runtime exits instead of hanging. While requests
are in flight the watcher does not look at data (see ``_WATCH_EVENTS``). Writes are serialised with a
lock; each frame is one ``sendall``.

An answer must match an outstanding request. The supervisor answers every request exactly once,
in order, so an id that was never issued, or was already answered, means the peer is broken;
dropping such a frame silently would leave the request it was meant for waiting forever. The one
legitimate unmatched answer is a late one for a request that timed out, and those ids are
remembered.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable

from ..core.errors import AirflowApiError
from .frames import ChannelClosed, Frame, FrameReader, ProtocolError, encode_request

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any, overload

_READ_EVENTS = select.POLLIN | select.POLLPRI
# The watcher never waits for data: it would wake, and compete for the GIL, at every answer. It
# waits for the peer's end of file (POLLRDHUP, Linux; a reset is POLLHUP/POLLERR, always reported)
# and looks for data nobody asked for every IDLE_CHECK_SECONDS while no request is in flight.
_WATCH_EVENTS = getattr(select, "POLLRDHUP", 0)
IDLE_CHECK_SECONDS = 0.2


class CommChannel:
    def __init__(self, sock: socket.socket, max_frame_bytes: int):
        self._sock = sock
        self._frames = FrameReader(sock.recv, max_frame_bytes)
        self._write_lock = threading.Lock()
        # Guards everything below; notified whenever a frame was dispatched or reading stopped.
        self._lock = threading.Lock()
        self._state = threading.Condition(self._lock)
        self._answers: dict[int, Frame | None] = {}  # outstanding request id -> its answer once read
        self._reading = False  # one thread at a time reads the socket
        self._sleepers = 0  # threads waiting on ``_state``: with none, nobody needs notifying
        self._next_id = 0
        self._abandoned: set[int] = set()  # timed-out requests whose late answer is still due
        self._failure: ProtocolError | None = None
        self._closed = False
        self.on_lost: Callable[[ProtocolError], None] | None = None

    def read_first(self) -> Frame:
        """The supervisor's unsolicited first frame (StartupDetails or DagFileParseRequest).

        No timeout: the supervisor sends it only after ``PATCH /run``, which may retry for long."""
        return self._frames.read()

    def start_watching(self) -> None:
        """Watch for a lost supervisor while no request is in flight (see the module docstring)."""
        threading.Thread(target=self._watch, name="pybundle-comm-watcher", daemon=True).start()

    def request(self, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any] | None:
        """Send ``body`` and wait for its answer; raises ``AirflowApiError`` for the error slot."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._failure is not None:
                raise self._failure
            request_id = self._next_id
            self._next_id = request_id + 1
            self._answers[request_id] = None
        try:
            self._send(encode_request(request_id, body))
            frame = self._await(request_id, deadline)
        except TimeoutError:
            raise TimeoutError(f"no answer to {body.get('type')} within {timeout} s") from None
        except BaseException:
            with self._lock:
                self._answers.pop(request_id, None)
                self._settle()
            raise
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

    def _await(self, request_id: int, deadline: float | None) -> Frame:
        """Read frames (or wait for the thread reading them) until ``request_id`` is answered.

        The usual case, one thread asking, takes the reading role at once and reads its own
        answer; that path is written out inline because it is every request's latency."""
        lock, answers = self._lock, self._answers
        lock.acquire()
        try:
            while (frame := answers[request_id]) is None:
                if self._failure is not None:
                    raise self._failure
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    del answers[request_id]
                    self._abandoned.add(request_id)
                    self._settle()
                    raise TimeoutError
                if self._reading:
                    self._sleep(remaining)
                    continue
                self._reading = True
                lock.release()
                try:
                    read = self._read_one(deadline)
                finally:
                    lock.acquire()
                    self._reading = False
                if type(read) is Frame and read.id == request_id:
                    frame = read
                    break
                if read is not None:
                    self._dispatch(read)
                if self._sleepers:
                    self._state.notify_all()
            del answers[request_id]
            self._settle()
            return frame
        finally:
            lock.release()

    if TYPE_CHECKING:  # without a deadline there is no timeout: a frame or the failure

        @overload
        def _read_one(self, deadline: None) -> Frame | ProtocolError: ...
        @overload
        def _read_one(self, deadline: float) -> Frame | ProtocolError | None: ...

    def _read_one(self, deadline: float | None) -> Frame | ProtocolError | None:
        """One frame from the socket (the caller holds the reading role, not the lock).

        Returns the failure instead of raising it, so it is recorded under the lock; ``None``
        when the deadline passed first (the partial frame stays buffered)."""
        wait = None if deadline is None else (lambda: self._poll(deadline - time.monotonic()))
        try:
            return self._frames.read(wait)
        except TimeoutError:
            return None
        except ProtocolError as exc:
            return exc
        except Exception as exc:  # e.g. MemoryError: never leave a request waiting on a dead reader
            return ProtocolError(f"comm reader failed: {type(exc).__name__}: {exc}")

    def _poll(self, timeout: float) -> bool:
        """Whether the socket has something to read (or hit EOF) within ``timeout`` seconds."""
        poller = select.poll()
        try:
            poller.register(self._sock, _READ_EVENTS)
            return bool(poller.poll(max(0, int(timeout * 1000 + 0.999))))
        except (OSError, ValueError):  # the socket was closed under us: reading it says how
            return True

    def _dispatch(self, read: Frame | ProtocolError) -> None:
        """Deliver a frame to its request, drop a late answer, or fail the channel (lock held)."""
        if isinstance(read, ProtocolError):
            self._fail(read)
            return
        if read.id in self._answers and self._answers[read.id] is None:
            self._answers[read.id] = read
        elif read.id in self._abandoned:
            self._abandoned.discard(read.id)
        else:
            self._fail(
                ProtocolError(f"the supervisor answered request id {read.id}, which is not outstanding")
            )

    def _settle(self) -> None:
        """After a request is done with (lock held). With none left in flight, frames already
        buffered are unsolicited: settle them now rather than at the watcher's next look."""
        if not self._answers and not self._reading and self._frames.has_frame():
            self._dispatch(self._read_one(None))  # has_frame: returns without receiving
        if self._sleepers:
            self._state.notify_all()

    def _sleep(self, timeout: float | None = None) -> None:
        self._sleepers += 1
        try:
            self._state.wait(timeout)
        finally:
            self._sleepers -= 1

    def _wake(self) -> None:
        if self._sleepers:
            self._state.notify_all()

    def _fail(self, failure: ProtocolError) -> None:
        """Record the first failure; every waiting and later request raises it (lock held)."""
        if self._failure is not None:
            return
        self._failure = failure
        self._wake()
        callback = self.on_lost
        if callback is not None:
            # Called with the lock held: the runtime's callback exits the process, and a test's
            # only records the failure; neither calls back into the channel.
            callback(failure)

    def _watch(self) -> None:
        poller = select.poll()
        try:
            poller.register(self._sock, _WATCH_EVENTS)
        except (OSError, ValueError):
            return  # closed before the watch began: the next request finds out
        while True:
            try:
                poller.poll(IDLE_CHECK_SECONDS * 1000)
            except OSError:
                return
            with self._lock:
                # A request in flight reads whatever arrives: wait until it is done with it.
                while (self._answers or self._reading) and self._failure is None and not self._closed:
                    self._sleep()
                if self._failure is not None or self._closed:
                    return
                if not self._frames.buffered and not self._poll(0):
                    continue  # nothing arrived
                self._reading = True
            read = self._read_one(None)
            with self._lock:
                self._reading = False
                self._dispatch(read)
                self._wake()

    def close(self) -> None:
        with self._lock:
            self.on_lost = None
            self._closed = True
            self._wake()
        # Shutting the socket down wakes the watcher (and any reader) blocked on it.
        for closer in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close):
            try:
                closer()
            except OSError:
                pass
