#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for the coordinator's comm channel.

Each input is run through the three layers that see the supervisor's bytes:

1. ``decode_payload(data)``: the whole input as one frame payload;
2. ``read_frame`` in a loop over the input as a byte stream (prefix + payload, repeatedly);
3. ``CommChannel``'s reader loop dispatching that stream to outstanding requests.

The properties are the ones the hypothesis tests state (tests/test_hardening_coordinator_frames.py):
only ``ProtocolError`` ever comes out, the reader always stops at the end of the input, answers go
to the request with their id, and anything else fails the channel exactly once, waking every waiting
request. Any other exception, or a failed ``assert``, is a finding.

Run it (see fuzz/README.md for the long campaign)::

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_frames.py -max_total_time=300 /tmp/frames-corpus fuzz/seeds
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LIMIT = 64 * 1024  # small, so length prefixes above the cap are easy to reach


class _BytesSocket:
    """Just what ``CommChannel`` uses of a socket, serving a fixed byte string then EOF.

    No threads and no file descriptors: the reader loop runs synchronously, so a hang shows up as
    libFuzzer's per-input timeout and each input costs microseconds."""

    def __init__(self, data: bytes):
        self._stream = io.BytesIO(data)

    def recv(self, size: int) -> bytes:
        return self._stream.read(size)

    def sendall(self, data: bytes) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


def check(data: bytes) -> None:
    """One fuzz input; raises (AssertionError or anything unexpected) on a finding."""
    from bundle.coordinator.channel import CommChannel
    from bundle.coordinator.frames import ChannelClosed, Frame, ProtocolError, decode_payload, read_frame

    def well_shaped(frame: Frame) -> None:
        assert isinstance(frame.id, int) and not isinstance(frame.id, bool)
        assert frame.body is None or isinstance(frame.body, dict)
        assert frame.error is None or isinstance(frame.error, dict)

    # 1. payload decoding
    try:
        well_shaped(decode_payload(data))
    except ProtocolError as exc:
        assert len(str(exc)) < 400, "error messages describe values, they never dump them"

    # 2. the stream reader: it must stop, with a ProtocolError, after at most len/5 frames
    stream = io.BufferedReader(io.BytesIO(data))
    frames: list[Frame] = []
    while True:
        try:
            frame = read_frame(stream, LIMIT)
        except ProtocolError as exc:
            stop: ProtocolError = exc
            break
        well_shaped(frame)
        frames.append(frame)
        assert len(frames) <= len(data) // 5
    assert isinstance(stop, ProtocolError)

    # 3. dispatch: requests 0..2 outstanding, the input is everything the supervisor ever sends
    channel = CommChannel(_BytesSocket(data), LIMIT)  # type: ignore[arg-type]
    lost: list[ProtocolError] = []
    channel.on_lost = lost.append
    pending = range(3)
    channel._answers.update({i: None for i in pending})
    channel._next_id = 3
    with channel._state:  # what waiting requests do, minus the waiting: read and dispatch until it fails
        while channel._failure is None:
            channel._dispatch(channel._read_one(None))
    assert len(lost) == 1 and isinstance(lost[0], ProtocolError), lost
    answered = [f.id for f in frames if f.id in pending]
    delivered = {i for i, frame in channel._answers.items() if frame is not None}
    for request_id in delivered:
        assert channel._answers[request_id].id == request_id
    assert delivered <= set(answered), "an answer nobody sent was delivered"
    if (
        isinstance(stop, ChannelClosed)
        and set(f.id for f in frames) <= set(pending)
        and len(frames) == len(set(f.id for f in frames))
    ):
        # a clean stream of distinct answers for outstanding ids: all delivered, then EOF
        assert delivered == set(answered) and isinstance(lost[0], ChannelClosed)


def main(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["bundle", "msgpack.fallback"]):
        import msgpack.fallback

        import bundle.coordinator.channel
        import bundle.coordinator.frames  # noqa: F401

    def test_one_input(data: bytes) -> None:
        # The runtime decodes with msgpack's C extension, which libFuzzer cannot see into. Running
        # the same bytes through msgpack's pure-Python decoder (instrumented, result ignored) gives
        # the fuzzer coverage feedback for the msgpack grammar, so it builds structured payloads
        # (nested maps, ext types, strings of every width) that then go through the real path.
        try:
            msgpack.fallback.unpackb(data[4:], timestamp=3, raw=False, strict_map_key=False)
        except Exception:
            pass
        check(data)

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
