"""go-plugin mode: the process callbacks are forked from, which never held a task's token.

A callback process forked from the plugin would be a copy of the plugin's memory, and the plugin
holds every running task's Execution API token: code that digs it out of memory could call the
Execution API directly and undo the proxy (``bundle.core.confinement``). So the plugin forks this
"zygote" at start, before it serves any request (and before gRPC is imported), and forks
callbacks from it. Per callback the plugin sends, over a Unix socket pair, the callback's
descriptors (its end of the proxy's socket pair, the plugin's current stdout and stderr) with
``SCM_RIGHTS`` and a pickled ``CallbackSpec`` (which task's which callback, its context: data
only, no token). The zygote forks the callback's process, answers with its pid and a pidfd (the
plugin watches, signals and kills it as if it were its own child), and reaps it later.

The zygote is single-threaded, runs nothing of the bundle's but its DAG registration (once, at
the first callback), and dies with the plugin (``PR_SET_PDEATHSIG``). A zygote that is gone or
does not answer means the callback is logged as not run: it never runs in a process forked from
the plugin. Loaded at plugin start only on Linux with ``pidfd_open`` (elsewhere callbacks are
forked from the plugin; docs/access-levels.md says what that leaves open).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .provider import BundleProvider

_HEADER = struct.Struct(">I")
_REPLY = struct.Struct(">i")
_REAP_SECONDS = 1.0
_current: Zygote | None = None


class ZygoteGone(Exception):
    """The zygote cannot fork the callback (it died, or answered with an error)."""


def supported() -> bool:
    """Linux with ``pidfd_open`` (the plugin needs a handle on a process that is not its child)."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


def current() -> Zygote | None:
    """The zygote this process started, if any (go-plugin mode)."""
    return _current


def start(provider: BundleProvider) -> Zygote | None:
    """Fork the zygote (go-plugin mode, at start, before anything holds a token); ``None`` where
    unsupported or when the fork fails (then callbacks are logged as not run)."""
    global _current
    if not supported():
        return None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        _current = Zygote(None, None)
        return _current
    if pid == 0:
        ours.detach()
        _zygote_main(theirs, provider, parent)  # never returns
    theirs.close()
    _current = Zygote(pid, ours)
    return _current


class Zygote:
    """The plugin's handle: ``spawn`` one callback process (thread-safe: one request at a time)."""

    def __init__(self, pid: int | None, sock: socket.socket | None) -> None:
        self.pid, self._sock = pid, sock
        self._lock = threading.Lock()
        self._gone = "the callback process server did not start" if sock is None else ""

    def spawn(self, spec: bytes, fds: list[int], timeout: float) -> tuple[int, int]:
        """Fork a callback process that runs ``spec`` with ``fds``; its (pid, pidfd)."""
        with self._lock:
            sock = self._sock
            if sock is None:
                raise ZygoteGone(self._gone)
            try:
                sock.settimeout(timeout)
                socket.send_fds(sock, [_HEADER.pack(len(spec))], fds)
                sock.sendall(spec)
                data, received, _flags, _addr = socket.recv_fds(sock, 4096, 1)
            except (OSError, ValueError) as exc:
                raise ZygoteGone(self._broken(f"the callback process server is gone ({exc})")) from None
            if len(data) < _REPLY.size:
                raise ZygoteGone(self._broken("the callback process server is gone"))
            (pid,) = _REPLY.unpack_from(data)
            if pid <= 0 or len(received) != 1:
                for fd in received:
                    os.close(fd)
                raise ZygoteGone(data[_REPLY.size :].decode("utf-8", "replace") or "it did not say why")
            return pid, received[0]

    def _broken(self, why: str = "the callback process server was stopped") -> str:
        """A half-done exchange leaves the stream out of step: never use it again."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._gone = why
        return self._gone


# -- the zygote --------------------------------------------------------------------------------------
def _zygote_main(sock: socket.socket, provider: BundleProvider, parent: int) -> None:
    code = 0
    try:
        import signal

        from .confinement import _die_with, _drop_inherited_descriptors

        _die_with(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _drop_inherited_descriptors(sock.fileno())
        registry: Any = None
        while True:
            _reap_all()
            if not select.select([sock], [], [], _REAP_SECONDS)[0]:
                continue
            request = _receive(sock)
            if request is None:
                return  # the plugin closed its end: it is stopping
            spec, fds = request
            try:
                if registry is None:  # once: the children inherit it and what it imported
                    from .provider import registry_of

                    registry = registry_of(provider)
                    _preload()
                pid = os.fork()
            except BaseException as exc:
                for fd in fds:
                    os.close(fd)
                sock.sendall(_REPLY.pack(-1) + f"{type(exc).__name__}: {exc}".encode()[:2000])
                continue
            if pid == 0:
                _callback_main(sock, spec, fds, registry)  # never returns
            for fd in fds:
                os.close(fd)
            pidfd = os.pidfd_open(pid)  # before the next _reap_all: the pid is still this child's
            try:
                socket.send_fds(sock, [_REPLY.pack(pid)], [pidfd])
            finally:
                os.close(pidfd)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _preload() -> None:
    """What every callback process needs, imported once here rather than in each of them."""
    import ctypes  # noqa: F401
    import json  # noqa: F401
    import pickle  # noqa: F401

    import msgpack  # noqa: F401

    from . import callbacks, confinement, landlock, log_records  # noqa: F401


def _receive(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 3)
    if not data:
        return None
    while len(data) < _HEADER.size:
        more = sock.recv(_HEADER.size - len(data))
        if not more:
            return None
        data += more
    (size,) = _HEADER.unpack(data)
    chunks = bytearray()
    while len(chunks) < size:
        more = sock.recv(min(size - len(chunks), 1 << 20))
        if not more:
            return None
        chunks += more
    return bytes(chunks), fds


def _reap_all() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _callback_main(sock: socket.socket, spec: bytes, fds: list[int], registry: Any) -> None:
    """The callback's process: stdout and stderr the plugin's, then the confined child's path."""
    try:
        sock.close()  # the zygote's channel to the plugin is no business of the callback's
        channel_fd, out_fd, err_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        channel = socket.socket(fileno=channel_fd)
        from .callbacks import spec_invoker

        invoke, ti, what, label = spec_invoker(spec, registry)
        from .confinement import _child_main
        from .messages import CALLBACK_ACCESS

        _child_main(channel, os.getppid(), invoke, ti, CALLBACK_ACCESS, what, label)
    except BaseException as exc:
        try:
            os.write(2, f"pybundle: cannot run a task callback in its own process: {exc!r}\n".encode())
        except Exception:
            pass
    os._exit(1)
