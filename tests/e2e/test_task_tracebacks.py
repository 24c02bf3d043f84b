"""A failing bundle task's traceback in the real log view, beside the same code as a Python ``@task``.

The released supervisor stores a failure's exception as ``error_detail`` (structlog's frame shape);
the API serves it with the record. The bundle's record must name the same exceptions, in the same
chain, through the same user functions as the Python task's, without pybundle's own frames, and
with each frame's source line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 120.0


def _failure_record(log: Any) -> dict[str, Any]:
    records = [r for r in log.records if r.get("error_detail")]
    assert records, log.events()
    return records[-1]


def _user_frames(stack: dict[str, Any], filename: str) -> list[dict[str, Any]]:
    return [frame for frame in stack["frames"] if frame["filename"].endswith(filename)]


@pytest.fixture(scope="module")
def failure_logs(airflow_deployment: Deployment) -> dict[str, Any]:
    airflow_deployment.add_bundle(HERE / "bundles" / "failing.py", name="failing", dag_ids=["failing_dag"])
    airflow_deployment.add_dag(HERE / "dags" / "python_failing.py", ["python_failing_dag"])
    runs = {
        dag_id: airflow_deployment.trigger_run(dag_id) for dag_id in ("failing_dag", "python_failing_dag")
    }
    logs = {}
    for dag_id, run_id in runs.items():
        assert airflow_deployment.wait_run(dag_id, run_id, RUN_TIMEOUT) == "failed"
        logs[dag_id] = airflow_deployment.task_log(dag_id, run_id, "explode", try_number=1)
    return logs


def test_bundle_traceback_names_what_the_python_task_names(failure_logs: dict[str, Any]) -> None:
    ours = _failure_record(failure_logs["failing_dag"])["error_detail"]
    python = _failure_record(failure_logs["python_failing_dag"])["error_detail"]
    assert [(s["exc_type"], s["exc_value"]) for s in ours] == [
        (s["exc_type"], s["exc_value"]) for s in python
    ]
    assert [s["exc_type"] for s in ours] == ["RuntimeError", "KeyError"]
    for our_stack, python_stack in zip(ours, python, strict=True):
        assert [f["name"] for f in _user_frames(our_stack, "failing.py")] == [
            f["name"] for f in _user_frames(python_stack, "python_failing.py")
        ]


def test_bundle_traceback_has_source_lines_and_no_pybundle_frames(failure_logs: dict[str, Any]) -> None:
    ours = _failure_record(failure_logs["failing_dag"])["error_detail"]
    frames = [frame for stack in ours for frame in stack["frames"]]
    assert not [f for f in frames if "/bundle/core/" in f["filename"] or "/lib/bundle/" in f["filename"]]
    assert [(f["name"], f.get("line")) for f in frames] == [
        ("explode", 'raise RuntimeError("no warehouse configured") from exc'),
        ("explode", 'lookup({"region": "eu"}, "warehouse")'),
        ("lookup", "return settings[key]"),
    ]
