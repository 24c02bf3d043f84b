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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from . import PackError

TRAILER_SIZE = 64
MAGIC = b"AFBNDL01"
FOOTER_VERSION = 1
MAX_REGION = 2**32 - 1
CHUNK_SIZE = 1 << 20  # the released reader hashes in 1 MiB chunks too
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


def check_trailer(trailer: Trailer, size: int, name: str) -> tuple[int, int]:
    """``(source_start, metadata_start)`` of a ``size``-byte file ending with ``trailer``.

    Raises :class:`NotABundle` when the magic does not match and :class:`TrailerError` when the file
    would be skipped by Airflow (wrong footer version, non-zero reserved bytes, regions out of range,
    empty binary region). Only arithmetic on the two lengths: a trailer that declares 4 GiB of
    metadata in a small file is refused before anything is read."""
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
    return source_start, metadata_start


def _hash_mismatch(name: str, source_start: int, actual: bytes, trailer: Trailer) -> TrailerError:
    return TrailerError(
        f"{name}: SHA-256 of the binary region [0, {source_start}) is {actual.hex()}, but the trailer "
        f"records {trailer.binary_sha256.hex()}; the file is corrupted or was modified after packing"
    )


def parse_bundle(data: bytes, *, name: str = "file", check_hash: bool = True) -> ExecutableBundle:
    """Locate the regions of ``data`` and check them like Airflow's reader does.

    Raises :class:`NotABundle` when there is no trailer and :class:`TrailerError` when the trailer is
    there but the file would be skipped by Airflow (wrong footer version, non-zero reserved bytes,
    regions out of range, empty binary region, hash mismatch)."""
    size = len(data)
    if size < TRAILER_SIZE:
        raise NotABundle(f"{name} is {size} bytes, shorter than the {TRAILER_SIZE}-byte bundle trailer")
    trailer = Trailer.unpack(data[-TRAILER_SIZE:])
    source_start, metadata_start = check_trailer(trailer, size, name)
    binary = data[:source_start]
    if check_hash:
        actual = hashlib.sha256(binary).digest()
        if actual != trailer.binary_sha256:
            raise _hash_mismatch(name, source_start, actual, trailer)
    return ExecutableBundle(
        binary=binary,
        source=data[source_start:metadata_start],
        metadata=data[metadata_start : size - TRAILER_SIZE],
        trailer=trailer,
    )


@dataclass(frozen=True)
class LocatedBundle:
    """An executable bundle on disk: its checked trailer, region offsets and manifest bytes.

    The binary and source regions stay on disk (they can be arbitrarily large); read the source with
    :func:`iter_range`."""

    size: int
    source_start: int
    metadata_start: int
    metadata: bytes
    trailer: Trailer


def read_trailer(handle: BinaryIO, size: int, name: str) -> Trailer:
    """The last 64 bytes of the file as a trailer; :class:`NotABundle` if the file is shorter."""
    if size < TRAILER_SIZE:
        raise NotABundle(f"{name} is {size} bytes, shorter than the {TRAILER_SIZE}-byte bundle trailer")
    handle.seek(size - TRAILER_SIZE)
    data = handle.read(TRAILER_SIZE)
    if len(data) != TRAILER_SIZE:
        raise TrailerError(f"{name} changed while it was being read")
    return Trailer.unpack(data)


def iter_range(handle: BinaryIO, start: int, end: int, name: str) -> Iterator[bytes]:
    """The bytes ``[start, end)`` of the file in chunks of at most ``CHUNK_SIZE``."""
    handle.seek(start)
    left = end - start
    while left > 0:
        chunk = handle.read(min(CHUNK_SIZE, left))
        if not chunk:
            raise TrailerError(
                f"{name} changed while it was being read (it is shorter than its trailer says)"
            )
        left -= len(chunk)
        yield chunk


def locate_bundle(handle: BinaryIO, size: int, *, name: str = "file", max_metadata: int) -> LocatedBundle:
    """Check an executable bundle in an open file like Airflow's reader does, in bounded memory.

    Reads the trailer, checks it, hashes the binary region in ``CHUNK_SIZE`` chunks (as the released
    reader does) and reads the manifest, refusing one larger than ``max_metadata`` bytes. Memory use
    is independent of the file size and of what the trailer declares."""
    trailer = read_trailer(handle, size, name)
    source_start, metadata_start = check_trailer(trailer, size, name)
    digest = hashlib.sha256()
    for chunk in iter_range(handle, 0, source_start, name):
        digest.update(chunk)
    if digest.digest() != trailer.binary_sha256:
        raise _hash_mismatch(name, source_start, digest.digest(), trailer)
    if trailer.metadata_len > max_metadata:
        raise TrailerError(
            f"{name}: the manifest region is {trailer.metadata_len} bytes; a bundle manifest is at most "
            f"{max_metadata} bytes (bundle-pack does not load a larger one)"
        )
    metadata = b"".join(iter_range(handle, metadata_start, size - TRAILER_SIZE, name))
    return LocatedBundle(size, source_start, metadata_start, metadata, trailer)
