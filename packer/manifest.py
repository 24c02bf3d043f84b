"""The two manifests a packed bundle carries: canonical rendering, schema checks, id warnings.

* ZIP bundle, ``airflow-metadata.yaml`` (the bundle spec, ``format_version`` era): keys
  ``format_version``, ``sdk`` {``language``, ``version``}, ``source``, ``executable``, ``dags``.
* Executable bundle, the manifest region (``airflow_bundle_metadata_version`` era, what
  apache-airflow-task-sdk 1.3.2 reads): ``airflow_bundle_metadata_version``, ``sdk`` {``language``,
  ``version``, ``supervisor_schema_version``}, ``source``, ``dags``.

Both may end with ``pybundle_vendored`` (only when the bundle vendors dependencies), pybundle's own
key: the target the wheels were chosen for and each wheel's name, version, file name, SHA-256 and
top-level modules (what ``inspect`` shows and ``verify`` imports). Readers ignore unknown keys: the
released ``ExecutableCoordinator`` reads only ``dags`` and ``sdk.supervisor_schema_version``.

Both are rendered by hand, not by a YAML library, so the bytes are a fixed function of the data (two
packs of the same bundle give the same manifest, on any host and with any PyYAML version): indent 2,
fixed key order, dag ids sorted, tasks in registration order. Quoting follows the upstream packers'
conventions - the ZIP manifest quotes ``format_version`` and ``sdk.version`` and leaves names plain, the
executable manifest double-quotes every value - with one deliberate difference: a name is written plain
only when every YAML reader reads it back as the same string, otherwise it is double-quoted, so an id
such as ``123``, ``true`` or ``null`` never turns into a number, a bool or nothing.
"""

from __future__ import annotations

import re
import reprlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MANIFEST_NAME = "airflow-metadata.yaml"
SUPPORTED_SCHEMA_VERSION = (
    "2026-06-16"  # the only supervisor schema version apache-airflow-task-sdk 1.3.2 knows
)
MAX_ID_LENGTH = 250
# What a manifest may reference in total. YAML aliases let a 1 KiB manifest name the same task list
# from a million dags, and every check walks those lists, so the walk is budgeted; an alias-free
# manifest within inspect_.MAX_MANIFEST_BYTES (512 KiB) cannot reach either number (a task costs at
# least two bytes, ``a,``, and an id character at least one).
MAX_TOTAL_TASKS = 1 << 18
MAX_TOTAL_ID_CHARS = 1 << 19
MAX_PROBLEMS = 50  # a report lists this many schema problems, then says there are more

_VERSION_PATTERN = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")
_LANGUAGE_PATTERN = re.compile(r"^[a-z][a-z0-9_+.\-]*$")
_DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_PLAIN_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# Words some YAML reader (1.1 or 1.2, PyYAML, yaml.v3) resolves to a bool or null when unquoted.
_SPECIAL_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_NAMED_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}

Dags = Mapping[str, list[str]]
VENDORED_KEY = "pybundle_vendored"


@dataclass(frozen=True)
class VendoredWheel:
    """One wheel of ``pybundle_vendored``."""

    name: str
    version: str
    wheel: str
    sha256: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class VendoredRecord:
    """``pybundle_vendored``: the target (``python`` "3.11", ``platform`` a tag) and the wheels."""

    python: str
    platform: str
    wheels: tuple[VendoredWheel, ...]

    def render(self) -> list[str]:
        lines = [
            f"{VENDORED_KEY}:",
            '  implementation: "cp"',
            f"  python: {quote(self.python)}",
            f"  platform: {quote(self.platform)}",
            "  wheels:",
        ]
        for wheel in self.wheels:
            lines += [
                f"    - name: {quote(wheel.name)}",
                f"      version: {quote(wheel.version)}",
                f"      wheel: {quote(wheel.wheel)}",
                f"      sha256: {quote(wheel.sha256)}",
            ]
            if wheel.modules:
                lines.append("      modules:")
                lines += [f"        - {quote(module)}" for module in wheel.modules]
            else:
                lines.append("      modules: []")
        return lines


# -- scalars ------------------------------------------------------------------------------------
def is_plain_safe(text: str) -> bool:
    """True when ``text`` reads back as the same string from a plain (unquoted) YAML scalar."""
    return bool(_PLAIN_PATTERN.match(text)) and text.lower() not in _SPECIAL_WORDS


def quote(text: str) -> str:
    """A YAML double-quoted scalar for ``text``; escapes whatever a YAML reader would not take raw."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif 0x20 <= code < 0x7F or (code >= 0xA0 and char.isprintable()):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def scalar(text: str) -> str:
    """Plain when that is safe, double-quoted otherwise."""
    return text if is_plain_safe(text) else quote(text)


# -- rendering ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZipManifest:
    """``airflow-metadata.yaml`` of a ZIP bundle."""

    format_version: str
    sdk_language: str
    sdk_version: str
    source: str
    executable: str
    dags: Dags
    vendored: VendoredRecord | None = None

    def render(self) -> bytes:
        lines = [
            f"format_version: {quote(self.format_version)}",
            "sdk:",
            f"  language: {scalar(self.sdk_language)}",
            f"  version: {quote(self.sdk_version)}",
            f"source: {scalar(self.source)}",
            f"executable: {scalar(self.executable)}",
        ]
        lines += _render_dags(self.dags, scalar)
        lines += self.vendored.render() if self.vendored else []
        return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(frozen=True)
class ExecutableManifest:
    """The manifest region of an executable bundle (what ``ExecutableCoordinator`` reads)."""

    metadata_version: str
    sdk_language: str
    sdk_version: str
    supervisor_schema_version: str
    source: str
    dags: Dags
    vendored: VendoredRecord | None = None

    def render(self) -> bytes:
        lines = [
            f"airflow_bundle_metadata_version: {quote(self.metadata_version)}",
            "sdk:",
            f"  language: {quote(self.sdk_language)}",
            f"  version: {quote(self.sdk_version)}",
            f"  supervisor_schema_version: {quote(self.supervisor_schema_version)}",
            f"source: {quote(self.source)}",
        ]
        lines += _render_dags(self.dags, quote)
        lines += self.vendored.render() if self.vendored else []
        return ("\n".join(lines) + "\n").encode("utf-8")


def _render_dags(dags: Dags, value: Any) -> list[str]:
    if not dags:
        return ["dags: {}"]
    lines = ["dags:"]
    for dag_id in sorted(dags):
        lines.append(f"  {scalar(dag_id)}:")
        tasks = dags[dag_id]
        if not tasks:
            lines.append("    tasks: []")
            continue
        lines.append("    tasks:")
        lines += [f"      - {value(task_id)}" for task_id in tasks]
    return lines


# -- reading and schema checks ------------------------------------------------------------------
class ManifestError(ValueError):
    """The manifest bytes are not a YAML mapping."""


def load(data: bytes) -> dict[str, Any]:
    """Decode and parse a manifest the way Airflow's reader does (UTF-8, ``yaml.safe_load``, a mapping).

    The pure-Python loader is Airflow's, and unlike libyaml's it cannot crash the process on deep
    nesting (libyaml overflows the C stack; the pure loader raises ``RecursionError``). Constructors
    raise plain ``ValueError`` for scalars such as ``2026-13-45``; every failure is a ManifestError."""
    import yaml

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest is not valid UTF-8: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ManifestError(f"manifest is not valid YAML: {show(detail, 300)}") from None
    except RecursionError:
        raise ManifestError("manifest is not valid YAML: it is nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ManifestError(f"manifest is not valid YAML: {show(str(exc), 300)}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"manifest is not a YAML mapping (got {type(document).__name__})")
    return document


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxtuple, _SHOW.maxdict, _SHOW.maxset = 2, 6, 6, 6, 6
_SHOW.maxstring = _SHOW.maxother = _SHOW.maxlong = 120


def show(value: Any, limit: int | None = None) -> str:
    """``repr`` for messages, bounded: YAML aliases make a small manifest a structure whose full repr
    is exponential (a "billion laughs"), and a 1 MiB id must not become a 1 MiB error line."""
    if isinstance(value, str) and limit is not None:
        return value if len(value) <= limit else value[: limit - 3] + "..."
    text = _SHOW.repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_zip_manifest(document: Mapping[str, Any]) -> list[str]:
    """Schema problems of a ZIP bundle's ``airflow-metadata.yaml`` (empty list: valid)."""
    problems = _check_version(document, "format_version")
    problems += _check_sdk(document, ("language", "version"))
    problems += _check_name(document, "source")
    problems += _check_name(document, "executable")
    problems += _check_dags(document)
    return problems


def check_executable_manifest(document: Mapping[str, Any]) -> list[str]:
    """Schema problems of an executable bundle's manifest, including what 1.3.2 needs to route a task."""
    problems = _check_version(document, "airflow_bundle_metadata_version")
    problems += _check_sdk(document, ("language", "version", "supervisor_schema_version"))
    sdk = document.get("sdk")
    if isinstance(sdk, Mapping) and isinstance(sdk.get("supervisor_schema_version"), str):
        version = sdk["supervisor_schema_version"]
        if not _DATE_PATTERN.match(version):
            problems.append(f"sdk.supervisor_schema_version {show(version)} is not a YYYY-MM-DD date")
        elif version != SUPPORTED_SCHEMA_VERSION:
            problems.append(
                f"sdk.supervisor_schema_version is {version!r}; apache-airflow-task-sdk 1.3.2 accepts only "
                f"{SUPPORTED_SCHEMA_VERSION!r} and would reject the bundle"
            )
    problems += _check_name(document, "source")
    problems += _check_dags(document)
    return problems


def _check_version(document: Mapping[str, Any], key: str) -> list[str]:
    value = document.get(key)
    if value is None:
        return [f"{key} is missing"]
    if not isinstance(value, str):
        return [f"{key} must be a string, got {type(value).__name__} {show(value)}"]
    if not _VERSION_PATTERN.match(value):
        return [f"{key} {show(value)} is not a MAJOR.MINOR[.PATCH] version"]
    if value.split(".")[0] != "1":
        return [f"{key} {show(value)} has an unsupported major version (this packer reads 1.x)"]
    return []


def _check_sdk(document: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    sdk = document.get("sdk")
    if not isinstance(sdk, Mapping):
        return ["sdk is missing" if sdk is None else f"sdk must be a mapping, got {type(sdk).__name__}"]
    problems = []
    for key in keys:
        value = sdk.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"sdk.{key} must be a non-empty string, got {show(value)}")
        elif key == "language" and not _LANGUAGE_PATTERN.match(value):
            problems.append(f"sdk.language {show(value)} is not a lower-case language id")
    return problems


def _check_name(document: Mapping[str, Any], key: str) -> list[str]:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        return [f"{key} must be a non-empty string, got {show(value)}"]
    return []


def _check_dags(document: Mapping[str, Any]) -> list[str]:
    dags = document.get("dags")
    if not isinstance(dags, Mapping):
        return ["dags is missing" if dags is None else f"dags must be a mapping, got {type(dags).__name__}"]
    if not dags:
        return ["dags is empty: the bundle routes no dag"]
    problems: list[str] = []
    total_tasks = total_chars = 0
    for dag_id, entry in dags.items():
        if len(problems) >= MAX_PROBLEMS:
            problems.append("... (more problems not shown)")
            break
        if not isinstance(dag_id, str) or not dag_id:
            problems.append(f"dag id {show(dag_id)} is not a non-empty string (quote it in the YAML)")
            continue
        name = show(dag_id, 120)
        if not isinstance(entry, Mapping) or "tasks" not in entry:
            problems.append(f"dags.{name} must be a mapping with a tasks list")
            continue
        tasks = entry["tasks"]
        if not isinstance(tasks, list):
            problems.append(f"dags.{name}.tasks must be a list, got {type(tasks).__name__}")
            continue
        total_tasks += len(tasks)
        total_chars += len(dag_id)
        if total_tasks > MAX_TOTAL_TASKS:
            return [f"the manifest lists more than {MAX_TOTAL_TASKS} tasks in total (YAML aliases?)"]
        for task in tasks:
            if not isinstance(task, str) or not task:
                problems.append(f"dags.{name}.tasks has {show(task)}, not a non-empty string")
                if len(problems) >= MAX_PROBLEMS:
                    break
            else:
                total_chars += len(task)
        if total_chars > MAX_TOTAL_ID_CHARS:
            return [
                f"the manifest's dag and task ids add up to more than {MAX_TOTAL_ID_CHARS} characters (YAML aliases?)"
            ]
    return problems


def vendored_of(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The wheels a manifest's ``pybundle_vendored`` lists (``[]`` when absent or malformed)."""
    block = document.get(VENDORED_KEY)
    wheels = block.get("wheels") if isinstance(block, Mapping) else None
    if not isinstance(wheels, list):
        return []
    return [wheel for wheel in wheels if isinstance(wheel, Mapping) and isinstance(wheel.get("name"), str)]


def dags_of(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """``dags`` of a manifest that passed the schema checks, as ``{dag_id: [task_id, ...]}``."""
    return {dag_id: list(entry["tasks"]) for dag_id, entry in document["dags"].items()}


# -- warnings -----------------------------------------------------------------------------------
def id_warnings(dags: Dags) -> list[str]:
    """Ids Airflow's server would reject, and dags without tasks; never fatal, dag ids in sorted order.

    Mirrors the server's key validation: at most 250 characters, only letters, digits, ``_``, ``.`` and
    ``-``, and no ``..`` (unless ``[core] allow_double_dot_in_ids``); a charset problem hides ``..``."""
    warnings = []
    for dag_id in sorted(dags):
        warnings += _id_problems(f"dag id {quote(dag_id)}", dag_id)
        tasks = dags[dag_id]
        if not tasks:
            warnings.append(f"dag {quote(dag_id)} has no tasks")
        for task_id in tasks:
            warnings += _id_problems(f"task id {quote(task_id)} in dag {quote(dag_id)}", task_id)
    return warnings


def _id_problems(what: str, value: str) -> list[str]:
    problems = []
    if len(value) > MAX_ID_LENGTH:
        problems.append(f"{what} is {len(value)} characters long; Airflow accepts at most {MAX_ID_LENGTH}")
    if not value or not all(_id_char(char) for char in value):
        problems.append(f'{what} has characters Airflow rejects (allowed: letters, digits, "_", "." and "-")')
    elif ".." in value:
        problems.append(
            f'{what} contains ".."; Airflow rejects it unless [core] allow_double_dot_in_ids is enabled'
        )
    return problems


def _id_char(char: str) -> bool:
    return char in "_.-" or unicodedata.category(char)[0] in "LN"
