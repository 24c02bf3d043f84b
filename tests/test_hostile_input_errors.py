"""Hostile inputs that used to end in ``error: internal error: ...`` get one proper ``error:`` line
and a defined exit status: a bundle name or version that is not valid Unicode text (a lone
surrogate), and a packed bundle whose runtime archive has an entry like ``lib/..`` when
``bundle-pack dag-file`` unpacks it. Nothing is left behind outside where the output was asked."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bundle import Bundle
from bundle.core.errors import RegistrationError
from tests.fixtures.packer.support import EXAMPLE, bundle_pack, clean_env
from tests.test_hardening_packer import hostile_executable, runtime_zip

SURROGATE_BUNDLE = """
from bundle import Bundle
bundle = Bundle({name!r}, {version!r})
dag = bundle.dag("d", schedule=None)

@dag.task
def t() -> None:
    pass
"""


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "version", "field"), [("a\udc80", None, "bundle name"), ("b", "1.\ud800", "version")]
)
def test_a_bundle_name_or_version_that_is_not_unicode_text_is_refused_naming_the_field(name, version, field):
    with pytest.raises(RegistrationError, match=f"{field} .*lone surrogate"):
        Bundle(name, version)


@pytest.mark.parametrize("command", ["dag-file", "pack"])
def test_bundle_pack_refuses_a_surrogate_name_in_one_line(tmp_path, command):
    source = tmp_path / "sur.py"
    source.write_text(
        SURROGATE_BUNDLE.format(name="a\udc80", version=None), encoding="utf-8", errors="surrogatepass"
    )
    args = (
        ["dag-file", str(source), "--output", str(tmp_path / "out.py")]
        if command == "dag-file"
        else [
            str(source),
            "--output",
            str(tmp_path / "out.pyz"),
        ]
    )
    result = bundle_pack(*args, cwd=tmp_path, env=clean_env())
    assert result.returncode == (2 if command == "dag-file" else 1), (
        result.stderr
    )  # dag-file: 1 is "out of step"
    line = one_error_line(result.stderr)
    assert "bundle name 'a\\udc80': contains a lone surrogate (U+DC80" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sur.py"]


@pytest.fixture(scope="module")
def good_executable(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile-dagfile") / "good"
    result = bundle_pack(
        str(EXAMPLE), "--format", "executable", "--output", str(out), "--python", sys.executable
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("lib/..", "unsafe entry name 'lib/..'"),
        ("..", "unsafe entry name '..'"),
        ("lib/.", "unsafe entry name 'lib/.'"),
        ("lib//x.py", "unsafe entry name 'lib//x.py'"),
        ("lib\\..\\..\\x.py", "unsafe entry name 'lib\\\\..\\\\..\\\\x.py'"),
        ("/abs/x.py", "unsafe entry name '/abs/x.py'"),
        ("a/" * 2100 + "x.py", "cannot unpack entry 'a/a/a/"),
    ],
)
def test_dag_file_on_a_packed_bundle_with_a_hostile_entry_is_one_error(
    good_executable, tmp_path, entry, message
):
    info = zipfile.ZipInfo(entry)
    bundle = hostile_executable(good_executable, runtime_zip([(info, b"x")]), tmp_path / "hostile")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = bundle_pack(
        "dag-file",
        str(bundle),
        "--output",
        str(tmp_path / "out.py"),
        cwd=tmp_path,
        env=clean_env(TMPDIR=str(scratch)),
    )
    assert result.returncode == 2, result.stderr  # dag-file: every error is 2
    assert message in one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile", "tmp"]
    assert list(scratch.iterdir()) == []  # the private extraction directory is gone too


def test_dag_file_on_a_packed_bundle_with_a_file_over_a_directory_is_one_error(good_executable, tmp_path):
    runtime = runtime_zip([("lib", b"1"), ("lib/x.py", b"2")])
    bundle = hostile_executable(good_executable, runtime, tmp_path / "hostile")
    result = bundle_pack(
        "dag-file", str(bundle), "--output", str(tmp_path / "out.py"), cwd=tmp_path, env=clean_env()
    )
    assert result.returncode == 2, result.stderr
    assert "cannot unpack entry 'lib/x.py' of the runtime archive" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (r'{"a": "\udc80"}', "holds a lone surrogate (U+DC80)"),  # the JSON escape
        ('{"a": "x\udc80"}', "holds a lone surrogate (U+DC80)"),  # a byte 0x80 in argv
        ("[" * 100_000, "not JSON: nested too deeply"),
    ],
)
def test_bundle_run_refuses_a_conf_it_cannot_hand_to_airflow(tmp_path, conf, message):
    # It used to start the run and fail every task (the supervisor cannot read the run's conf).
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("bundle-run")), str(EXAMPLE), "--conf", conf],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in one_error_line(proc.stderr)


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (
            ["--vars", "v.json"],
            {"v.json": r'{"k": "\udc80"}'},
            "variables file v.json, variable 'k': holds a lone",
        ),
        (
            ["--conns", "c.json"],
            {"c.json": r'{"db": {"conn_type": "postgres", "password": "x\udc80"}}'},
            "connections file c.json, connection 'db': holds a lone surrogate (U+DC80)",
        ),
        (["--json-report", "a_directory"], {}, "--json-report a_directory is a directory"),
        (
            ["--json-report", "missing/r.json"],
            {},
            "--json-report missing/r.json: directory missing does not exist",
        ),
    ],
)
def test_bundle_run_inputs_it_cannot_store_or_write_are_one_error_line(tmp_path, args, files, message):
    # Each used to end in a Python traceback (SQLite cannot store a lone surrogate; the JSON report
    # was written to a directory after the whole run).
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "a_directory").mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("bundle-run")), str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in one_error_line(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a_directory", *files])
