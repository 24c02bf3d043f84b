"""Test harness: run a runtime command under the REAL released Airflow supervisor (task-sdk 1.3.2).

Public API::

    from tests.harness import FakeExecutionAPI, run_task, parse_dag_file, TaskRun, ParseRun, HarnessTimeout
"""

from tests.harness.execution_api import Call, FakeExecutionAPI, Fault
from tests.harness.supervised import HarnessTimeout, ParseRun, TaskRun, parse_dag_file, run_task

__all__ = [
    "Call",
    "FakeExecutionAPI",
    "Fault",
    "HarnessTimeout",
    "ParseRun",
    "TaskRun",
    "parse_dag_file",
    "run_task",
]
