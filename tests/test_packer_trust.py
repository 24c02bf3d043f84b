"""The packed launcher's cache and ``bundle-pack verify`` / ``dag-file`` when another user or the
bundle itself is not to be trusted.

* Every directory the launcher creates for its cache is 0700, whatever the umask, so another user
  cannot rename the cache away (checked as a second uid, ``nobody``, when the suite runs as root).
* A cache below a directory another user can change (group/other-writable without the sticky bit,
  or owned by a uid that is neither root nor ours) is refused in one line (explicit
  ``PYBUNDLE_CACHE_DIR``) or skipped (a default location); a sticky ``/tmp``-like parent is fine.
* ``verify`` and ``dag-file`` on a packed bundle run the bundle's code isolated: an environment
  without the caller's secrets, the interpreter with ``-I -S``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.packer.support import EXAMPLE, bundle_pack, clean_env
from tests.peers.second_user import NOBODY, as_user

SECRET = "s3cr3t-from-the-callers-environment"


@pytest.fixture(scope="module")
def executable(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trust") / "example_dags"
    result = bundle_pack(
        str(EXAMPLE), "--format", "executable", "--output", str(out), "--python", sys.executable
    )
    assert result.returncode == 0, result.stderr
    return out


def launch(path: Path, env: dict[str, str], umask: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(path), "--bundle-metadata"]
    if umask is not None:
        command = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *command]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def default_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if k not in ("TMPDIR", "TEMP", "TMP", "XDG_CACHE_HOME")}
    env.update(extra)
    return env


def one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert (result.returncode, result.stdout) == (1, ""), result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory under /tmp that every user can enter (``tmp_path`` is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pybundle-trust-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


# -- the cache -------------------------------------------------------------------------------------
def test_every_directory_the_launcher_creates_is_private_under_umask_000(executable, tmp_path):
    home = tmp_path / "home"
    result = launch(executable, default_env(HOME=str(home)), umask=0)
    assert result.returncode == 0, result.stderr
    for directory in (home, home / ".cache", home / ".cache" / "pybundle"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    xdg = tmp_path / "xdg" / "deeper"
    result = launch(executable, default_env(XDG_CACHE_HOME=str(xdg)), umask=0)
    assert result.returncode == 0, result.stderr
    for directory in (tmp_path / "xdg", xdg, xdg / "pybundle"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_another_user_cannot_move_the_cache_away_after_a_start_under_umask_000(executable, public_dir):
    home = public_dir / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    result = launch(executable, default_env(HOME=str(home)), umask=0)
    assert result.returncode == 0, result.stderr
    cache = home / ".cache" / "pybundle"
    assert cache.is_dir()
    moved = as_user(NOBODY, lambda: os.rename(cache, home / ".cache" / "stolen"))
    assert moved == errno.EACCES
    assert cache.is_dir() and not (home / ".cache" / "stolen").exists()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=lambda mode: f"{mode:04o}")
def test_a_cache_below_a_directory_others_can_write_is_refused(executable, tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    cache = shared / "cache"
    result = launch(executable, default_env(PYBUNDLE_CACHE_DIR=str(cache)))
    one_error(result, f"refusing cache directory {cache}: {shared} above it", f"(mode {mode:04o})")
    assert not cache.exists()  # refused before anything was created


def test_a_sticky_world_writable_parent_like_tmp_is_accepted(executable, tmp_path):
    shared = tmp_path / "sticky"
    shared.mkdir()
    shared.chmod(0o1777)
    cache = shared / "cache"
    result = launch(executable, default_env(PYBUNDLE_CACHE_DIR=str(cache)))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_a_parent_reached_through_a_symlink_is_checked_where_it_really_is(executable, tmp_path):
    """``link`` -> ``open/real``: the path as spelled never names ``open``, which others can write."""
    opened = tmp_path / "open"
    (opened / "real").mkdir(parents=True)
    opened.chmod(0o777)
    (tmp_path / "link").symlink_to(opened / "real")
    cache = tmp_path / "link" / "cache"
    one_error(launch(executable, default_env(PYBUNDLE_CACHE_DIR=str(cache))), f"{opened} above it")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
def test_a_cache_below_another_users_directory_is_refused(executable, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    cache = theirs / "cache"
    result = launch(executable, default_env(PYBUNDLE_CACHE_DIR=str(cache)))
    one_error(result, f"{theirs} above it is owned by uid {NOBODY}")
    assert not cache.exists()


def test_an_unsafe_default_parent_is_skipped_for_the_next_location(executable, tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    xdg.chmod(0o777)
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = launch(executable, default_env(XDG_CACHE_HOME=str(xdg / "inner"), TMPDIR=str(temp)))
    assert result.returncode == 0, result.stderr
    assert list(xdg.iterdir()) == []
    assert (temp / f"pybundle-{os.geteuid()}").is_dir()


# -- verify and dag-file run the bundle's code isolated ----------------------------------------------
SNOOP = """
import os, sys
from bundle import Bundle

SEEN = {{key: value for key, value in os.environ.items() if key in {keys!r}}}
FLAGS = [sys.flags.isolated, sys.flags.no_site]
with open({report!r}, "a") as report:
    report.write(repr((SEEN, FLAGS)) + "\\n")
bundle = Bundle("snoop", version="1")
dag = bundle.dag("d")


@dag.task
def t() -> None:
    pass
"""

SECRETS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": SECRET,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "MY_API_TOKEN": SECRET,
    "AIRFLOW_CONN_ORDERS": f"postgres://u:{SECRET}@db/x",
}


@pytest.fixture(params=["executable", "zip"])
def snoop(tmp_path, request) -> tuple[Path, Path]:
    """A packed bundle (either format) whose import records the environment and interpreter flags
    it sees."""
    report = tmp_path / "report.txt"
    source = tmp_path / "snoop_bundle.py"
    source.write_text(SNOOP.format(keys=[*SECRETS, "PATH", "HOME", "LANG"], report=str(report)))
    out = tmp_path / ("snoop.zip" if request.param == "zip" else "snoop")
    result = bundle_pack(
        str(source), "--format", request.param, "--output", str(out), "--python", sys.executable
    )
    assert result.returncode == 0, result.stderr
    report.unlink()
    return out, report


def seen(report: Path) -> list[tuple[dict[str, str], list[int]]]:
    import ast

    return [ast.literal_eval(line) for line in report.read_text().splitlines()]


def test_verify_runs_the_bundle_without_the_callers_secrets(snoop):
    path, report = snoop
    env = clean_env(**SECRETS, LANG="C.UTF-8")
    result = subprocess.run(
        [sys.executable, "-m", "packer", "verify", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    runs = seen(report)
    assert len(runs) >= 3  # each of verify's dynamic checks imported the bundle
    for environment, flags in runs:
        assert not set(environment) & set(SECRETS), environment
        assert SECRET not in json.dumps(environment)
        assert flags == [1, 1]  # -I -S
        assert environment.get("LANG") == "C.UTF-8" and "PATH" in environment


def test_dag_file_on_a_packed_bundle_runs_it_without_the_callers_secrets(snoop, tmp_path):
    path, report = snoop
    env = clean_env(**SECRETS)
    out = tmp_path / "snoop_dag.py"
    result = subprocess.run(
        [sys.executable, "-m", "packer", "dag-file", str(path), "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    runs = seen(report)
    assert len(runs) == 1
    environment, flags = runs[0]
    assert not set(environment) & set(SECRETS), environment
    assert flags == [1, 1]
