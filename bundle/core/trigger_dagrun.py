"""``ctx.trigger_dag_run(...)``: Airflow's ``TriggerDagRunOperator``, as a call that ends the task.

In Airflow 3 the operator raises ``DagRunTriggerException`` and the task runner does the work
(task-sdk 1.3.2 ``_handle_trigger_dag_run``); this module is that handler for bundle tasks, with the
operator's option names and semantics:

* one ``TriggerDagRun`` request (``run_id`` ``manual__<run_after>`` unless ``trigger_run_id`` is
  given; ``logical_date`` now unless given, ``None`` allowed). With ``reset_dag_run`` the
  supervisor clears an existing run instead of failing.
* ``DAGRUN_ALREADY_EXISTS``: the task is ``skipped`` with ``skip_when_already_exists``, else
  ``failed`` (no retry, as in Airflow).
* the XCom ``trigger_run_id`` is pushed; without ``wait_for_completion`` the task succeeds.
* ``wait_for_completion``: every ``poke_interval`` seconds one ``GetDagRunState`` (the task keeps
  its worker slot; cancellation is honoured) until the run is in ``allowed_states`` (success) or
  ``failed_states`` (a failure, retried when the run allows it); with ``deferrable=True`` the task
  defers to the standard provider's ``DagStateTrigger`` instead and is resumed with
  ``execute_complete``, which fails on a failed state as the operator's does.

Not pushed: the ``_link_TriggerDagRunLink`` XCom (the operator's UI link; a bundle task's stub
has no such extra link to show it). Loaded only by tasks that call ``ctx.trigger_dag_run``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from .deferral import BUILTIN_METHODS, TaskDeferred, encode_kwargs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .authoring.task import Task
    from .client import MessageClient
    from .context import Context
    from .execution import TaskOutcome

XCOM_RUN_ID = "trigger_run_id"
DAG_RUN_STATES = ("queued", "running", "success", "failed")
EXECUTE_COMPLETE = "execute_complete"
_NOTSET = object()


class DagRunTrigger(BaseException):
    """Raised by ``ctx.trigger_dag_run``; the runtime triggers the run (Airflow's
    ``DagRunTriggerException``). A ``BaseException`` so ``except Exception`` does not catch it."""

    suspends_task = True  # what ``execution.execute_task`` looks for

    # set by ``request`` (the only constructor), checked there
    trigger_dag_id: str
    run_id: str
    conf: dict[str, Any] | None
    logical_date: datetime | None
    reset_dag_run: bool
    wait_for_completion: bool
    poke_interval: float
    allowed_states: list[str]
    failed_states: list[str]
    skip_when_already_exists: bool
    deferrable: bool
    note: str | None

    def __init__(self, **fields: Any) -> None:
        super().__init__(f"trigger a run of {fields['trigger_dag_id']}")
        self.__dict__.update(fields)


def request(
    trigger_dag_id: str,
    *,
    trigger_run_id: str | None = None,
    conf: dict[str, Any] | None = None,
    logical_date: Any = _NOTSET,
    reset_dag_run: bool = False,
    wait_for_completion: bool = False,
    poke_interval: float = 60,
    allowed_states: list[str] | tuple[str, ...] | None = None,
    failed_states: list[str] | tuple[str, ...] | None = None,
    skip_when_already_exists: bool = False,
    deferrable: bool = False,
    note: str | None = None,
) -> DagRunTrigger:
    """Check the options (``ValueError`` / ``TypeError`` at the call, naming the option) and build
    what the runtime acts on."""
    if not isinstance(trigger_dag_id, str) or not trigger_dag_id:
        raise ValueError(f"ctx.trigger_dag_run: trigger_dag_id must be a dag id, got {trigger_dag_id!r}")
    if isinstance(conf, str):
        conf = json.loads(conf)
    if conf is not None:
        try:
            json.dumps(conf, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"conf parameter should be JSON Serializable: {conf}") from None
        if not isinstance(conf, dict):
            raise TypeError(f"ctx.trigger_dag_run: conf must be a dict, got {type(conf).__name__}")
    now = datetime.now(timezone.utc)
    if logical_date is _NOTSET:
        parsed_logical_date: datetime | None = now
    else:
        parsed_logical_date = _datetime("logical_date", logical_date)
    run_after = parsed_logical_date or now
    if trigger_run_id is None:
        suffix = run_after.isoformat()
        if parsed_logical_date is None:
            import secrets

            suffix += "_" + secrets.token_urlsafe(6)[:8]
        trigger_run_id = f"manual__{suffix}"
    allowed = _states("allowed_states", allowed_states, ["success"])
    failed = _states("failed_states", failed_states, ["failed"])
    interval = float(poke_interval)
    if interval <= 0:
        raise ValueError(f"ctx.trigger_dag_run: poke_interval must be positive, got {poke_interval!r}")
    return DagRunTrigger(
        trigger_dag_id=trigger_dag_id,
        run_id=str(trigger_run_id),
        conf=conf,
        logical_date=parsed_logical_date,
        reset_dag_run=bool(reset_dag_run),
        wait_for_completion=bool(wait_for_completion),
        poke_interval=interval,
        allowed_states=allowed,
        failed_states=failed,
        skip_when_already_exists=bool(skip_when_already_exists),
        deferrable=bool(deferrable),
        note=note,
    )


def _datetime(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise TypeError(
            f"ctx.trigger_dag_run: {name} must be a datetime or ISO string, got {type(value).__name__}"
        )
    if value.utcoffset() is None:
        raise ValueError(f"ctx.trigger_dag_run: {name} must be timezone-aware, got {value.isoformat()}")
    return value


def _states(name: str, value: Any, default: list[str]) -> list[str]:
    states = [str(getattr(s, "value", s)) for s in value] if value else list(default)
    bad = [s for s in states if s not in DAG_RUN_STATES]
    if bad:
        raise ValueError(f"ctx.trigger_dag_run: {name} has {bad}, not DAG run states {list(DAG_RUN_STATES)}")
    return states


def handle(trigger: DagRunTrigger, task: Task, context: Context, client: MessageClient) -> TaskOutcome:
    """Trigger the run, push ``trigger_run_id``, then wait as asked (``_handle_trigger_dag_run``)."""
    from .execution import FAILED, SKIPPED, SUCCESS, TaskOutcome, failure_outcome
    from .runtime_log import runtime_log

    log = runtime_log()
    log.info("Triggering Dag Run %s of %s", trigger.run_id, trigger.trigger_dag_id)
    body = {
        "type": "TriggerDagRun",
        "dag_id": trigger.trigger_dag_id,
        "run_id": trigger.run_id,
        "logical_date": trigger.logical_date,
        "run_after": None,
        "conf": trigger.conf,
        "reset_dag_run": trigger.reset_dag_run,
        "note": trigger.note,
    }
    answer = client.request(body)
    if isinstance(answer, dict) and answer.get("type") == "ErrorResponse":
        if answer.get("error") == "DAGRUN_ALREADY_EXISTS":
            if trigger.skip_when_already_exists:
                log.info("Dag Run already exists, skipping task as skip_when_already_exists is set to True.")
                return TaskOutcome(
                    SKIPPED, reason=f"a run {trigger.run_id} of {trigger.trigger_dag_id} already exists"
                )
            log.error("Dag Run already exists, marking task as failed.")
            return TaskOutcome(
                FAILED, reason=f"DAGRUN_ALREADY_EXISTS: {trigger.trigger_dag_id} {trigger.run_id}"
            )
        from .client import _error_from

        raise _error_from(body, answer)
    log.info("Dag Run triggered successfully.")
    client.push_xcom(XCOM_RUN_ID, trigger.run_id)
    if not trigger.wait_for_completion:
        if trigger.deferrable:
            log.info("Ignoring deferrable=True because wait_for_completion=False.")
        return TaskOutcome(SUCCESS)
    if trigger.deferrable:
        from ..triggers import DagStateTrigger

        classpath, kwargs = DagStateTrigger(
            trigger.trigger_dag_id,
            states=trigger.allowed_states + trigger.failed_states,
            run_ids=[trigger.run_id],
            poll_interval=trigger.poke_interval,
        ).serialize()
        deferred = TaskDeferred(
            classpath,
            encode_kwargs(kwargs, f"trigger kwargs of {classpath}"),
            EXECUTE_COMPLETE,
            # Airflow's operator keeps these on itself; a bundle keeps them in next_kwargs.
            {"trigger_dag_id": trigger.trigger_dag_id, "failed_states": trigger.failed_states},
            None,
        )
        deferred.builtin = True
        raise deferred
    while True:
        log.info(
            "Waiting for dag run %s of %s to complete execution in allowed state %s.",
            trigger.run_id,
            trigger.trigger_dag_id,
            trigger.allowed_states,
        )
        if context.wait_cancelled(trigger.poke_interval):
            return TaskOutcome(FAILED, reason="task was cancelled")
        state = client.get_dag_run_state(trigger.trigger_dag_id, trigger.run_id)
        if state in trigger.failed_states:
            log.error("DagRun finished with failed state %s.", state)
            return failure_outcome(
                context, DagRunFailed(f"{trigger.trigger_dag_id} failed with failed state {state}")
            )
        if state in trigger.allowed_states:
            log.info("DagRun finished with allowed state %s.", state)
            return TaskOutcome(SUCCESS)


class DagRunFailed(Exception):
    """The triggered run ended in one of ``failed_states`` (Airflow raises ``AirflowException``)."""


def execute_complete(
    task: Task,
    context: Context,
    client: MessageClient,
    *,
    event: Any,
    trigger_dag_id: str = "",
    failed_states: list[str] | None = None,
    **_: Any,
) -> None:
    """The resume of a deferred wait: the ``DagStateTrigger`` event is ``(classpath, data)`` with
    ``data[run_id] = state``; a run in ``failed_states`` fails the task."""
    from .runtime_log import runtime_log

    _, data = event
    failed_states = failed_states or ["failed"]
    failed = [run_id for run_id in data.get("run_ids") or [] if data.get(run_id) in failed_states]
    if failed:
        raise DagRunFailed(f"{trigger_dag_id} failed with failed states {failed_states} for run_ids {failed}")
    for run_id in data.get("run_ids") or []:
        runtime_log().info(
            "%s finished with allowed state %s for run_id %s", trigger_dag_id, data.get(run_id), run_id
        )


BUILTIN_METHODS[EXECUTE_COMPLETE] = execute_complete
