"""One CeleryExecutor and one Edge-executor deployment, each for its own test module.

Each is started by the first test of its module and stopped when the module ends (a fixture per
module, so the two never run side by side with each other); teardown fails the module if any
process of the deployment survives, as in tests/e2e.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.deployment import Deployment
from tests.scaleout.deployment import CeleryDeployment, EdgeDeployment

_failures: list[str] = []  # tests of this package that failed: their deployment's dir is kept


def _deployment(kind: type[Deployment], prefix: str) -> Iterator[Deployment]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    deployment = kind.start(root)
    ok = False
    try:
        yield deployment
        ok = not _failures
    finally:
        tails = deployment.log_tails()
        leftovers = deployment.stop()
        if leftovers:
            raise AssertionError(
                f"processes of {prefix} still running after teardown:\n" + "\n".join(leftovers)
            )
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\ndeployment kept in {root}\n{tails}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if outcome.get_result().failed:
        _failures.append(item.nodeid)


@pytest.fixture(scope="module")
def celery_deployment() -> Iterator[CeleryDeployment]:
    yield from _deployment(CeleryDeployment, "pybundle-celery-")  # type: ignore[misc]


@pytest.fixture(scope="module")
def edge_deployment() -> Iterator[EdgeDeployment]:
    yield from _deployment(EdgeDeployment, "pybundle-edge-")  # type: ignore[misc]
