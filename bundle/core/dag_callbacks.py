"""DAG-level callbacks (``on_success_callback`` / ``on_failure_callback`` of a DAG), run in the bundle.

Airflow 3.3.2 runs a DAG's callbacks in the DAG processor: the scheduler sends a
``DagCallbackRequest`` when a run ends, and ``_execute_dag_callbacks`` calls each callable of the
imported Python DAG file with a context (``dag_run``, ``run_id``, ``reason``, the relevant ``ti``).
The generated DAG file (``packer/dagfile_callbacks.py``) hands that to a small callable of its own,
which starts the bundle executable with ``PYBUNDLE_DAG_CALLBACK`` set (``bundle.dag_callback.mode``);
this module is what the bundle then does: each callback of the DAG, in order, each bounded by
``PYBUNDLE_CALLBACK_TIMEOUT_SECONDS`` like a task callback, none ever raising.

There is no supervisor channel in that process, so the ``Client`` answers from the environment only
(``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*``, as Airflow's environment secrets backend does); every
request that would have to reach Airflow raises ``RequestNotAllowed`` (``DAG_CALLBACK_ACCESS``:
``MaskSecret`` only, applied locally).

Loaded only by DAGs that have DAG-level callbacks, and by the DAG-callback mode.
"""

from __future__ import annotations

import logging

from .callbacks import plan_callback, run_bounded, timeout_seconds
from .context import Context, DagRunInfo, TaskInstanceInfo
from .injection import CLIENT, CONTEXT, function_name
from .messages import DAG_CALLBACK_ACCESS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .authoring.dag import Dag
    from .client import Client

DAG_CALLBACK_KINDS = ("on_success_callback", "on_failure_callback")


class DagCallbackContext(Context):
    """What a DAG-level callback is given: ``dag_run`` (with ``state``, ``end_date``), ``ti`` (the
    task instance the scheduler named: the last failed one for a failure, the last succeeded one
    for a success; ``task_id`` is ``""`` when it named none), ``reason`` (Airflow's
    ``context["reason"]``: ``"task_failure"``, ``"success"``, ``"all_tasks_deadlocked"``, ...) and
    ``callback`` (``"on_failure_callback"``). ``exception`` is always ``None`` (Airflow gives a DAG
    callback none)."""

    __slots__ = ("callback", "dag_run_end_date", "dag_run_state", "exception", "reason")

    def __init__(
        self,
        ti: TaskInstanceInfo,
        dag_run: DagRunInfo,
        *,
        callback: str,
        reason: str | None,
        state: str | None,
        end_date: Any = None,
    ) -> None:
        super().__init__(ti, dag_run)
        self.callback = callback
        self.reason = reason
        self.dag_run_state = state
        self.dag_run_end_date = end_date
        self.exception = None
        self.params = dict(dag_run.conf)

    def __repr__(self) -> str:
        return f"DagCallbackContext({self.callback}, dag_run={self.dag_run!r}, reason={self.reason!r})"


def callback_counts(dag: Dag) -> dict[str, int]:
    """``{kind: number of callables}`` for the kinds the DAG has (what the DAG file needs to bound
    the bundle's process: one bound per callback)."""
    return {kind: len(dag.options[kind]) for kind in DAG_CALLBACK_KINDS if dag.options.get(kind)}


def environment_client(ti: TaskInstanceInfo) -> Client:
    """A ``Client`` with no channel: environment reads answer, everything else is refused."""
    from .client import MessageClient

    def transport(body: dict[str, Any]) -> None:  # only MaskSecret gets here: masked locally already
        return None

    return MessageClient(transport, ti, DAG_CALLBACK_ACCESS)


def context_from_request(request: Mapping[str, Any]) -> DagCallbackContext:
    """The context of the JSON document the DAG file's callable sent (``bundle.dag_callback.mode``)."""
    from datetime import datetime

    def moment(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    dag_id, run_id = str(request["dag_id"]), str(request.get("run_id") or "")
    run = request.get("dag_run") or {}
    ti = request.get("ti") or {}
    dag_run = DagRunInfo(
        dag_id=dag_id,
        run_id=run_id,
        logical_date=moment(run.get("logical_date")),
        data_interval_start=moment(run.get("data_interval_start")),
        data_interval_end=moment(run.get("data_interval_end")),
        run_after=moment(run.get("run_after")),
        start_date=moment(run.get("start_date")),
        run_type=run.get("run_type"),
        conf=dict(run.get("conf") or {}),
    )
    task_instance = TaskInstanceInfo(
        dag_id=dag_id,
        run_id=run_id,
        task_id=str(ti.get("task_id") or ""),
        try_number=int(ti.get("try_number") or 1),
        map_index=int(ti["map_index"]) if ti.get("map_index") is not None else -1,
    )
    return DagCallbackContext(
        task_instance,
        dag_run,
        callback=str(request["callback"]),
        reason=request.get("reason"),
        state=run.get("state"),
        end_date=moment(run.get("end_date")),
    )


def run_dag_callbacks(dag: Dag, kind: str, context: DagCallbackContext, client: Client) -> int:
    """Run the DAG's ``kind`` callbacks in order, each bounded; never raises. Returns how many ran."""
    callbacks = dag.options.get(kind) or ()
    limit = timeout_seconds()
    for index, fn in enumerate(callbacks):
        _run_one(f"{dag.dag_id} {kind}[{index}] {function_name(fn)}", fn, context, client, limit)
    return len(callbacks)


def _run_one(
    label: str, fn: Callable[..., Any], context: DagCallbackContext, client: Client, limit: float
) -> None:
    def invoke() -> Any:
        args, kwargs = _arguments(fn, context, client)
        return fn(*args, **kwargs)

    run_bounded(
        invoke,
        what="DAG callback",
        label=label,
        thread_name="pybundle-dag-callback",
        limit=limit,
        level=logging.INFO,
    )


def _arguments(
    fn: Callable[..., Any], context: DagCallbackContext, client: Client
) -> tuple[list[Any], dict[str, Any]]:
    plan = plan_callback(fn)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for injection in plan.injection.injections:
        source = injection.source
        if source == CONTEXT:
            value: Any = context
        elif source == CLIENT:
            value = client
        else:
            value = logging.getLogger(getattr(fn, "__module__", None) or "dag_callback")
        if injection.positional:
            args.append(value)
        else:
            kwargs[injection.name] = value
    if plan.exception_arg is not None:
        name, positional = plan.exception_arg
        if positional:
            args.append(None)
        else:
            kwargs[name] = None
    return args, kwargs
