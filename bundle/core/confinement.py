"""Run one callback in a process of its own whose only way to Airflow is a filtering proxy.

A task callback is promised read + logging access (``CALLBACK_ACCESS``). A ``Client`` that merely
refuses other requests is no promise: the callback shares the runtime's memory and descriptors, so
``client.restricted(TASK_ACCESS)``, ``client._transport`` or a raw write to the comm socket would
reach the supervisor with the task's full rights. Here the callback runs in a child forked from
the runtime that keeps no descriptor of the runtime's except 0, 1 and 2 (every other inherited
descriptor number is pointed at ``/dev/null`` opened read-only, so a raw write to it fails) and one
end of a socket pair. The runtime (the parent) answers that socket: each request is validated in
full against the workload's access level (``validate_request``) and only then forwarded through
the runtime's own transport; anything else is answered "not allowed" and the child's ``Client``
raises ``RequestNotAllowed`` as it would have locally. Log records travel the same socket, already
masked by the child and masked again by the parent (which also learns every ``MaskSecret``), and
are emitted into the runtime's logging in the caller's thread, so each mode routes them where the
task's records go.

The wire is a 4-byte big-endian length and one msgpack map (data only: nothing the child sends
can run code in the parent). Child -> parent: ``{"log": event}``, ``{"id": n, "request": body}``,
``{"stuck": stack}``. Parent -> child: ``{"id": n, "answer": body}``, ``{"id": n, "refused":
{...}}``, ``{"id": n, "invalid": text}``, ``{"id": n, "failed": {...}}``.

Fork safety: the child runs only this module's code, the callback and ``logging`` (whose locks
Python re-initialises after a fork); it replaces the root logger's handlers, ``sys.stdout``,
``sys.stderr`` and the masker's lock before anything logs or prints, so no lock a runtime thread
held at the fork (the log writer's, the comm watcher's, a buffered stream's) is taken on its way,
and it leaves with ``os._exit`` (no atexit hooks, no flushing of the runtime's objects). The cyclic
GC is off in the child (it would finalise objects of the runtime's threads), and go-plugin mode
turns gRPC's fork handlers off (they restarted its event engine in the child, which then aborted).

Two more walls, so that the proxy stays the only way: in go-plugin mode the child is forked from
the zygote (``bundle.core.zygote``), which never held a task's token, rather than from the plugin;
and before the callback runs the child puts itself in a Landlock domain of its own
(``bundle.core.landlock``), which keeps it out of its ancestors' memory and descriptors (and, with
Landlock ABI 6+, their signals). Where Landlock is unavailable the child logs which route stays open.

The bound: at the deadline the parent sends ``SIGUSR1`` (the child's handler sends the stack the
callback is in), waits ``STACK_GRACE_SECONDS`` for it, then kills the child's process group.

Loaded only when a callback runs.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

from .errors import AirflowApiError, InvalidRequest, RequestNotAllowed
from .masking import masker
from .messages import validate_request
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .client import MessageClient
    from .messages import Workload

RELAYED_EVENT = "_pybundle_relayed_event"  # a LogRecord attribute: the child's event, emitted as is
STACK_GRACE_SECONDS = 1.0
MAX_FRAME_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_TICK_SECONDS = 0.2  # how often the parent checks whether the child exited (its descendants may
# keep the socket open after it did)


def available() -> bool:
    """Whether callbacks can be confined here (POSIX ``fork``)."""
    return hasattr(os, "fork")


# -- the wire ---------------------------------------------------------------------------------------
def _pack(message: dict[str, Any]) -> bytes:
    import msgpack

    payload = msgpack.packb(message, default=_default, datetime=True, use_bin_type=True)
    return _HEADER.pack(len(payload)) + payload


def _default(value: Any) -> Any:
    if type(value).__name__ == "UUID":
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class _Reader:
    """Frames from a socket: ``fill`` receives what is there (``False`` at end of file), ``take``
    returns the next whole frame or ``None``; a frame over ``MAX_FRAME_BYTES`` or one that is not a
    map raises ``ValueError``. The parent never blocks on a half-sent frame."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def fill(self) -> bool:
        data = self._sock.recv(65536)
        self._buffer += data
        return bool(data)

    def take(self) -> dict[str, Any] | None:
        import msgpack

        if len(self._buffer) < 4:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_FRAME_BYTES:
            raise ValueError(f"a frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
        if len(self._buffer) < 4 + size:
            return None
        payload = bytes(self._buffer[4 : 4 + size])
        del self._buffer[: 4 + size]
        value = msgpack.unpackb(payload, timestamp=3, raw=False, strict_map_key=False)
        if type(value) is not dict:
            raise ValueError(f"a frame must be a map, got {type(value).__name__}")
        return value

    def frame(self) -> dict[str, Any] | None:
        """Blocking: the next whole frame, ``None`` at end of file (the child's side)."""
        while (frame := self.take()) is None:
            if not self.fill():
                return None
        return frame


# -- the parent: run, proxy, bound --------------------------------------------------------------------
def run_confined(
    invoke: Callable[[MessageClient], Any],
    *,
    client: MessageClient,
    access: Workload,
    what: str,
    label: str,
    limit: float,
    abandoned: str = "",
    spec: Callable[[], bytes] | None = None,
) -> None:
    """Fork a child that calls ``invoke`` with a ``Client`` limited to ``access``; serve it as a
    proxy to ``client``'s transport until it exits or ``limit`` passes (then kill it). A failure
    of the callback is logged by the child; nothing is raised here.

    Where this process started a zygote (go-plugin mode, ``bundle.core.zygote``), the child is
    forked from the zygote instead and runs what ``spec()`` describes (``invoke`` is not used):
    a copy of this process's memory would hold the tokens of the tasks it runs."""
    zygote = sys.modules.get(__package__ + ".zygote")
    if zygote is not None and zygote.current() is not None and spec is not None:
        _run_in_zygote(zygote.current(), spec, client, access, what, label, limit, abandoned)
        return
    parent_end, child_end = socket.socketpair()
    for stream in (sys.stdout, sys.stderr):  # else the child would repeat what is buffered
        try:
            stream.flush()
        except Exception:
            pass
    # What every child needs, imported once here rather than again in each child (ctypes alone
    # cost each child ~10 ms).
    import msgpack  # noqa: F401

    from . import log_records  # noqa: F401

    if sys.platform.startswith("linux"):
        import ctypes  # noqa: F401
    parent_pid = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:  # no process to confine it in: it does not run (never unconfined)
        parent_end.close()
        child_end.close()
        runtime_log().error("Cannot start a process for %s %s: %s; it did not run", what, label, exc)
        return
    if pid == 0:  # the child: never returns
        # No cyclic GC in the child: a collection would run finalizers of the runtime's objects
        # (sockets, gRPC's) whose threads do not exist here. Reference counting still frees the
        # callback's own garbage, and the process is short-lived.
        gc.disable()
        parent_end.detach()  # its descriptor is replaced below; never close it through this object
        _child_main(child_end, parent_pid, invoke, client._ti, access, what, label)
    child_end.close()
    _active.add(pid)
    try:
        _serve(parent_end, pid, client, access, what, label, limit, abandoned)
    finally:
        _active.discard(pid)
        parent_end.close()


def _run_in_zygote(
    zygote: Any,
    spec: Callable[[], bytes],
    client: MessageClient,
    access: Workload,
    what: str,
    label: str,
    limit: float,
    abandoned: str,
) -> None:
    """``run_confined`` with the child forked by the zygote: hand it the child's end, this
    process's stdout and stderr and the spec; serve it as our own child (through its pidfd)."""
    try:
        described = spec()
    except Exception as exc:
        runtime_log().error(
            "Cannot hand %s %s to its process: %s: %s; it did not run", what, label, type(exc).__name__, exc
        )
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    parent_end, child_end = socket.socketpair()
    started = time.monotonic()
    try:
        pid, pidfd = zygote.spawn(described, [child_end.fileno(), 1, 2], limit)
    except Exception as exc:  # no process to confine it in: it does not run (never unconfined)
        parent_end.close()
        runtime_log().error("Cannot start a process for %s %s: %s; it did not run", what, label, exc)
        return
    finally:
        child_end.close()
    _active.add(pid)
    try:
        _serve(
            parent_end,
            pid,
            client,
            access,
            what,
            label,
            limit - (time.monotonic() - started),
            abandoned,
            pidfd,
        )
    finally:
        _active.discard(pid)
        parent_end.close()


_active: set[int] = set()  # callback processes running now


def kill_active() -> None:
    """Kill every callback process (and its process group) still running: the runtime is about to
    exit, and a callback must not outlive it holding the supervisor's stdout and stderr."""
    for pid in list(_active):
        _kill_group(pid)


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
        except OSError:
            pass


def _serve(
    sock: socket.socket,
    pid: int,
    client: MessageClient,
    access: Workload,
    what: str,
    label: str,
    limit: float,
    abandoned: str,
    pidfd: int | None = None,
) -> None:
    """Answer the child until it exits; at ``limit`` (counted from the fork) kill it, whether it
    still talks, went quiet mid-frame, or closed its end and lives on. ``pidfd``: the child's, when
    it is not this process's child (the zygote's; it is closed here)."""
    deadline = time.monotonic() + limit
    title = what[0].upper() + what[1:]
    peer = _Peer(sock, pid, client, access, pidfd)
    try:
        while not peer.exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stack = peer.stack_within(STACK_GRACE_SECONDS)
                _kill_group(pid)
                peer.reap()
                runtime_log().error(
                    "%s %s did not finish within %.1f s (%s); killed it%s. It was here:\n%s",
                    title,
                    label,
                    limit,
                    "PYBUNDLE_CALLBACK_TIMEOUT_SECONDS",
                    abandoned,
                    stack or "  (no stack: the callback did not answer)",
                )
                return
            peer.step(remaining)
        peer.drain(deadline)
    except _Broken as exc:
        runtime_log().error("%s %s: %s; killed its process", title, label, exc)
        _kill_group(pid)
        peer.reap()
    finally:
        peer.close()


class _Broken(Exception):
    """The child broke the protocol (an unreadable, oversized or non-map frame)."""


class _Peer:
    """The parent's view of one child: its socket, and its exit (a pidfd where Linux has one,
    else a look every ``_TICK_SECONDS``, sooner just after the child closed its end)."""

    def __init__(
        self, sock: socket.socket, pid: int, client: MessageClient, access: Workload, pidfd: int | None = None
    ) -> None:
        self.sock, self.pid, self.client, self.access = sock, pid, client, access
        self.reader = _Reader(sock)
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        self.open = True
        self.exited = False
        self.stuck: str | None = None
        self._pause = 0.001
        self.foreign = pidfd is not None  # the zygote's child: the zygote reaps it
        self.pidfd: int | None = pidfd
        if pidfd is None:
            try:
                self.pidfd = os.pidfd_open(pid)
            except (AttributeError, OSError):
                self.pidfd = None
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)

    def step(self, remaining: float) -> None:
        """Wait (at most ``remaining`` seconds) for a frame or the child's exit; handle it."""
        if self.pidfd is None:
            if not self.open:
                time.sleep(min(self._pause, remaining))
                self._pause = min(self._pause * 2, _TICK_SECONDS)
                self.exited = self.exited or _reaped(self.pid)
                return
            remaining = min(remaining, _TICK_SECONDS)
        for fd, _events in self.poller.poll(int(remaining * 1000) + 1):
            if fd == self.pidfd:
                self.reap()
            elif self.open:
                self.receive()
        if self.pidfd is None and not self.exited:
            self.exited = _reaped(self.pid)

    def receive(self) -> None:
        try:
            more = self.reader.fill()
        except OSError:
            more = False
        if not more:
            self.open = False
            self.poller.unregister(self.sock)
        try:
            while (frame := self.reader.take()) is not None:
                self.handle(frame)
        except ValueError as exc:
            raise _Broken(f"its process sent an unreadable frame ({exc})") from None
        except Exception as exc:  # msgpack's own errors
            raise _Broken(f"its process sent an unreadable frame ({type(exc).__name__}: {exc})") from None

    def handle(self, frame: dict[str, Any]) -> None:
        if "log" in frame:
            _emit(frame["log"])
        elif "request" in frame:
            answer = _answer(frame.get("request"), self.client, self.access)
            answer["id"] = frame.get("id")
            try:
                self.sock.sendall(_pack(answer))
            except OSError:
                pass
        elif "stuck" in frame:
            self.stuck = str(frame["stuck"])

    def drain(self, deadline: float) -> None:
        """What the child sent just before it exited (bounded: its descendants may hold the socket)."""
        while self.open and time.monotonic() < deadline and self.poller.poll(0):
            self.receive()

    def stack_within(self, grace: float) -> str | None:
        """Ask the child for the stack it is stuck in (``SIGUSR1``), serving it meanwhile."""
        try:
            os.kill(self.pid, signal.SIGUSR1)
        except OSError:
            return None
        until = time.monotonic() + grace
        while self.stuck is None and not self.exited and (left := until - time.monotonic()) > 0:
            if not self.open:
                break
            try:
                self.step(left)
            except _Broken:
                break
        return self.stuck

    def reap(self) -> None:
        if not self.exited:
            if self.foreign and self.pidfd is not None:  # the zygote reaps it: wait for the exit
                select.select([self.pidfd], [], [], 5.0)
            else:
                _reap(self.pid)
            self.exited = True

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _answer(body: Any, client: MessageClient, access: Workload) -> dict[str, Any]:
    """Check ``body`` against ``access`` in full, then forward it with the runtime's transport."""
    try:
        validate_request(body, access)
    except RequestNotAllowed as exc:
        return {
            "refused": {
                "message": str(exc),
                "request_type": exc.request_type,
                "group": exc.group,
                "workload": exc.workload,
            }
        }
    except InvalidRequest as exc:
        return {"invalid": str(exc)}
    if body["type"] == "MaskSecret":  # the parent masks what it relays too
        masker.add(body.get("value"))
    try:
        result = client._transport(body)
    except AirflowApiError as exc:
        return {"answer": {"type": "ErrorResponse", "error": exc.error, "detail": exc.detail}}
    except Exception as exc:
        return {"failed": {"request_type": body["type"], "error": type(exc).__name__, "detail": str(exc)}}
    try:
        _pack({"answer": result})
    except Exception as exc:  # e.g. a type msgpack cannot carry: say so instead of breaking the child
        return {"failed": {"request_type": body["type"], "error": "UNENCODABLE", "detail": str(exc)}}
    return {"answer": result}


def _emit(event: Any) -> None:
    """A log event the child built, into the runtime's logging (masked again when it is encoded)."""
    if type(event) is not dict:
        return
    level = logging.getLevelName(str(event.get("level", "info")).upper())
    record = logging.makeLogRecord(
        {
            "name": str(event.get("logger") or "root"),
            "levelno": level if isinstance(level, int) else logging.INFO,
            "levelname": logging.getLevelName(level) if isinstance(level, int) else "INFO",
            "msg": str(event.get("event", "")),
            RELAYED_EVENT: event,
        }
    )
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# -- the child ---------------------------------------------------------------------------------------
def _child_main(
    sock: socket.socket,
    parent_pid: int,
    invoke: Callable[[MessageClient], Any],
    ti: Any,
    access: Workload,
    what: str,
    label: str,
) -> None:
    code = 0
    try:
        try:
            os.setpgid(0, 0)  # the parent kills the callback's own children with it
        except OSError:
            pass
        _die_with(parent_pid)
        keep = sock.fileno()
        _drop_inherited_descriptors(keep)
        channel = _ChildChannel(sock)
        _detach_from_runtime(channel)
        from .landlock import restrict_self

        open_route = restrict_self()  # out of reach of the ancestors' memory, descriptors, signals
        if open_route:
            runtime_log().warning("Confinement of %s %s is partial: %s", what, label, open_route)
        confined = _child_client(ti, channel, access)
        try:
            result = invoke(confined)
            if hasattr(result, "__await__"):
                import asyncio

                async def wait() -> Any:
                    return await result

                asyncio.run(wait())
        except BaseException as exc:  # a callback never changes the outcome, whatever it raises
            runtime_log().error(
                "Failed to run %s %s: %s: %s", what, label, type(exc).__name__, exc, exc_info=exc
            )
    except BaseException as exc:  # setting the process up failed: say so where print() goes
        code = 1
        try:
            os.write(2, f"pybundle: cannot run {what} {label} in its own process: {exc!r}\n".encode())
        except Exception:
            pass
    finally:
        os._exit(code)


def _die_with(parent_pid: int) -> None:
    """Linux: be killed when the runtime ends, however it ends (``PR_SET_PDEATHSIG``; the thread
    that forked waits for this process, so its end is the runtime's). Elsewhere the runtime's exit
    paths call ``kill_active``."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() != parent_pid:  # the runtime ended before the request took effect
        os._exit(1)


def _drop_inherited_descriptors(keep: int) -> None:
    """Point every inherited descriptor but 0, 1, 2 and ``keep`` at ``/dev/null`` (read-only).

    Not closed: a Python object of the runtime that still holds the number would close whatever
    the callback opened under it next."""
    try:
        numbers = [int(name) for name in os.listdir("/dev/fd")]
    except (OSError, ValueError):
        import resource

        numbers = list(range(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    null = os.open(os.devnull, os.O_RDONLY)
    for fd in numbers:
        if fd <= 2 or fd in (keep, null):
            continue
        try:
            os.dup2(null, fd, inheritable=False)
        except OSError:
            pass  # not open (e.g. listdir's own descriptor, closed meanwhile)
    os.close(null)


class _ChildChannel:
    """The child's end: one request at a time (a callback may use threads), log events any time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = _Reader(sock)
        self._send_lock = threading.Lock()  # one frame at a time on the socket
        self._request_lock = threading.Lock()  # one request waiting for its answer at a time
        self._next = 0

    def send(self, message: dict[str, Any], *, blocking: bool = True) -> None:
        data = _pack(message)
        if not self._send_lock.acquire(blocking):  # a signal handler never waits for a frame
            return
        try:
            self._sock.sendall(data)
        finally:
            self._send_lock.release()

    def request(self, body: dict[str, Any]) -> dict[str, Any] | None:
        with self._request_lock:
            self._next += 1
            self.send({"id": self._next, "request": body})
            frame = self._reader.frame()
        if frame is None:
            raise AirflowApiError(str(body.get("type")), "PROXY_CLOSED", "the runtime stopped answering")
        if "answer" in frame:
            return frame["answer"]
        if "refused" in frame:
            why = frame["refused"]
            raise RequestNotAllowed(
                str(why.get("message")),
                request_type=why.get("request_type"),
                group=why.get("group"),
                workload=why.get("workload"),
            )
        if "invalid" in frame:
            raise InvalidRequest(str(frame["invalid"]))
        failed = frame.get("failed") or {}
        raise AirflowApiError(str(body.get("type")), str(failed.get("error")), failed.get("detail"))


class _RelayHandler(logging.Handler):
    """Every record of the child, as the event the runtime's handlers would write, to the parent."""

    def __init__(self, channel: _ChildChannel) -> None:
        super().__init__(logging.NOTSET)
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        from .log_records import record_to_event

        try:
            self._channel.send({"log": _plain(record_to_event(record))})
        except Exception:
            pass  # the parent is gone: nowhere to log


def _plain(event: dict[str, Any]) -> dict[str, Any]:
    """JSON-shaped already; anything else becomes its text (msgpack carries only data)."""
    import json

    return json.loads(json.dumps(event, default=str))


def _detach_from_runtime(channel: _ChildChannel) -> None:
    """Stop using anything of the runtime's that a thread of it may have held at the fork."""
    for stream_name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            setattr(sys, stream_name, open(fd, "w", buffering=1, closefd=False, errors="replace"))
        except OSError:
            pass
    root = logging.getLogger()
    root.handlers[:] = [_RelayHandler(channel)]
    masker._lock = threading.Lock()  # a runtime thread may have been registering a secret
    for signum in (signal.SIGTERM, signal.SIGINT):  # the runtime's handlers report task states
        signal.signal(signum, signal.SIG_DFL)

    def stack(_signum: int, frame: Any) -> None:
        import traceback

        ours = os.path.dirname(os.path.dirname(__file__))
        entries = [e for e in traceback.extract_stack(frame) if not e.filename.startswith(ours)]
        try:
            channel.send({"stuck": "".join(traceback.format_list(entries)).rstrip()}, blocking=False)
        except Exception:
            pass

    signal.signal(signal.SIGUSR1, stack)


def _child_client(ti: Any, channel: _ChildChannel, access: Workload) -> MessageClient:
    """A fresh ``Client`` on the proxy: its transport is the socket, nothing of the runtime's."""
    from .client import MessageClient

    return MessageClient(channel.request, ti, access)
