"""Two versions of one bundle in executables_root, and the upgrade that avoids it (docs/deploy.md).

What 1.3.2's ExecutableCoordinator does (``airflow/sdk/coordinators/executable/coordinator.py``,
``_Bundle.find``): at every task start it walks executables_root in directory-listing order
(``Path.iterdir``, unsorted, depth first) and runs the *first* executable file whose manifest lists
the dag id. It never compares versions, names or mtimes, and two candidates are neither an error nor
a warning. So the winner is whatever the filesystem lists first; the only safe upgrade is one file
per bundle, replaced by an atomic rename.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.deployment import Deployment

BUNDLES = Path(__file__).parent / "bundles"
DAG_ID = "versioned_dag"
RUN_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def versions(airflow_deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """versioned.py packed as 1.0.0 and 2.0.0 (the source differs only in VERSION)."""
    source = (BUNDLES / "versioned.py").read_text()
    assert 'VERSION = "1.0.0"' in source
    out = tmp_path_factory.mktemp("versioned")
    packed = {}
    for version in ("1.0.0", "2.0.0"):
        target = out / f"versioned_{version.replace('.', '_')}.py"
        target.write_text(source.replace('VERSION = "1.0.0"', f'VERSION = "{version}"'))
        packed[version] = airflow_deployment.pack(target, f"versioned-{version}")
    return packed


def _version_that_ran(deployment: Deployment) -> str:
    run_id = deployment.trigger_run(DAG_ID)
    state = deployment.wait_run(DAG_ID, run_id, RUN_TIMEOUT)
    assert state == "success", deployment.task_instances(DAG_ID, run_id)
    return deployment.xcom(DAG_ID, run_id, "report")["bundle_version"]


def test_upgrade_by_atomic_replace_runs_the_new_version(
    airflow_deployment: Deployment, versions: dict[str, Path]
) -> None:
    airflow_deployment.install_executable(versions["1.0.0"], "versioned")
    # One DAG file for every version: the DAG's shape does not change.
    airflow_deployment.add_dag(airflow_deployment.generate_dag_file(versions["1.0.0"], "versioned"), [DAG_ID])
    assert _version_that_ran(airflow_deployment) == "1.0.0"

    # deploy.md "Upgrading a bundle": same file name, renamed over the old one; no restart.
    airflow_deployment.install_executable(versions["2.0.0"], "versioned")
    assert _version_that_ran(airflow_deployment) == "2.0.0"


def test_two_files_listing_the_dag_id_first_in_directory_order_wins(
    airflow_deployment: Deployment, versions: dict[str, Path]
) -> None:
    root = airflow_deployment.executables_root
    airflow_deployment.install_executable(versions["2.0.0"], "versioned")
    old = airflow_deployment.install_executable(versions["1.0.0"], "versioned-1.0.0")
    try:
        listing = [p.name for p in root.iterdir() if p.name in ("versioned", "versioned-1.0.0")]
        expected = "2.0.0" if listing[0] == "versioned" else "1.0.0"
        # Several runs: the choice is stable while the directory does not change.
        ran = [_version_that_ran(airflow_deployment) for _ in range(2)]
        print(f"executables_root lists {listing}: {ran[0]} ran")  # shown with pytest -s
        assert ran == [expected, expected], f"listing order {listing}"
    finally:
        old.unlink()
    assert _version_that_ran(airflow_deployment) == "2.0.0"
