"""The executable bundle under the RELEASED ``ExecutableCoordinator`` (apache-airflow-task-sdk 1.3.2).

Full worker path, as production configures it: ``supervise_task`` routes the TI's queue through
``[sdk] queue_to_coordinator`` to an ``[sdk] coordinators`` entry with classpath
``airflow.sdk.coordinators.executable.ExecutableCoordinator``; the coordinator scans its
``executables_root`` for an ``AFBNDL01`` file whose manifest lists the dag id, execs it with
``--comm``/``--logs`` and supervises it against a fake Execution API (real ``Client``, real
``httpx.MockTransport``). The bundle's interpreter is a bare ``venv --without-pip`` Python found
through the default ``/usr/bin/env python3``, and the launcher cache starts empty, so each first task
also pays for extraction inside the coordinator's 10 s start timeout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.packer.support import (
    EXAMPLE,
    CoordinatorRun,
    bare_env,
    bundle_pack,
    run_with_executable_coordinator,
)
from tests.harness.execution_api import FakeExecutionAPI

RUN_ID = "manual__2026-01-01"


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Path:
    """An executables root with the packed bundle nested among things that are not bundles."""
    root = tmp_path_factory.mktemp("executables")
    nested = root / "team-a" / "etl"
    nested.mkdir(parents=True)
    result = bundle_pack(str(EXAMPLE), "--format", "executable", "--output", str(nested / "example_dags"))
    assert result.returncode == 0, result.stderr
    (root / "not-a-bundle.sh").write_text("#!/bin/sh\nexit 3\n")
    (root / "not-a-bundle.sh").chmod(0o755)
    shutil.copy(nested / "example_dags", root / "non-executable-copy")
    (root / "non-executable-copy").chmod(0o644)
    zipped = bundle_pack(str(EXAMPLE), "--output", str(root / "example_dags.zip"))
    assert zipped.returncode == 0, zipped.stderr
    return root


def new_api() -> FakeExecutionAPI:
    return FakeExecutionAPI(
        connections={
            "orders_db": {
                "conn_type": "postgres",
                "host": "db.example",
                "port": 5432,
                "login": "etl",
                "password": "hunter2",
            }
        },
        variables={"min_amount": "5", "warehouse_api_token": "tok-123"},
        max_tries=1,
    )


def run_task(roots: Path, tmp_path: Path, api: FakeExecutionAPI, task_id: str, **kwargs) -> CoordinatorRun:
    return run_with_executable_coordinator(
        [roots],
        dag_id=kwargs.pop("dag_id", "simple_dag"),
        task_id=task_id,
        api=api,
        workdir=tmp_path / f"{task_id}-{kwargs.get('try_number', 1)}",
        env=bare_env(tmp_path, PYBUNDLE_CACHE_DIR=str(tmp_path / "cache")),
        run_id=RUN_ID,
        **kwargs,
    )


def test_a_task_succeeds_and_its_state_is_reported(roots, tmp_path):
    api = new_api()
    task = run_task(roots, tmp_path, api, "extract")
    assert task.exception is None, task.describe()
    assert (task.exit_code, task.state) == (0, "success"), task.describe()
    assert [update["state"] for update in task.state_updates] == ["success"]
    rows = api.xcom("simple_dag", RUN_ID, "extract", "return_value")
    assert rows["source"] == "db.example" and len(rows["rows"]) == 4
    events = [record.get("event") for record in task.task_log]
    assert f"Extracting orders from db.example:5432 for run {RUN_ID}" in events
    api.assert_clean()


def test_the_whole_dag_success_retry_and_skip(roots, tmp_path):
    """Every task the scheduler would start, in order, each through ExecutableCoordinator: bound
    arguments read back what the upstream tasks pushed, route's branch sends the skip of
    report_empty (which the scheduler then never starts), notify skips itself."""
    api = new_api()
    outcomes = []
    for task_id, try_number in (
        ("extract", 1),
        ("transform.filter_rows", 1),
        ("transform.summarise", 1),
        ("route", 1),
        ("load", 1),
        ("load", 2),
        ("audit", 1),
        ("notify", 1),
    ):
        task = run_task(roots, tmp_path, api, task_id, try_number=try_number)
        assert task.exception is None, task.describe()
        outcomes.append((task_id, try_number, task.exit_code, task.state))
    assert outcomes == [
        ("extract", 1, 0, "success"),
        ("transform.filter_rows", 1, 0, "success"),
        ("transform.summarise", 1, 0, "success"),
        ("route", 1, 0, "success"),
        ("load", 1, 0, "up_for_retry"),
        ("load", 2, 0, "success"),
        ("audit", 1, 0, "success"),
        ("notify", 1, 0, "skipped"),
    ]
    [skip] = api.calls_to("PATCH", "*/skip-downstream")
    assert skip.status == 204 and skip.json == {"tasks": [["report_empty", -1]]}
    assert api.xcom("simple_dag", RUN_ID, "route", "skipmixin_key") == {"followed": ["load"]}
    assert api.xcom("simple_dag", RUN_ID, "transform.summarise", "return_value")["total"] == 50.75
    assert api.xcom("simple_dag", RUN_ID, "load", "return_value") == 3
    assert api.xcom("simple_dag", RUN_ID, "audit", "return_value") == {"run_id": RUN_ID, "loaded_rows": 3}
    api.assert_clean()


def test_a_dag_no_bundle_lists_is_not_found(roots, tmp_path):
    task = run_task(roots, tmp_path, new_api(), "t", dag_id="no_such_dag")
    assert task.exception is not None
    assert (
        "FileNotFoundError: cannot find executable bundle containing dag_id='no_such_dag'" in task.exception
    )
