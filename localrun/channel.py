"""Length-prefixed JSON messages between ``bundle-run`` and its worker process, over a socketpair.

The worker's HTTP transport, its results and the parent's commands all travel here; JSON keeps the
messages readable in a debugger and free of pickling. A frame is a 4-byte big-endian length and
that many bytes of UTF-8 JSON (one object).
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from typing import Any

_HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class ChannelClosed(ConnectionError):
    """The other side went away (EOF or a broken socket)."""


class Channel:
    """Send and receive whole JSON objects; ``send`` is thread-safe, ``recv`` is for one reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._send_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        """Send one object; raises :class:`ChannelClosed` if the other side is gone."""
        data = json.dumps(message, default=str).encode("utf-8")
        try:
            with self._send_lock:
                self.sock.sendall(_HEADER.pack(len(data)) + data)
        except OSError as exc:
            raise ChannelClosed(f"cannot send to the other process: {exc}") from exc

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message; None if ``timeout`` seconds pass without one; ChannelClosed at EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._take()
            if message is not None:
                return message
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining is not None:
                readable, _, _ = select.select([self.sock], [], [], remaining)
                if not readable:
                    return None
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError as exc:
                raise ChannelClosed(f"cannot read from the other process: {exc}") from exc
            if not chunk:
                raise ChannelClosed("the other process closed the channel")
            self._buffer += chunk

    def _take(self) -> dict[str, Any] | None:
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_FRAME:
            raise ChannelClosed(f"frame of {size} bytes is larger than {MAX_FRAME}")
        if len(self._buffer) < _HEADER.size + size:
            return None
        data = bytes(self._buffer[_HEADER.size : _HEADER.size + size])
        del self._buffer[: _HEADER.size + size]
        return json.loads(data)

    def close(self) -> None:
        """Close the socket (the other side then sees EOF)."""
        try:
            self.sock.close()
        except OSError:
            pass
