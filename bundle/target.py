"""Load the bundle named by a target: ``path/to/file.py[:attr]`` or ``package.module[:attr]``.

Used by ``python -m bundle --bundle TARGET`` and by the packer; ``attr`` defaults to ``bundle``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from .core.provider import BundleProvider, check_provider

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

DEFAULT_ATTR = "bundle"


class TargetError(Exception):
    """The target cannot be loaded; the message says why, in one line."""


def split_target(target: str) -> tuple[str, str]:
    location, sep, attr = target.rpartition(":")
    # "C:\\x.py" style drive letters are not a concern on the platforms Airflow runs bundles on
    if not sep or not location or "/" in attr or attr.endswith(".py"):
        return target, DEFAULT_ATTR
    return location, attr or DEFAULT_ATTR


def is_file_target(location: str) -> bool:
    return location.endswith(".py") or os.sep in location or "/" in location


def load_target(target: str) -> BundleProvider:
    if not target:
        raise TargetError("empty bundle target; expected path/to/file.py[:attr] or package.module[:attr]")
    location, attr = split_target(target)
    module = _load_file(location) if is_file_target(location) else _load_module(location)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{location} has no attribute {attr!r}") from None
    try:
        return check_provider(obj)
    except TypeError as exc:
        raise TargetError(f"{target}: {exc}") from None


def _load_file(path: str) -> Any:
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise TargetError(f"no such file: {path}")
    name = os.path.splitext(os.path.basename(path))[0] or "bundle_main"
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # sibling modules import as they would when run as a script
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise TargetError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _load_module(name: str) -> Any:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise TargetError(f"no module named {exc.name!r} (target {name!r})") from exc
        raise TargetError(f"importing {name} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise TargetError(f"importing {name} failed: {type(exc).__name__}: {exc}") from exc
