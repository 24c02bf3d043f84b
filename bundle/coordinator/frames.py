"""The comm-channel frame codec: a 4-byte big-endian length, then one msgpack value.

Requests are ``[id, body]``; responses arrive as ``[id, body, error]`` (2 elements tolerated).
Datetimes travel as msgpack timestamps (ext -1) and must be timezone-aware on the way out. The
codec refuses what would hurt the peer or us: it never writes an empty frame (the supervisor's
reader stalls on one) and never allocates an inbound frame above ``max_frame_bytes``.
"""

from __future__ import annotations

import gc
import os
import struct
import threading
from collections.abc import Callable

import msgpack

from ..core.records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any, BinaryIO

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_FRAME_ENV = "PYBUNDLE_MAX_FRAME_BYTES"
_HEADER = struct.Struct(">I")
# Above this size the cyclic GC is paused while a payload is decoded (see ``decode_payload``).
_GC_PAUSE_BYTES = 256 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame; the runtime cannot continue."""


class ChannelClosed(ProtocolError):
    """The peer closed the connection."""


class Frame(Record):
    id: int
    body: dict[str, Any] | None
    error: dict[str, Any] | None = None


_new_frame = tuple.__new__  # decoding builds one Frame per answer: skip Record's keyword handling


def max_frame_bytes() -> int:
    raw = os.environ.get(MAX_FRAME_ENV)
    if not raw:
        return DEFAULT_MAX_FRAME_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError(f"{MAX_FRAME_ENV}={raw!r} is not an integer number of bytes") from None
    if value <= 0:
        raise ProtocolError(f"{MAX_FRAME_ENV} must be positive, got {value}")
    return value


def _default(value: Any) -> Any:
    if type(value).__name__ == "UUID":  # uuid.UUID, without importing uuid on the start-up path
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a frame")


# One reusable packer (a fresh one per call costs more than the packing); it is not thread-safe.
_request_packer = msgpack.Packer(default=_default, datetime=True, use_bin_type=True)
_request_packer_lock = threading.Lock()


def encode_request(request_id: int, body: dict[str, Any]) -> bytes:
    """One complete frame (prefix included) for ``[request_id, body]``."""
    with _request_packer_lock:
        try:
            payload = _request_packer.pack([request_id, body])
        except BaseException:
            _request_packer.reset()  # a failed pack leaves partial output in the packer's buffer
            raise
    if len(payload) >= 1 << 32:
        raise ProtocolError(f"request of {len(payload)} bytes exceeds the 4 GiB frame limit")
    return _HEADER.pack(len(payload)) + payload


def encode_response(
    request_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None = None
) -> bytes:
    """A supervisor-shaped ``[id, body, error]`` frame; used by tests and benchmarks as the peer."""
    payload = msgpack.packb([request_id, body, error], default=_default, datetime=True, use_bin_type=True)
    return _HEADER.pack(len(payload)) + payload


def _unpack(payload: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(payload, timestamp=3, raw=False, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"undecodable frame payload: {type(exc).__name__}: {exc}") from None


def decode_payload(payload: bytes | memoryview) -> Frame:
    """One frame from its payload; anything that is not ``[int, map|nil(, map|nil)]`` is a ``ProtocolError``.

    msgpack's own limits bound every container by the payload length, and its unpacker refuses
    nesting deeper than its fixed stack, so decoding is linear in the payload. Decoding creates
    only acyclic containers, so the cyclic GC has nothing to find in them; left running, it is
    triggered every few hundred new lists or dicts and made a container-heavy frame several times
    slower to decode (measured: 16 MB of empty arrays, 7.6 s with the GC, 1.3 s without)."""
    if len(payload) > _GC_PAUSE_BYTES and gc.isenabled():
        gc.disable()
        try:
            value = _unpack(payload)
        finally:
            gc.enable()
    else:
        value = _unpack(payload)
    if type(value) is list:  # the shape of every answer, checked cheaply: this is per request
        if len(value) == 3:
            frame_id, body, error = value
        elif len(value) == 2:
            frame_id, body = value
            error = None
        else:
            frame_id = None
        if (
            type(frame_id) is int
            and (body is None or type(body) is dict)
            and (error is None or type(error) is dict)
        ):
            return _new_frame(Frame, (frame_id, body, error))  # Record.__new__ minus its argument handling
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise ProtocolError(f"a frame must be an array of 2 or 3 elements, got {_kind(value)}")
    frame_id, body = value[0], value[1]
    error = value[2] if len(value) > 2 else None
    if isinstance(frame_id, bool) or not isinstance(frame_id, int):
        raise ProtocolError(f"frame id must be an integer, got {_kind(frame_id)}")
    if body is not None and not isinstance(body, dict):
        raise ProtocolError(f"frame body must be a map or nil, got {_kind(body)}")
    if error is not None and not isinstance(error, dict):
        raise ProtocolError(f"frame error must be a map or nil, got {_kind(error)}")
    return Frame(frame_id, body, error)


class FrameReader:
    """Reads frames from a byte source into a buffer of its own.

    The buffer is the point: a reader that gives up waiting (a request timed out) keeps any part
    of a frame it already received, so whoever reads next continues exactly where it stopped, and
    the channel can tell whether bytes are waiting without touching the socket. ``recv(n)`` returns
    up to ``n`` bytes, ``b""`` at EOF; ``chunk`` is how much to ask for at a time (0: exactly
    what the current frame still needs, so a stream is never read past the frame)."""

    def __init__(self, recv: Callable[[int], bytes], limit: int, chunk: int = 64 * 1024):
        self._recv = recv
        self._limit = limit
        self._chunk = chunk
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame."""
        return len(self._buf)

    def has_frame(self) -> bool:
        """Whether ``read`` can return (or fail) without receiving anything."""
        buf = self._buf
        if len(buf) < 4:
            return False
        (length,) = _HEADER.unpack_from(buf)
        return length == 0 or length > self._limit or len(buf) >= 4 + length

    def read(self, wait: Callable[[], bool] | None = None) -> Frame:
        """The next frame; ``ChannelClosed`` on a clean EOF between frames.

        ``wait`` is called before every receive and returns False to give up (``TimeoutError``,
        nothing lost). A connection reset (the supervisor's process died) is a ``ChannelClosed``
        too, so callers handle every way the peer can go away with one ``except ProtocolError``."""
        buf = self._buf
        if not buf and wait is None:
            # The usual case: nothing buffered, and the whole frame arrives in one receive.
            data = self._receive(self._chunk or 4)
            if len(data) > 4:
                (length,) = _HEADER.unpack_from(data)
                if len(data) == 4 + length and 0 < length <= self._limit:
                    return decode_payload(memoryview(data)[4:])
            if not data:
                raise ChannelClosed("the supervisor closed the comm channel")
            buf += data
        if len(buf) < 4 and not self._fill(4, wait):
            if not buf:
                raise ChannelClosed("the supervisor closed the comm channel")
            raise ProtocolError("the comm channel closed inside a frame header")
        (length,) = _HEADER.unpack_from(buf)
        if length == 0:
            raise ProtocolError("received a zero-length frame")
        if length > self._limit:
            raise ProtocolError(
                f"refusing a {length}-byte frame: above the {self._limit}-byte limit (raise {MAX_FRAME_ENV} if it is legitimate)"
            )
        end = 4 + length
        if len(buf) < end and not self._fill(end, wait):
            raise ProtocolError(f"the comm channel closed inside a frame ({len(buf) - 4} of {length} bytes)")
        payload = bytes(buf[4:end])
        del buf[:end]
        return decode_payload(payload)

    def _receive(self, size: int) -> bytes:
        try:
            return self._recv(size)
        except OSError as exc:
            raise ChannelClosed(f"the comm channel failed: {exc}") from None

    def _fill(self, size: int, wait: Callable[[], bool] | None) -> bool:
        """Buffer at least ``size`` bytes; False at EOF."""
        buf = self._buf
        while len(buf) < size:
            if wait is not None and not wait():
                raise TimeoutError("no complete frame in time")
            data = self._receive(max(size - len(buf), self._chunk))
            if not data:
                return False
            buf += data
        return True


def read_frame(stream: BinaryIO, limit: int) -> Frame:
    """Read one frame from a stream, never past its end (``FrameReader`` with exact reads)."""
    return FrameReader(stream.read, limit, chunk=0).read()


def _kind(value: Any) -> str:
    """A short description of an unexpected value for an error message.

    Never ``repr`` a container: a deeply nested one raises ``RecursionError`` and a large one costs
    its whole size again, both on the path that is meant to report bad input cleanly."""
    name = type(value).__name__
    if isinstance(value, (str, bytes, bytearray)):
        return f"{name} {value[:40]!r}{'...' if len(value) > 40 else ''}"
    if isinstance(value, (list, tuple, dict)):
        return f"{name} of {len(value)} element(s)"
    if value is None or isinstance(value, (bool, int, float)):
        return f"{name} {str(value)[:60]}"
    return name
