"""``bundle-pack inspect``: open a bundle of either format and show its manifest (and source).

Format detection mirrors the consumers: a file ending with the ``AFBNDL01`` magic is an executable
bundle (its trailer is checked, hash included, exactly as Airflow checks it before trusting the
manifest); otherwise a ZIP archive with ``airflow-metadata.yaml`` at its root is a ZIP bundle.

Output, as ``airflow-go-pack inspect`` prints it: the manifest bytes verbatim; with ``--source``,
``# --- source ---`` + the source, then ``# --- manifest ---`` + the manifest, each region followed by
a newline if it does not end with one.

A bundle handed to ``inspect`` or ``verify`` may be hostile or simply broken, so opening one is
bounded whatever its bytes say: the file is never read whole (the binary region is hashed in 1 MiB
chunks, the source is streamed), a FIFO or device is refused before anything blocks on it, the
manifest is read only if it is at most :data:`MAX_MANIFEST_BYTES`, and a ZIP archive's central
directory, entry count and declared entry sizes are checked before any entry is read, so a zip bomb
costs neither memory nor unbounded time. Nothing is extracted; every failure is a :class:`PackError`.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from . import PackError, launcher
from .manifest import MANIFEST_NAME, ManifestError, load
from .trailer import MAGIC, TRAILER_SIZE, LocatedBundle, TrailerError, iter_range, locate_bundle

# A real manifest is a few KiB (one line per task); 512 KiB is ~20,000 task ids. The bound is also
# the time bound: Airflow's pure-Python YAML loader (the one verify uses, to judge like Airflow)
# needs 5-16 s per MiB depending on the style, so a hostile manifest costs at most ~8 s.
MAX_MANIFEST_BYTES = 512 << 10
# A ZIP bundle has three entries; these bounds only keep a hostile archive from costing memory/time.
MAX_ZIP_ENTRIES = 10_000
MAX_CENTRAL_DIRECTORY_BYTES = 16 << 20
MAX_ENTRY_BYTES = 1 << 30  # declared uncompressed size of one entry (the executable is ~0.4 MiB)
MAX_TOTAL_BYTES = 2 << 30  # declared uncompressed size of all entries: what a CRC check reads
CHUNK_SIZE = 1 << 20
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_TAIL_SIZE = (1 << 16) + _EOCD_SIZE  # the end record plus the longest possible archive comment


class DamagedEntry(PackError):
    """A ZIP entry whose bytes cannot be read back intact; ``detail`` says what zipfile found."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


@dataclass
class LoadedBundle:
    """A bundle's parts, independent of its format; holds the file open until :meth:`close`."""

    path: str
    format: str
    manifest: bytes
    handle: BinaryIO
    size: int
    mode: int
    located: LocatedBundle | None = None
    archive: zipfile.ZipFile | None = None
    _closed: bool = field(default=False, repr=False)

    def iter_source(self) -> Iterator[bytes]:
        """The primary DAG source in chunks: the source region, or the ZIP entry the manifest names."""
        if self.located is not None:
            yield from iter_range(
                self.handle, self.located.source_start, self.located.metadata_start, self.path
            )
            return
        assert self.archive is not None
        yield from iter_entry(self.archive, self.manifest_entry("source"), self.path, MAX_ENTRY_BYTES)

    def manifest_entry(self, key: str) -> zipfile.ZipInfo:
        """The regular ZIP entry a ZIP bundle's manifest names under ``key`` (``source``, ``executable``)."""
        assert self.archive is not None
        try:
            name = load(self.manifest).get(key)
        except ManifestError as exc:
            raise PackError(f"{self.path}: cannot find the {key}: {exc}") from None
        if not isinstance(name, str) or name not in self.archive.namelist():
            raise PackError(f"{self.path}: the manifest's {key} {name!r} is not an entry of the archive")
        info = self.archive.getinfo(name)
        check_regular_entry(info, self.path)
        return info

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.archive is not None:
                self.archive.close()
            self.handle.close()

    def __enter__(self) -> LoadedBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def entry_type(info: zipfile.ZipInfo) -> int:
    """The ``S_IFMT`` bits an entry records (0 when it records none, i.e. a plain file)."""
    return stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0


def check_regular_entry(info: zipfile.ZipInfo, path: str) -> None:
    """Refuse to treat a symbolic link or directory entry as a file (its bytes are a link target)."""
    kind = entry_type(info)
    if info.is_dir() or kind == stat.S_IFDIR:
        raise PackError(f"{path}: entry {info.filename!r} is a directory, not a file")
    if kind not in (0, stat.S_IFREG):
        what = "a symbolic link" if kind == stat.S_IFLNK else f"not a regular file (type {kind:o})"
        raise PackError(f"{path}: entry {info.filename!r} is {what}")


def iter_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, limit: int) -> Iterator[bytes]:
    """An entry's bytes in chunks, CRC-32 checked at the end; never more than ``limit`` bytes.

    zipfile stops decompressing at the declared size, so checking that size first bounds the work
    whatever the compressed data would expand to."""
    if info.file_size > limit:
        raise PackError(
            f"{path}: entry {info.filename!r} declares {info.file_size} bytes uncompressed, more than the "
            f"{limit} bundle-pack reads (a zip bomb?)"
        )
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(CHUNK_SIZE)
                if not chunk:
                    return
                yield chunk
    except PackError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, encrypted/unsupported entries...
        raise DamagedEntry(f"{path}: entry {info.filename!r} is damaged: {exc}", str(exc)) from None


def read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, limit: int) -> bytes:
    """A whole entry (at most ``limit`` bytes, CRC-32 checked); a damaged entry is a precise error."""
    return b"".join(iter_entry(archive, info, path, limit))


def open_file(path: str) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading, refusing anything but a regular file before it can block.

    ``O_NONBLOCK`` makes opening a FIFO return at once (a plain open would wait for a writer forever);
    the ``fstat`` then refuses it, like a device such as ``/dev/zero`` that would never reach EOF."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        return os.fdopen(fd, "rb"), st
    os.close(fd)
    if stat.S_ISDIR(st.st_mode):
        raise PackError(f"cannot read {path}: Is a directory")
    raise PackError(
        f"cannot read {path}: not a regular file (a bundle is a file, not a FIFO, socket or device)"
    )


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def load_bundle(path: str) -> LoadedBundle:
    """Open ``path`` and locate its manifest; raises :class:`PackError` saying why it is not a bundle.

    The caller closes the result (it is a context manager)."""
    handle, st = open_file(path)
    try:
        return _load(path, handle, st)
    except BaseException:
        handle.close()
        raise


def _load(path: str, handle: BinaryIO, st: os.stat_result) -> LoadedBundle:
    size = st.st_size
    tail = _read_at(handle, max(0, size - _TAIL_SIZE), _TAIL_SIZE)
    if size >= TRAILER_SIZE and tail.endswith(MAGIC):
        located = locate_bundle(handle, size, name=path, max_metadata=MAX_MANIFEST_BYTES)
        return LoadedBundle(path, "executable", located.metadata, handle, size, st.st_mode, located=located)
    head = _read_at(handle, 0, len(launcher.SHEBANG + launcher.COMMENT))
    archive = None
    failure = ""
    try:
        check_zip_directory(tail, handle, path)
        archive = zipfile.ZipFile(handle)
    except PackError:
        raise
    except Exception as exc:  # BadZipFile, or anything else a malformed central directory raises
        failure = str(exc)
    if launcher.is_launcher(head) and (archive is None or bytes_after_zip(tail)):
        raise PackError(
            f"{path} starts with a bundle launcher but has no valid AFBNDL01 trailer "
            f"(it ends with {tail[-8:]!r}): a truncated or damaged executable bundle"
        )
    if archive is None:
        raise PackError(
            f"{path} is not a bundle: it has no AFBNDL01 trailer and is not a ZIP archive"
            + (f" ({failure})" if failure and "File is not a zip file" not in failure else "")
        )
    try:
        if len(archive.infolist()) > MAX_ZIP_ENTRIES:
            raise PackError(
                f"{path} has {len(archive.infolist())} entries; a bundle has at most {MAX_ZIP_ENTRIES}"
            )
        if MANIFEST_NAME not in archive.namelist():
            if launcher.is_launcher(head):
                raise PackError(
                    f"{path} is a bundle executable without a manifest (the executable entry of a ZIP bundle); "
                    "inspect the ZIP bundle or an --format executable bundle instead"
                )
            raise PackError(f"{path} is a ZIP archive without {MANIFEST_NAME} at its root: not a bundle")
        info = archive.getinfo(MANIFEST_NAME)
        check_regular_entry(info, path)
        manifest = read_entry(archive, info, path, MAX_MANIFEST_BYTES)
    except BaseException:
        archive.close()
        raise
    return LoadedBundle(path, "zip", manifest, handle, size, st.st_mode, archive=archive)


def check_zip_directory(tail: bytes, handle: BinaryIO, path: str) -> None:
    """Refuse a ZIP whose end record declares more entries or a bigger central directory than a
    bundle can have, before ``zipfile`` loads that directory into memory (it keeps every entry).

    Finds the end record the way zipfile does (the last signature in the tail); an archive without
    one is left for zipfile to reject."""
    end = tail.rfind(_EOCD)
    if end < 0 or end + _EOCD_SIZE > len(tail):
        return
    entries, directory_size, directory_offset = struct.unpack_from("<HII", tail, end + 10)
    if (entries == 0xFFFF or directory_size == 0xFFFFFFFF or directory_offset == 0xFFFFFFFF) and end >= 20:
        locator = tail[end - 20 : end]
        if locator[:4] == _ZIP64_LOCATOR:
            (record_offset,) = struct.unpack_from("<Q", locator, 8)
            record = _read_at(handle, record_offset, 56)
            if len(record) == 56 and record[:4] == _ZIP64_EOCD:
                entries, directory_size = struct.unpack_from("<QQ", record, 32)
    if entries > MAX_ZIP_ENTRIES:
        raise PackError(f"{path} declares {entries} ZIP entries; a bundle has at most {MAX_ZIP_ENTRIES}")
    if directory_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise PackError(
            f"{path} declares a {directory_size}-byte ZIP central directory; a bundle's is at most "
            f"{MAX_CENTRAL_DIRECTORY_BYTES} bytes"
        )


def bytes_after_zip(tail: bytes) -> int:
    """How many bytes follow the ZIP end record in ``tail`` (0 for a plain launcher or archive)."""
    end = tail.rfind(_EOCD)
    if end < 0 or end + _EOCD_SIZE > len(tail):
        return 0
    comment_length = int.from_bytes(tail[end + 20 : end + 22], "little")
    return max(0, len(tail) - (end + _EOCD_SIZE + comment_length))


def write_rendered(bundle: LoadedBundle, with_source: bool, out: BinaryIO) -> None:
    """Write what ``inspect`` prints to ``out``; the source is streamed, never held whole."""
    if not with_source:
        out.write(bundle.manifest)
        return
    out.write(b"# --- source ---\n")
    last = b"\n"
    for chunk in bundle.iter_source():
        out.write(chunk)
        last = chunk[-1:]
    if last != b"\n":
        out.write(b"\n")
    out.write(b"# --- manifest ---\n")
    out.write(_line_ended(bundle.manifest))


def _line_ended(region: bytes) -> bytes:
    return region if not region or region.endswith(b"\n") else region + b"\n"


__all__ = ["LoadedBundle", "TrailerError", "load_bundle", "write_rendered"]
