"""``bundle-pack verify``: is this artifact one Airflow will accept, and does it run?

Static checks (what a consumer checks before it trusts the file):

* executable bundle: trailer (size, magic, footer version, reserved bytes, region bounds, non-empty
  binary region, SHA-256 of the binary region), exec bit on the file, manifest schema including the
  supervisor schema version task-sdk 1.3.2 accepts;
* ZIP bundle: entry names, CRC-32 of every entry, manifest schema, ``source``/``executable`` entries at
  the root, exec bits in the executable entry's external attributes.

Dynamic checks (the artifact's executable is run, with a fresh private launcher cache so the
first-run extraction is exercised too, isolated: its stub runs the interpreter with ``-I -S`` and the
environment is :func:`packer.introspect.isolated_env`'s allow-list, so the bundle's import-time code
sees none of the caller's secrets): ``--bundle-metadata`` names the bundle, ``--dump-bundle-spec``
exposes exactly the manifest's dags and tasks, ``--airflow-metadata --format json`` agrees with the
manifest. Every problem is collected and reported, not just the first.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import PackError, introspect
from .inspect_ import (
    MAX_ENTRY_BYTES,
    MAX_TOTAL_BYTES,
    DamagedEntry,
    LoadedBundle,
    entry_type,
    iter_entry,
    load_bundle,
)
from .manifest import (
    MAX_PROBLEMS,
    ExecutableManifest,
    ManifestError,
    ZipManifest,
    check_executable_manifest,
    check_zip_manifest,
    dags_of,
    id_warnings,
    load,
    show,
    vendored_of,
)
from .zipbundle import UNIX, entry_mode

CACHE_ENV = "PYBUNDLE_CACHE_DIR"
VERIFY_IMPORTS_ENV = "PYBUNDLE_VERIFY_IMPORTS"  # the launcher imports these instead of serving


@dataclass
class Report:
    """The outcome of a verification."""

    path: str
    format: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sdk: str | None = None
    dag_count: int = 0
    task_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str, *, timeout: float = introspect.TIMEOUT_SECONDS) -> Report:
    """Check the bundle at ``path`` statically and by running its executable.

    Bounded for any input: memory by the limits of :mod:`packer.inspect_`, time by those limits and
    by ``timeout`` for the one run that does not finish (the remaining runs are then skipped)."""
    report = Report(path)
    try:
        bundle = load_bundle(path)
    except PackError as exc:
        report.problems.append(str(exc))
        return report
    cleanup = None
    try:
        report.format = bundle.format
        document = _manifest(bundle, report)
        if bundle.format == "executable":
            executable_path = _check_executable_file(bundle, report)
        else:
            executable_path, cleanup = _check_zip(bundle, document, report)
        bundle.close()
        if document is not None and not report.problems and executable_path is not None:
            _run_checks(executable_path, bundle.format, document, report, timeout)
    except PackError as exc:  # a read failing half-way (e.g. the file shrank under us)
        report.problems.append(str(exc))
    finally:
        bundle.close()
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    return report


def _manifest(bundle: LoadedBundle, report: Report) -> dict[str, Any] | None:
    try:
        document = load(bundle.manifest)
    except ManifestError as exc:
        report.problems.append(f"{bundle.path}: {exc}")
        return None
    check = check_executable_manifest if bundle.format == "executable" else check_zip_manifest
    problems = check(document)
    report.problems += [f"{bundle.path}: manifest: {problem}" for problem in problems]
    if problems:
        return None
    dags = dags_of(document)
    report.dag_count, report.task_count = len(dags), sum(len(tasks) for tasks in dags.values())
    report.sdk = f"{document['sdk']['language']}/{document['sdk']['version']}"
    report.warnings += [f"manifest: {warning}" for warning in id_warnings(dags)]
    if not _is_canonical(bundle, document):
        report.warnings.append("the manifest is valid but not in bundle-pack's canonical rendering")
    return document


def _is_canonical(bundle: LoadedBundle, document: Mapping[str, Any]) -> bool:
    """Whether the manifest is byte-for-byte what bundle-pack renders for its data.

    A manifest with keys bundle-pack does not write (a newer packer's, another SDK's) is valid and is
    not judged."""
    if set(document) - _KNOWN_KEYS or set(document["sdk"]) - _KNOWN_SDK_KEYS:
        return True
    sdk, dags = document["sdk"], dags_of(document)
    try:
        if bundle.format == "executable":
            rendered = ExecutableManifest(
                document["airflow_bundle_metadata_version"],
                sdk["language"],
                sdk["version"],
                sdk["supervisor_schema_version"],
                document["source"],
                dags,
            ).render()
        else:
            rendered = ZipManifest(
                document["format_version"],
                sdk["language"],
                sdk["version"],
                document["source"],
                document["executable"],
                dags,
            ).render()
    except KeyError:
        return False
    return rendered == bundle.manifest


_KNOWN_KEYS = {"format_version", "airflow_bundle_metadata_version", "sdk", "source", "executable", "dags"}
_KNOWN_SDK_KEYS = {"language", "version", "supervisor_schema_version"}


def _check_executable_file(bundle: LoadedBundle, report: Report) -> str | None:
    mode = stat.S_IMODE(bundle.mode)
    if not mode & 0o111:
        report.problems.append(
            f"{bundle.path} is not executable (mode {mode:04o}); Airflow only considers files with "
            "the exec bit: chmod 0755 it"
        )
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    empty, text = True, True
    for chunk in bundle.iter_source():  # streamed: the source region may be any size
        empty = False
        if text:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                text = False
    if text and not empty:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            text = False
    if empty:
        report.warnings.append("the source region is empty: Airflow's UI will show no code")
    elif not text:
        report.warnings.append("the source region is not UTF-8 text")
    return os.path.abspath(bundle.path)  # a bare name must not be looked up on PATH


def _check_zip(
    bundle: LoadedBundle, document: Mapping[str, Any] | None, report: Report
) -> tuple[str | None, str | None]:
    """Static checks of a ZIP bundle, then its executable entry copied out to run.

    Nothing is extracted but that one entry (by name, to a fresh directory): names that would escape
    an extraction directory and symbolic links are reported, never followed. The CRC pass reads
    every entry in chunks, and only if the declared sizes are within the limits (a zip bomb is
    reported, not expanded)."""
    archive = bundle.archive
    assert archive is not None
    infos = archive.infolist()
    names = [info.filename for info in infos]
    counts = Counter(names)
    for name in sorted(name for name, count in counts.items() if count > 1):
        report.problems.append(f"{bundle.path}: entry {show(name)} appears more than once")
    total = 0
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or "\0" in name or ".." in parts or name[1:3] == ":/":
            report.problems.append(
                f"{bundle.path}: entry name {show(name)} would escape an extraction directory"
            )
        if entry_type(info) == stat.S_IFLNK:
            report.problems.append(
                f"{bundle.path}: entry {show(name)} is a symbolic link; a consumer extracting the bundle "
                "would create a link that can point anywhere"
            )
        total += info.file_size
        if info.file_size > MAX_ENTRY_BYTES:
            report.problems.append(
                f"{bundle.path}: entry {show(name)} declares {info.file_size} bytes uncompressed, more than "
                f"the {MAX_ENTRY_BYTES} a bundle entry may have (a zip bomb?)"
            )
    if total > MAX_TOTAL_BYTES:
        report.problems.append(
            f"{bundle.path}: the entries declare {total} bytes uncompressed in total, more than the "
            f"{MAX_TOTAL_BYTES} bundle-pack checks (a zip bomb?)"
        )
    if not report.problems:
        damaged = [problem for info in infos if (problem := _damage(archive, info, bundle.path))]
        report.problems += damaged[:10]
        if len(damaged) > 10:
            report.problems.append(f"{bundle.path}: {len(damaged) - 10} more damaged entries")
    if document is None:
        return None, None
    for key in ("source", "executable"):
        name = document[key]
        if "/" in name:
            report.problems.append(f"{bundle.path}: manifest {key} {show(name)} is not at the archive root")
        elif name not in counts:
            report.problems.append(
                f"{bundle.path}: manifest {key} {show(name)} is not an entry of the archive"
            )
    if report.problems:
        return None, None
    info = archive.getinfo(document["executable"])
    mode = entry_mode(info)
    file_type = entry_type(info)
    if info.create_system != UNIX or not mode & 0o111:
        report.problems.append(
            f"{bundle.path}: executable entry {info.filename!r} has no exec bits in its external attributes "
            f"(mode {mode:04o}); it should be 0755"
        )
        return None, None
    if file_type not in (0, stat.S_IFREG):
        report.problems.append(f"{bundle.path}: executable entry {info.filename!r} is not a regular file")
        return None, None
    directory = tempfile.mkdtemp(prefix="bundle-pack-verify-")
    path = os.path.join(directory, os.path.basename(info.filename))
    try:
        with open(path, "wb") as handle:
            for chunk in iter_entry(archive, info, bundle.path, MAX_ENTRY_BYTES):
                handle.write(chunk)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    os.chmod(path, 0o755)  # ZipFile does not restore modes; the spec tells consumers to chmod
    return path, directory


def _damage(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> str | None:
    """Why an entry cannot be read back intact (bad header, CRC-32 mismatch...), or None."""
    if info.is_dir():
        return None
    try:
        for _ in iter_entry(archive, info, path, MAX_ENTRY_BYTES):
            pass
    except DamagedEntry as exc:
        return f"{path}: entry {info.filename!r} is damaged (CRC-32 mismatch or bad header): {exc.detail}"
    except PackError as exc:
        return str(exc)
    return None


def _run_checks(
    executable: str, fmt: str, document: Mapping[str, Any], report: Report, timeout: float
) -> None:
    cache = tempfile.mkdtemp(prefix="bundle-pack-verify-cache-")
    # the executable's stub runs the interpreter with -I -S; the environment is an allow-list
    env = introspect.isolated_env(**{CACHE_ENV: cache})
    try:
        answers = {}
        for flags in (
            ("--bundle-metadata",),
            ("--dump-bundle-spec",),
            ("--airflow-metadata", "--format", "json"),
        ):
            what = f"{report.path}: executable {' '.join(flags)}"
            try:
                answers[flags[0]] = introspect.parse_json(
                    introspect.finish(introspect.start([executable, *flags], env), what, timeout), what
                )
            except introspect.RunAborted as exc:  # a hung or flooding bundle: one bounded try is enough
                report.problems.append(str(exc))
                break
            except PackError as exc:
                report.problems.append(str(exc))
        modules = sorted(
            {m for wheel in vendored_of(document) for m in wheel.get("modules") or [] if isinstance(m, str)}
        )
        if modules and not report.problems:
            report.problems += _check_imports(executable, env, modules, report.path, timeout)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    manifest_dags = dags_of(document)
    sdk = document["sdk"]
    info = answers.get("--bundle-metadata")
    if info is not None and not (
        isinstance(info, dict) and isinstance(info.get("name"), str) and info["name"]
    ):
        report.problems.append(
            f"{report.path}: --bundle-metadata printed {show(info)}, not a named BundleInfo"
        )
    spec = answers.get("--dump-bundle-spec")
    if spec is not None:
        if fmt == "zip":
            report.problems += _compare_field(
                spec, "format_version", document["format_version"], "--dump-bundle-spec"
            )
        report.problems += _compare_sdk(spec, sdk, ("language", "version"), "--dump-bundle-spec")
        report.problems += compare_dags(manifest_dags, spec, "--dump-bundle-spec")
    airflow = answers.get("--airflow-metadata")
    if airflow is not None:
        keys = (
            ("language", "version", "supervisor_schema_version")
            if fmt == "executable"
            else ("language", "version")
        )
        report.problems += _compare_sdk(airflow, sdk, keys, "--airflow-metadata")
        report.problems += compare_dags(manifest_dags, airflow, "--airflow-metadata")


def _check_imports(
    executable: str, env: dict[str, str], modules: list[str], path: str, timeout: float
) -> list[str]:
    """Import every top-level module the vendored wheels provide, inside the executable (its stub runs
    the interpreter with ``-I -S``: no site-packages), so a wheel that is missing, broken or built for
    another interpreter fails here rather than in a task."""
    what = f"{path}: importing the vendored modules"
    try:
        result = introspect.finish(
            introspect.start([executable], {**env, VERIFY_IMPORTS_ENV: ",".join(modules)}), what, timeout
        )
    except PackError as exc:
        return [str(exc)]
    try:
        missing = json.loads(result.stdout.decode("utf-8"))["missing"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        detail = " ".join(result.stderr.strip().splitlines()[-3:]) or f"exit status {result.returncode}"
        return [f"{what} failed: {detail}"]
    if not missing:
        return []
    listed = "; ".join(f"{name} ({error})" for name, error in sorted(missing.items()))
    return [f"{path}: vendored modules that do not import under a bare interpreter: {listed}"]


def _compare_field(answer: Any, key: str, expected: Any, what: str) -> list[str]:
    actual = answer.get(key) if isinstance(answer, dict) else None
    if actual != expected:
        return [f"{what} reports {key} {show(actual)}, the manifest says {show(expected)}"]
    return []


def _compare_sdk(answer: Any, sdk: Mapping[str, Any], keys: tuple[str, ...], what: str) -> list[str]:
    reported = answer.get("sdk") if isinstance(answer, dict) else None
    if not isinstance(reported, dict):
        return [f"{what} printed no sdk object"]
    return [
        f"{what} reports sdk.{key} {show(reported.get(key))}, the manifest says {show(sdk[key])}"
        for key in keys
        if reported.get(key) != sdk[key]
    ]


def compare_dags(manifest_dags: Mapping[str, list[str]], answer: Any, what: str) -> list[str]:
    """Differences between the manifest's dags/tasks and what the bundle itself reports.

    Membership uses sets (a bundle may report hundreds of thousands of tasks) and the list is cut
    after ``MAX_PROBLEMS`` entries, so a wildly wrong answer costs linear time and a short report."""
    reported = answer.get("dags") if isinstance(answer, dict) else None
    if not isinstance(reported, dict):
        return [f"{what} printed no dags object"]
    problems = []
    for dag_id in sorted(manifest_dags):
        entry = reported.get(dag_id)
        if not isinstance(entry, dict) or not isinstance(entry.get("tasks"), list):
            problems.append(
                f"dag {show(dag_id)} is in the manifest, but the bundle's {what} does not expose it"
            )
            continue
        tasks = entry["tasks"]
        expected = set(manifest_dags[dag_id])
        exposed = {task for task in tasks if isinstance(task, str)}
        problems += [
            f"task {show(task)} of dag {show(dag_id)} is in the manifest, but not in the bundle's {what}"
            for task in manifest_dags[dag_id]
            if task not in exposed
        ]
        problems += [
            f"the bundle's {what} has task {show(task)} in dag {show(dag_id)}, which the manifest does not list"
            for task in tasks
            if not isinstance(task, str) or task not in expected
        ]
        if len(problems) > MAX_PROBLEMS:
            break
    problems += [
        f"the bundle's {what} exposes dag {show(dag_id)}, which the manifest does not list "
        "(Airflow would not route its tasks to this bundle)"
        for dag_id in sorted(reported)
        if dag_id not in manifest_dags
    ]
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more differences"]
    return problems
