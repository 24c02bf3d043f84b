"""Hardening: whatever bytes arrive on the comm channel, the outcome is a clean ``ProtocolError``.

Property tests for the frame reader (``read_frame``), payload decoding (``decode_payload``) and the
channel's dispatch (``CommChannel``): arbitrary bytes, frames split at every boundary through a
real socketpair, truncated frames, zero and huge length prefixes, non-array frames, wrong ids,
unknown types, invalid UTF-8, deep nesting and huge containers. Every case must end in a frame or a
``ProtocolError`` — never another exception (which would kill the channel's reader thread and leave
the task waiting forever), never a hang, never an allocation the frame cap does not bound.

The long coverage-guided campaign over the same entry points is ``fuzz/fuzz_frames.py``.
"""

from __future__ import annotations

import functools
import io
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import timezone
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle.coordinator.channel import CommChannel
from bundle.coordinator.frames import (
    ChannelClosed,
    Frame,
    ProtocolError,
    decode_payload,
    encode_response,
    read_frame,
)
from bundle.core.errors import AirflowApiError

LIMIT = 64 * 1024
QUICK = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def prefixed(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def stream(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


def read_all(reader: io.BufferedReader, limit: int = LIMIT) -> tuple[list[Frame], ProtocolError]:
    """Every frame until the reader stops; it must stop with a ``ProtocolError`` (EOF included)."""
    frames: list[Frame] = []
    while True:
        try:
            frames.append(read_frame(reader, limit))
        except ProtocolError as exc:
            return frames, exc


def assert_frame_shape(frame: Frame) -> None:
    assert isinstance(frame.id, int) and not isinstance(frame.id, bool)
    assert frame.body is None or isinstance(frame.body, dict)
    assert frame.error is None or isinstance(frame.error, dict)


# -- generated msgpack values ----------------------------------------------------------------------
msgpack_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = (
    st.none()
    | st.booleans()
    | msgpack_ints
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.datetimes(timezones=st.just(timezone.utc))
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))
)
values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6) | msgpack_ints, kids, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.none() | st.dictionaries(st.text(max_size=8), values, max_size=5)
unknown_types = st.text(min_size=1, max_size=30).filter(
    lambda t: not t.startswith(("Variable", "Connection"))
)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, datetime=True, use_bin_type=True)


# -- decode_payload --------------------------------------------------------------------------------
@QUICK
@given(st.binary(max_size=200))
def test_arbitrary_payload_bytes_decode_to_a_frame_or_a_protocol_error(payload):
    try:
        frame = decode_payload(payload)
    except ProtocolError:
        return
    assert_frame_shape(frame)


@QUICK
@given(values)
def test_any_msgpack_value_is_a_well_shaped_frame_or_a_protocol_error(value):
    try:
        frame = decode_payload(pack(value))
    except ProtocolError as exc:
        assert len(str(exc)) < 300  # the message describes the value, it never dumps it
        return
    assert_frame_shape(frame)


@QUICK
@given(msgpack_ints, bodies, bodies, st.lists(values, max_size=2))
def test_well_shaped_frames_round_trip_and_extra_elements_are_ignored(frame_id, body, error, extra):
    frame = decode_payload(pack([frame_id, body, error, *extra]))
    assert (frame.id, frame.error is None) == (frame_id, error is None)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pack({"id": 1}), "must be an array"),
        (pack([]), "must be an array of 2 or 3"),
        (pack([1]), "must be an array of 2 or 3"),
        (pack("text"), "must be an array"),
        (pack([True, {}]), "frame id must be an integer"),
        (pack([1.5, {}]), "frame id must be an integer"),
        (pack([None, {}]), "frame id must be an integer"),
        (pack([1, "body"]), "frame body must be a map"),
        (pack([1, b"bin"]), "frame body must be a map"),
        (pack([1, None, [1]]), "frame error must be a map"),
        (b"\x92\x01\xa3\xff\xfe\xfd", "undecodable"),  # invalid UTF-8 in a str
        (b"\x92\x01\x81\xa2\xc3\x28\x01", "undecodable"),  # invalid UTF-8 in a map key
        (b"\x92\x01\x81\x91\x01\x01", "undecodable"),  # unhashable map key
        (b"\x92\x01\xdf\xff\xff\xff\xff", "undecodable"),  # map header claiming 2^32-1 entries
        (b"\x92\x01\xdd\xff\xff\xff\xff", "undecodable"),  # array header claiming 2^32-1 items
        (b"\x92\x01\xdb\xff\xff\xff\xff", "undecodable"),  # str header claiming 4 GiB
        (b"\x92\x01\xc1", "undecodable"),  # the reserved byte
        (b"\x92\x01\x80\x80", "undecodable"),  # trailing bytes after the value
        (b"\x92\x01\xd6\xff\x00", "undecodable"),  # truncated timestamp
        (b"\x92\x01\xc7\x03\xff\x00\x00\x00", "undecodable"),  # timestamp ext of an invalid length
    ],
)
def test_malformed_payloads_are_named_protocol_errors(payload, message):
    with pytest.raises(ProtocolError, match=message):
        decode_payload(payload)


@pytest.mark.parametrize("slot", ["body", "error", "frame"])
@pytest.mark.parametrize("depth", [900, 1000, 1023, 1024, 5000, 200_000])
def test_deep_nesting_in_any_slot_is_a_protocol_error_never_a_recursion_error(slot, depth):
    nested = b"\x91" * depth + b"\xc0"  # depth nested one-element arrays
    payload = {
        "body": b"\x92\x01" + nested,
        "error": b"\x93\x01\xc0" + nested,
        "frame": nested,
    }[slot]
    with pytest.raises(ProtocolError) as excinfo:
        decode_payload(payload)
    assert len(str(excinfo.value)) < 300


def test_deep_nesting_inside_a_valid_body_decodes():
    nested = b"\x91" * 1000 + b"\xc0"
    frame = decode_payload(b"\x92\x01\x81\xa5value" + nested)
    assert frame.id == 1 and isinstance(frame.body["value"], list)


@QUICK
@given(unknown_types, st.dictionaries(st.text(max_size=5), values, max_size=3))
def test_unknown_body_types_are_frames_for_the_client_to_judge(type_name, fields):
    frame = decode_payload(pack([3, {**fields, "type": type_name}, None]))
    assert frame.body["type"] == type_name


# -- read_frame: lengths, truncation, splitting ------------------------------------------------------
def frame_stream(frames: list[tuple[int, dict | None]]) -> bytes:
    return b"".join(encode_response(i, body) for i, body in frames)


frame_lists = st.lists(st.tuples(st.integers(0, 2**31), bodies), min_size=1, max_size=4)


@QUICK
@given(st.binary(max_size=300))
def test_arbitrary_stream_bytes_end_in_a_protocol_error(data):
    frames, exc = read_all(stream(data))
    assert isinstance(exc, ProtocolError)
    for frame in frames:
        assert_frame_shape(frame)


@QUICK
@given(frame_lists, st.data())
def test_truncation_anywhere_is_eof_between_frames_or_a_protocol_error_inside_one(frames, data):
    whole = frame_stream(frames)
    boundaries = {0}
    for i, body in frames:
        boundaries.add(max(boundaries) + len(encode_response(i, body)))
    cut = data.draw(st.integers(0, len(whole)))
    got, exc = read_all(stream(whole[:cut]))
    if cut in boundaries:
        assert type(exc) is ChannelClosed and len(got) == sorted(boundaries).index(cut)
    else:
        assert type(exc) is ProtocolError and "closed inside" in str(exc)


def test_truncation_at_every_byte_of_a_frame():
    whole = encode_response(9, {"type": "VariableResult", "key": "k", "value": "v" * 20})
    for cut in range(len(whole) + 1):
        got, exc = read_all(stream(whole[:cut]))
        if cut == 0:
            assert type(exc) is ChannelClosed and got == []
        elif cut == len(whole):
            assert type(exc) is ChannelClosed and [f.id for f in got] == [9]
        else:
            assert type(exc) is ProtocolError and got == [], cut


@QUICK
@given(st.integers(min_value=LIMIT + 1, max_value=2**32 - 1))
def test_length_above_the_cap_is_refused_before_reading_or_allocating(length):
    # The stream would block forever after the header: refusing must not wait for (or allocate) it.
    reader = _NeverEnding(struct.pack(">I", length))
    with pytest.raises(ProtocolError, match="refusing a"):
        read_frame(reader, LIMIT)  # type: ignore[arg-type]
    assert reader.asked == [4]


class _NeverEnding:
    """A stream that answers the header and then fails the test if more is asked for."""

    def __init__(self, header: bytes):
        self.header, self.asked = header, []

    def read(self, n: int) -> bytes:
        self.asked.append(n)
        if len(self.asked) > 1:
            raise AssertionError(f"asked for {n} more bytes after a refused header")
        return self.header


def test_huge_prefix_on_a_real_socket_returns_at_once_with_bounded_memory():
    a, b = socket.socketpair()
    try:
        b.sendall(struct.pack(">I", 0xFFFFFFFF))  # and then nothing: the peer stays open
        rfile = a.makefile("rb", buffering=64 * 1024)
        tracemalloc.start()
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="refusing a 4294967295-byte frame"):
            read_frame(rfile, LIMIT)
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 0.5 and peak < 256 * 1024
        rfile.close()
    finally:
        a.close()
        b.close()


def test_zero_length_prefix_is_refused():
    with pytest.raises(ProtocolError, match="zero-length"):
        read_frame(stream(b"\x00\x00\x00\x00" + prefixed(pack([1, None]))), LIMIT)


def socket_reader(data_chunks: Iterator[bytes], pause: float) -> tuple[list[Frame], ProtocolError]:
    """Send chunks through a real socketpair (pausing so each arrives as its own ``recv``)."""
    a, b = socket.socketpair()
    rfile = a.makefile("rb", buffering=64 * 1024)

    def write() -> None:
        try:
            for chunk in data_chunks:
                b.sendall(chunk)
                if pause:
                    time.sleep(pause)
        finally:
            b.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        a.settimeout(10)  # a hang fails the test instead of blocking the suite
        return read_all(rfile)
    finally:
        writer.join(10)
        rfile.close()
        a.close()
        b.close()


def test_frames_split_at_every_boundary_through_a_socket():
    whole = encode_response(1, {"type": "VariableResult", "value": "x"}) + encode_response(2, None)
    for split in range(1, len(whole)):
        got, exc = socket_reader(iter([whole[:split], whole[split:]]), pause=0.002)
        assert [f.id for f in got] == [1, 2] and type(exc) is ChannelClosed, split


def test_frames_trickled_one_byte_at_a_time_through_a_socket():
    whole = encode_response(5, {"type": "XComResult", "key": "k", "value": [1, 2, 3]})
    got, exc = socket_reader((whole[i : i + 1] for i in range(len(whole))), pause=0.001)
    assert [f.body for f in got] == [{"type": "XComResult", "key": "k", "value": [1, 2, 3]}]
    assert type(exc) is ChannelClosed


@settings(max_examples=60, deadline=None, database=None)
@given(frame_lists, st.lists(st.integers(1, 64), min_size=1, max_size=30))
def test_any_chunking_through_a_socket_yields_the_same_frames(frames, sizes):
    whole = frame_stream(frames)

    def chunks() -> Iterator[bytes]:
        pos, k = 0, 0
        while pos < len(whole):
            size = sizes[k % len(sizes)]
            yield whole[pos : pos + size]
            pos, k = pos + size, k + 1

    got, exc = socket_reader(chunks(), pause=0)
    assert [f.id for f in got] == [i for i, _ in frames] and type(exc) is ChannelClosed


# -- memory: what the cap bounds ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "item"),
    [
        ("nil array", b"\xc0"),
        ("empty maps", b"\x80"),
        ("empty arrays", b"\x90"),
        ("one-entry maps", b"\x81\x00\xc0"),
        ("one-char strings", b"\xa1a"),
        ("timestamps", b"\xd6\xff\x00\x00\x00\x01"),
    ],
)
def test_decoded_size_is_a_bounded_multiple_of_the_frame(shape, item):
    """Python objects are bigger than their msgpack bytes; the worst case stays under 100x.

    With the default 64 MiB cap the worst case is therefore bounded (a few GiB, reported in
    docs/reliability.md); ``PYBUNDLE_MAX_FRAME_BYTES`` lowers it on small workers."""
    count = 200_000 // len(item)
    payload = b"\x92\x01\x81\xa1x\xdd" + count.to_bytes(4, "big") + item * count
    tracemalloc.start()
    start = time.monotonic()
    frame = decode_payload(payload)
    elapsed = time.monotonic() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(frame.body["x"]) == count
    assert peak < 100 * len(payload), f"{shape}: {peak / len(payload):.1f}x"
    assert elapsed < 2


# -- CommChannel dispatch -----------------------------------------------------------------------------
class ChannelUnderTest:
    """A ``CommChannel`` on one end of a socketpair, the test playing the supervisor on the other."""

    def __init__(self, limit: int = LIMIT):
        self.ours, self.peer = socket.socketpair()
        self.peer.settimeout(10)
        self.channel = CommChannel(self.ours, limit)
        self.lost: list[ProtocolError] = []
        self.channel.on_lost = self.lost.append
        self.channel.start_watching()

    def ask(self, timeout: float | None = None) -> dict[str, Any]:
        """Start one request in a thread; returns a dict filled with its result or exception."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["body"] = self.channel.request({"type": "GetVariable", "key": "k"}, timeout=timeout)
            except BaseException as exc:
                outcome["error"] = exc

        outcome["thread"] = threading.Thread(target=run, daemon=True)
        outcome["thread"].start()
        return outcome

    def read_request(self) -> list[Any]:
        rfile = self.peer.makefile("rb")
        try:
            header = rfile.read(4)
            return msgpack.unpackb(rfile.read(struct.unpack(">I", header)[0]))
        finally:
            rfile.close()

    def close(self) -> None:
        self.channel.close()
        self.peer.close()


@settings(max_examples=120, deadline=None, database=None)
@given(st.binary(max_size=120) | st.builds(lambda v: prefixed(pack(v)), values), st.booleans())
def test_channel_never_hangs_and_never_dies_silently_on_garbage_answers(garbage, close_after):
    under = ChannelUnderTest()
    try:
        outcome = under.ask()
        request_id = under.read_request()[0]
        under.peer.sendall(garbage)
        if close_after:
            under.peer.shutdown(socket.SHUT_WR)
        outcome["thread"].join(2 if close_after else 0.1)
        if outcome["thread"].is_alive():
            # Only possible when the garbage is an incomplete frame and the peer stays open: that
            # is indistinguishable from a slow supervisor, and closing must then end it at once.
            assert not close_after
            got, exc = read_all(stream(garbage))
            assert got == [] and (garbage == b"" or "closed inside" in str(exc)), garbage
            under.peer.shutdown(socket.SHUT_WR)
            outcome["thread"].join(2)
            assert not outcome["thread"].is_alive()
        if "error" in outcome:
            assert isinstance(outcome["error"], (ProtocolError, AirflowApiError)), outcome["error"]
        if isinstance(outcome.get("error"), ProtocolError):
            assert under.lost and under.lost[0] is outcome["error"]
        else:  # answered: the garbage started with a well-formed answer for our id
            assert decode_payload(garbage[4 : 4 + struct.unpack(">I", garbage[:4])[0]]).id == request_id
    finally:
        under.close()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda rid: encode_response(rid + 1, {"type": "VariableResult"}), id="id-never-issued"),
        pytest.param(lambda rid: encode_response(-1, None), id="negative-id"),
        pytest.param(
            lambda rid: encode_response(rid, None) + encode_response(rid, None), id="answered-twice"
        ),
        pytest.param(lambda rid: prefixed(b"\x92\x00" + b"\x91" * 1000 + b"\xc0"), id="deep-non-map-body"),
        pytest.param(lambda rid: prefixed(pack({"id": rid})), id="map-frame"),
        pytest.param(lambda rid: b"\x00\x00\x00\x00", id="zero-length"),
        pytest.param(lambda rid: struct.pack(">I", LIMIT + 1), id="over-the-cap"),
    ],
)
def test_wrong_answers_fail_the_channel_within_a_second(answer):
    under = ChannelUnderTest()
    try:
        outcome = under.ask()
        request_id = under.read_request()[0]
        start = time.monotonic()
        under.peer.sendall(answer(request_id))
        outcome["thread"].join(1)
        assert not outcome["thread"].is_alive(), "the request is still waiting"
        # answered-twice: the first answer is delivered, the duplicate then fails the channel
        if "error" not in outcome:
            deadline = time.monotonic() + 1
            while not under.lost and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            assert isinstance(outcome["error"], ProtocolError)
        assert len(under.lost) == 1 and time.monotonic() - start < 1.5
        with pytest.raises(ProtocolError):  # and every later request fails at once
            under.channel.request({"type": "GetVariable", "key": "again"})
    finally:
        under.close()


def test_a_late_answer_to_a_timed_out_request_is_dropped_not_fatal():
    under = ChannelUnderTest()
    try:
        first = under.ask(timeout=0.2)
        first_id = under.read_request()[0]
        first["thread"].join(2)
        assert isinstance(first["error"], TimeoutError)
        second = under.ask()
        second_id = under.read_request()[0]
        under.peer.sendall(encode_response(first_id, None) + encode_response(second_id, {"type": "X"}))
        second["thread"].join(2)
        assert second["body"] == {"type": "X"} and under.lost == []
        under.peer.sendall(encode_response(first_id, None))  # but only once
        deadline = time.monotonic() + 2
        while not under.lost and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "not outstanding" in str(under.lost[0])
    finally:
        under.close()


@pytest.mark.parametrize("how", ["close", "shutdown-write"])
def test_a_supervisor_lost_while_no_request_is_in_flight_fails_the_channel_within_a_second(how):
    under = ChannelUnderTest()
    try:
        outcome = under.ask()
        request_id = under.read_request()[0]
        under.peer.sendall(encode_response(request_id, {"type": "VariableResult"}))
        outcome["thread"].join(2)
        assert outcome["body"] == {"type": "VariableResult"}
        time.sleep(0.1)  # the task computes; the watcher is the only one looking
        start = time.monotonic()
        if how == "close":
            under.peer.close()
        else:
            under.peer.shutdown(socket.SHUT_WR)
        deadline = start + 1
        while not under.lost and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(under.lost) == 1 and isinstance(under.lost[0], ChannelClosed)
        with pytest.raises(ChannelClosed):
            under.channel.request({"type": "GetVariable", "key": "again"})
    finally:
        under.close()


def test_error_slot_is_an_api_error_and_the_channel_lives_on():
    under = ChannelUnderTest()
    try:
        outcome = under.ask()
        request_id = under.read_request()[0]
        under.peer.sendall(encode_response(request_id, None, {"error": "API_SERVER_ERROR", "detail": None}))
        outcome["thread"].join(2)
        assert isinstance(outcome["error"], AirflowApiError) and under.lost == []
    finally:
        under.close()


# -- the atheris target's own checks, on every seed and on generated input ---------------------------
@functools.lru_cache(maxsize=1)
def _fuzz_check():
    import importlib.util

    from .conftest import ROOT

    spec = importlib.util.spec_from_file_location("fuzz_frames", ROOT / "fuzz" / "fuzz_frames.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check, sorted((ROOT / "fuzz" / "seeds").glob("*.bin"))


def test_fuzz_target_accepts_every_seed():
    check, seeds = _fuzz_check()
    assert len(seeds) >= 8
    for seed in seeds:
        check(seed.read_bytes())


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.builds(encode_response, st.integers(0, 4), bodies)
        | st.builds(lambda v: prefixed(pack(v)), values)
        | st.binary(max_size=16),
        max_size=5,
    )
)
def test_fuzz_target_properties_hold_on_generated_streams(parts):
    check, _ = _fuzz_check()
    check(b"".join(parts))
