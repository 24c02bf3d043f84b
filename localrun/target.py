"""What ``bundle-run`` was asked to run: a packed executable bundle or a source target.

* A file ending in a valid 64-byte ``AFBNDL01`` trailer is a **packed executable** (what
  ``bundle-pack --format executable`` writes); Airflow's ``ExecutableCoordinator`` will run it, so
  the trailer is checked here the way that reader checks it - the released reader silently skips a
  damaged file, which would otherwise surface as "cannot find executable bundle".
* Anything else is a **source target** as ``python -m bundle --bundle`` accepts it
  (``path/to/file.py[:attr]`` or ``package.module[:attr]``), run with this interpreter.

Either way the bundle program itself is asked for its DAG and task ids (``--dump-bundle-spec``):
that proves it starts, and lets bad ``--dag`` / ``--task`` values fail in a second, before the
slow supervisor import.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bundle.target import DEFAULT_ATTR, is_file_target, split_target

from .errors import BundleError, UsageError

TRAILER_SIZE = 64
TRAILER_MAGIC = b"AFBNDL01"
DEFAULT_SCHEMA_VERSION = "2026-06-16"
"""The supervisor schema version pybundle speaks; used when a source target does not report one."""
INTROSPECTION_TIMEOUT = 60.0


@dataclass(frozen=True)
class BundleTarget:
    """A runnable bundle: how to start it, and what Airflow will be told about it."""

    kind: str
    """``"packed"`` (an executable bundle) or ``"source"``."""
    given: str
    """The argument as the user wrote it."""
    command: list[str]
    """How to start the bundle program; mode flags are appended."""
    fileloc: str
    """Absolute path reported as the parsed DAG file (the executable, or the source file)."""
    path: Path | None = None
    """The executable (packed) or the source file (file targets); None for a module target."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """The packed bundle's manifest (from its trailer); empty for a source target."""
    schema_version: str = DEFAULT_SCHEMA_VERSION

    @property
    def packed(self) -> bool:
        """True for an executable bundle: it runs through ``ExecutableCoordinator``."""
        return self.kind == "packed"

    def describe(self) -> str:
        """One line for the report: what runs, and how Airflow would launch it."""
        if self.packed:
            return f"{self.path} (packed executable bundle, ExecutableCoordinator)"
        return f"{self.given} (source target, python -m bundle --bundle)"


def resolve_target(given: str, python: str | None = None) -> BundleTarget:
    """Classify ``given``; raises :class:`UsageError` for a path that cannot be run."""
    if not given:
        raise UsageError("no bundle given: pass a packed bundle or a target such as path/to/dags.py")
    candidate = Path(given)
    if candidate.is_file():
        manifest = _read_packed_manifest(candidate)
        if manifest is not None:
            if not os.access(candidate, os.X_OK):
                raise UsageError(f"{given} is a packed bundle but not executable; run: chmod +x {given}")
            path = candidate.resolve()
            raw_sdk = manifest.get("sdk")
            sdk = raw_sdk if isinstance(raw_sdk, dict) else {}
            version = sdk.get("supervisor_schema_version")
            return BundleTarget(
                kind="packed",
                given=given,
                command=[str(path)],
                fileloc=str(path),
                path=path,
                manifest=manifest,
                schema_version=version if isinstance(version, str) and version else DEFAULT_SCHEMA_VERSION,
            )
        if zipfile.is_zipfile(candidate) and not candidate.suffix == ".py":
            raise UsageError(
                f"{given} is a ZIP bundle; bundle-run runs executable bundles "
                "(bundle-pack TARGET --format executable) or source targets"
            )
    location, attr = split_target(given)
    interpreter = python or sys.executable
    if is_file_target(location):
        source = Path(location).resolve()
        if not source.is_file():
            raise UsageError(f"no such bundle file: {location}")
        spec = str(source) if attr == DEFAULT_ATTR else f"{source}:{attr}"
        return BundleTarget(
            kind="source",
            given=given,
            command=[interpreter, "-m", "bundle", "--bundle", spec],
            fileloc=str(source),
            path=source,
        )
    return BundleTarget(
        kind="source",
        given=given,
        command=[interpreter, "-m", "bundle", "--bundle", given],
        fileloc=str(Path.cwd() / (location.replace(".", "/") + ".py")),
    )


def _read_packed_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of an ``AFBNDL01`` bundle; None if the file has no trailer; BundleError if damaged."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < TRAILER_SIZE:
                return None
            handle.seek(size - TRAILER_SIZE)
            trailer = handle.read(TRAILER_SIZE)
            if trailer[56:] != TRAILER_MAGIC:
                return None
            source_len, metadata_len, footer_ver = struct.unpack_from("<III", trailer)
            where = f"packed bundle {path}"
            if footer_ver != 1:
                raise BundleError(f"{where}: unsupported trailer footer_ver {footer_ver} (expected 1)")
            if trailer[44:56] != bytes(12):
                raise BundleError(f"{where}: trailer reserved bytes are not zero")
            metadata_start = size - TRAILER_SIZE - metadata_len
            source_start = metadata_start - source_len
            if source_start <= 0:
                raise BundleError(f"{where}: trailer regions leave no room for the executable")
            handle.seek(0)
            digest = hashlib.sha256(handle.read(source_start)).digest()
            if digest != trailer[12:44]:
                raise BundleError(
                    f"{where}: the executable region does not match the trailer's SHA-256 "
                    "(the file was modified after packing); Airflow would skip it"
                )
            handle.seek(metadata_start)
            metadata = handle.read(metadata_len)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    try:
        manifest = yaml.safe_load(metadata.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BundleError(f"packed bundle {path}: the manifest is not valid YAML: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"packed bundle {path}: the manifest is not a mapping")
    return manifest


def dump_spec(target: BundleTarget) -> dict[str, list[str]]:
    """Run the bundle program with ``--dump-bundle-spec``; return ``{dag_id: [task ids]}``."""
    out = _introspect(target, ["--dump-bundle-spec"])
    dags = out.get("dags") if isinstance(out, dict) else None
    if not isinstance(dags, dict):
        raise BundleError(f"{target.given} --dump-bundle-spec printed no 'dags' mapping")
    result: dict[str, list[str]] = {}
    for dag_id, entry in dags.items():
        tasks = entry.get("tasks") if isinstance(entry, dict) else None
        result[str(dag_id)] = [str(t) for t in tasks] if isinstance(tasks, list) else []
    if not result:
        raise BundleError(f"{target.given} declares no DAGs: nothing to run")
    return result


def source_schema_version(target: BundleTarget) -> str:
    """The supervisor schema version a source target declares (``--airflow-metadata``)."""
    out = _introspect(target, ["--airflow-metadata", "--format", "json"])
    sdk = out.get("sdk") if isinstance(out, dict) else None
    version = sdk.get("supervisor_schema_version") if isinstance(sdk, dict) else None
    return version if isinstance(version, str) and version else DEFAULT_SCHEMA_VERSION


def _introspect(target: BundleTarget, flags: list[str]) -> Any:
    command = [*target.command, *flags]
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            timeout=INTROSPECTION_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"{target.given} {' '.join(flags)} did not finish within {INTROSPECTION_TIMEOUT:.0f}s"
        ) from None
    except OSError as exc:
        raise BundleError(f"cannot start {target.given}: {exc}") from None
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise BundleError(
            f"{target.given} {' '.join(flags)} failed with exit status {proc.returncode}",
            detail=stderr or None,
        )
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise BundleError(
            f"{target.given} {' '.join(flags)} did not print JSON", detail=stderr or None
        ) from None
