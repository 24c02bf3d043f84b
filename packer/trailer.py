"""The 64-byte ``AFBNDL01`` trailer of an executable bundle: layout, writing and checked reading.

File layout (all integers little-endian)::

    [0, source_start)               binary region (here: the launcher), never empty
    [source_start, metadata_start)  primary DAG source, verbatim
    [metadata_start, size - 64)     manifest YAML
    [size - 64, size)               trailer: source_len u32, metadata_len u32, footer_ver u32 (= 1),
                                    binary_sha256 (32 raw bytes), 12 reserved zero bytes, b"AFBNDL01"

Reading applies the same checks, in the same order, as the released reader in apache-airflow-task-sdk
1.3.2, so a file this module accepts is one that ``ExecutableCoordinator`` accepts; the messages say
which check failed, because ``verify`` and ``inspect`` are where a user learns why Airflow skips a file.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from . import PackError

TRAILER_SIZE = 64
MAGIC = b"AFBNDL01"
FOOTER_VERSION = 1
MAX_REGION = 2**32 - 1
_LAYOUT = struct.Struct("<III32s12s8s")
assert _LAYOUT.size == TRAILER_SIZE


class TrailerError(PackError):
    """The file carries an ``AFBNDL01`` trailer that Airflow would reject."""


class NotABundle(TrailerError):
    """The file has no ``AFBNDL01`` trailer at all (too short, or the magic does not match)."""


@dataclass(frozen=True)
class Trailer:
    source_len: int
    metadata_len: int
    binary_sha256: bytes
    footer_ver: int = FOOTER_VERSION
    reserved: bytes = bytes(12)
    magic: bytes = MAGIC

    def pack(self) -> bytes:
        """The 64 trailer bytes."""
        return _LAYOUT.pack(
            self.source_len, self.metadata_len, self.footer_ver, self.binary_sha256, self.reserved, self.magic
        )

    @classmethod
    def unpack(cls, data: bytes) -> Trailer:
        """Decode 64 bytes without judging them (see :func:`parse_bundle` for the checks)."""
        source_len, metadata_len, footer_ver, digest, reserved, magic = _LAYOUT.unpack(data)
        return cls(source_len, metadata_len, digest, footer_ver, reserved, magic)


@dataclass(frozen=True)
class ExecutableBundle:
    """The regions of an executable bundle, as located by its trailer."""

    binary: bytes
    source: bytes
    metadata: bytes
    trailer: Trailer

    @property
    def source_start(self) -> int:
        return len(self.binary)


def assemble(binary: bytes, source: bytes, metadata: bytes) -> bytes:
    """Concatenate the regions and append the trailer; the hash covers exactly ``binary``."""
    if not binary:
        raise PackError("the binary region of an executable bundle must not be empty")
    for what, region in (("source", source), ("manifest", metadata)):
        if len(region) > MAX_REGION:
            raise PackError(
                f"the {what} region is {len(region)} bytes; the trailer can describe at most {MAX_REGION}"
            )
    trailer = Trailer(len(source), len(metadata), hashlib.sha256(binary).digest())
    return b"".join((binary, source, metadata, trailer.pack()))


def has_trailer(data: bytes) -> bool:
    """Whether ``data`` ends with the ``AFBNDL01`` magic (the reader's test for "is this a bundle")."""
    return len(data) >= TRAILER_SIZE and data[-8:] == MAGIC


def parse_bundle(data: bytes, *, name: str = "file", check_hash: bool = True) -> ExecutableBundle:
    """Locate the regions of ``data`` and check them like Airflow's reader does.

    Raises :class:`NotABundle` when there is no trailer and :class:`TrailerError` when the trailer is
    there but the file would be skipped by Airflow (wrong footer version, non-zero reserved bytes,
    regions out of range, empty binary region, hash mismatch)."""
    size = len(data)
    if size < TRAILER_SIZE:
        raise NotABundle(f"{name} is {size} bytes, shorter than the {TRAILER_SIZE}-byte bundle trailer")
    trailer = Trailer.unpack(data[-TRAILER_SIZE:])
    if trailer.magic != MAGIC:
        raise NotABundle(
            f"{name} does not end with the {MAGIC.decode()} trailer magic (found {trailer.magic!r})"
        )
    if trailer.footer_ver != FOOTER_VERSION:
        raise TrailerError(
            f"{name}: unsupported footer_ver {trailer.footer_ver} (Airflow 1.3.2 reads footer_ver {FOOTER_VERSION})"
        )
    if trailer.reserved != bytes(12):
        raise TrailerError(f"{name}: the trailer's 12 reserved bytes are not zero ({trailer.reserved.hex()})")
    metadata_start = size - TRAILER_SIZE - trailer.metadata_len
    source_start = metadata_start - trailer.source_len
    if source_start < 0:
        raise TrailerError(
            f"{name}: the trailer declares source_len={trailer.source_len} and metadata_len={trailer.metadata_len}, "
            f"more than the {size - TRAILER_SIZE} bytes before the trailer"
        )
    if source_start == 0:
        raise TrailerError(f"{name}: the trailer leaves no room for the binary region (it must not be empty)")
    binary = data[:source_start]
    if check_hash:
        actual = hashlib.sha256(binary).digest()
        if actual != trailer.binary_sha256:
            raise TrailerError(
                f"{name}: SHA-256 of the binary region [0, {source_start}) is {actual.hex()}, but the trailer "
                f"records {trailer.binary_sha256.hex()}; the file is corrupted or was modified after packing"
            )
    return ExecutableBundle(
        binary=binary,
        source=data[source_start:metadata_start],
        metadata=data[metadata_start : size - TRAILER_SIZE],
        trailer=trailer,
    )
