"""go-plugin mode defers and resumes too: the plugin talks to the Execution API itself, so a
deferral is its ``PATCH /state`` with core's ``TIDeferredStatePayload`` (validated by the fake with
core's own model), and a resume is the ``/run`` answer's ``next_method`` / ``next_kwargs``."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.datamodels")

from tests.harness.execution_api import FakeExecutionAPI
from tests.plugin_host import ExecutionApiServer, bundle_command, execute_request
from tests.test_deferral import BUNDLE, stored_next_kwargs
from tests.test_plugin_execute import RUN_ID, run

DAG = "deferral_dag"


def _env(tmp_path: Path, server: ExecutionApiServer) -> dict[str, str]:
    home = tmp_path / "airflow_home"
    home.mkdir(exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__EXECUTION_API_URL": server.url,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
    }


def _execute(api: FakeExecutionAPI, tmp_path: Path, task_id: str) -> None:
    with ExecutionApiServer(api) as server:
        ti = api.add_task_instance(dag_id=DAG, run_id=RUN_ID, task_id=task_id, state="queued")
        _, error, _ = run(
            _env(tmp_path, server),
            execute_request(ti_id=ti, dag_id=DAG, run_id=RUN_ID, task_id=task_id),
            argv=bundle_command(BUNDLE),
        )
    assert error is None
    api.assert_clean()


def test_a_deferral_and_its_resume_in_go_plugin_mode(tmp_path: Path) -> None:
    first = FakeExecutionAPI(max_tries=1)
    _execute(first, tmp_path, "defers_twice")
    patch = first.state_updates[-1]
    assert (patch["state"], patch["next_method"], patch["next_kwargs"]) == ("deferred", "first", {"step": 1})
    assert patch["classpath"] == "airflow.providers.standard.triggers.temporal.DateTimeTrigger"

    second = FakeExecutionAPI(
        run_context={"next_method": "first", "next_kwargs": stored_next_kwargs(patch, None)}
    )
    _execute(second, tmp_path, "defers_twice")
    assert second.state_updates[-1]["next_method"] == "second"

    resumed = second.state_updates[-1]
    third = FakeExecutionAPI(
        run_context={"next_method": "second", "next_kwargs": stored_next_kwargs(resumed, True)}
    )
    _execute(third, tmp_path, "defers_twice")
    assert third.state_updates[-1]["state"] == "success"
    assert third.xcom(DAG, RUN_ID, "defers_twice", "return_value") == 20
