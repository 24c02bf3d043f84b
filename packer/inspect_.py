"""``bundle-pack inspect``: open a bundle of either format and show its manifest (and source).

Format detection mirrors the consumers: a file ending with the ``AFBNDL01`` magic is an executable
bundle (its trailer is checked, hash included, exactly as Airflow checks it before trusting the
manifest); otherwise a ZIP archive with ``airflow-metadata.yaml`` at its root is a ZIP bundle.

Output, as ``airflow-go-pack inspect`` prints it: the manifest bytes verbatim; with ``--source``,
``# --- source ---`` + the source, then ``# --- manifest ---`` + the manifest, each region followed by
a newline if it does not end with one.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from . import PackError, launcher
from .manifest import MANIFEST_NAME, ManifestError, load
from .trailer import ExecutableBundle, has_trailer, parse_bundle


@dataclass
class LoadedBundle:
    """A bundle's parts, independent of its format."""

    path: str
    format: str
    data: bytes
    manifest: bytes
    executable_bundle: ExecutableBundle | None = None
    archive: zipfile.ZipFile | None = None

    def source(self) -> bytes:
        """The primary DAG source: the source region, or the ZIP entry the manifest names."""
        if self.executable_bundle is not None:
            return self.executable_bundle.source
        assert self.archive is not None
        try:
            name = load(self.manifest).get("source")
        except ManifestError as exc:
            raise PackError(f"{self.path}: cannot find the source: {exc}") from None
        if not isinstance(name, str) or name not in self.archive.namelist():
            raise PackError(f"{self.path}: the manifest's source {name!r} is not an entry of the archive")
        return read_entry(self.archive, name, self.path)


def read_entry(archive: zipfile.ZipFile, name: str, path: str) -> bytes:
    """An entry's bytes with its CRC-32 checked; a damaged entry is a precise error."""
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PackError(f"{path}: entry {name!r} is damaged: {exc}") from None


def load_bundle(path: str) -> LoadedBundle:
    """Read ``path`` and locate its manifest; raises :class:`PackError` saying why it is not a bundle."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}") from None
    if has_trailer(data):
        bundle = parse_bundle(data, name=path)
        return LoadedBundle(path, "executable", data, bundle.metadata, executable_bundle=bundle)
    if launcher.is_launcher(data) and _bytes_after_zip(data):
        raise PackError(
            f"{path} starts with a bundle launcher and has data after it, but no valid AFBNDL01 trailer "
            f"(it ends with {data[-8:]!r}): a truncated or damaged executable bundle"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PackError(
            f"{path} is not a bundle: it has no AFBNDL01 trailer and is not a ZIP archive"
        ) from None
    if MANIFEST_NAME not in archive.namelist():
        if launcher.is_launcher(data):
            raise PackError(
                f"{path} is a bundle executable without a manifest (the executable entry of a ZIP bundle); "
                "inspect the ZIP bundle or an --format executable bundle instead"
            )
        raise PackError(f"{path} is a ZIP archive without {MANIFEST_NAME} at its root: not a bundle")
    manifest = read_entry(archive, MANIFEST_NAME, path)
    return LoadedBundle(path, "zip", data, manifest, archive=archive)


def _bytes_after_zip(data: bytes) -> int:
    """How many bytes follow the ZIP end record of ``data`` (0 for a plain launcher or archive)."""
    end = data.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(data):
        return 0
    comment_length = int.from_bytes(data[end + 20 : end + 22], "little")
    return max(0, len(data) - (end + 22 + comment_length))


def render(bundle: LoadedBundle, with_source: bool) -> bytes:
    """What ``inspect`` prints."""
    if not with_source:
        return bundle.manifest
    return (
        b"# --- source ---\n"
        + _line_ended(bundle.source())
        + b"# --- manifest ---\n"
        + _line_ended(bundle.manifest)
    )


def _line_ended(region: bytes) -> bytes:
    return region if not region or region.endswith(b"\n") else region + b"\n"
