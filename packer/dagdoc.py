"""Read a bundle's own DagSerialization, for a source target or a packed bundle.

The DAG file that ``bundle-pack dag-file`` writes is rendered from the document the bundle's runtime
builds (``bundle.introspection.serialization``, the same code that answers a ``DagFileParseRequest``),
not from a second walk over the registry, so the generated file cannot drift from what the bundle
serializes. Each DAG comes with its tasks' docstrings, which DagSerialization does not carry.

The bundle runs in a subprocess, as for every other introspection (``packer.introspect``): its
import-time side effects stay out of the packer. A source target runs against the runtime this
packer embeds; a packed bundle (either format) against the runtime packed inside it: its payload is
extracted into a private temporary directory (relative regular files only, bounded), never into the
worker cache the launcher uses, and runs isolated like its launcher runs it (``-I -S``, an
allow-listed environment without the caller's secrets).
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle.core.provider import unicode_problem

from . import PackError
from .inspect_ import MAX_ENTRY_BYTES, MAX_TOTAL_BYTES, MAX_ZIP_ENTRIES, load_bundle
from .inspect_ import read_entry as read_zip_entry
from .introspect import finish, isolated_env, parse_json, start
from .payload import CONFIG_NAME, runtime_dir
from .trailer import has_trailer, iter_range, parse_bundle

# Runs inside the bundle's interpreter: load the target, print one JSON document on the saved fd 1.
SERIALIZE_CODE = r"""
import json, os, sys
runtime_parent, target, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = runtime_parent.split(os.pathsep)
out = os.dup(1)
os.dup2(2, 1)  # the bundle's prints go to stderr
import bundle
from bundle.core.provider import registry_of
from bundle.introspection.serialization import dag_file_document
from bundle.target import TargetError, load_target
try:
    provider = load_target(target)
    registry = registry_of(provider)
except TargetError as exc:
    sys.stderr.write(f"error: cannot load bundle target {target!r}: {exc}\n")
    sys.exit(3)
except Exception as exc:  # a provider whose register_dags fails
    sys.stderr.write(f"error: the bundle {target!r} does not load: {type(exc).__name__}: {exc}\n")
    sys.exit(3)
try:
    dags = dag_file_document(registry, wanted)
except KeyError as exc:
    known = ", ".join(registry.dags) or "none"
    sys.stderr.write(f"error: the bundle has no dag {exc.args[0]!r} (its dags: {known})\n")
    sys.exit(3)
info = provider.get_bundle_version()
document = {"name": info.name, "version": info.version, "runtime": bundle.__version__, "dags": dags}
os.write(out, json.dumps(document).encode())
"""

TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class DagDocument:
    """One DAG as its bundle serializes it, with each task function's raw docstring (or None) and
    each task's bound arguments (``bundle.introspection.serialization._bindings``; older runtimes
    write none)."""

    serialized: dict[str, Any]
    docs: dict[str, str | None]
    bindings: dict[str, list[list[Any]]] = field(default_factory=dict)
    # {group_id: default_args as the group gives them}; older runtimes write none (stubs still carry
    # every value explicitly, so the file is equivalent either way)
    group_default_args: dict[str, Any] = field(default_factory=dict)
    # {"on_failure_callback": 2}: how many DAG-level callbacks of each kind (only DAGs with some)
    dag_callbacks: dict[str, int] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        return str(self.serialized["dag"]["dag_id"])


@dataclass(frozen=True)
class BundleDocument:
    name: str
    version: str | None
    dags: list[DagDocument]


def read_bundle_document(target: str, dag_ids: Sequence[str] = ()) -> BundleDocument:
    """The DAGs (all, or those named, in the bundle's order) of a source target or packed bundle."""
    path = Path(target)
    if path.is_file() and not target.endswith(".py") and _looks_packed(path):
        with tempfile.TemporaryDirectory(prefix="pybundle-dagfile-") as scratch:
            search_path, inner_target = _extract_packed(target, Path(scratch))
            return _run(search_path, inner_target, dag_ids, f"the packed bundle {target}", isolated=True)
    return _run(str(runtime_dir().parent), target, dag_ids, f"the bundle {target}")


def _looks_packed(path: Path) -> bool:
    """A packed bundle ends with the AFBNDL01 magic or is a ZIP archive (``load_bundle`` decides)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(max(0, path.stat().st_size - 8))
            tail = handle.read(8)
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}") from None
    return tail == b"AFBNDL01" or head == b"PK\x03\x04"


def _run(
    search_path: str, target: str, dag_ids: Sequence[str], what: str, *, isolated: bool = False
) -> BundleDocument:
    """Serialize in a subprocess; ``isolated`` (a packed bundle, possibly someone else's) runs it as
    its launcher would, ``-I -S``, and with an allow-listed environment without the caller's secrets.
    A source target is the caller's own code and runs with their environment, as ``pack`` does."""
    if isolated:
        command = [sys.executable, "-I", "-S", "-c", SERIALIZE_CODE, search_path, target, *dag_ids]
        process = start(command, isolated_env())
    else:
        process = start([sys.executable, "-c", SERIALIZE_CODE, search_path, target, *dag_ids])
    result = finish(process, what, TIMEOUT_SECONDS)
    if result.returncode == 3:  # the target does not load, or an unknown --dag: the script's own line
        raise PackError(result.stderr.strip().splitlines()[-1].removeprefix("error: "))
    document = parse_json(result, f"serializing {what}")
    try:
        return bundle_document(document["name"], document["version"], document["dags"])
    except (KeyError, TypeError) as exc:
        raise PackError(f"serializing {what} gave an unexpected document ({exc!r})") from None


def bundle_document(name: str, version: str | None, dags: Sequence[Mapping[str, Any]]) -> BundleDocument:
    """A :class:`BundleDocument` from ``dag_file_document``'s output (run here or in the bundle)."""
    for field_name, value in (("name", name), ("version", version)):
        if isinstance(value, str) and (problem := unicode_problem(value)):
            raise PackError(f"the bundle's {field_name} {value!r} {problem}")
    return BundleDocument(
        name=str(name),
        version=version,
        dags=[
            DagDocument(
                dag["serialized"],
                dag["docs"],
                dag.get("bindings") or {},
                dag.get("group_default_args") or {},
                dag.get("dag_callbacks") or {},
            )
            for dag in dags
        ],
    )


def _extract_packed(path: str, into: Path) -> tuple[str, str]:
    """Unpack the runtime and app of a packed bundle into ``into``; the search path and target."""
    with load_bundle(path) as loaded:
        if loaded.located is not None:
            region = b"".join(iter_range(loaded.handle, 0, loaded.located.source_start, path))
        else:
            assert loaded.archive is not None
            info = loaded.manifest_entry("executable")
            executable = read_zip_entry(loaded.archive, info, path, MAX_ENTRY_BYTES)
            # a ZIP bundle's executable is the launcher alone, without source or trailer
            if has_trailer(executable):
                region = executable[: parse_bundle(executable, name=f"{path}:{info.filename}").source_start]
            else:
                region = executable
    try:
        payload = zipfile.ZipFile(io.BytesIO(region))
    except zipfile.BadZipFile:
        raise PackError(
            f"{path}: the launcher region holds no runtime archive (not a pybundle bundle?)"
        ) from None
    with payload:
        _unpack(payload, into, path)
    try:
        config = json.loads((into / CONFIG_NAME).read_text("utf-8"))
        if config["kind"] == "file":
            target = str(into.joinpath(*config["path"].split("/"))) + ":" + config["attr"]
        else:
            target = config["module"] + ":" + config["attr"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackError(f"{path}: no usable {CONFIG_NAME} in the bundle ({exc})") from None
    return os.pathsep.join([str(into / "lib"), str(into / "app")]), target


def _unpack(payload: zipfile.ZipFile, into: Path, path: str) -> None:
    infos = payload.infolist()
    if len(infos) > MAX_ZIP_ENTRIES * 10 or sum(info.file_size for info in infos) > MAX_TOTAL_BYTES:
        raise PackError(f"{path}: the bundle's runtime archive is implausibly large")
    for info in infos:
        if not _safe_entry_name(info.filename):
            raise PackError(f"{path}: unsafe entry name {info.filename!r} in the runtime archive")
        if info.is_dir():
            continue
        if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG):
            raise PackError(f"{path}: entry {info.filename!r} of the runtime archive is not a regular file")
        target = into.joinpath(*info.filename.split("/"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("xb") as out:  # a second entry of the same name is refused, not merged
                out.write(payload.read(info))
        except (OSError, zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error) as exc:
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            )
            raise PackError(
                f"{path}: cannot unpack entry {info.filename!r} of the runtime archive ({reason})"
            ) from None


def _safe_entry_name(name: str) -> bool:
    """A relative POSIX path of plain components: no absolute path, no '', '.' or '..' component
    (a directory entry's trailing '/' aside), no backslash or NUL (a Windows separator, or a name
    that means something else to another reader), nothing a later join could resolve outside."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    parts = name.split("/")
    if name.endswith("/"):
        parts = parts[:-1]
    return bool(parts) and all(part not in ("", ".", "..") for part in parts)
