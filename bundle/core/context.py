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
    from typing import Any, NoReturn

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
    # ``dag_run.consumed_asset_events``: the asset events that triggered an asset-scheduled run, as
    # the peer sent them (``Context.triggering_asset_events`` reads them).
    consumed_asset_events: tuple[Any, ...] | list[Any] = ()


class Context:
    """Injected into any task parameter annotated ``Context``.

    ``params`` are the DAG's params merged with ``dag_run.conf`` (conf wins, validated against each
    ``Param``'s schema), keys of the conf the DAG does not declare included, as in Airflow.

    ``cancelled`` is set when the runtime is asked to stop the task (SIGTERM, a heartbeat the server
    refused); long-running tasks should check ``is_cancelled()`` or call ``raise_if_cancelled()``.
    """

    __slots__ = (
        "_assets",
        "cancelled",
        "dag_run",
        "map_label",
        "params",
        "should_retry",
        "task_reschedule_count",
        "ti",
    )

    def __init__(self, ti: TaskInstanceInfo, dag_run: DagRunInfo, should_retry: bool = False):
        self.ti = ti
        self.dag_run = dag_run
        self.should_retry = should_retry
        self.cancelled = threading.Event()
        # The DAG's params merged with dag_run.conf (conf wins), validated: set by the runtime
        # before the task runs (``bundle.core.execution``), as Airflow's ``context["params"]``.
        self.params: dict[str, Any] = {}
        # ``ti_context.task_reschedule_count``: how often this try was rescheduled (sensors in
        # reschedule mode count their total timeout from the first reschedule when it is > 0).
        self.task_reschedule_count = 0
        # ``bundle.core.asset_events.AssetState``: outlet/inlet event accessors, made on first use.
        self._assets: Any = None
        # ``bundle.core.mapped.MapLabel``: the rendered ``map_index_template`` (``.text``), which
        # every terminal message repeats; None for a task without one.
        self.map_label: Any = None

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

    # -- assets (``bundle.core.asset_events``, loaded only by tasks that use them) ---------------
    @property
    def outlet_events(self) -> Any:
        """Airflow's ``context["outlet_events"]``: ``ctx.outlet_events[asset].extra["k"] = v`` puts
        ``k`` in the extra of the asset event the task's success emits for that outlet."""
        return _asset_state(self).outlet_events

    @property
    def inlet_events(self) -> Any:
        """Airflow's ``context["inlet_events"]``: ``ctx.inlet_events[asset]`` (an inlet, or its
        index in ``inlets``) is the asset's events, read with one ``GetAssetEventByAsset`` on first
        use; ``.after(...)``, ``.before(...)``, ``.limit(n)``, ``.ascending(False)`` refine it."""
        return _asset_state(self).inlet_events

    @property
    def triggering_asset_events(self) -> Any:
        """Airflow's ``context["triggering_asset_events"]``: for an asset-triggered run, ``{asset:
        [AssetEvent, ...]}`` of the events that triggered it (from the run's
        ``consumed_asset_events``; no request)."""
        return _asset_state(self).triggering_asset_events

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise TaskCancelled(f"task {self.ti.task_id!r} was asked to stop")

    def defer(
        self,
        *,
        trigger: Any,
        method_name: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        timeout: Any = None,
    ) -> NoReturn:
        """Suspend the task until ``trigger`` (``bundle.triggers``) fires on Airflow's triggerer,
        then resume it with the resume function ``method_name`` (``@task.resume``; ``None``: the
        task's only one), called with ``kwargs`` and the trigger's ``event``. ``timeout``
        (timedelta or seconds) fails the task with ``TaskDeferralTimeout`` if the trigger has not
        fired by then. Raises ``TaskDeferred``, like Airflow's ``BaseOperator.defer``."""
        from .deferral import defer

        raise defer(trigger, method_name, kwargs, timeout)

    def trigger_dag_run(self, trigger_dag_id: str, **options: Any) -> NoReturn:
        """Trigger a run of another DAG and end this task, like Airflow's ``TriggerDagRunOperator``
        (same options: ``trigger_run_id``, ``conf``, ``logical_date``, ``reset_dag_run``,
        ``wait_for_completion``, ``poke_interval``, ``allowed_states``, ``failed_states``,
        ``skip_when_already_exists``, ``deferrable``, ``note``). See ``bundle.core.trigger_dagrun``."""
        from .trigger_dagrun import request

        raise request(trigger_dag_id, **options)

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (and returning True) on cancellation."""
        return self.cancelled.wait(timeout)


def _asset_state(context: Context) -> Any:
    if context._assets is None:
        from .asset_events import AssetState

        context._assets = AssetState(context)
    return context._assets
