"""``import bundle``: the names it exports, pinned; the lazy ones stay lazy yet are typed.

Nine names load their module on first access (``bundle.__getattr__``), so a plain task never pays
for connections, params, assets or sensors. Type checkers and IDEs see them through the
``if TYPE_CHECKING:`` imports beside it; these tests keep the two lists and ``__all__`` together.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import bundle

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "bundle" / "__init__.py"

EXPORTED = [
    "AirflowApiError",
    "Asset",
    "AssetAll",
    "AssetAny",
    "AssetEvent",
    "Bundle",
    "BundleInfo",
    "BundleProvider",
    "Client",
    "Connection",
    "ConnectionClient",
    "ConnectionNotFound",
    "Context",
    "Dag",
    "DagRunInfo",
    "FailTask",
    "InvalidRequest",
    "NotFound",
    "Param",
    "ParamValidationError",
    "PokeReturnValue",
    "RegistrationError",
    "Registry",
    "RequestNotAllowed",
    "SensorTimeout",
    "SkipTask",
    "Task",
    "TaskCancelled",
    "TaskInstanceInfo",
    "TaskTimeout",
    "VariableClient",
    "VariableNotFound",
    "XComArg",
    "XComClient",
    "XComNotFound",
    "__version__",
    "serve",
]
# name -> the module that defines it, loaded only when the name is first used
LAZY = {
    "Asset": "bundle.core.authoring.assets",
    "AssetAll": "bundle.core.authoring.assets",
    "AssetAny": "bundle.core.authoring.assets",
    "AssetEvent": "bundle.core.asset_events",
    "Connection": "bundle.core.connection",
    "Param": "bundle.core.authoring.params",
    "ParamValidationError": "bundle.core.authoring.params",
    "PokeReturnValue": "bundle.core.authoring.sensors",
    "SensorTimeout": "bundle.core.authoring.sensors",
}


def _type_checking_imports() -> dict[str, str]:
    """``{name: absolute module}`` of the imports under ``if TYPE_CHECKING:`` in bundle/__init__.py."""
    found: dict[str, str] = {}
    for node in ast.parse(INIT.read_text("utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1, ast.dump(statement)
                for alias in statement.names:
                    found[alias.asname or alias.name] = f"bundle.{statement.module}"
    return found


def test_the_exported_names_are_pinned():
    assert sorted(bundle.__all__) == EXPORTED
    assert len(set(bundle.__all__)) == len(bundle.__all__)


def test_every_exported_name_resolves():
    for name in EXPORTED:
        assert getattr(bundle, name) is not None, name
    assert not hasattr(bundle, "TYPE_CHECKING")  # the flag is not part of the surface


def test_type_checkers_see_every_lazy_name_from_the_module_that_serves_it():
    assert _type_checking_imports() == LAZY
    for name, module in LAZY.items():
        assert getattr(bundle, name) is getattr(importlib.import_module(module), name), name


def test_importing_bundle_loads_none_of_the_lazy_modules():
    code = "import sys, bundle; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "bundle" in loaded
    assert sorted(set(LAZY.values()) & set(loaded)) == []


def test_a_type_checker_sees_the_lazy_names_as_their_classes(tmp_path):
    """What an IDE or mypy user sees: ``bundle.Asset`` is the class, not ``object``."""
    snippet = tmp_path / "uses_bundle.py"
    snippet.write_text(
        textwrap.dedent("""
            from bundle import Asset, AssetEvent, Connection, Param, PokeReturnValue

            def poke(asset: Asset, param: Param, conn: Connection, event: AssetEvent) -> PokeReturnValue:
                reveal_type(asset.uri)
                reveal_type(conn.conn_id)
                return PokeReturnValue(True)
        """),
        "utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Revealed type is "builtins.str"' in result.stdout or 'Revealed type is "str"' in result.stdout
    assert "Any" not in result.stdout, result.stdout
