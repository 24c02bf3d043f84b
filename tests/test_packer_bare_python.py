"""A packed bundle on a worker that has nothing but Python: ``python3 -m venv --without-pip``.

No PyYAML, no click, no msgpack, no grpc, no pybundle: the packed executable must bring everything it
needs (pybundle's pure-Python runtime, msgpack's pure-Python fallback). The bare interpreter is found
the way production finds it - through ``/usr/bin/env python3`` and ``PATH``.

Coordinator mode runs under the released supervisor via ``tests.harness.supervised`` (task execution
with ``supervise_task``, DAG parsing with apache-airflow-core's ``DagFileProcessorProcess``); the
runtime it launches is the bare interpreter.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.fixtures.packer.support import (
    EXAMPLE,
    EXAMPLE_TASKS,
    MULTIFILE,
    PROBE,
    bare_env,
    bare_venv,
    bundle_pack,
    dev_dump,
    run,
)
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import parse_dag_file, run_task

COOKIE = "23C6AB18-91F9-4760-B3E8-328EF3C861AB"


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("bare")
    paths = {}
    for key, target, fmt in (
        ("example", EXAMPLE, "executable"),
        ("example.zip", EXAMPLE, "zip"),
        ("probe", PROBE, "executable"),
        ("multi", MULTIFILE, "executable"),
    ):
        result = bundle_pack(str(target), "--format", fmt, "--output", str(directory / key))
        assert result.returncode == 0, result.stderr
        paths[key] = directory / key
    launcher = directory / "example_from_zip"
    launcher.write_bytes(zipfile.ZipFile(paths["example.zip"]).read("example_dags"))
    launcher.chmod(0o755)  # the consumer's chmod after extraction
    paths["example_from_zip"] = launcher
    return paths


def test_the_bare_interpreter_really_has_nothing_installed(tmp_path):
    env = bare_env(tmp_path)
    result = run(["python3", "-c", "import sys; print(sys.prefix)"], env=env, cwd=tmp_path)
    assert result.text.strip() == str(bare_venv())
    for module in ("yaml", "click", "msgpack", "grpc", "bundle", "airflow", "pytest"):
        probe = run(["python3", "-c", f"import {module}"], env=env, cwd=tmp_path)
        assert probe.returncode == 1 and "ModuleNotFoundError" in probe.stderr, module


@pytest.mark.parametrize(
    "flags",
    [
        ("--bundle-metadata",),
        ("--dump-bundle-spec",),
        ("--airflow-metadata",),
        ("--airflow-metadata", "--format", "json"),
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("kind", ["example", "example_from_zip"])
def test_introspection_flags_on_a_bare_python(packed, tmp_path, kind, flags):
    result = run([str(packed[kind]), *flags], env=bare_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == dev_dump(EXAMPLE, *flags)
    assert (tmp_path / ".cache" / "pybundle").is_dir()  # the default cache root, under $HOME


def test_plugin_mode_says_it_needs_grpc(packed, tmp_path):
    result = run(
        [str(packed["example"])], env=bare_env(tmp_path, AIRFLOW_BUNDLE_MAGIC_COOKIE=COOKIE), cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (1, b"")
    assert "grpcio" in result.stderr  # the message names what to install
    result = run(
        [str(packed["example"])], env=bare_env(tmp_path, AIRFLOW_BUNDLE_MAGIC_COOKIE="wrong"), cwd=tmp_path
    )
    assert result.returncode == 1 and "This binary is a plugin" in result.stderr


def test_coordinator_task_runs_on_a_bare_python(packed, tmp_path):
    api = FakeExecutionAPI()
    cache = tmp_path / "cache"
    task = run_task(
        [str(packed["probe"])],
        dag_id="probe_dag",
        task_id="probe",
        api=api,
        queue="probe-queue",
        env=bare_env(tmp_path, PYBUNDLE_CACHE_DIR=str(cache)),
        cwd=tmp_path,
    )
    assert (task.exit_code, task.final_state, task.server_state) == (0, "success", "success"), task.describe()
    facts = api.xcom("probe_dag", "manual__2026-01-01", "probe", "return_value")
    # the bare venv's interpreter ran it; under -I -S (no site) sys.prefix is the base installation's
    assert facts["executable"] == str(bare_venv() / "bin" / "python3")
    assert facts["third_party"] == {"yaml": False, "click": False, "grpc": False}
    assert facts["msgpack_packer"] == "msgpack.fallback"  # the pure-Python implementation
    assert facts["msgpack_file"].startswith(str(cache)) and facts["bundle_file"].startswith(str(cache))
    assert facts["pid"] == task.runtime_pid  # the launched process is the one that dialled
    assert task.supervisor_errors == []
    api.assert_clean()


def test_coordinator_runs_a_lazily_imported_module_of_an_embedded_package(packed, tmp_path):
    api = FakeExecutionAPI()
    task = run_task(
        [str(packed["multi"])],
        dag_id="multi_dag",
        task_id="uses_lazy_module",
        api=api,
        env=bare_env(tmp_path, PYBUNDLE_CACHE_DIR=str(tmp_path / "cache")),
        cwd=tmp_path,
    )
    assert (task.exit_code, task.final_state) == (0, "success"), task.describe()
    assert (
        api.xcom("multi_dag", "manual__2026-01-01", "uses_lazy_module", "return_value") == "lazy module found"
    )


def test_coordinator_dag_parsing_on_a_bare_python(packed, tmp_path):
    parsed = parse_dag_file(
        [str(packed["example_from_zip"])],
        env=bare_env(tmp_path, PYBUNDLE_CACHE_DIR=str(tmp_path / "cache")),
        cwd=tmp_path,
    )
    assert parsed.errors == [], parsed.describe()
    assert parsed.dag_ids == ["simple_dag"]
    assert sorted(parsed.loaded_dags["simple_dag"]["task_ids"]) == sorted(EXAMPLE_TASKS)
