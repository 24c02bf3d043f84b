"""The frame codec and the runtime's reaction to bad first frames (crafted bytes, not a fake supervisor)."""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import msgpack
import pytest

from bundle.coordinator.frames import (
    ChannelClosed,
    ProtocolError,
    decode_payload,
    encode_request,
    encode_response,
    read_frame,
)

from .conftest import EXAMPLE

LIMIT = 1024


def framed(value) -> bytes:
    payload = msgpack.packb(value)
    return struct.pack(">I", len(payload)) + payload


def stream(*chunks: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(b"".join(chunks)))


def test_request_is_big_endian_length_then_msgpack_array_with_aware_timestamp():
    when = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=timezone(timedelta(hours=2)))
    frame = encode_request(7, {"type": "SucceedTask", "end_date": when})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    raw = msgpack.unpackb(frame[4:], timestamp=0)
    assert raw[0] == 7 and len(raw) == 2
    assert isinstance(raw[1]["end_date"], msgpack.Timestamp)  # ext type -1, not a string
    decoded = decode_payload(frame[4:])
    assert decoded.body["end_date"] == when and decoded.body["end_date"].tzinfo is not None


def test_responses_with_two_or_three_elements_and_type_last():
    three = encode_response(3, {"key": "k", "value": "v", "type": "VariableResult"}, None)
    assert three[4:] == msgpack.packb([3, {"key": "k", "value": "v", "type": "VariableResult"}, None])
    frame = read_frame(stream(three), LIMIT)
    assert (frame.id, frame.body["type"], frame.error) == (3, "VariableResult", None)
    two = msgpack.packb([4, None])
    assert read_frame(stream(struct.pack(">I", len(two)), two), LIMIT).id == 4


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", ChannelClosed, "closed the comm channel"),
        (b"\x00\x00", ProtocolError, "inside a frame header"),
        (b"\x00\x00\x00\x00", ProtocolError, "zero-length frame"),
        (struct.pack(">I", LIMIT + 1), ProtocolError, f"refusing a {LIMIT + 1}-byte frame"),
        (struct.pack(">I", 0xFFFFFFFF), ProtocolError, "above the 1024-byte limit"),
        (struct.pack(">I", 10) + b"abc", ProtocolError, "inside a frame (3 of 10 bytes)"),
        (struct.pack(">I", 1) + b"\xc1", ProtocolError, "undecodable frame payload"),
        (framed({"id": 1}), ProtocolError, "must be an array"),
        (framed([5]), ProtocolError, "must be an array of 2 or 3"),
        (framed(["1", {}]), ProtocolError, "frame id must be an integer"),
        (framed([1, [1]]), ProtocolError, "frame body must be a map"),
        (framed([1, None, "oops"]), ProtocolError, "frame error must be a map"),
    ],
)
def test_bad_frames_are_clean_errors(data, error, message):
    with pytest.raises(error) as excinfo:
        read_frame(stream(data), LIMIT)
    assert message in str(excinfo.value)


def test_never_encodes_what_msgpack_cannot_carry():
    with pytest.raises(TypeError):
        encode_request(1, {"type": "X", "value": object()})


def serve_bad_first_frame(first: bytes, env: dict[str, str] | None = None):
    """Run the example bundle in coordinator mode against sockets that send ``first``."""
    comm, logs = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    cmd = [
        sys.executable,
        "-m",
        "bundle",
        "--bundle",
        str(EXAMPLE),
        f"--comm=127.0.0.1:{comm.getsockname()[1]}",
        f"--logs=127.0.0.1:{logs.getsockname()[1]}",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**__import__("os").environ, **(env or {})}
    )
    comm.settimeout(10)
    logs.settimeout(10)
    comm_conn, _ = comm.accept()
    logs_conn, _ = logs.accept()
    comm_conn.sendall(first)
    comm_conn.shutdown(socket.SHUT_WR)  # then the "supervisor" goes quiet: EOF
    code = proc.wait(timeout=10)
    elapsed = time.monotonic() - start
    logs_conn.settimeout(5)
    data = b""
    while chunk := logs_conn.recv(65536):
        data += chunk
    for s in (comm_conn, logs_conn, comm, logs):
        s.close()
    proc.stdout.close()
    proc.stderr.close()
    return code, [json.loads(line) for line in data.splitlines()], elapsed


def test_unexpected_first_frame_logs_an_error_and_exits_1():
    code, records, _ = serve_bad_first_frame(encode_response(0, {"type": "VariableResult", "key": "k"}))
    assert code == 1
    [record] = [r for r in records if r["level"] == "error"]
    assert "Unexpected first frame" in record["event"] and "VariableResult" in record["event"]


def test_oversized_first_frame_is_refused_quickly_without_allocating():
    code, records, elapsed = serve_bad_first_frame(
        struct.pack(">I", 2**31), env={"PYBUNDLE_MAX_FRAME_BYTES": "4096"}
    )
    assert code == 1 and elapsed < 5
    assert any("refusing a 2147483648-byte frame" in r["event"] for r in records)


def test_supervisor_closing_before_startup_details_exits_1():
    code, records, _ = serve_bad_first_frame(b"")
    assert code == 1
    assert any("No usable first frame" in r["event"] for r in records)
