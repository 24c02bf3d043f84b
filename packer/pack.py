"""The pack pipeline: introspect the target, check, render the manifest, build, write atomically.

1. Run the bundle (``--bundle-metadata``, then ``--dump-bundle-spec`` for a ZIP bundle or
   ``--airflow-metadata --format json`` for an executable bundle, plus module discovery).
2. Refuse a bundle without dags; warn about dags without tasks and ids Airflow would reject.
3. Find the declared dependencies (:mod:`packer.deps`), resolve and install them as wheels for the
   target interpreter (:mod:`packer.vendor`), and refuse a bundle that imports an installed package
   no declared dependency provides (unless ``--allow-undeclared``).
4. Build the launcher region (stub + launcher code + runtime ZIP) - identical for both formats.
5. Wrap it: a deterministic ZIP with manifest, source and executable, or launcher + source +
   manifest + ``AFBNDL01`` trailer.
6. Check the output path (not a directory, not an input) and write it atomically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import PackError, deps, introspect, launcher, payload, vendor
from .manifest import (
    MANIFEST_NAME,
    SUPPORTED_SCHEMA_VERSION,
    ExecutableManifest,
    VendoredRecord,
    VendoredWheel,
    ZipManifest,
    id_warnings,
)
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
    requirements: str | None = None
    python_version: str | None = None
    platform: str | None = None
    allow_undeclared: bool = False


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
    target = vendor.make_target(request.python_version, request.platform)
    info = introspect.introspect_target(request.target, DOCUMENT_FLAGS[request.format])
    document = info.document
    dags = _dags(document, request.target)
    if not dags:
        raise PackError("bundle exposes no dags: nothing to pack")
    raw_sdk = document.get("sdk")
    sdk: Mapping[str, Any] = raw_sdk if isinstance(raw_sdk, Mapping) else {}
    language, version = _string(sdk, "language", "sdk"), _string(sdk, "version", "sdk")

    warnings = [*info.warnings, *id_warnings(dags)]
    if request.format == "executable":
        schema_version = _string(sdk, "supervisor_schema_version", "sdk")
        if schema_version != SUPPORTED_SCHEMA_VERSION:
            warnings.append(
                f"the runtime reports supervisor_schema_version {schema_version!r}; "
                f"apache-airflow-task-sdk 1.3.2 accepts only {SUPPORTED_SCHEMA_VERSION!r}"
            )
    vendored = _vendor(request, info, target, warnings)
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
        info.kind,
        info.attr,
        path=info.primary_name,
        module=info.location if info.kind == "module" else None,
        requires=vendor.runtime_requirement(vendored),
    )
    runtime_zip = payload.build_runtime_zip(
        config, info.app_files, vendored.entries, with_msgpack=not vendored.replaces_msgpack
    )
    region = launcher.build_region(runtime_zip, request.python)
    record = _record(vendored)

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
            vendored=record,
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
            vendored=record,
        ).render()
        data = assemble(region, source, manifest)
        mode = 0o755
    write_atomically(output, data, mode)
    return Packed(output, language, version, len(dags), warnings)


def _vendor(
    request: PackRequest, info: introspect.TargetInfo, target: vendor.Target, warnings: list[str]
) -> vendor.Vendored:
    """Vendor the declared dependencies; an installed import none of them provides is an error."""
    declared = deps.find_declaration(info.primary.parent, request.requirements)
    if declared.empty and info.installed_imports and not request.allow_undeclared:
        raise PackError(_undeclared_message(info.installed_imports, declared))
    vendored = vendor.vendor(declared, target)
    warnings += vendored.warnings
    missing = deps.undeclared_imports(info.installed_imports, vendored.modules)
    if missing and not request.allow_undeclared:
        raise PackError(_undeclared_message(missing, declared))
    if missing:
        warnings.append(
            f"the bundle imports {', '.join(missing)}, which no declared dependency provides "
            "(--allow-undeclared): the bundle runs isolated from the worker's site-packages, so these "
            "imports fail there"
        )
    return vendored


def _undeclared_message(missing: list[str], declared: deps.Declared) -> str:
    where = (
        f"none of the dependencies in {declared.origin} provides it"
        if not declared.empty
        else "no dependencies are declared (--requirements FILE, a requirements.lock, or [project] "
        "dependencies in pyproject.toml)"
    )
    noun = "module" if len(missing) == 1 else "modules"
    return (
        f"the bundle imports the installed {noun} {', '.join(missing)}, but {where}; declare the "
        "distribution, or pass --allow-undeclared"
    )


def _record(vendored: vendor.Vendored) -> VendoredRecord | None:
    if not vendored.wheels:
        return None
    requires = vendor.runtime_requirement(vendored)
    platform = vendored.target.platform or (
        vendor.least_demanding(requires["platforms"]) if requires else "any"
    )
    major, minor = vendored.target.python
    return VendoredRecord(
        python=f"{major}.{minor}",
        platform=platform,
        wheels=tuple(
            VendoredWheel(w.name, w.version, w.filename, w.sha256, w.modules) for w in vendored.wheels
        ),
    )


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
