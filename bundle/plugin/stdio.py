"""Capture what the process writes to stdout and stderr after the handshake, for ``GRPCStdio``.

A Go plugin swaps ``os.Stdout``/``os.Stderr`` for pipes once the handshake line is out and streams
their contents to the host over ``/plugin.GRPCStdio/StreamStdio``. Python has no single writer
object to swap (C extensions and subprocesses write to the descriptors), so file descriptors 1 and 2
themselves are pointed at pipes; the real stderr is kept on a duplicate descriptor for the hclog
logger, the only writer the host parses.

What the task prints is masked like its log records (the process-wide masker, applied to whole
lines before they are queued). Reader threads never block writers: chunks wait in a bounded buffer until the host's stream
(opened once, right after connecting) takes them, and the oldest are dropped when a slow or absent
consumer lets it fill up. ``restore()`` puts the real stderr back on 1 and 2 before the process
exits, so late writes (interpreter shutdown included) cannot block on a pipe nobody reads.
"""

from __future__ import annotations

import collections
import os
import select
import sys
import threading
from collections.abc import Iterator

from ..core.masking import masker

STDOUT, STDERR = 1, 2  # plugin.StdioData.Channel values
MAX_BUFFERED_BYTES = 1 << 20
_CHUNK = 32 * 1024
_PARTIAL_WAIT = 0.2  # seconds an unterminated line waits for the rest of it


def _readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` has data (or end of file) within ``timeout`` seconds."""
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except (OSError, ValueError):
        return True  # let the read report it


def _masked(data: bytes) -> bytes:
    """``data`` with registered secrets redacted (bytes that are not UTF-8 kept as they were)."""
    text = data.decode("utf-8", "surrogateescape")
    redacted = masker.redact(text)
    return data if redacted == text else redacted.encode("utf-8", "surrogateescape")


class StdioCapture:
    """Pipes behind fds 1 and 2, a bounded buffer, and the consumers of ``StreamStdio``."""

    def __init__(self) -> None:
        self.real_stderr: int | None = None
        self._cond = threading.Condition()
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._pending: dict[int, bytes] = {}  # per channel: output after its last newline
        self._buffered = 0
        self._closed = False
        self._consumers = 0
        self._readers: list[threading.Thread] = []
        self._read_fds: list[int] = []

    def start(self, real_stderr: int) -> None:
        """Point fds 1 and 2 at pipes; ``real_stderr`` (a duplicate of the original fd 2, which the
        hclog logger keeps writing to) is what ``restore()`` puts back."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        self.real_stderr = real_stderr
        for fd, channel in ((1, STDOUT), (2, STDERR)):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self._read_fds.append(read_end)
            thread = threading.Thread(
                target=self._pump, args=(read_end, channel), name=f"pybundle-stdio-{fd}", daemon=True
            )
            thread.start()
            self._readers.append(thread)
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                try:
                    reconfigure(line_buffering=True)
                except (OSError, ValueError):
                    pass

    def _pump(self, fd: int, channel: int) -> None:
        """Read ``fd`` until end of file, queueing whole lines, masked.

        A task's ``print()`` must be masked like its log records (a secret it fetched is
        registered with the masker before it can print it), so output is redacted before it is
        queued. A secret split across two reads would escape a per-read redaction, so only whole
        lines are queued; the rest of a line waits for its newline, at most ``_PARTIAL_WAIT``
        seconds of silence or ``_CHUNK`` bytes (progress bars still show), or until ``close()``."""
        while True:
            if self._pending.get(channel) and not _readable(fd, _PARTIAL_WAIT):
                with self._cond:
                    self._flush_pending(channel)
                continue
            try:
                data = os.read(fd, _CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            with self._cond:
                pending = self._pending.get(channel, b"") + data
                cut = pending.rfind(b"\n") + 1
                if cut == 0 and len(pending) >= _CHUNK:
                    cut = len(pending)
                if cut:
                    self._queue(channel, _masked(pending[:cut]))
                self._pending[channel] = pending[cut:]
        with self._cond:
            self._flush_pending(channel)
        os.close(fd)

    def _flush_pending(self, channel: int) -> None:
        """Queue the unterminated rest of ``channel``'s output (caller holds ``_cond``)."""
        pending = self._pending.pop(channel, b"")
        if pending:
            self._queue(channel, _masked(pending))

    def _queue(self, channel: int, data: bytes) -> None:
        """Append a chunk, dropping the oldest beyond the bound (caller holds ``_cond``)."""
        self._chunks.append((channel, data))
        self._buffered += len(data)
        while self._buffered > MAX_BUFFERED_BYTES and self._chunks:
            _, old = self._chunks.popleft()
            self._buffered -= len(old)
        self._cond.notify_all()

    def stream(self, stop: threading.Event | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(channel, data)`` until ``close()`` or ``stop``; each chunk goes to one consumer.

        Whoever sets ``stop`` must call ``wake()`` so a waiting consumer notices."""
        with self._cond:
            self._consumers += 1
        try:
            while True:
                with self._cond:
                    while not self._chunks and not self._closed and not (stop and stop.is_set()):
                        self._cond.wait()
                    if stop is not None and stop.is_set():
                        return
                    if not self._chunks:
                        return
                    channel, data = self._chunks.popleft()
                    self._buffered -= len(data)
                yield channel, data
        finally:
            with self._cond:
                self._consumers -= 1

    def wake(self) -> None:
        """Let waiting consumers re-check their ``stop`` event."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """End every ``stream()`` once it has sent what is buffered now."""
        with self._cond:
            for channel in list(self._pending):  # a last line without its newline still goes out
                self._flush_pending(channel)
            self._closed = True
            self._cond.notify_all()

    def restore(self) -> None:
        """Put the real stderr back on fds 1 and 2 (ends the reader threads)."""
        if self.real_stderr is None:
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        for fd in (1, 2):
            try:
                os.dup2(self.real_stderr, fd)
            except OSError:
                pass
