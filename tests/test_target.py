"""``python -m bundle --bundle TARGET``: file paths, module paths, attributes, BUNDLE_TARGET, bad targets."""

from __future__ import annotations

import json

import pytest

from .conftest import EXAMPLE, ROOT, run_python

SPEC = ["--dump-bundle-spec"]


def dags(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["dags"])


def test_file_path_default_attribute():
    assert dags(run_python(["-m", "bundle", "--bundle", str(EXAMPLE), *SPEC])) == ["simple_dag"]


def test_file_path_relative_and_equals_form():
    result = run_python(["-m", "bundle", "--bundle=examples/bundle/example_dags.py:bundle", *SPEC], cwd=ROOT)
    assert dags(result) == ["simple_dag"]


def test_module_path_with_attribute(tmp_path, write_bundle):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "flows.py").write_text(
        "from bundle import Bundle\nmy_flows = Bundle('m')\nmy_flows.dag('mod_dag')\n"
    )
    result = run_python(["-m", "bundle", "--bundle", "mypkg.flows:my_flows", *SPEC], cwd=tmp_path)
    assert dags(result) == ["mod_dag"]


def test_bundle_target_environment_variable():
    result = run_python(["-m", "bundle", *SPEC], env={"BUNDLE_TARGET": str(EXAMPLE)})
    assert dags(result) == ["simple_dag"]


def test_sibling_imports_work_for_file_targets(tmp_path):
    (tmp_path / "helpers.py").write_text("DAG_ID = 'from_helper'\n")
    (tmp_path / "main.py").write_text(
        "from helpers import DAG_ID\nfrom bundle import Bundle\nbundle = Bundle('s')\nbundle.dag(DAG_ID)\n"
    )
    assert dags(run_python(["-m", "bundle", "--bundle", str(tmp_path / "main.py"), *SPEC])) == ["from_helper"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/no/such/file.py", "no such file: /no/such/file.py"),
        ("no_such_module_xyz", "no module named 'no_such_module_xyz'"),
        (f"{EXAMPLE}:missing_attr", "has no attribute 'missing_attr'"),
        (f"{EXAMPLE}:etl", "is not a bundle"),
        ("", "no bundle target"),
    ],
)
def test_bad_targets_are_one_line_errors_exit_2(target, message):
    result = run_python(["-m", "bundle", "--bundle", target, *SPEC])
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == b""


def test_target_that_raises_on_import(write_bundle):
    path = write_bundle("raise ImportError('the bundle needs pandas')\n")
    result = run_python(["-m", "bundle", "--bundle", str(path), *SPEC])
    assert result.returncode == 2
    assert "ImportError: the bundle needs pandas" in result.stderr


def test_missing_target_and_missing_value():
    assert "no bundle target" in run_python(["-m", "bundle", *SPEC]).stderr
    result = run_python(["-m", "bundle", "--bundle"])
    assert result.returncode == 2 and "flag needs an argument: --bundle" in result.stderr
