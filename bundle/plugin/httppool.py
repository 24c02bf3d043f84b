"""Keep-alive connections and request deadlines for the Execution API client (``api.py``).

Why: an ``Execute`` makes at least two Execution API calls (``/run``, ``/state``) plus heartbeats.
Opening a TCP (or TLS) connection per call and starting a ``threading.Timer`` per call to bound it
cost several milliseconds per task (docs/performance.md, figure 5). Here:

* :class:`ConnectionPool` keeps idle HTTP/1.1 connections per origin (scheme, host, port), shared by
  every client of the process, so the calls of one ``Execute`` and of the next ``Execute`` reuse one
  connection. Nothing on a connection belongs to a task: the bearer token is a header of each
  request, so connections are shared across tokens; TLS connections share one process-wide
  ``SSLContext`` (certificates are checked when the connection is made, for the origin's host).
  A connection is taken out of the pool for the whole exchange (the heartbeat thread and the task
  never share one), and only put back once the answer was read in full and the server did not ask
  to close it.
* An idle connection the server may have closed (its keep-alive timeout; uvicorn, which serves the
  Execution API, closes after ``worker_timeout`` = 120 s by default) is detected before reuse: a
  readable idle socket is either at end of file or holds bytes nobody asked for, so it is dropped;
  one idle for longer than ``IDLE_SECONDS`` is dropped unread. ``api.py`` handles the remaining race
  (the server closes while the request is on its way) with at most one immediate retry.
* :class:`Deadlines` is one daemon thread per process that shuts a socket down when its exchange
  overruns its total budget (a server that trickles one byte at a time never trips the per-operation
  socket timeout). Arming and disarming a deadline is a heap push and a flag under a lock; the thread
  is woken only when a new deadline is earlier than every pending one.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable

IDLE_SECONDS = 50.0  # drop a connection idle this long (well under uvicorn's 120 s keep-alive)
MAX_IDLE_PER_ORIGIN = 4  # task + heartbeat + a few concurrent Executes
_COMPACT_AT = 1024  # rebuild the deadline heap when disarmed entries pile up

Origin = tuple[str, str, "int | None"]


class _OneWrite:
    """Sends a request's header block and body in one write (``http.client`` makes two).

    Two writes cost the server a second wake-up, and a second segment, for each request with a
    body; every Execution API call the runner makes has one. Only the public ``endheaders`` and
    ``send`` of ``http.client.HTTPConnection`` are overridden."""

    _parts: list[bytes] | None = None

    def endheaders(self, message_body: object = None, *, encode_chunked: bool = False) -> None:
        self._parts = []
        try:
            super().endheaders(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]
        finally:
            parts, self._parts = self._parts, None
        if parts:
            super().send(b"".join(parts))  # type: ignore[misc]

    def send(self, data: object) -> None:
        if self._parts is not None and isinstance(data, (bytes, bytearray)):
            self._parts.append(bytes(data))
            return
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_OneWrite, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_OneWrite, http.client.HTTPSConnection):
    pass


def _is_idle_and_open(sock: socket.socket | None) -> bool:
    """True when an idle connection's socket shows nothing: no end of file, no stray bytes."""
    if sock is None:
        return False
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False  # decrypted bytes nobody asked for: the stream is out of step
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


class ConnectionPool:
    """Idle keep-alive connections to one origin, most recently used first."""

    def __init__(self, origin: Origin, ssl_context: ssl.SSLContext | None):
        self.origin = origin
        self._ssl = ssl_context
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self.opened = 0  # connections made, for tests and the benchmark

    def acquire(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """A connection for one exchange and whether it was reused (``False``: not connected yet)."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if now - since < IDLE_SECONDS and _is_idle_and_open(conn.sock):
                conn.timeout = timeout
                try:
                    conn.sock.settimeout(timeout)
                except OSError:
                    conn.close()
                    continue
                return conn, True
            conn.close()
        return self.new(timeout), False

    def new(self, timeout: float) -> http.client.HTTPConnection:
        """A fresh, unconnected connection (``http.client`` connects on the first request)."""
        _, host, port = self.origin
        with self._lock:
            self.opened += 1
        if self._ssl is not None:
            return _HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
        return _HTTPConnection(host, port, timeout=timeout)

    def release(self, conn: http.client.HTTPConnection) -> None:
        """Keep a connection whose answer was read in full and that the server keeps open."""
        if conn.sock is None:  # the server said ``Connection: close`` (or HTTP/1.0): already closed
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE_PER_ORIGIN:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close_idle(self) -> None:
        """Close every idle connection (tests; a process that exits needs nothing)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


_pools: dict[Origin, ConnectionPool] = {}
_pools_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def pool_for(scheme: str, host: str, port: int | None) -> ConnectionPool:
    """The process-wide pool of an origin (created on first use; TLS gets the shared context)."""
    global _ssl_context
    origin = (scheme, host, port)
    with _pools_lock:
        pool = _pools.get(origin)
        if pool is None:
            context = None
            if scheme == "https":
                if _ssl_context is None:  # loading the CA store costs milliseconds: once per process
                    _ssl_context = ssl.create_default_context()
                context = _ssl_context
            pool = _pools[origin] = ConnectionPool(origin, context)
        return pool


def close_all_idle() -> None:
    """Close the idle connections of every pool."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close_idle()


class Deadline:
    """One armed deadline; ``fired`` tells the caller its exchange was cut."""

    __slots__ = ("action", "active", "fired", "seq", "when")

    def __init__(self, when: float, seq: int, action: Callable[[], None]):
        self.when = when
        self.seq = seq
        self.action = action
        self.active = True
        self.fired = False

    def __lt__(self, other: Deadline) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class Deadlines:
    """A single thread running the actions of the deadlines that expire before being disarmed."""

    def __init__(self, name: str = "pybundle-api-deadlines"):
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[Deadline] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], None]) -> Deadline:
        """Run ``action`` (quick, non-blocking: it runs under the lock) in ``seconds`` unless disarmed."""
        entry = Deadline(time.monotonic() + seconds, next(self._seq), action)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if len(self._heap) >= _COMPACT_AT:
                self._heap = [e for e in self._heap if e.active]
                heapq.heapify(self._heap)
            earliest = self._heap[0].when if self._heap else None
            heapq.heappush(self._heap, entry)
            if earliest is None or entry.when < earliest:
                self._cond.notify()
        return entry

    def disarm(self, entry: Deadline) -> bool:
        """Stop ``entry``; True when its action ran already (or is running: the lock orders them)."""
        with self._cond:
            entry.active = False
            return entry.fired

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (not self._heap[0].active or self._heap[0].when <= now):
                    entry = heapq.heappop(self._heap)
                    if entry.active:
                        entry.active = False
                        entry.fired = True
                        try:
                            entry.action()
                        except Exception:  # an action must never kill the thread every request needs
                            pass
                self._cond.wait(self._heap[0].when - now if self._heap else None)


deadlines = Deadlines()
