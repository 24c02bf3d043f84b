"""One real Airflow deployment per pytest session, shared by every e2e test (tests/e2e/README.md).

Starting the services costs 15-20 s, so they start once; each test adds the bundles it needs
(``airflow_deployment.add_bundle``) and triggers its own runs. Teardown stops exactly the processes
the deployment started and fails the session if any survives. Ctrl-C and SIGTERM reach the same
teardown (pytest finalizer; atexit as the backstop), and a failing e2e test gets the tails of the
services' logs in its report.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.deployment import ROOT, Deployment

_current: Deployment | None = None
_test_failed = False  # keep the deployment dir (logs, airflow.cfg, task logs) for a post-mortem


def _stop_current() -> list[str]:
    global _current
    deployment, _current = _current, None
    return deployment.stop() if deployment is not None else []


def _sigterm_to_exit(signum: int, frame: object) -> None:
    # The default SIGTERM action skips finalizers and atexit: turn it into an exception instead.
    raise SystemExit(128 + signum)


@pytest.fixture(scope="session")
def airflow_deployment() -> Iterator[Deployment]:
    """The running deployment with the example bundle (``simple_dag``) already added and unpaused."""
    global _current
    root = Path(tempfile.mkdtemp(prefix="pybundle-e2e-"))
    atexit.register(_stop_current)
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if previous_sigterm is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_exit)
    try:
        _current = Deployment.start(root)
    except BaseException:
        signal.signal(signal.SIGTERM, previous_sigterm)
        raise
    failed = False
    try:
        _current.add_bundle(
            ROOT / "examples" / "bundle" / "example_dags.py",
            name="example_dags",
            dag_ids=["simple_dag"],
            dag_file=ROOT / "examples" / "bundle" / "dags" / "simple_dag.py",
        )
        yield _current
    except BaseException:
        failed = True
        raise
    finally:
        tails = _current.log_tails() if _current is not None else ""
        leftovers = _stop_current()
        signal.signal(signal.SIGTERM, previous_sigterm)
        if leftovers:
            raise AssertionError(
                "processes of the e2e deployment still running after teardown:\n" + "\n".join(leftovers)
            )
        if failed or _test_failed:
            print(f"\ne2e deployment kept in {root}\n{tails}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    global _test_failed
    report = outcome.get_result()
    if report.failed:
        _test_failed = True
    if report.failed and _current is not None:
        report.sections.append(("airflow services (log tails)", _current.log_tails()))
        report.sections.append(("airflow deployment dir", str(_current.root)))
