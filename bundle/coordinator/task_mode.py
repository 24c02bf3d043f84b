"""Task execution under the supervisor: StartupDetails in, exactly one terminal message out.

``SucceedTask`` (after the return value was pushed), ``RetryTask`` when the run allows a retry, or
``TaskState`` failed / skipped / removed, ``RescheduleTask`` for a reschedule-mode sensor not done yet.
SIGTERM and SIGINT set the task's cancellation flag; a
task that has not finished after the grace period is reported failed and the process exits, before
the supervisor's own SIGKILL escalation (5 s) can leave the task instance without a state.

``execution_timeout`` is enforced here, not by the supervisor (Airflow leaves it to the task
runner): SIGALRM interrupts the task (``bundle.core.timeouts``), and a task that still runs the
grace period later (blocked in a C call, or catching ``TaskTimeout``) is reported as timed out and
the process exits, as it would after a stop request. The XComs ``ti_context.xcom_keys_to_clear``
lists are deleted before the task runs, as Airflow's Python task runner does.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime, timedelta, timezone

from ..core.client import MessageClient
from ..core.context import Context, DagRunInfo, TaskInstanceInfo
from ..core.execution import (
    DEFERRED,
    FAILED,
    REMOVED,
    SKIPPED,
    SUCCESS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    TaskOutcome,
    execute_task,
    failure_outcome,
    run_finalizers,
    runtime_log,
)
from ..core.masking import masker
from ..core.messages import TASK_ACCESS, validate_request
from ..core.provider import BundleProvider, registry_of
from .channel import CommChannel
from .frames import ProtocolError
from .log_pipe import LogPipe

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Callable
    from typing import Any

    from ..core.timeouts import Watchdog

GRACE_ENV = "PYBUNDLE_CANCEL_GRACE_SECONDS"
DEFAULT_GRACE_SECONDS = 3.0
TERMINAL_REPLY_TIMEOUT_SECONDS = 10.0


def context_from_startup(startup: dict[str, Any]) -> Context:
    ti = startup.get("ti") or {}
    ti_context = startup.get("ti_context") or {}
    dag_run = ti_context.get("dag_run") or {}
    map_index = ti.get("map_index")
    task_instance = TaskInstanceInfo(
        dag_id=ti.get("dag_id", ""),
        run_id=ti.get("run_id", ""),
        task_id=ti.get("task_id", ""),
        try_number=int(ti.get("try_number") or 1),
        map_index=-1 if map_index is None else int(map_index),
        id=str(ti["id"]) if ti.get("id") is not None else None,
        max_tries=int(ti_context.get("max_tries") or 0),
        queue=ti.get("queue"),
        hostname=ti.get("hostname"),
    )
    run = DagRunInfo(
        dag_id=dag_run.get("dag_id", task_instance.dag_id),
        run_id=dag_run.get("run_id", task_instance.run_id),
        logical_date=dag_run.get("logical_date"),
        data_interval_start=dag_run.get("data_interval_start"),
        data_interval_end=dag_run.get("data_interval_end"),
        run_after=dag_run.get("run_after"),
        start_date=dag_run.get("start_date"),
        run_type=dag_run.get("run_type"),
        conf=dag_run.get("conf") or {},
        consumed_asset_events=dag_run.get("consumed_asset_events") or (),
    )
    context = Context(ti=task_instance, dag_run=run, should_retry=bool(ti_context.get("should_retry")))
    context.task_reschedule_count = int(ti_context.get("task_reschedule_count") or 0)
    return context


def terminal_message(outcome: TaskOutcome) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    if outcome.state == SUCCESS:
        return {
            "type": "SucceedTask",
            "state": SUCCESS,
            "end_date": now,
            # the task's outlets and the extras it set: Airflow creates asset events from these
            **(outcome.assets or {"task_outlets": [], "outlet_events": []}),
        }
    if outcome.state == UP_FOR_RETRY:
        # The reason is the exception text and goes to the Execution API as is (it is not a log
        # record the supervisor would redact), so registered secrets are masked here.
        reason = masker.redact(outcome.reason)
        return {"type": "RetryTask", "state": UP_FOR_RETRY, "end_date": now, "retry_reason": reason}
    if outcome.state in (FAILED, SKIPPED, REMOVED):
        return {"type": "TaskState", "state": outcome.state, "end_date": now}
    if outcome.state == UP_FOR_RESCHEDULE:  # a reschedule-mode sensor; Airflow's RescheduleTask
        return {
            "type": "RescheduleTask",
            "state": UP_FOR_RESCHEDULE,
            "reschedule_date": outcome.reschedule_date,
            "end_date": now,
        }
    if outcome.state == DEFERRED and outcome.defer is not None:  # ctx.defer (bundle.core.deferral)
        return dict(outcome.defer)
    raise ValueError(f"unknown task state {outcome.state!r}")


_LABELLED = frozenset({"SucceedTask", "RetryTask", "TaskState", "DeferTask", "AwaitInputTask"})


class _Terminal:
    """Sends the one terminal message, whichever thread (task or grace timer) gets there first."""

    def __init__(self, channel: CommChannel, context: Context | None = None):
        self._channel = channel
        self._context = context
        self._lock = threading.Lock()
        self.sent = False

    def send(self, outcome: TaskOutcome) -> bool:
        with self._lock:
            if self.sent:
                return False
            self.sent = True
            body = terminal_message(outcome)
            label = getattr(self._context, "map_label", None)
            if label is not None and label.text and body["type"] in _LABELLED:
                # The supervisor stores the terminal message's label over the one sent before
                # (a missing one as null): repeat it (bundle.core.mapped.MapLabel).
                body["rendered_map_index"] = label.text
            validate_request(body, TASK_ACCESS)
            try:
                self._channel.request(body, timeout=TERMINAL_REPLY_TIMEOUT_SECONDS)
            except TimeoutError:
                runtime_log().warning("The supervisor did not acknowledge %s in time", body["type"])
            return True


def run_task(
    provider: BundleProvider, channel: CommChannel, startup: dict[str, Any], log_pipe: LogPipe
) -> int:
    try:
        context = context_from_startup(startup)
    except Exception as exc:  # a StartupDetails we cannot read names no task we could report on
        runtime_log().error("Malformed StartupDetails from the supervisor: %s: %s", type(exc).__name__, exc)
        return 1
    client = MessageClient(channel.request, context.ti, TASK_ACCESS)
    terminal = _Terminal(channel, context)
    _install_cancellation(context, terminal, log_pipe)
    registry = None
    try:
        registry = registry_of(provider)
    except Exception as exc:
        runtime_log().error("Registering the bundle's DAGs failed", exc_info=exc)
        outcome = TaskOutcome(FAILED, error=exc, reason=f"registering dags: {exc}")
    else:
        outcome = execute_task(
            registry,
            context,
            client,
            xcom_keys_to_clear=(startup.get("ti_context") or {}).get("xcom_keys_to_clear") or (),
            resume=_resume_of(startup),
            watchdog=_timeout_backstop(context, terminal, log_pipe),
        )
    try:
        terminal.send(outcome)
    except ProtocolError as exc:
        runtime_log().error("Could not report the task's state to the supervisor: %s", exc)
        return 1
    if registry is not None:  # Airflow's finalize(): on_*_callback run after the terminal message
        run_finalizers(registry, context, client, outcome)
    return 0


def _resume_of(startup: dict[str, Any]) -> tuple[str, Any] | None:
    """``(next_method, next_kwargs)`` of a task resumed after a deferral, else None."""
    ti_context = startup.get("ti_context") or {}
    next_method = ti_context.get("next_method")
    return (next_method, ti_context.get("next_kwargs")) if next_method else None


def _install_cancellation(context: Context, terminal: _Terminal, log_pipe: LogPipe) -> None:
    grace = _grace_seconds()

    def expire() -> None:
        if terminal.sent:  # only callbacks run after the terminal message: end them, keep the state
            _end_callback_processes()
            log_pipe.close()
            os._exit(0)
        runtime_log().error("Task did not stop within %.1f s of the stop request; reporting failed", grace)
        try:
            terminal.send(TaskOutcome(FAILED, reason="task was cancelled and did not stop in time"))
        finally:
            _end_callback_processes()
            log_pipe.close()
            os._exit(0)  # the terminal message carries the state; exit 0 lets the supervisor apply it

    def on_signal(signum: int, _frame: Any) -> None:
        if context.cancelled.is_set():
            return
        context.cancelled.set()
        runtime_log().warning(
            "Received %s: asking the task to stop (grace period %.1f s)", signal.Signals(signum).name, grace
        )
        timer = threading.Timer(grace, expire)
        timer.daemon = True
        timer.start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


def _end_callback_processes() -> None:
    """A callback's process must not outlive the runtime (bundle.core.confinement)."""
    import sys

    confinement = sys.modules.get("bundle.core.confinement")  # loaded only if a callback ran
    if confinement is not None:
        confinement.kill_active()


def _timeout_backstop(context: Context, terminal: _Terminal, log_pipe: LogPipe) -> Watchdog:
    """What ends a task its ``execution_timeout`` could not interrupt: the process runs this one
    task, so after the limit plus the grace the outcome is reported (up_for_retry or failed, like
    the timeout itself) and the process exits 0, letting the supervisor apply the state."""

    def arm(seconds: float) -> Callable[[], None]:
        from ..core.timeouts import protect_from_alarm

        protect_from_alarm(CommChannel._send)  # a half-sent frame would break the terminal message
        grace = _grace_seconds()

        def expire() -> None:
            from ..core.timeouts import log_timed_out, timeout_error

            if terminal.sent:
                return
            limit = timedelta(seconds=seconds)
            log_timed_out(limit)
            runtime_log().error(
                "Task did not stop within %.1f s of its execution_timeout (%.1f s): it is blocked "
                "where no signal reaches it, or caught the timeout; reporting it timed out and exiting",
                grace,
                seconds,
            )
            sent = True
            try:
                sent = terminal.send(failure_outcome(context, timeout_error(limit)))
            finally:
                if sent:  # else the task itself reported in the meantime and exits on its own
                    _end_callback_processes()
                    log_pipe.close()
                    os._exit(0)

        timer = threading.Timer(seconds + grace, expire)
        timer.daemon = True
        timer.start()
        return timer.cancel

    return arm


def _grace_seconds() -> float:
    raw = os.environ.get(GRACE_ENV)
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_GRACE_SECONDS
    except ValueError:
        runtime_log().warning("Ignoring %s=%r: not a number of seconds", GRACE_ENV, raw)
        return DEFAULT_GRACE_SECONDS
