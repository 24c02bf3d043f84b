"""Where a bundle's third-party dependencies are declared, and the undeclared-import check.

A packed bundle carries its dependencies (see :mod:`packer.vendor`); this module only decides *what*
it must carry. The first of these that exists is the declaration, and the others are not read:

1. ``--requirements FILE``: a pip requirements file, passed to pip as it is (so ``--hash`` lines put
   pip in hash-checking mode, ``-c``/``-r`` includes and markers work as pip documents them).
2. ``requirements.lock`` - the output of ``uv pip compile`` / ``pip-compile`` (a requirements file,
   ideally with ``--generate-hashes``) - next to the target or in a directory above it.
3. The ``[project] dependencies`` of the bundle's ``pyproject.toml``, next to the target or above it.

The upward search stops at the first directory holding either file (a ``requirements.lock`` wins over
a ``pyproject.toml`` in the same directory), at a directory holding ``.git``, or at the filesystem root.
A ``pyproject.toml`` of pybundle itself (``name = "pybundle"``) is not a bundle's declaration and ends
the search with nothing declared: bundles inside pybundle's checkout (its examples, its tests) declare
with ``--requirements``. A ``pybundle`` requirement is dropped: the runtime is embedded by the packer.
``uv.lock`` is not read (pip cannot install from it); export it with ``uv export --format
requirements-txt > requirements.lock``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import PackError

LOCK_NAME = "requirements.lock"
PYPROJECT_NAME = "pyproject.toml"
RUNTIME_DISTRIBUTIONS = frozenset({"pybundle"})  # embedded by the packer, never vendored


@dataclass(frozen=True)
class Declared:
    """A declaration: requirement lines for pip (``lines``) or a requirements file (``file``)."""

    origin: str  # for messages: "--requirements reqs.txt", "requirements.lock", "pyproject.toml"
    file: Path | None = None
    lines: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.file is None and not self.lines


NOTHING = Declared("no declaration")


def normalize(name: str) -> str:
    """PEP 503 name normalisation: ``PyYAML``, ``pyyaml`` and ``py_yaml`` name one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_declaration(target_dir: Path, requirements: str | None) -> Declared:
    """The declaration for a bundle whose target lives in ``target_dir`` (see the module docstring)."""
    if requirements is not None:
        path = Path(requirements)
        if not path.is_file():
            raise PackError(f"--requirements {requirements}: no such file")
        return Declared(f"--requirements {requirements}", file=path.resolve())
    for directory in [target_dir.resolve(), *target_dir.resolve().parents]:
        lock = directory / LOCK_NAME
        if lock.is_file():
            return Declared(str(lock), file=lock)
        pyproject = directory / PYPROJECT_NAME
        if pyproject.is_file():
            return _from_pyproject(pyproject)
        if (directory / ".git").exists():
            break
    return NOTHING


def _from_pyproject(path: Path) -> Declared:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise PackError(
                f"reading {path} needs Python >= 3.11 or the tomli package; or pass --requirements"
            ) from None
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackError(f"cannot read {path}: {exc}") from None
    project = document.get("project")
    if not isinstance(project, Mapping):
        return Declared(str(path))
    if isinstance(project.get("name"), str) and normalize(project["name"]) in RUNTIME_DISTRIBUTIONS:
        return NOTHING  # pybundle's own source tree, not a bundle project
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(item, str) for item in dependencies):
        raise PackError(f"{path}: [project] dependencies must be a list of requirement strings")
    kept = tuple(
        item for item in dependencies if normalize(_requirement_name(item)) not in RUNTIME_DISTRIBUTIONS
    )
    return Declared(str(path), lines=kept)


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return match.group(1) if match else requirement


def undeclared_imports(imported: Iterable[str], provided: Iterable[str]) -> list[str]:
    """Top-level modules the bundle imported from the packing environment that no vendored
    distribution provides: on an isolated worker those imports would fail, so packing refuses them."""
    return sorted(set(imported) - set(provided))
