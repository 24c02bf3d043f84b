"""What the launcher's embedded ZIP contains, and where each file comes from.

::

    pybundle-launch.json    how to load the bundle: {"kind": "file", "path": "app/x.py", "attr": ...}
                            or {"kind": "module", "module": "pkg.mod", "attr": ...}
    lib/bundle/...          pybundle's runtime: every .py file of the installed ``bundle`` package
    lib/msgpack/...         msgpack's pure-Python implementation (it falls back to it without its C
                            extension) and its licence
    lib/<dependency>/...    the bundle's vendored third-party dependencies (packer/vendor.py), with
                            their ``.dist-info`` metadata; a vendored msgpack replaces the fallback
    app/...                 the bundle's own code: the target and the local modules it imports

Nothing host-specific goes in: names are relative, contents are file bytes, the JSON is sorted.
grpc/protobuf are not embedded unless the bundle declares them (go-plugin mode needs them).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import PackError
from .zipbundle import Entry, build_zip

CONFIG_NAME = "pybundle-launch.json"
MSGPACK_FILES = ("__init__.py", "exceptions.py", "ext.py", "fallback.py")


@dataclass(frozen=True)
class AppFile:
    """A file of the bundle's own code: its path under ``app/`` and where it is read from."""

    name: str
    path: Path


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (importing ``bundle`` has side effects).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise PackError(f"cannot find the installed {name!r} package to embed")
    return Path(next(iter(spec.submodule_search_locations)))


def runtime_dir() -> Path:
    """The directory of the pybundle runtime package (``bundle``) this packer embeds."""
    return _package_dir("bundle")


def runtime_entries(with_msgpack: bool = True) -> list[Entry]:
    """pybundle's runtime (``.py`` files only, no caches or stubs) and msgpack's pure-Python fallback
    (left out when the bundle vendors its own msgpack)."""
    entries = []
    base = runtime_dir()
    for path in sorted(base.rglob("*.py")):
        relative = path.relative_to(base)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        entries.append(Entry("lib/bundle/" + relative.as_posix(), path.read_bytes()))
    if not with_msgpack:
        return entries
    msgpack = _package_dir("msgpack")
    for name in MSGPACK_FILES:
        path = msgpack / name
        if not path.is_file():
            raise PackError(f"msgpack's pure-Python file {path} is missing; reinstall msgpack")
        entries.append(Entry(f"lib/msgpack/{name}", path.read_bytes()))
    licence = _msgpack_licence()
    if licence is not None:
        entries.append(Entry("lib/msgpack/COPYING", licence))
    return entries


def _msgpack_licence() -> bytes | None:
    """msgpack is redistributed inside every bundle, so its licence travels with it."""
    from importlib import metadata

    try:
        files = metadata.distribution("msgpack").files or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name in ("COPYING", "LICENSE", "LICENSE.txt"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path.read_bytes()
    return None


def launch_config(
    kind: str,
    attr: str,
    *,
    path: str | None = None,
    module: str | None = None,
    requires: dict | None = None,
) -> bytes:
    """``pybundle-launch.json``: how the launcher loads the bundle from the extracted ``app/``, and
    (``requires``, only with compiled vendored wheels) what interpreter it must check for."""
    config: dict[str, object] = {"attr": attr, "kind": kind}
    if requires is not None:
        config["requires"] = requires
    if kind == "file":
        assert path is not None
        config["path"] = f"app/{path}"
    else:
        assert module is not None
        config["module"] = module
    return (json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n").encode()


def build_runtime_zip(
    config: bytes, app_files: list[AppFile], vendored: Sequence[Entry] = (), *, with_msgpack: bool = True
) -> bytes:
    """The embedded ZIP: launch config, runtime, vendored dependencies and the bundle's files."""
    entries = [Entry(CONFIG_NAME, config), *runtime_entries(with_msgpack), *vendored]
    for app_file in app_files:
        try:
            data = app_file.path.read_bytes()
        except OSError as exc:
            raise PackError(f"cannot read {app_file.path}: {exc.strerror}") from None
        entries.append(Entry(f"app/{app_file.name}", data))
    return build_zip(entries)


def is_relative_to(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or inside it (both absolute, real paths)."""
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
