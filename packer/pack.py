"""The pack pipeline: introspect the target, check, render the manifest, build, write atomically.

1. Run the bundle (``--bundle-metadata``, then ``--dump-bundle-spec`` for a ZIP bundle or
   ``--airflow-metadata --format json`` for an executable bundle, plus module discovery).
2. Refuse a bundle without dags; warn about dags without tasks and ids Airflow would reject.
3. Build the launcher region (stub + launcher code + runtime ZIP) - identical for both formats.
4. Wrap it: a deterministic ZIP with manifest, source and executable, or launcher + source +
   manifest + ``AFBNDL01`` trailer.
5. Check the output path (not a directory, not an input) and write it atomically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import PackError, introspect, launcher, payload
from .manifest import MANIFEST_NAME, SUPPORTED_SCHEMA_VERSION, ExecutableManifest, ZipManifest, id_warnings
from .output import check_output, write_atomically
from .trailer import assemble
from .zipbundle import Entry, build_zip

FORMATS = ("zip", "executable")
DOCUMENT_FLAGS = {"zip": ("--dump-bundle-spec",), "executable": ("--airflow-metadata", "--format", "json")}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class PackRequest:
    """The command line of a pack, as plain data."""

    target: str
    format: str = "zip"
    output: str | None = None
    source: str | None = None
    name: str | None = None
    python: str = launcher.DEFAULT_PYTHON


@dataclass
class Packed:
    """What was written, for the ``Wrote bundle ...`` line."""

    output: str
    sdk_language: str
    sdk_version: str
    dag_count: int
    warnings: list[str] = field(default_factory=list)


def pack(request: PackRequest, warn: Callable[[str], None] = lambda message: None) -> Packed:
    """Build the artifact for ``request`` and write it; ``warn`` receives every warning as it comes."""
    if request.format not in FORMATS:
        raise PackError(f"unknown format {request.format!r}; choose zip or executable")
    launcher.interpreter_words(request.python)  # fail before running anything
    info = introspect.introspect_target(request.target, DOCUMENT_FLAGS[request.format])
    document = info.document
    dags = _dags(document, request.target)
    if not dags:
        raise PackError("bundle exposes no dags: nothing to pack")
    sdk = document.get("sdk") if isinstance(document.get("sdk"), Mapping) else {}
    language, version = _string(sdk, "language", "sdk"), _string(sdk, "version", "sdk")

    warnings = [*info.warnings, *id_warnings(dags)]
    if request.format == "executable":
        schema_version = _string(sdk, "supervisor_schema_version", "sdk")
        if schema_version != SUPPORTED_SCHEMA_VERSION:
            warnings.append(
                f"the runtime reports supervisor_schema_version {schema_version!r}; "
                f"apache-airflow-task-sdk 1.3.2 accepts only {SUPPORTED_SCHEMA_VERSION!r}"
            )
    for message in warnings:
        warn(message)

    name = artifact_name(request.name, info.name)
    source_path = Path(request.source) if request.source else info.primary
    try:
        source = source_path.read_bytes()
    except OSError as exc:
        raise PackError(f"cannot read the DAG source {source_path}: {exc.strerror or exc}") from None
    source_name = source_path.name

    output = request.output or (f"{name}.zip" if request.format == "zip" else name)
    inputs = [("DAG source", source_path), *(("bundle module", f.path) for f in info.app_files)]
    check_output(output, inputs)

    config = payload.launch_config(
        info.kind, info.attr, path=info.primary_name, module=info.location if info.kind == "module" else None
    )
    region = launcher.build_region(payload.build_runtime_zip(config, info.app_files), request.python)

    if request.format == "zip":
        if source_name in (name, MANIFEST_NAME) or name == MANIFEST_NAME:
            raise PackError(
                f"the executable entry {name!r} would collide with the source {source_name!r} or the "
                "manifest; pass --name"
            )
        manifest = ZipManifest(
            format_version=_string(document, "format_version", "the spec dump"),
            sdk_language=language,
            sdk_version=version,
            source=source_name,
            executable=name,
            dags=dags,
        ).render()
        data = build_zip(
            [Entry(MANIFEST_NAME, manifest), Entry(source_name, source), Entry(name, region, 0o755)]
        )
        mode = 0o644
    else:
        manifest = ExecutableManifest(
            metadata_version=_string(document, "airflow_bundle_metadata_version", "the manifest dump"),
            sdk_language=language,
            sdk_version=version,
            supervisor_schema_version=_string(sdk, "supervisor_schema_version", "sdk"),
            source=source_name,
            dags=dags,
        ).render()
        data = assemble(region, source, manifest)
        mode = 0o755
    write_atomically(output, data, mode)
    return Packed(output, language, version, len(dags), warnings)


def artifact_name(explicit: str | None, bundle_name: str) -> str:
    """``--name`` as given (a plain file name), else the bundle's name made file-name safe."""
    if explicit is not None:
        if not explicit or "/" in explicit or "\0" in explicit or explicit in (".", ".."):
            raise PackError(f"--name {explicit!r} must be a plain file name")
        return explicit
    name = _UNSAFE_NAME_CHARS.sub("_", bundle_name).lstrip(".")
    if not name:
        raise PackError(f"the bundle's name {bundle_name!r} gives no usable file name; pass --name")
    return name


def _dags(document: Mapping[str, Any], target: str) -> dict[str, list[str]]:
    dags = document.get("dags")
    if not isinstance(dags, Mapping):
        raise PackError(f"{target} printed a document without a dags mapping")
    result: dict[str, list[str]] = {}
    for dag_id, entry in dags.items():
        tasks = entry.get("tasks") if isinstance(entry, Mapping) else None
        if not isinstance(tasks, list) or not all(isinstance(task, str) for task in tasks):
            raise PackError(f"{target} printed dag {dag_id!r} without a list of task ids")
        result[str(dag_id)] = list(tasks)
    return result


def _string(mapping: Mapping[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise PackError(f"{where} has no {key} string (got {value!r})")
    return value
