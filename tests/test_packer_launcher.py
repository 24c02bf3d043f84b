"""The packed executable at run time: launcher, extraction cache, concurrency, safety, interpreters.

Every test executes the packed file directly (``#!/bin/sh`` → ``exec python3 -c <loader>`` → launcher),
the way ``ExecutableCoordinator`` starts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from packer.trailer import parse_bundle
from tests.fixtures.packer.support import EXAMPLE, PROBE, bundle_pack, clean_env, dev_dump, run

DUMPS = [
    ("--bundle-metadata",),
    ("--dump-bundle-spec",),
    ("--airflow-metadata",),
    ("--airflow-metadata", "--format", "json"),
]


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("launcher")
    paths = {}
    for fmt, name in (("executable", "example_dags"), ("zip", "example_dags.zip")):
        result = bundle_pack(str(EXAMPLE), "--format", fmt, "--output", str(directory / name))
        assert result.returncode == 0, result.stderr
        paths[fmt] = directory / name
    launcher = directory / "from_zip"
    launcher.write_bytes(zipfile.ZipFile(paths["zip"]).read("example_dags"))
    launcher.chmod(0o755)
    paths["zip-executable"] = launcher
    return paths


def region_key(path: Path) -> str:
    data = path.read_bytes()
    try:
        region = parse_bundle(data).binary
    except Exception:
        region = data
    return hashlib.sha256(region).hexdigest()


def run_bundle(
    path: Path, *args: str, cache: Path | None = None, cwd: Path | None = None, **env: str
) -> object:
    extra = {"PYBUNDLE_CACHE_DIR": str(cache)} if cache is not None else {}
    return run([str(path), *args], env=clean_env(**extra, **env), cwd=cwd)


# -- behaviour ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", DUMPS, ids=" ".join)
def test_dumps_are_byte_identical_to_the_development_runtime(packed, tmp_path, flags):
    expected = dev_dump(EXAMPLE, *flags)
    for kind in ("executable", "zip-executable"):
        result = run_bundle(packed[kind], *flags, cache=tmp_path / "cache")
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, kind


def test_cold_then_warm_start_and_cache_layout(packed, tmp_path):
    cache = tmp_path / "cache"
    started = time.monotonic()
    cold = run_bundle(packed["executable"], "--bundle-metadata", cache=cache)
    cold_seconds = time.monotonic() - started
    assert cold.returncode == 0, cold.stderr
    key = region_key(packed["executable"])
    assert sorted(p.name for p in cache.iterdir()) == [key]  # one entry, no leftovers
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    entry = cache / key
    stamp = json.loads((entry / ".pybundle-entry.json").read_text())
    assert stamp["sha256"] == key
    assert stamp["config"] == {"attr": "bundle", "kind": "file", "path": "app/example_dags.py"}
    assert (entry / "lib" / "msgpack" / "fallback.py").is_file() and (
        entry / "app" / "example_dags.py"
    ).is_file()
    inode = (entry / ".pybundle-entry.json").stat().st_ino

    started = time.monotonic()
    warm = run_bundle(packed["executable"], "--bundle-metadata", cache=cache)
    warm_seconds = time.monotonic() - started
    assert warm.returncode == 0 and warm.stdout == cold.stdout
    assert (entry / ".pybundle-entry.json").stat().st_ino == inode  # not extracted again
    assert cold_seconds < 5 and warm_seconds < 5, (cold_seconds, warm_seconds)  # the coordinator allows 10 s


def test_zip_executable_and_executable_bundle_share_one_cache_entry(packed, tmp_path):
    cache = tmp_path / "cache"
    for kind in ("executable", "zip-executable"):
        assert run_bundle(packed[kind], "--bundle-metadata", cache=cache).returncode == 0
    assert [p.name for p in cache.iterdir()] == [region_key(packed["executable"])]


def test_concurrent_first_runs(packed, tmp_path):
    cache = tmp_path / "cache"
    env = clean_env(PYBUNDLE_CACHE_DIR=str(cache))
    processes = [
        subprocess.Popen(
            [str(packed["executable"]), "--dump-bundle-spec"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(12)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 12, [err for _, err in outputs]
    assert len({out for out, _ in outputs}) == 1
    assert sorted(p.name for p in cache.iterdir()) == [region_key(packed["executable"])]


@pytest.mark.parametrize(
    "damage", ["delete a runtime file", "truncate a runtime file", "delete the stamp", "empty entry"]
)
def test_a_damaged_cache_entry_is_replaced(packed, tmp_path, damage):
    cache = tmp_path / "cache"
    assert run_bundle(packed["executable"], "--bundle-metadata", cache=cache).returncode == 0
    entry = cache / region_key(packed["executable"])
    serve = entry / "lib" / "bundle" / "serve.py"
    original = serve.read_bytes()
    if damage == "delete a runtime file":
        serve.unlink()
    elif damage == "truncate a runtime file":
        serve.write_bytes(original[:10])
    elif damage == "delete the stamp":
        (entry / ".pybundle-entry.json").unlink()
    else:
        shutil.rmtree(entry)
        entry.mkdir()
    result = run_bundle(packed["executable"], "--dump-bundle-spec", cache=cache)
    assert result.returncode == 0, result.stderr
    assert serve.read_bytes() == original
    assert sorted(p.name for p in cache.iterdir()) == [entry.name]


def test_first_starts_prune_leftovers_and_unused_entries_warm_starts_mark_use(packed, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    month_ago, two_days_ago = time.time() - 31 * 86400, time.time() - 2 * 86400

    def entry(name: str, age: float) -> Path:
        path = cache / name
        (path / "lib").mkdir(parents=True)
        (path / ".pybundle-entry.json").write_text("{}")
        os.utime(path / ".pybundle-entry.json", (age, age))
        return path

    unused, recent = entry("a" * 64, month_ago), entry("b" * 64, two_days_ago)
    crashed, fresh_tmp = cache / ".tmp-0123-crashed", cache / ".tmp-4567-running"
    crashed.mkdir()
    fresh_tmp.mkdir()
    os.utime(crashed, (two_days_ago, two_days_ago))
    assert run_bundle(packed["executable"], "--bundle-metadata", cache=cache).returncode == 0  # a first start
    key = region_key(packed["executable"])
    assert sorted(p.name for p in cache.iterdir()) == sorted([fresh_tmp.name, recent.name, key])
    stamp = cache / key / ".pybundle-entry.json"
    os.utime(stamp, (two_days_ago, two_days_ago))
    assert run_bundle(packed["executable"], "--bundle-metadata", cache=cache).returncode == 0  # a warm start
    assert time.time() - stamp.stat().st_mtime < 600
    assert unused.exists() is False and crashed.exists() is False


def test_cache_writable_by_others_is_refused(packed, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    result = run_bundle(packed["executable"], "--bundle-metadata", cache=cache)
    assert (result.returncode, result.stdout) == (1, b"")
    assert (
        f"error: refusing cache directory {cache}: it is writable by group or others (mode 0777)"
        in result.stderr
    )
    cache.chmod(0o700)
    assert run_bundle(packed["executable"], "--bundle-metadata", cache=cache).returncode == 0
    (cache / region_key(packed["executable"])).chmod(0o775)  # an entry others could write into
    result = run_bundle(packed["executable"], "--bundle-metadata", cache=cache)
    assert result.returncode == 1 and "it is writable by group or others (mode 0775)" in result.stderr


def test_cache_owned_by_another_user_is_refused(packed, tmp_path):
    if os.geteuid() == 0:
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o700)
        os.chown(cache, 65534, 65534)
        owner = 65534
    else:  # a directory root owns stands in for another user's
        cache, owner = Path("/"), 0
    result = run_bundle(packed["executable"], "--bundle-metadata", cache=cache)
    assert (result.returncode, result.stdout) == (1, b"")
    assert (
        f"refusing cache directory {cache}: it is owned by uid {owner}, not by the current user"
        in result.stderr
    )


def test_an_unsafe_default_location_is_skipped_never_used(packed, tmp_path):
    """A ``$HOME`` cache that is shared or foreign (e.g. impersonation keeping HOME) falls back to $TMPDIR."""
    key = region_key(packed["executable"])
    home, temp = tmp_path / "home", tmp_path / "tmp"
    shared = home / ".cache" / "pybundle"
    shared.mkdir(parents=True)
    temp.mkdir()
    shared.chmod(0o777)
    if os.geteuid() == 0:
        os.chown(shared, 65534, 65534)
    env = {k: v for k, v in clean_env().items() if k not in ("TMPDIR", "TEMP", "TMP")}
    result = run(
        [str(packed["executable"]), "--bundle-metadata"], env={**env, "HOME": str(home), "TMPDIR": str(temp)}
    )
    assert result.returncode == 0, result.stderr
    assert list(shared.iterdir()) == []
    assert (temp / f"pybundle-{os.geteuid()}" / key).is_dir()


def test_default_cache_locations(packed, tmp_path):
    key = region_key(packed["executable"])
    env = {k: v for k, v in clean_env().items() if k not in ("TMPDIR", "TEMP", "TMP")}
    xdg = tmp_path / "xdg"
    result = run([str(packed["executable"]), "--bundle-metadata"], env={**env, "XDG_CACHE_HOME": str(xdg)})
    assert result.returncode == 0, result.stderr
    assert (xdg / "pybundle" / key).is_dir()
    home = tmp_path / "home"
    result = run([str(packed["executable"]), "--bundle-metadata"], env={**env, "HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert (home / ".cache" / "pybundle" / key).is_dir()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = run(
        [str(packed["executable"]), "--bundle-metadata"],
        env={**env, "HOME": str(not_a_dir), "TMPDIR": str(temp)},
    )
    assert result.returncode == 0, result.stderr
    assert (temp / f"pybundle-{os.geteuid()}" / key).is_dir()


def test_the_process_that_serves_is_the_process_that_was_started(tmp_path):
    """``exec`` all the way: the supervisor's psutil ownership check needs the launched PID to dial."""
    target = tmp_path / "pid_bundle.py"
    target.write_text(
        "import os\nfrom bundle import Bundle\n"
        "if os.environ.get('PID_FILE'):\n    open(os.environ['PID_FILE'], 'w').write(str(os.getpid()))\n"
        "bundle = Bundle('pid')\ndag = bundle.dag('d')\n\n@dag.task\ndef t() -> None:\n    pass\n"
    )
    assert (
        bundle_pack(str(target), "--format", "executable", "--output", str(tmp_path / "pid")).returncode == 0
    )
    env = clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"), PID_FILE=str(tmp_path / "pid.txt"))
    process = subprocess.Popen([str(tmp_path / "pid"), "--bundle-metadata"], stdout=subprocess.PIPE, env=env)
    process.communicate(timeout=60)
    assert process.returncode == 0
    assert int((tmp_path / "pid.txt").read_text()) == process.pid


def test_large_source_region_and_zip_signatures_in_appended_data(tmp_path):
    """Far beyond a zipapp's 65,535-byte limit, with an end-of-central-directory signature in the source."""
    source = tmp_path / "big_dag.py"
    filler = "".join(f"# line {i:07d} {'x' * 60}\n" for i in range(30_000))  # ~2 MiB
    source.write_text("# PK\x05\x06 looks like a ZIP end record\n" + filler)
    output = tmp_path / "big"
    assert (
        bundle_pack(
            str(EXAMPLE), "--format", "executable", "--source", str(source), "--output", str(output)
        ).returncode
        == 0
    )
    assert len(parse_bundle(output.read_bytes()).source) > 2_000_000
    result = run_bundle(output, "--dump-bundle-spec", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert result.json()["dags"]["simple_dag"]["tasks"][0] == "extract"
    verified = bundle_pack("verify", str(output))
    assert verified.returncode == 0, verified.stderr


def test_prints_of_the_bundle_go_to_stderr(tmp_path):
    output = tmp_path / "probe"
    assert bundle_pack(str(PROBE), "--format", "executable", "--output", str(output)).returncode == 0
    result = run_bundle(output, "--bundle-metadata", cache=tmp_path / "cache")
    assert result.returncode == 0
    assert result.json() == {"name": "probe", "version": "2.0.0"}
    assert "probe_bundle: a print at import time" in result.stderr
    assert "probe_bundle: a raw write to fd 1 at import time" in result.stderr


def test_files_in_the_working_directory_cannot_shadow_the_runtime(packed, tmp_path):
    for name in ("json.py", "zipfile.py", "hashlib.py", "msgpack.py", "struct.py"):
        (tmp_path / name).write_text("raise SystemExit('shadowed!')\n")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "__init__.py").write_text("raise SystemExit('shadowed bundle!')\n")
    result = run_bundle(packed["executable"], "--dump-bundle-spec", cache=tmp_path / "cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "shadowed" not in result.stderr


def test_usage_and_errors_come_from_the_runtime(packed, tmp_path):
    result = run_bundle(packed["executable"], "--bogus", cache=tmp_path / "cache")
    assert result.returncode == 2 and "unknown flag: --bogus" in result.stderr and result.stdout == b""
    result = run_bundle(packed["executable"], "--help", cache=tmp_path / "cache")
    assert result.returncode == 0 and "usage: example_dags" in result.stderr
    result = run_bundle(packed["executable"], "--comm=127.0.0.1:1", cache=tmp_path / "cache")
    assert result.returncode == 2 and "--comm and --logs must be supplied together" in result.stderr


@pytest.mark.parametrize("shell", ["sh", "bash", "dash"])
def test_started_through_a_shell_explicitly(packed, tmp_path, shell):
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed on this machine")
    result = run(
        [path, str(packed["executable"]), "--bundle-metadata"],
        env=clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "c")),
    )
    assert result.returncode == 0, result.stderr
    assert result.json()["name"] == "example_dags"


def find_python(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    candidates = [found] if found else []
    candidates += sorted(
        str(p) for p in Path("/root/.pyenv/versions").glob(f"{version}.*/bin/python{version}")
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True
            )
            if probe.returncode == 0:
                return candidate
    return None


def test_runs_on_the_oldest_supported_python(tmp_path):
    python = find_python("3.10")
    if python is None:
        pytest.skip("no Python 3.10 interpreter on this machine")
    output = tmp_path / "b310"
    assert (
        bundle_pack(
            str(EXAMPLE), "--format", "executable", "--output", str(output), "--python", python
        ).returncode
        == 0
    )
    for flags in DUMPS:
        result = run_bundle(output, *flags, cache=tmp_path / "cache")
        assert result.returncode == 0, result.stderr
        assert result.stdout == dev_dump(EXAMPLE, *flags)


def test_too_old_python_is_named(tmp_path):
    python = find_python("3.9")
    if python is None:
        pytest.skip("no Python 3.9 interpreter on this machine")
    output = tmp_path / "b39"
    assert (
        bundle_pack(
            str(EXAMPLE), "--format", "executable", "--output", str(output), "--python", python
        ).returncode
        == 0
    )
    result = run_bundle(output, "--bundle-metadata", cache=tmp_path / "cache")
    assert (result.returncode, result.stdout) == (1, b"")
    assert f"error: this bundle needs Python >= 3.10, but {python} is 3.9." in result.stderr


def test_missing_interpreter(tmp_path):
    output = tmp_path / "b"
    assert (
        bundle_pack(
            str(EXAMPLE),
            "--format",
            "executable",
            "--output",
            str(output),
            "--python",
            "/nonexistent/python3",
        ).returncode
        == 0
    )
    result = run_bundle(output, "--bundle-metadata", cache=tmp_path / "cache")
    assert result.returncode == 127 and "/nonexistent/python3" in result.stderr


def test_interpreter_sees_the_launcher_python_executable(packed, tmp_path):
    """``--python`` default is ``/usr/bin/env python3``: the first python3 on PATH runs the bundle."""
    venv_bin = Path(sys.executable).parent
    result = run(
        [str(packed["executable"]), "--bundle-metadata"],
        env=clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "c"), PATH=f"{venv_bin}:/usr/bin:/bin"),
    )
    assert result.returncode == 0, result.stderr
