"""A deterministic ZIP writer: identical entries give identical bytes, on any host, at any time.

``python -m zipapp`` and a naive ``ZipFile.write`` copy file mtimes, host permissions and directory
order into the archive, so two builds of the same inputs differ. Every archive pybundle writes (the ZIP
bundle and the runtime archive embedded in the launcher) goes through :func:`build_zip` instead:
entries sorted by the bytes of their UTF-8 name, timestamp 1980-01-01 00:00:00, ``create_system`` 3
(Unix) with an explicit mode, ``ZIP_STORED`` (deflate output can differ between zlib builds, and stored
entries need no zlib on the worker), no directory entries, no extra fields, no archive comment.
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from . import PackError

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
UNIX = 3


@dataclass(frozen=True)
class Entry:
    """One regular file of an archive: its name inside the archive, bytes and Unix permission bits."""

    name: str
    data: bytes
    mode: int = 0o644


def check_entry_name(name: str) -> None:
    """Refuse names that would escape an extraction directory or read differently on another host."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise PackError(f"invalid archive entry name {name!r}")


def build_zip(entries: Iterable[Entry]) -> bytes:
    """Write ``entries`` as a reproducible ZIP archive and return its bytes."""
    ordered = sorted(entries, key=lambda entry: entry.name.encode("utf-8"))
    seen: set[str] = set()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in ordered:
            check_entry_name(entry.name)
            if entry.name in seen:
                raise PackError(f"duplicate archive entry {entry.name!r}")
            seen.add(entry.name)
            info = zipfile.ZipInfo(entry.name, date_time=FIXED_DATE_TIME)
            info.create_system = UNIX
            info.external_attr = (stat.S_IFREG | (entry.mode & 0o7777)) << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, entry.data)
    return buffer.getvalue()


def entry_mode(info: zipfile.ZipInfo) -> int:
    """The Unix permission bits recorded for an entry (0 when the archive was not made on Unix)."""
    return (info.external_attr >> 16) & 0o7777 if info.create_system == UNIX else 0
