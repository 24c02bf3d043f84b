"""The 64-byte AFBNDL01 trailer: layout, round trip, every rejection - checked against the released reader.

``airflow.sdk.coordinators.executable.coordinator`` (apache-airflow-task-sdk 1.3.2) is the peer: every
file this module accepts must be one its ``_read_bundle_metadata`` accepts, and every file this module
rejects must be one it skips.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
import struct
from typing import Any

import pytest

from packer.trailer import (
    MAGIC,
    TRAILER_SIZE,
    NotABundle,
    Trailer,
    TrailerError,
    assemble,
    has_trailer,
    parse_bundle,
)
from tests.fixtures.packer.support import ensure_airflow_home


@functools.cache
def released() -> Any:
    """The released reader, ``airflow.sdk.coordinators.executable.coordinator`` (task-sdk 1.3.2)."""
    ensure_airflow_home()
    from airflow.sdk.coordinators.executable import coordinator

    return coordinator


BINARY = b"#!/bin/sh\nexit 0\n"
SOURCE = b"print('dag source')\n"
METADATA = b'dags:\n  d:\n    tasks:\n      - "t"\nsdk:\n  supervisor_schema_version: "2026-06-16"\n'


def released_reader_accepts(tmp_path: pathlib.Path, data: bytes) -> dict | None:
    path = tmp_path / f"bundle-{hashlib.sha256(data).hexdigest()[:12]}"
    path.write_bytes(data)
    path.chmod(0o755)
    released()._digest_cache.clear()
    return released()._read_bundle_metadata(path)


def test_layout_and_round_trip(tmp_path):
    data = assemble(BINARY, SOURCE, METADATA)
    assert len(data) == len(BINARY) + len(SOURCE) + len(METADATA) + TRAILER_SIZE
    trailer = data[-TRAILER_SIZE:]
    assert struct.unpack("<III", trailer[:12]) == (len(SOURCE), len(METADATA), 1)
    assert trailer[12:44] == hashlib.sha256(BINARY).digest()
    assert trailer[44:56] == bytes(12)
    assert trailer[56:] == MAGIC == bytes.fromhex("4146424e444c3031")
    bundle = parse_bundle(data)
    assert (bundle.binary, bundle.source, bundle.metadata) == (BINARY, SOURCE, METADATA)
    assert bundle.source_start == len(BINARY) and has_trailer(data)
    assert released_reader_accepts(tmp_path, data) == {
        "dags": {"d": {"tasks": ["t"]}},
        "sdk": {"supervisor_schema_version": "2026-06-16"},
    }


def test_zero_length_source(tmp_path):
    data = assemble(BINARY, b"", METADATA)
    assert parse_bundle(data).source == b""
    assert released_reader_accepts(tmp_path, data) is not None


def test_deterministic_output():
    assert assemble(BINARY, SOURCE, METADATA) == assemble(BINARY, SOURCE, METADATA)


def test_trailer_pack_unpack():
    trailer = Trailer(3, 4, b"\x01" * 32)
    assert Trailer.unpack(trailer.pack()) == trailer and len(trailer.pack()) == 64


def test_empty_binary_region_cannot_be_written():
    with pytest.raises(Exception, match="must not be empty"):
        assemble(b"", SOURCE, METADATA)


def corrupt(data: bytes, offset_from_end: int, value: bytes) -> bytes:
    position = len(data) - offset_from_end
    return data[:position] + value + data[position + len(value) :]


GOOD = assemble(BINARY, SOURCE, METADATA)


@pytest.mark.parametrize(
    ("name", "data", "error", "message"),
    [
        ("too short", GOOD[-63:], NotABundle, "shorter than the 64-byte"),
        ("truncated trailer", GOOD[:-1], NotABundle, "trailer magic"),
        ("wrong magic", corrupt(GOOD, 8, b"AFBNDL02"), NotABundle, "trailer magic"),
        (
            "footer_ver 99",
            corrupt(GOOD, 56, struct.pack("<I", 99)),
            TrailerError,
            "unsupported footer_ver 99",
        ),
        ("reserved bytes", corrupt(GOOD, 20, b"\x01"), TrailerError, "reserved bytes are not zero"),
        ("regions past start", corrupt(GOOD, 64, struct.pack("<I", 10**6)), TrailerError, "more than the"),
        (
            "no binary region",
            corrupt(GOOD, 64, struct.pack("<I", len(BINARY) + len(SOURCE))),
            TrailerError,
            "no room for the binary region",
        ),
        ("flipped binary byte", b"X" + GOOD[1:], TrailerError, "SHA-256 of the binary region"),
        ("flipped hash byte", corrupt(GOOD, 40, b"\x00\x00"), TrailerError, "SHA-256 of the binary region"),
    ],
)
def test_rejections_match_the_released_reader(tmp_path, name, data, error, message):
    with pytest.raises(error, match=message):
        parse_bundle(data, name=name)
    assert released_reader_accepts(tmp_path, data) is None, f"the released reader accepted: {name}"


def test_unchecked_hash_still_locates_regions():
    bundle = parse_bundle(b"X" + GOOD[1:], check_hash=False)
    assert bundle.source == SOURCE and bundle.metadata == METADATA
