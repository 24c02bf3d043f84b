"""Shared fixtures: run bundle programs as real subprocesses, the way packers and peers do."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Airflow writes a default airflow.cfg into AIRFLOW_HOME when imported: give the whole session one
# private, throw-away home (set before any test module imports Airflow; subprocesses inherit it).
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="pybundle-tests-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
atexit.register(shutil.rmtree, _AIRFLOW_HOME, True)
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


GOHOST_DIR = ROOT / "tests" / "gohost"


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(GOHOST_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum", ".sh", ".proto"):
            digest.update(str(path.relative_to(GOHOST_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def go_tools() -> dict[str, Path]:
    """``gohost`` plus reference plugins, built (or reused from the cache) once per session."""
    if shutil.which("go") is None:
        pytest.fail("go is not on PATH: the Go host cannot be built (these tests must not be skipped)")
    out = Path(tempfile.gettempdir()) / f"pybundle-gohost-{_sources_digest()}"
    tools = {
        "gohost": out / "gohost",
        "yamlprobe": out / "yamlprobe",
        "ref_versioned": out / "ref-example_dags-1.0.0",
        "ref_unversioned": out / "ref-unversioned",
    }
    if not all(p.is_file() for p in tools.values()):
        build = subprocess.run(
            ["bash", str(GOHOST_DIR / "build.sh"), str(out)], capture_output=True, text=True, timeout=600
        )
        if build.returncode != 0:
            pytest.fail(f"tests/gohost/build.sh failed ({build.returncode}):\n{build.stdout}\n{build.stderr}")
        for name, version in (("ref_versioned", "1.0.0"), ("ref_unversioned", "")):
            bundle_name = "example_dags" if version else "unversioned"
            flags = f"-X main.bundleName={bundle_name} -X main.bundleVersion={version}"
            ref = subprocess.run(
                ["go", "build", "-trimpath", "-ldflags", flags, "-o", str(tools[name]), "./refplugin"],
                cwd=GOHOST_DIR,
                env={**os.environ, "GOFLAGS": "-mod=mod"},
                capture_output=True,
                text=True,
                timeout=600,
            )
            if ref.returncode != 0:
                pytest.fail(f"building gorefplugin failed:\n{ref.stderr}")
    return tools
