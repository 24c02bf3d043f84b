"""DAG-level callbacks in a real Airflow 3.3.2 deployment.

When a run ends, the scheduler sends the DAG processor a ``DagCallbackRequest``; the DAG processor
imports the generated DAG file and calls its ``on_failure_callback`` / ``on_success_callback``,
which the generator wrote as a callable that finds the bundle executable through the
``ExecutableCoordinator``'s config and runs the bundle's callback in DAG-callback mode. The bundle's
log lines are re-logged there: with 3.3.2's default ``[logging] dag_processor_log_target = file``
they land in the DAG processor's per-file log
(``$AIRFLOW_HOME/logs/dag_processor/<date>/dags-folder/dag_callbacks.py.log``, JSON lines), not in
the service's own output (only with ``stdout`` would they be there too).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment
from tests.e2e.rest import poll_until

HERE = Path(__file__).resolve().parent
FAILING, PASSING = "dag_callbacks_failing", "dag_callbacks_passing"
RUN_TIMEOUT = 180.0
CALLBACK_TIMEOUT = 120.0  # the scheduler's next loop, the DAG processor's next pass over the file
END = r'[^"\n]*'  # the marker line, up to the end of its JSON string (or of the text line)


@pytest.fixture(scope="module")
def runs(airflow_deployment: Deployment) -> dict[str, Any]:
    airflow_deployment.add_bundle(
        HERE / "bundles" / "dag_callbacks.py", name="dag_callbacks", dag_ids=[FAILING, PASSING]
    )
    failing = airflow_deployment.trigger_run(FAILING, conf={"why": "e2e"})
    passing = airflow_deployment.trigger_run(PASSING)
    return {
        "deployment": airflow_deployment,
        FAILING: (failing, airflow_deployment.wait_run(FAILING, failing, RUN_TIMEOUT)),
        PASSING: (passing, airflow_deployment.wait_run(PASSING, passing, RUN_TIMEOUT)),
    }


def _dag_processor_logs(deployment: Deployment) -> str:
    """The DAG processor's per-file logs (where 3.3.2 writes what a DAG callback logs by default)."""
    files = sorted((deployment.home / "logs" / "dag_processor").rglob("dag_callbacks.py.log"))
    return "\n".join(f.read_text(errors="replace") for f in files)


def _marker(deployment: Deployment, pattern: str) -> str:
    def probe() -> str | None:
        found = re.search(pattern, _dag_processor_logs(deployment))
        return found.group(0) if found else None

    return poll_until(
        probe,
        CALLBACK_TIMEOUT,
        2.0,
        lambda: f"no {pattern!r} in the DAG processor logs\n{deployment.log_tails()}",
    )


def test_a_failed_runs_on_failure_callback_runs_in_the_bundle(runs: dict[str, Any]) -> None:
    run_id, state = runs[FAILING]
    assert state == "failed"
    line = _marker(runs["deployment"], rf"DAG-CALLBACK-MARKER on_failure_callback dag={FAILING} " + END)
    assert line.startswith(
        f"DAG-CALLBACK-MARKER on_failure_callback dag={FAILING} run={run_id} reason=task_failure "
        "state=failed ti=explode conf={'why': 'e2e'} var=GetVariable refused; "
        "PutVariable (write) refused for a DAG callback"
    ), line


def test_a_succeeded_runs_on_success_callback_runs_in_the_bundle(runs: dict[str, Any]) -> None:
    run_id, state = runs[PASSING]
    assert state == "success"
    line = _marker(runs["deployment"], rf"DAG-CALLBACK-MARKER on_success_callback dag={PASSING} " + END)
    assert line.startswith(
        f"DAG-CALLBACK-MARKER on_success_callback dag={PASSING} run={run_id} reason=success "
        "state=success ti=fine conf={} var=GetVariable refused; "
        "PutVariable (write) refused for a DAG callback"
    ), line
