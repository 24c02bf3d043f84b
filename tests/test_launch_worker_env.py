"""A packed bundle started from a worker's environment does not inherit what slows a task start.

Issue 18 / airflow-semantics §9 measured a task start slowed by the worker's Python environment:
``PYTHONDONTWRITEBYTECODE`` reaching the extracted runtime (compiled from source at every start) and
``site`` work (a ``.pth`` importing a package at every interpreter start). The launcher's ``-I -S``
must make both irrelevant: this starts a packed executable twice with such an environment and
checks that bytecode was cached and that nothing of the worker's ``site`` ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent

BUNDLE = """
from bundle import Bundle, serve

bundle = Bundle("envcheck", version="1")
dag = bundle.dag("envcheck_dag", schedule=None)


@dag.task
def noop() -> None:
    pass


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
"""


def test_worker_environment_neither_disables_bytecode_nor_runs_site(tmp_path: Path) -> None:
    source = tmp_path / "envcheck.py"
    source.write_text(BUNDLE)
    executable = tmp_path / "envcheck"
    subprocess.run(
        [str(BIN / "bundle-pack"), str(source), "--format", "executable", "--output", str(executable)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # What a worker's environment may carry: no bytecode, and site hooks that run at every start.
    hooks = tmp_path / "site-hooks"
    hooks.mkdir()
    marker = tmp_path / "site-ran"
    (hooks / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (hooks / "slow.pth").write_text(f"import os; open({str(marker)!r}, 'w').close()\n")
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(hooks),
        "PYTHONSTARTUP": str(hooks / "sitecustomize.py"),
        "PYBUNDLE_CACHE_DIR": str(cache),
    }
    for _ in range(2):  # the first start extracts, the second is a warm start
        proc = subprocess.run(
            [str(executable), "--bundle-metadata"], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
    assert '"name":"envcheck"' in proc.stdout.replace(" ", "")
    compiled = [p.name for p in cache.rglob("*.pyc")]
    assert any(name.startswith("serve.") for name in compiled), compiled  # pybundle's own modules
    assert not marker.exists(), "the worker's sitecustomize/.pth/PYTHONSTARTUP ran in the bundle"
    # The same environment does reach a plain interpreter: the checks above are not vacuous.
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, timeout=60)
    assert marker.exists()
