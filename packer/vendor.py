"""Resolve a bundle's declared dependencies to wheels and turn them into payload entries.

Resolution and installation are pip's, run as a subprocess (``python -m pip install --target``):
pip is the installer every Python user has, it implements the resolver, markers, hash-checking mode,
indexes, ``--find-links`` and credentials exactly as users configure them, and a hand-written
resolver would get some of that subtly wrong. What this module adds is the policy:

* **wheels only** (``--only-binary=:all:``): nothing is built at pack time, and the same lock gives
  the same files on any packing machine;
* **a target** (``--python-version``, ``--platform``; default: the packing interpreter): passed as
  pip's ``--implementation cp --python-version X.Y --abi cpXY --abi abi3 --abi none [--platform P]``,
  so a bundle can be packed on one machine for workers of another;
* **reproducible bytes**: ``--no-compile`` (no ``.pyc``), and the per-install files of a
  ``.dist-info`` (``RECORD``, ``INSTALLER``, ``REQUESTED``, ``direct_url.json``) and console scripts
  (``bin/``, whose shebang names the packing interpreter) are left out;
* **a record** of every wheel (name, version, file name, SHA-256 from pip's ``--report``, top-level
  modules) for the manifest, and of what the wheels need from the worker (:func:`runtime_requirement`).

pip's download cache is ``$PYBUNDLE_PIP_CACHE_DIR``, else ``<user cache>/pybundle-pack/pip``, so
repeated packs (and the tests) fetch each wheel once.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from . import PackError, introspect
from .deps import Declared, normalize
from .zipbundle import Entry

PIP_TIMEOUT_SECONDS = 900.0  # a first pack downloads every wheel; numpy-sized sets take a while
CACHE_ENV = "PYBUNDLE_PIP_CACHE_DIR"
_DROPPED_METADATA = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_VERSION = re.compile(r"^3\.([0-9]{1,2})$")
_PLATFORM = re.compile(r"^[a-z0-9_.]+$")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
# What pybundle's runtime needs of a vendored msgpack that replaces its embedded fallback.
MSGPACK_MIN_MAJOR = 1


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the wheels are chosen for."""

    python: tuple[int, int]
    platform: str | None  # None: the packing machine's own platform tags
    cross: bool  # whether pip is told the target (else it uses the packing interpreter's tags)

    def pip_flags(self) -> list[str]:
        if not self.cross:
            return []
        major, minor = self.python
        flags = ["--implementation", "cp", "--python-version", f"{major}.{minor}"]
        flags += ["--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none"]
        if self.platform is not None:
            flags += ["--platform", self.platform]
        return flags

    def describe(self) -> str:
        return f"CPython {self.python[0]}.{self.python[1]} " + (self.platform or "(this machine's platform)")


def make_target(python_version: str | None, platform: str | None) -> Target:
    """``--python-version`` / ``--platform`` checked; defaults are the packing interpreter's."""
    if python_version is None:
        python = sys.version_info[:2]
    else:
        match = _VERSION.match(python_version)
        if not match or int(match.group(1)) < 10:
            raise PackError(f"--python-version {python_version!r} must be 3.N with N >= 10 (e.g. 3.12)")
        python = (3, int(match.group(1)))
    if platform is not None and not _PLATFORM.match(platform):
        raise PackError(f"--platform {platform!r} is not a wheel platform tag (e.g. manylinux_2_28_x86_64)")
    cross = platform is not None or python != sys.version_info[:2]
    return Target(python=python, platform=platform, cross=cross)


@dataclass(frozen=True)
class Wheel:
    """One vendored distribution, as the manifest records it."""

    name: str
    version: str
    filename: str
    sha256: str
    modules: tuple[str, ...]

    @property
    def tags(self) -> list[tuple[str, str, str]]:
        """(python, abi, platform) triples of the wheel file name (compressed tag sets expanded)."""
        parts = self.filename[: -len(".whl")].split("-")
        pythons, abis, platforms = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
        return [(p, a, plat) for p in pythons for a in abis for plat in platforms]

    @property
    def compiled(self) -> bool:
        return any(plat != "any" or abi != "none" for _, abi, plat in self.tags)


@dataclass
class Vendored:
    """The result of vendoring: payload entries under ``lib/``, the wheel records, warnings."""

    target: Target
    wheels: list[Wheel] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def modules(self) -> set[str]:
        return {module for wheel in self.wheels for module in wheel.modules}

    @property
    def replaces_msgpack(self) -> bool:
        return any(normalize(wheel.name) == "msgpack" for wheel in self.wheels)


def pip_cache_dir() -> str:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybundle-pack", "pip")


def vendor(declared: Declared, target: Target) -> Vendored:
    """Resolve and install ``declared`` for ``target`` into a scratch directory and read it back."""
    result = Vendored(target)
    if declared.empty:
        return result
    with tempfile.TemporaryDirectory(prefix="bundle-pack-vendor-") as scratch:
        site, report_path = Path(scratch, "site"), Path(scratch, "report.json")
        if declared.file is not None:
            requirement_args = ["-r", str(declared.file)]
        else:
            listed = Path(scratch, "requirements.txt")
            listed.write_text("".join(line + "\n" for line in declared.lines), "utf-8")
            requirement_args = ["-r", str(listed)]
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(site),
            "--only-binary=:all:",
            "--no-compile",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--no-warn-conflicts",
            "--progress-bar",
            "off",
            "--cache-dir",
            pip_cache_dir(),
            "--report",
            str(report_path),
            *target.pip_flags(),
            *requirement_args,
        ]
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PIP_TARGET", "PIP_PREFIX", "PIP_USER", "PIP_ROOT")
        }
        ran = introspect.finish(
            introspect.start(command, env), f"pip install for {declared.origin}", PIP_TIMEOUT_SECONDS
        )
        if ran.returncode != 0:
            raise PackError(pip_failure(ran.stdout.decode("utf-8", "replace") + ran.stderr, declared, target))
        try:
            report = json.loads(report_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise PackError(f"pip did not write a readable --report: {exc}") from None
        result.wheels = _wheels(report, site)
        _check_conflicts(result.wheels)
        result.entries, result.warnings = _entries(site)
    return result


def _wheels(report: dict, site: Path) -> list[Wheel]:
    modules = _modules_by_distribution(site)
    wheels = []
    for item in report.get("install", []):
        metadata, info = item.get("metadata", {}), item.get("download_info", {})
        name, version = metadata.get("name", "?"), metadata.get("version", "?")
        url = info.get("url", "")
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        if "archive_info" not in info or not filename.endswith(".whl"):
            raise PackError(f"{name} {version} is not a wheel ({url}); a bundle vendors wheels only")
        sha256 = info["archive_info"].get("hashes", {}).get("sha256")
        if sha256 is None and url.startswith("file://"):
            sha256 = _file_sha256(urllib.parse.unquote(urllib.parse.urlparse(url).path))
        if sha256 is None:
            raise PackError(f"pip reported no SHA-256 for the wheel of {name} {version} ({filename})")
        wheels.append(Wheel(name, version, filename, sha256, tuple(modules.get(normalize(name), ()))))
    return sorted(wheels, key=lambda wheel: normalize(wheel.name))


def _file_sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _modules_by_distribution(site: Path) -> dict[str, list[str]]:
    """Top-level importable names each installed distribution provides, read from its ``RECORD``."""
    found: dict[str, list[str]] = {}
    for info in sorted(site.glob("*.dist-info")):
        name = None
        for line in (info / "METADATA").read_text("utf-8", "replace").splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
                break
            if not line:
                break
        if name is None:
            continue
        tops = set()
        record = info / "RECORD"
        for line in record.read_text("utf-8", "replace").splitlines() if record.is_file() else []:
            top = line.split(",", 1)[0].split("/", 1)
            first = top[0]
            if first in ("..", "bin", "__pycache__") or first.endswith((".dist-info", ".data", ".pth")):
                continue
            if len(top) == 1:  # a top-level module file: strip .py / the extension suffix
                if not first.endswith((".py", ".so", ".pyd")):
                    continue
                first = first.split(".", 1)[0]
            if first.isidentifier():
                tops.add(first)
        found[normalize(name)] = sorted(tops)
    return found


def _check_conflicts(wheels: list[Wheel]) -> None:
    """pybundle's runtime is ``lib/bundle``: nothing may replace it. msgpack may replace the embedded
    pure-Python fallback (and bring its C extension), if it is a version the runtime works with."""
    for wheel in wheels:
        if "bundle" in wheel.modules:
            raise PackError(
                f"dependency {wheel.name} {wheel.version} provides a top-level 'bundle' module, which is "
                "pybundle's runtime; it cannot be vendored"
            )
        if normalize(wheel.name) == "msgpack":
            major = re.match(r"([0-9]+)", wheel.version)
            if major is None or int(major.group(1)) < MSGPACK_MIN_MAJOR:
                raise PackError(
                    f"dependency msgpack {wheel.version} would replace pybundle's embedded msgpack, "
                    f"which needs msgpack >= {MSGPACK_MIN_MAJOR}.0; pin msgpack>={MSGPACK_MIN_MAJOR}.0"
                )
        elif "msgpack" in wheel.modules:
            raise PackError(
                f"dependency {wheel.name} {wheel.version} provides a top-level 'msgpack' module that would "
                "replace pybundle's msgpack; it cannot be vendored"
            )


def _entries(site: Path) -> tuple[list[Entry], list[str]]:
    """Every installed file as a ``lib/...`` entry, minus per-install and non-reproducible files."""
    entries, warnings = [], []
    for path in sorted(site.rglob("*")):
        if path.is_dir() or (path.is_symlink() and not path.is_file()):
            continue
        relative = path.relative_to(site)
        parts = relative.parts
        if parts[0] == "bin" or "__pycache__" in parts or path.suffix == ".pyc":
            continue
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _DROPPED_METADATA:
            continue
        if len(parts) == 1 and path.suffix == ".pth":
            warnings.append(
                f"vendored file {parts[0]} is a .pth file; the bundle runs without site processing "
                "(python -I -S), so it is not embedded and has no effect"
            )
            continue
        entries.append(Entry("lib/" + relative.as_posix(), path.read_bytes()))
    return entries, warnings


def runtime_requirement(vendored: Vendored) -> dict | None:
    """What the launcher checks on the worker before the bundle runs, or None (only pure wheels).

    A compiled wheel (any platform tag but ``any``, or an ABI but ``none``) needs CPython, a platform
    one of its tags names, and the Python minor it was built for (``cpXY`` ABI: exactly that minor;
    ``abi3``: at least it). Pure wheels run anywhere the resolution's markers held, so bundles that
    vendor only pure wheels are not checked (pack for the oldest Python the workers have)."""
    compiled = [wheel for wheel in vendored.wheels if wheel.compiled]
    if not compiled:
        return None
    exact = any(abi.startswith("cp") and abi != "abi3" for w in compiled for _, abi, _ in w.tags)
    platforms = [sorted({plat for _, _, plat in wheel.tags if plat != "any"}) for wheel in compiled]
    platforms = [tags for tags in platforms if tags]
    major, minor = vendored.target.python
    return {
        "implementation": "cpython",
        "python": [major, minor],
        "exact_python": exact,
        "platforms": platforms,
        "label": f"CPython {major}.{minor} {least_demanding(platforms)}",
    }


def least_demanding(platforms: list[list[str]]) -> str:
    """One platform tag that describes what the whole set needs: for each wheel its most widely
    compatible tag (lowest glibc), then the most demanding of those across wheels."""

    def glibc(tag: str) -> tuple[int, int]:
        for legacy, version in _LEGACY_MANYLINUX.items():
            if tag.startswith(legacy + "_"):
                return version
        match = re.match(r"^(?:many|musl)linux_([0-9]+)_([0-9]+)_", tag)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    def canonical(tag: str) -> str:
        for legacy, (x, y) in _LEGACY_MANYLINUX.items():
            if tag.startswith(legacy + "_"):
                return f"manylinux_{x}_{y}_" + tag[len(legacy) + 1 :]
        return tag

    if not platforms:
        return "any"
    best = [min(tags, key=lambda tag: (glibc(tag), tag)) for tags in platforms]
    return canonical(max(best, key=lambda tag: (glibc(tag), tag)))


def pip_failure(stderr: str, declared: Declared, target: Target) -> str:
    """pip's failure as one line naming the package (pip's own output is many lines)."""
    text = stderr.replace("\r", "")
    missing = re.search(r"No matching distribution found for (\S+)", text)
    if missing:  # pip cannot tell "no such version" from "no wheel of it for this target"
        versions = re.search(r"from versions: ([^)]*)\)", text)
        found = _shorten(versions.group(1)) if versions else "none"
        return (
            f"no wheel of {missing.group(1)} for {target.describe()} (wheels only; versions with a wheel "
            f"for this target: {found or 'none'}); declared in {declared.origin}"
        )
    if "DO NOT MATCH THE HASHES" in text:
        names = re.findall(r"^\s+(\S+?)(?:==\S+)? from \S+", text, re.MULTILINE)
        return f"hash mismatch for {', '.join(names) or 'a dependency'}: the downloaded wheel's SHA-256 is not the one {declared.origin} pins"
    if "ResolutionImpossible" in text or "conflicting dependencies" in text:
        causes = re.findall(r"^\s+(The user requested .*|\S+ \S+ depends on .*)$", text, re.MULTILINE)
        return f"conflicting requirements in {declared.origin}: {'; '.join(c.strip() for c in causes) or 'see pip'}"
    if "Hashes are required" in text or "--require-hashes" in text:
        line = next((ln.strip() for ln in text.splitlines() if "==" in ln and "--hash" in ln), "")
        return f"{declared.origin} uses hashes but not for every requirement: {line or 'see pip'}"
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR:")]
    detail = (
        lines[-1][len("ERROR:") :].strip() if lines else (text.strip().splitlines() or ["(no output)"])[-1]
    )
    return f"pip could not install the dependencies of {declared.origin}: {detail}"


def _shorten(versions: str, keep: int = 6) -> str:
    items = [item.strip() for item in versions.split(",") if item.strip()]
    return ", ".join(items if len(items) <= keep else ["...", *items[-keep:]])
