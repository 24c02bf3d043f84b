"""Shared fixtures: run bundle programs as real subprocesses, the way packers and peers do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bundle" / "example_dags.py"


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: str


def run_python(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> Completed:
    # Peers start bundles with a clean, buffered stdout; tests that need otherwise say so in ``env``.
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("AIRFLOW_BUNDLE_MAGIC_COOKIE", "PYTHONUNBUFFERED")
    }
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


@pytest.fixture
def write_bundle(tmp_path: Path):
    """Write a bundle module from source text and return its path."""

    def write(source: str, name: str = "my_bundle.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


GO_TOOLS_DIR = ROOT / "tests" / "gohost" / "bin"


@pytest.fixture(scope="session")
def go_tools() -> Path:
    """Build the Go peers (go-plugin host, yaml.v3 probe) once; a missing Go toolchain fails, never skips."""
    proc = subprocess.run(
        ["bash", str(ROOT / "tests" / "gohost" / "build.sh"), str(GO_TOOLS_DIR)],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"building the Go test peers failed:\n{proc.stderr[-4000:]}"
    return GO_TOOLS_DIR
