"""What a running task knows about itself: ``Context`` with ``ti`` and ``dag_run``.

The shapes follow Airflow's Python task context (``ti.map_index`` is ``-1`` when unmapped,
``dag_run.conf`` is a dict) so Python users need to learn nothing new; every mode builds the same
objects from what its peer sent (StartupDetails, a gRPC workload, or ``bundle.testing``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from .errors import TaskCancelled
from .records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

# Records (NamedTuple behaviour, see records.py) rather than dataclasses: ``dataclasses`` imports
# ``inspect``, which coordinator start-up (once per task) would pay for.


class BundleInfo(Record):
    """Name and optional version of a bundle, as the Go SDK's ``GetBundleVersion`` returns it."""

    name: str
    version: str | None = None


class TaskInstanceInfo(Record):
    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1
    map_index: int = -1
    id: str | None = None
    max_tries: int = 0
    queue: str | None = None
    hostname: str | None = None


class DagRunInfo(Record):
    dag_id: str
    run_id: str
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_after: datetime | None = None
    start_date: datetime | None = None
    run_type: str | None = None
    conf: Mapping[str, Any] = MappingProxyType({})


class Context:
    """Injected into any task parameter annotated ``Context``.

    ``params`` are the DAG's params merged with ``dag_run.conf`` (conf wins, validated against each
    ``Param``'s schema), keys of the conf the DAG does not declare included, as in Airflow.

    ``cancelled`` is set when the runtime is asked to stop the task (SIGTERM, a heartbeat the server
    refused); long-running tasks should check ``is_cancelled()`` or call ``raise_if_cancelled()``.
    """

    __slots__ = ("cancelled", "dag_run", "params", "should_retry", "ti")

    def __init__(self, ti: TaskInstanceInfo, dag_run: DagRunInfo, should_retry: bool = False):
        self.ti = ti
        self.dag_run = dag_run
        self.should_retry = should_retry
        self.cancelled = threading.Event()
        # The DAG's params merged with dag_run.conf (conf wins), validated: set by the runtime
        # before the task runs (``bundle.core.execution``), as Airflow's ``context["params"]``.
        self.params: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Context(ti={self.ti!r}, dag_run={self.dag_run!r}, should_retry={self.should_retry})"

    @property
    def dag_id(self) -> str:
        return self.ti.dag_id

    @property
    def run_id(self) -> str:
        return self.ti.run_id

    @property
    def task_id(self) -> str:
        return self.ti.task_id

    @property
    def try_number(self) -> int:
        return self.ti.try_number

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise TaskCancelled(f"task {self.ti.task_id!r} was asked to stop")

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (and returning True) on cancellation."""
        return self.cancelled.wait(timeout)
