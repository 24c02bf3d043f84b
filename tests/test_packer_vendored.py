"""Self-contained bundles: declared dependencies are vendored as wheels and run isolated.

Real peers throughout: ``bundle-pack`` resolves with pip against PyPI (through the user's pip cache,
``packer.vendor.pip_cache_dir``, so only a first run downloads), packed executables run under the
released ``ExecutableCoordinator`` on a bare ``venv --without-pip`` Python, or on the system
``/usr/bin/python3`` that has *other* versions of the same packages installed, with a
``PYTHONPATH`` full of impostors. Bad-input cases that need no index use small wheels built here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.packer.support import (
    REPO,
    CoordinatorRun,
    bare_env,
    bare_venv,
    bundle_pack,
    run,
    run_with_executable_coordinator,
)
from tests.harness.execution_api import FakeExecutionAPI

BUNDLES = REPO / "tests" / "bundles"
NATIVE = BUNDLES / "vendored_native" / "native_bundle.py"
SIX_OLD = BUNDLES / "vendored_six_old" / "six_old.py"
SIX_NEW = BUNDLES / "vendored_six_new" / "six_new.py"
RUN_ID = "manual__2026-01-01"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: PyYAML 6.0 and six 1.16.0 in dist-packages


def pack_ok(*args: str) -> None:
    result = bundle_pack(*args, timeout=600)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, Path]:
    """Each bundle in its own executables root (the coordinator finds bundles by dag id)."""
    base = tmp_path_factory.mktemp("vendored")
    paths = {}
    for key, target, extra in (
        ("native", NATIVE, ()),
        ("native_system", NATIVE, ("--python", SYSTEM_PYTHON)),
        ("six_old", SIX_OLD, ()),
        ("six_new", SIX_NEW, ()),
        ("six_new_system", SIX_NEW, ("--python", SYSTEM_PYTHON)),
    ):
        root = base / key
        root.mkdir()
        pack_ok(str(target), "--format", "executable", "--output", str(root / target.stem), *extra)
        paths[key] = root / target.stem
    return paths


def coordinator(bundle: Path, tmp_path: Path, dag_id: str, task_id: str, **env: str) -> CoordinatorRun:
    api = FakeExecutionAPI()
    return run_with_executable_coordinator(
        [bundle.parent],
        dag_id=dag_id,
        task_id=task_id,
        api=api,
        queue="vendored-queue",
        workdir=tmp_path / f"{dag_id}-{task_id}-{threading.get_ident()}",
        env=bare_env(tmp_path, PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"), **env),
        run_id=RUN_ID,
    )


def xcom(task: CoordinatorRun, dag_id: str, task_id: str) -> dict:
    assert task.exception is None, task.describe()
    assert (task.exit_code, task.state) == (0, "success"), task.describe()
    return task.api.xcom(dag_id, RUN_ID, task_id, "return_value")


def impostors(directory: Path) -> Path:
    """A PYTHONPATH directory with a ``six`` that would win if the worker's path leaked into the
    bundle. It is the real six under another ``__version__``, since the coordinator (which imports
    six through Airflow) gets the same PYTHONPATH."""
    import six

    directory.mkdir(exist_ok=True)
    (directory / "six.py").write_text(Path(six.__file__).read_text() + "\n__version__ = 'impostor'\n")
    return directory


# -- running ------------------------------------------------------------------------------------
def test_native_wheels_run_on_a_bare_python(packed, tmp_path):
    facts = xcom(coordinator(packed["native"], tmp_path, "native_dag", "versions"), "native_dag", "versions")
    cache = str(tmp_path / "cache")
    assert facts["executable"] == str(bare_venv() / "bin" / "python3")
    assert (facts["yaml"], facts["libyaml"], facts["cloader"]) == ("6.0.2", True, "yaml.cyaml")
    assert facts["yaml_file"].startswith(cache)
    # a declared msgpack replaces the embedded pure-Python fallback, C extension included
    assert (facts["msgpack"], facts["msgpack_packer"]) == ("1.1.0", "msgpack._cmsgpack")
    assert facts["msgpack_file"].startswith(cache)
    assert facts["no_site"] and not any("site-packages" in entry for entry in facts["path"])


def test_vendored_copies_win_over_what_the_worker_has_installed(packed, tmp_path):
    installed = run([SYSTEM_PYTHON, "-c", "import yaml, six; print(yaml.__version__, six.__version__)"])
    # Debian's python3-yaml / python3-six (scripts/bootstrap installs them): other versions than the lock's
    assert installed.returncode == 0, installed.stderr
    assert installed.text.split()[0] != "6.0.2" and installed.text.split()[1] != "1.17.0", installed.text
    shadow = str(impostors(tmp_path / "shadow"))
    native = coordinator(packed["native_system"], tmp_path, "native_dag", "versions", PYTHONPATH=shadow)
    facts = xcom(native, "native_dag", "versions")
    assert facts["executable"] == SYSTEM_PYTHON
    assert (facts["yaml"], facts["libyaml"]) == ("6.0.2", True)
    six = coordinator(packed["six_new_system"], tmp_path, "six_new_dag", "which", PYTHONPATH=shadow)
    assert xcom(six, "six_new_dag", "which")["six"] == "1.17.0"


def test_the_workers_packages_do_not_satisfy_an_undeclared_import(tmp_path):
    target = tmp_path / "undeclared.py"
    target.write_text(
        "import six\nfrom bundle import Bundle\n\nbundle = Bundle('undeclared')\n"
        "dag = bundle.dag('undeclared_dag')\n\n\n@dag.task\ndef t() -> None:\n    pass\n"
    )
    output = tmp_path / "undeclared"
    result = bundle_pack(
        str(target),
        "--format",
        "executable",
        "-o",
        str(output),
        "--allow-undeclared",
        "--python",
        SYSTEM_PYTHON,
    )
    assert result.returncode == 0, result.stderr
    assert "warning: the bundle imports six, which no declared dependency provides" in result.stderr
    ran = run([str(output), "--bundle-metadata"], env=bare_env(tmp_path), cwd=tmp_path)
    assert ran.returncode == 1 and "No module named 'six'" in ran.stderr  # the system Python has six


def test_two_bundles_pinning_different_versions_share_a_worker(packed, tmp_path):
    """One worker (one HOME, one launcher cache): one after the other, then both at once."""
    one = coordinator(packed["six_old"], tmp_path, "six_old_dag", "which")
    two = coordinator(packed["six_new"], tmp_path, "six_new_dag", "which")
    assert xcom(one, "six_old_dag", "which")["six"] == "1.16.0"
    assert xcom(two, "six_new_dag", "which")["six"] == "1.17.0"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    results: dict[str, CoordinatorRun] = {}

    def go(key: str, dag_id: str) -> None:
        results[key] = coordinator(packed[key], tmp_path, dag_id, "which", VENDORED_TEST_BARRIER=str(barrier))

    threads = [
        threading.Thread(target=go, args=args)
        for args in (("six_old", "six_old_dag"), ("six_new", "six_new_dag"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    old, new = (
        xcom(results["six_old"], "six_old_dag", "which"),
        xcom(results["six_new"], "six_new_dag", "which"),
    )
    assert (old["six"], new["six"]) == ("1.16.0", "1.17.0")
    assert old["met"] is True and new["met"] is True  # each task saw the other one running
    entries = [p.name for p in (tmp_path / "cache").iterdir() if len(p.name) == 64]
    assert len(entries) == 2  # one worker cache, one entry per bundle


def test_bundle_run_gets_the_vendored_dependencies(packed, tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("bundle-run")),
            str(packed["native"]),
            "--json-report",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=bare_env(
            tmp_path, PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"), PATH=f"{bare_venv() / 'bin'}:/usr/bin:/bin"
        ),
        cwd=tmp_path,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6.0.2" in proc.stdout and "msgpack._cmsgpack" in proc.stdout


# -- packing ------------------------------------------------------------------------------------
def test_packing_twice_gives_identical_bytes(packed, tmp_path):
    for fmt, name in (("executable", "again"), ("zip", "again.zip")):
        first, second = tmp_path / f"1-{name}", tmp_path / f"2-{name}"
        pack_ok(str(NATIVE), "--format", fmt, "-o", str(first))
        pack_ok(str(NATIVE), "--format", fmt, "-o", str(second))
        assert first.read_bytes() == second.read_bytes()
    payload = zipfile.ZipFile(packed["native"])  # the runtime ZIP ends the launcher region
    names = payload.namelist()
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n or n.endswith("/RECORD")]
    assert "lib/yaml/__init__.py" in names and any(n.startswith("lib/yaml/_yaml.cpython-311") for n in names)
    assert "lib/msgpack/fallback.py" in names  # from msgpack's wheel, not the packer's copy


def test_inspect_lists_the_vendored_wheels(packed):
    result = bundle_pack("inspect", str(packed["native"]))
    assert result.returncode == 0, result.stderr
    text = result.text
    assert 'pybundle_vendored:\n  implementation: "cp"\n  python: "3.11"\n' in text.replace(
        f'"{sys.version_info[0]}.{sys.version_info[1]}"', '"3.11"'
    )
    assert '- name: "PyYAML"\n      version: "6.0.2"\n' in text
    assert '- name: "msgpack"\n      version: "1.1.0"\n' in text


def test_verify_imports_every_vendored_module(packed):
    result = bundle_pack("verify", str(packed["native"]))
    assert result.returncode == 0, result.stderr
    assert result.text.startswith("OK ")


def test_a_cross_platform_pack_gets_that_platforms_wheels_and_is_refused_here(tmp_path):
    output = tmp_path / "arm"
    pack_ok(str(NATIVE), "--format", "executable", "-o", str(output), "--platform", "manylinux2014_aarch64")
    manifest = bundle_pack("inspect", str(output)).text
    assert 'platform: "manylinux2014_aarch64"' in manifest
    wheels = [line.split('"')[1] for line in manifest.splitlines() if line.strip().startswith("wheel:")]
    assert len(wheels) == 2 and all("aarch64" in wheel and "x86_64" not in wheel for wheel in wheels)
    ran = run([str(output), "--bundle-metadata"], env=bare_env(tmp_path), cwd=tmp_path)
    assert ran.returncode == 1 and ran.stdout == b""
    assert ran.stderr.count("\n") == 1
    assert ran.stderr.startswith(
        f"error: this bundle was built for CPython {sys.version_info[0]}.{sys.version_info[1]} "
        "manylinux_2_17_aarch64; this interpreter is CPython"
    )


def test_a_pack_for_another_python_version_is_refused_by_this_one(tmp_path):
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    output = tmp_path / "other"
    pack_ok(str(NATIVE), "--format", "executable", "-o", str(output), "--python-version", other)
    manifest = bundle_pack("inspect", str(output)).text
    tag = "cp" + other.replace(".", "")
    assert f"PyYAML-6.0.2-{tag}-{tag}-" in manifest and f"msgpack-1.1.0-{tag}-{tag}-" in manifest
    ran = run([str(output), "--airflow-metadata"], env=bare_env(tmp_path), cwd=tmp_path)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert (ran.returncode, ran.stdout, ran.stderr.count("\n")) == (1, b"", 1), ran.stderr
    assert ran.stderr.startswith(
        f"error: this bundle was built for CPython {other} manylinux_2_17_x86_64; this interpreter is "
        f"CPython {here} linux_x86_64"
    )
    verified = bundle_pack("verify", str(output))
    assert verified.returncode == 1 and "this bundle was built for CPython" in verified.stderr


# -- bad input: each one error line naming the package, exit 1, nothing written -----------------
def wheel(directory: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-Python wheel, built here so the case needs no index."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    meta = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    everything = {**files, **meta}
    record = "".join(f"{file},,\n" for file in everything) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in {**everything, f"{info}/RECORD": record}.items():
            archive.writestr(file, text)
    return path


def refused(tmp_path: Path, requirements: str, *extra: str, target: Path = SIX_OLD) -> str:
    reqs = tmp_path / "reqs.txt"
    reqs.write_text(requirements)
    output = tmp_path / "out" / "bundle"
    result = bundle_pack(str(target), "--format", "executable", "-o", str(output), "-r", str(reqs), *extra)
    assert (result.returncode, result.stdout) == (1, b""), result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert not output.exists() and not output.parent.exists()
    return result.stderr


def test_no_wheel_for_the_target(tmp_path):
    message = refused(tmp_path, "PyYAML==5.1\nsix==1.16.0\n")  # 5.1 has no Linux wheels at all
    assert "no wheel of PyYAML==5.1 for CPython" in message


def test_a_requirement_that_does_not_resolve(tmp_path):
    message = refused(tmp_path, "six==1.16.0\nsix==1.17.0\n")
    assert message.startswith("error: conflicting requirements in --requirements") and "six" in message
    message = refused(tmp_path, "six==1.16.0\npybundle-tests-no-such-distribution==1.0\n")
    assert "no wheel of pybundle-tests-no-such-distribution==1.0" in message


def test_a_hash_mismatch(tmp_path):
    message = refused(tmp_path, "six==1.16.0 --hash=sha256:" + "0" * 64 + "\n")
    assert message.startswith("error: hash mismatch for six")


def test_a_dependency_that_replaces_the_runtime(tmp_path):
    fake = wheel(tmp_path, "notbundle", "1.0", {"bundle/__init__.py": ""})
    message = refused(tmp_path, f"six==1.16.0\n{fake}\n")
    assert "dependency notbundle 1.0 provides a top-level 'bundle' module" in message
    old = wheel(tmp_path, "msgpack", "0.5.0", {"msgpack/__init__.py": ""})
    message = refused(tmp_path, f"six==1.16.0\n{old}\n")
    assert "msgpack 0.5.0 would replace pybundle's embedded msgpack, which needs msgpack >= 1.0" in message


def test_an_undeclared_import(tmp_path):
    message = refused(tmp_path, "six==1.16.0\n", target=NATIVE)
    assert "the bundle imports the installed module yaml, but none of the dependencies in" in message
    target = tmp_path / "nodecl" / "uses_six.py"
    target.parent.mkdir()
    target.write_text(SIX_OLD.read_text())
    result = bundle_pack(str(target), "-o", str(tmp_path / "x.zip"))
    assert (result.returncode, result.stderr) == (
        1,
        "error: the bundle imports the installed module six, but no dependencies are declared "
        "(--requirements FILE, a requirements.lock, or [project] dependencies in pyproject.toml); "
        "declare the distribution, or pass --allow-undeclared\n",
    )


def test_verify_names_a_vendored_module_that_does_not_import(tmp_path):
    broken = wheel(tmp_path, "brokenpkg", "1.0", {"brokenpkg/__init__.py": "import no_such_module_here\n"})
    reqs = tmp_path / "reqs.txt"
    reqs.write_text(f"six==1.16.0\n{broken}\n")
    output = tmp_path / "b"
    pack_ok(str(SIX_OLD), "--format", "executable", "-o", str(output), "-r", str(reqs))
    result = bundle_pack("verify", str(output))
    assert result.returncode == 1
    assert "vendored modules that do not import under a bare interpreter: brokenpkg (ModuleNotFoundError" in (
        result.stderr
    )


def test_vendored_pth_files_are_left_out_with_a_warning(tmp_path):
    pth = wheel(tmp_path, "withpth", "1.0", {"withpth.pth": "import os\n", "withpth/__init__.py": ""})
    reqs = tmp_path / "reqs.txt"
    reqs.write_text(f"six==1.16.0\n{pth}\n")
    result = bundle_pack(str(SIX_OLD), "--format", "executable", "-o", str(tmp_path / "p"), "-r", str(reqs))
    assert result.returncode == 0, result.stderr
    assert "warning: vendored file withpth.pth is a .pth file" in result.stderr
    assert "lib/withpth.pth" not in zipfile.ZipFile(tmp_path / "p").namelist()
    assert json.loads(run([str(tmp_path / "p"), "--bundle-metadata"], env=bare_env(tmp_path)).stdout)["name"]


# -- the launcher's platform check and the packer's summary of it, as functions ------------------
@pytest.mark.parametrize(
    ("tag", "machine", "glibc", "runs"),
    [
        ("manylinux_2_17_x86_64", "x86_64", (2, 36), True),
        ("manylinux2014_x86_64", "x86_64", (2, 17), True),
        ("manylinux_2_28_x86_64", "x86_64", (2, 27), False),
        ("manylinux1_x86_64", "x86_64", None, False),  # no glibc (musl)
        ("manylinux2014_aarch64", "x86_64", (2, 36), False),
        ("musllinux_1_2_x86_64", "x86_64", None, True),
        ("musllinux_1_2_x86_64", "x86_64", (2, 36), False),
        ("linux_x86_64", "x86_64", (2, 36), True),
        ("win_amd64", "x86_64", (2, 36), False),
    ],
)
def test_platform_tags_the_launcher_accepts_on_linux(tag, machine, glibc, runs):
    from packer import _launch

    assert sys.platform.startswith("linux")  # the tests run on Linux workers
    assert _launch.platform_matches(tag, machine, glibc) is runs


def test_the_recorded_platform_is_the_most_demanding_wheels_least_demanding_tag():
    from packer.vendor import least_demanding

    assert least_demanding([["manylinux2014_x86_64", "manylinux_2_17_x86_64"]]) == "manylinux_2_17_x86_64"
    assert (
        least_demanding([["manylinux_2_17_x86_64"], ["manylinux_2_28_x86_64", "manylinux_2_34_x86_64"]])
        == "manylinux_2_28_x86_64"
    )
    assert least_demanding([]) == "any"
