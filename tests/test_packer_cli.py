"""``bundle-pack TARGET``: both formats end to end, byte determinism, options, warnings, every error path.

The packer runs as the installed console script (a real subprocess); the bundles it packs are real
pybundle bundles introspected by running them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from packer.manifest import ExecutableManifest, VendoredRecord, VendoredWheel
from packer.payload import MSGPACK_FILES, runtime_dir
from packer.trailer import parse_bundle
from tests.fixtures.packer.support import (
    EXAMPLE,
    EXAMPLE_TASKS,
    MULTIFILE,
    PROBE,
    REPO,
    bundle_pack,
    clean_env,
    dev_dump,
    run,
)


def sdk_version() -> str:
    return json.loads(dev_dump(EXAMPLE, "--dump-bundle-spec"))["sdk"]["version"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, Path]:
    """The example bundle packed in both formats with default options and default output names."""
    cwd = tmp_path_factory.mktemp("packed")
    outputs = {}
    for fmt, name in (("zip", "example_dags.zip"), ("executable", "example_dags")):
        result = bundle_pack(str(EXAMPLE), "--format", fmt, cwd=cwd)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # the example triggers no warning
        assert result.text == f"Wrote bundle {name} (sdk=python/{sdk_version()}, dags=1)\n"
        outputs[fmt] = cwd / name
    return outputs


def embedded_zip(region: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(region))


# The example's one dependency (examples/bundle/requirements.lock), vendored for this interpreter.
TABULATE_SHA256 = "024ca478df22e9340661486f85298cff5f6dcdba14f3813e8830015b9ed1948f"
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
# The same in both manifest formats: pybundle_vendored's values are always quoted.
VENDORED = textwrap.dedent(f"""\
        pybundle_vendored:
          implementation: "cp"
          python: "{PYTHON}"
          platform: "any"
          wheels:
            - name: "tabulate"
              version: "0.9.0"
              wheel: "tabulate-0.9.0-py3-none-any.whl"
              sha256: "{TABULATE_SHA256}"
              modules:
                - "tabulate"
        """)


# -- the two formats ----------------------------------------------------------------------------
def test_zip_bundle_layout_and_manifest(packed):
    path = packed["zip"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    archive = zipfile.ZipFile(path)
    assert archive.namelist() == ["airflow-metadata.yaml", "example_dags", "example_dags.py"]
    assert archive.read("example_dags.py") == EXAMPLE.read_bytes()
    assert (archive.getinfo("example_dags").external_attr >> 16) == stat.S_IFREG | 0o755
    assert (archive.getinfo("example_dags.py").external_attr >> 16) == stat.S_IFREG | 0o644
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert (
        archive.read("airflow-metadata.yaml").decode()
        == textwrap.dedent(f"""\
        format_version: "1.0"
        sdk:
          language: python
          version: "{sdk_version()}"
        source: example_dags.py
        executable: example_dags
        dags:
          simple_dag:
            tasks:
              - extract
              - transform.filter_rows
              - transform.summarise
              - check_order
              - route
              - load
              - report_empty
              - audit
              - notify
        """)
        + VENDORED
    )


def test_executable_bundle_layout_and_manifest(packed):
    path = packed["executable"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    bundle = parse_bundle(path.read_bytes())
    assert bundle.source == EXAMPLE.read_bytes()
    assert (
        bundle.metadata.decode()
        == textwrap.dedent(f"""\
        airflow_bundle_metadata_version: "1.0"
        sdk:
          language: "python"
          version: "{sdk_version()}"
          supervisor_schema_version: "2026-06-16"
        source: "example_dags.py"
        dags:
          simple_dag:
            tasks:
              - "extract"
              - "transform.filter_rows"
              - "transform.summarise"
              - "check_order"
              - "route"
              - "load"
              - "report_empty"
              - "audit"
              - "notify"
        """)
        + VENDORED
    )
    tabulate = VendoredWheel(
        "tabulate", "0.9.0", "tabulate-0.9.0-py3-none-any.whl", TABULATE_SHA256, ("tabulate",)
    )
    assert (
        bundle.metadata
        == ExecutableManifest(
            "1.0",
            "python",
            sdk_version(),
            "2026-06-16",
            "example_dags.py",
            {"simple_dag": EXAMPLE_TASKS},
            VendoredRecord(PYTHON, "any", (tabulate,)),
        ).render()
    )


def test_both_formats_carry_the_same_launcher(packed):
    region = parse_bundle(packed["executable"].read_bytes()).binary
    assert zipfile.ZipFile(packed["zip"]).read("example_dags") == region
    assert region.startswith(b"#!/bin/sh\n")


def test_embedded_runtime_contents(packed):
    archive = embedded_zip(parse_bundle(packed["executable"].read_bytes()).binary)
    names = archive.namelist()
    expected_runtime = {
        "lib/bundle/" + path.relative_to(runtime_dir()).as_posix()
        for path in runtime_dir().rglob("*.py")
        if "__pycache__" not in path.parts
        and not any(p.startswith(".") for p in path.relative_to(runtime_dir()).parts)
    }
    assert {name for name in names if name.startswith("lib/bundle/")} == expected_runtime
    assert "lib/bundle/coordinator/__init__.py" in names and "lib/bundle/serve.py" in names
    assert {f"lib/msgpack/{name}" for name in MSGPACK_FILES} <= set(names)
    assert not [name for name in names if name.endswith((".so", ".pyc", ".pyd")) or "__pycache__" in name]
    assert [name for name in names if name.startswith("app/")] == ["app/example_dags.py"]
    assert json.loads(archive.read("pybundle-launch.json")) == {
        "attr": "bundle",
        "kind": "file",
        "path": "app/example_dags.py",
    }


def test_packing_twice_gives_identical_bytes_independent_of_host_paths_and_mtimes(tmp_path):
    """Same inputs in different directories, packed from different working directories, after a touch."""
    artifacts: dict[str, list[bytes]] = {"zip": [], "executable": []}
    for index in range(2):
        home = tmp_path / f"checkout-{index}" / "deep" / "path"
        home.mkdir(parents=True)
        source = shutil.copy(EXAMPLE, home / "example_dags.py")
        os.utime(source, (1_000_000 * (index + 1), 1_000_000 * (index + 1)))
        for fmt in artifacts:
            output = tmp_path / f"out-{index}" / f"{fmt}.bin"
            result = bundle_pack(str(source), "--format", fmt, "--output", str(output), cwd=home.parent)
            assert result.returncode == 0, result.stderr
            artifacts[fmt].append(output.read_bytes())
    for fmt, (first, second) in artifacts.items():
        assert first == second, f"{fmt} bundle differs between packs"
        for host_specific in (str(tmp_path).encode(), str(REPO).encode(), str(runtime_dir()).encode()):
            assert host_specific not in first, f"{fmt} bundle embeds {host_specific!r}"


# -- options ------------------------------------------------------------------------------------
def test_output_directories_are_created_and_no_temp_file_is_left(tmp_path):
    output = tmp_path / "a" / "b" / "bundle.zip"
    for _ in range(2):  # the second pack replaces the first
        result = bundle_pack(str(EXAMPLE), "--output", str(output))
        assert result.returncode == 0, result.stderr
        assert result.text == f"Wrote bundle {output} (sdk=python/{sdk_version()}, dags=1)\n"
    assert sorted(p.name for p in output.parent.iterdir()) == ["bundle.zip"]


def test_source_and_name_options(tmp_path):
    dag_file = write(tmp_path / "dags" / "simple_dag_stub.py", "# the stub DAG Airflow shows\n")
    result = bundle_pack(str(EXAMPLE), "--source", str(dag_file), "--name", "etl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    archive = zipfile.ZipFile(tmp_path / "etl.zip")
    assert archive.namelist() == ["airflow-metadata.yaml", "etl", "simple_dag_stub.py"]
    assert archive.read("simple_dag_stub.py") == dag_file.read_bytes()
    manifest = archive.read("airflow-metadata.yaml").decode()
    assert "source: simple_dag_stub.py\nexecutable: etl\n" in manifest

    result = bundle_pack(
        str(EXAMPLE), "--format", "executable", "--source", str(dag_file), "--name", "etl", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    bundle = parse_bundle((tmp_path / "etl").read_bytes())
    assert bundle.source == dag_file.read_bytes()
    assert b'source: "simple_dag_stub.py"\n' in bundle.metadata
    # the code that runs is still the target's, embedded in the launcher
    assert embedded_zip(bundle.binary).read("app/example_dags.py") == EXAMPLE.read_bytes()


def test_python_option_sets_the_interpreter_line(tmp_path):
    output = tmp_path / "b"
    result = bundle_pack(
        str(EXAMPLE),
        "--format",
        "executable",
        "--output",
        str(output),
        "--python",
        "'/opt/my python/bin/python3' -X utf8",
    )
    assert result.returncode == 0, result.stderr
    lines = output.read_bytes().split(b"\n", 3)
    assert lines[0] == b"#!/bin/sh"
    # -I -S: isolated from the worker's site-packages, PYTHONPATH and current directory
    assert lines[2].startswith(b"exec '/opt/my python/bin/python3' -X utf8 -I -S -c '")
    assert lines[2].endswith(b'\' "$0" "$@"')


def test_module_target(tmp_path):
    root = tmp_path / "src"
    write(root / "mypkg" / "__init__.py", "")
    write(root / "mypkg" / "extra.py", "VALUE = 'lazy'\n")
    write(
        root / "mypkg" / "dags.py",
        """\
        from bundle import Bundle

        pipeline = Bundle("module_bundle", version="1")
        pipeline.dag("mod_empty")
        dag = pipeline.dag("mod_dag")

        @dag.task
        def only() -> None:
            pass
        """,
    )
    result = bundle_pack(
        "mypkg.dags:pipeline", "--format", "executable", "--output", str(tmp_path / "out"), cwd=root
    )
    assert result.returncode == 0, result.stderr
    bundle = parse_bundle((tmp_path / "out").read_bytes())
    archive = embedded_zip(bundle.binary)
    assert sorted(n for n in archive.namelist() if n.startswith("app/")) == [
        "app/mypkg/__init__.py",
        "app/mypkg/dags.py",
        "app/mypkg/extra.py",
    ]
    assert json.loads(archive.read("pybundle-launch.json")) == {
        "attr": "pipeline",
        "kind": "module",
        "module": "mypkg.dags",
    }
    assert b'source: "dags.py"' in bundle.metadata
    spec = run(
        [str(tmp_path / "out"), "--dump-bundle-spec"],
        env=clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "c")),
        cwd=Path("/"),
    )
    assert spec.returncode == 0, spec.stderr
    assert spec.json()["dags"] == {"mod_dag": {"tasks": ["only"]}, "mod_empty": {"tasks": []}}


def test_local_modules_and_packages_are_embedded(tmp_path):
    output = tmp_path / "multi"
    result = bundle_pack(str(MULTIFILE), "--format", "executable", "--output", str(output))
    assert result.returncode == 0, result.stderr
    archive = embedded_zip(parse_bundle(output.read_bytes()).binary)
    assert sorted(n for n in archive.namelist() if n.startswith("app/")) == [
        "app/dags_main.py",
        "app/helpers.py",
        "app/shared/__init__.py",
        "app/shared/lazy.py",
        "app/shared/util.py",
    ]
    # runs from the cache, far from the fixture directory
    spec = run(
        [str(output), "--bundle-metadata"],
        env=clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "c")),
        cwd=Path("/"),
    )
    assert spec.returncode == 0, spec.stderr
    assert spec.json() == {"name": "multi_file", "version": "3.1.4"}


def test_modules_from_outside_the_bundle_directory_are_reported(tmp_path):
    write(tmp_path / "elsewhere" / "extmod.py", "NAME = 'ext'\n")
    target = write(
        tmp_path / "proj" / "b.py",
        f"""\
        import sys
        sys.path.append({str(tmp_path / "elsewhere")!r})
        import extmod
        from bundle import Bundle

        bundle = Bundle(extmod.NAME)
        dag = bundle.dag("d")

        @dag.task
        def t() -> None:
            pass
        """,
    )
    result = bundle_pack(str(target), "--output", str(tmp_path / "out.zip"))
    assert result.returncode == 0, result.stderr
    assert (
        f"warning: module extmod is imported from {tmp_path / 'elsewhere' / 'extmod.py'}, outside the bundle's "
        in result.stderr
    )
    assert "it is not embedded, and the bundle runs isolated from the worker's PYTHONPATH" in result.stderr


def test_installed_packages_the_bundle_imports_must_be_declared(tmp_path):
    target = write(
        tmp_path / "uses_yaml.py",
        """\
        import yaml
        from bundle import Bundle

        bundle = Bundle("uses_yaml", version=yaml.__version__)
        dag = bundle.dag("d")

        @dag.task
        def t() -> None:
            pass
        """,
    )
    result = bundle_pack(str(target), "--output", str(tmp_path / "out.zip"))
    assert (result.returncode, result.stderr) == (
        1,
        "error: the bundle imports the installed module yaml, but no dependencies are declared "
        "(--requirements FILE, a requirements.lock, or [project] dependencies in pyproject.toml); "
        "declare the distribution, or pass --allow-undeclared\n",
    )
    assert not (tmp_path / "out.zip").exists()
    result = bundle_pack(str(target), "--output", str(tmp_path / "out.zip"), "--allow-undeclared")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: the bundle imports yaml, which no declared dependency provides (--allow-undeclared): "
        "the bundle runs isolated from the worker's site-packages, so these imports fail there\n"
    )


def test_prints_at_import_do_not_reach_the_manifest(tmp_path):
    result = bundle_pack(str(PROBE), "--format", "executable", "--output", str(tmp_path / "probe"))
    assert result.returncode == 0, result.stderr
    assert result.text.startswith("Wrote bundle ")
    assert "probe_bundle: a print at import time" in result.stderr or result.stderr == ""
    bundle = parse_bundle((tmp_path / "probe").read_bytes())
    assert b"import time" not in bundle.metadata
    assert b'  probe_dag:\n    tasks:\n      - "probe"\n' in bundle.metadata


def test_warnings_for_empty_task_lists_and_suspicious_ids(tmp_path):
    target = write(
        tmp_path / "warn.py",
        """\
        from bundle import Bundle

        bundle = Bundle("warn")
        bundle.dag("empty_dag")
        dag = bundle.dag("a..dag")

        @dag.task(task_id="x..y")
        def t() -> None:
            pass
        """,
    )
    result = bundle_pack(str(target), "--output", str(tmp_path / "w.zip"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        'warning: dag id "a..dag" contains ".."; Airflow rejects it unless [core] allow_double_dot_in_ids is enabled',
        'warning: task id "x..y" in dag "a..dag" contains ".."; Airflow rejects it unless [core] '
        "allow_double_dot_in_ids is enabled",
        'warning: dag "empty_dag" has no tasks',
    ]
    assert "    tasks: []\n" in zipfile.ZipFile(tmp_path / "w.zip").read("airflow-metadata.yaml").decode()


# -- subcommands vs targets -----------------------------------------------------------------------
def test_a_subcommand_name_as_first_argument_is_the_subcommand(tmp_path):
    write(
        tmp_path / "verify.py",
        """\
        from bundle import Bundle

        bundle = Bundle("named_verify")
        dag = bundle.dag("d")

        @dag.task
        def t() -> None:
            pass
        """,
    )
    result = bundle_pack("verify", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        1,
        "error: Missing argument 'BUNDLE'. (see 'bundle-pack --help')\n",
    )
    result = bundle_pack("pack", "verify", cwd=tmp_path)  # the module target named verify
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "named_verify.zip").exists()
    (tmp_path / "named_verify.zip").unlink()
    result = bundle_pack("./verify.py", cwd=tmp_path)  # the file target
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "named_verify.zip").exists()


def test_help_and_version():
    result = bundle_pack("--help")
    assert result.returncode == 0
    assert "bundle-pack TARGET [OPTIONS]" in result.text and "bundle-pack pack verify" in result.text
    result = bundle_pack("pack", "--help")
    assert result.returncode == 0 and "--format [zip|executable]" in result.text
    result = bundle_pack("--version")
    assert result.returncode == 0 and result.text.startswith("bundle-pack (pybundle) ")


# -- errors -------------------------------------------------------------------------------------
NO_DAGS = """\
    from bundle import Bundle

    bundle = Bundle("nothing")
    """


def assert_error(result, message: str, *, exact: bool = False) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.text == ""
    if exact:
        assert result.stderr == f"error: {message}\n"
    else:
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


@pytest.mark.parametrize("fmt", ["zip", "executable"])
def test_no_dags_is_refused_and_nothing_is_written(tmp_path, fmt):
    target = write(tmp_path / "nothing.py", NO_DAGS)
    result = bundle_pack(str(target), "--format", fmt, cwd=tmp_path)
    assert_error(result, "bundle exposes no dags: nothing to pack", exact=True)
    assert {p.name for p in tmp_path.iterdir()} <= {"nothing.py", "__pycache__"}  # no bundle, no temp file


@pytest.mark.parametrize(
    ("source", "target_suffix", "message"),
    [
        (None, "missing.py", "no such file"),
        ("raise RuntimeError('boom at import')\n", "broken.py", "RuntimeError: boom at import"),
        (NO_DAGS, "nothing.py:other", "has no attribute 'other'"),
        ("x = 1\n", "notabundle.py:x", "is not a bundle"),
    ],
)
def test_target_failures(tmp_path, source, target_suffix, message):
    if source is not None:
        write(tmp_path / target_suffix.split(":")[0], source)
    result = bundle_pack(str(tmp_path / target_suffix), cwd=tmp_path)
    assert_error(result, message)
    assert "--bundle-metadata exited with status" in result.stderr


def test_missing_module_target(tmp_path):
    assert_error(bundle_pack("no_such_module_xyz", cwd=tmp_path), "no module named 'no_such_module_xyz'")


def test_output_is_a_directory(tmp_path):
    assert_error(
        bundle_pack(str(EXAMPLE), "--output", str(tmp_path)),
        f"output path {tmp_path} is a directory; pass --output with a file name",
        exact=True,
    )
    (tmp_path / "example_dags").mkdir()
    assert_error(
        bundle_pack(str(EXAMPLE), "--format", "executable", cwd=tmp_path),
        "output path example_dags is a directory; pass --output with a file name",
        exact=True,
    )


def test_output_aliasing_an_input_is_refused_and_the_input_is_untouched(tmp_path):
    target = Path(shutil.copy(EXAMPLE, tmp_path / "example_dags.py"))
    before = target.read_bytes()
    assert_error(
        bundle_pack(str(target), "--output", str(target)),
        f"output path {target} is the same file as the DAG source {target}; pass --output",
        exact=True,
    )
    (tmp_path / "link").symlink_to(target)
    assert_error(
        bundle_pack(str(target), "--output", str(tmp_path / "link")), "is the same file as the DAG source"
    )
    os.link(target, tmp_path / "hardlink")
    assert_error(
        bundle_pack(str(target), "--output", str(tmp_path / "hardlink")), "is the same file as the DAG source"
    )
    dag_file = write(tmp_path / "stub.py", "# stub\n")
    assert_error(
        bundle_pack(str(target), "--source", str(dag_file), "--output", str(dag_file)),
        "same file as the DAG source",
    )
    assert target.read_bytes() == before and dag_file.read_text() == "# stub\n"


def test_output_aliasing_an_embedded_module_is_refused(tmp_path):
    helpers = MULTIFILE.with_name("helpers.py")
    before = helpers.read_bytes()
    assert_error(
        bundle_pack(str(MULTIFILE), "--output", str(helpers)),
        f"is the same file as the bundle module {helpers}",
    )
    assert helpers.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "a/b"], "--name 'a/b' must be a plain file name"),
        (["--name", ".."], "--name '..' must be a plain file name"),
        (["--python", ""], "--python must name an interpreter"),
        (["--python", "python3\nrm -rf /"], "--python must be a single line"),
        (["--python", "'unclosed"], "is not a valid command line"),
        (["--format", "tar"], "Invalid value for '--format'"),
        (["--source", "/no/such/file.py"], "cannot read the DAG source /no/such/file.py"),
        (["--name", "airflow-metadata.yaml"], "would collide"),
        (["--name", "example_dags.py"], "would collide"),
        (["--bogus"], "No such option '--bogus'"),
    ],
)
def test_option_errors(tmp_path, args, message):
    assert_error(bundle_pack(str(EXAMPLE), *args, "--output", str(tmp_path / "o")), message)
    assert not (tmp_path / "o").exists()


def test_missing_target():
    assert_error(bundle_pack(), "Missing argument 'TARGET'. (see 'bundle-pack --help')", exact=True)
