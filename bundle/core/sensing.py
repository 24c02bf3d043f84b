"""Run a sensor (``@dag.sensor``): poke until done, time out, or hand the wait to the scheduler.

The loop is Airflow's ``BaseSensorOperator.execute`` (task-sdk 1.3.2), rule for rule:

* the function is called (a *poke*); a truthy result ends the task successfully, and only a
  ``PokeReturnValue``'s ``xcom_value`` becomes the task's return value (a plain ``True`` pushes
  nothing);
* ``FailTask`` (``SensorTimeout`` included) or ``TaskTimeout`` out of a poke fails the task, or skips
  it with ``soft_fail``/``never_fail``; ``SkipTask`` skips; any other exception fails (and may retry),
  is logged and counts as "not done" with ``silent_fail``, or skips with ``never_fail``;
* once the run has lasted longer than ``timeout`` the task fails with ``SensorTimeout`` and does not
  retry (skipped with ``soft_fail``): in poke mode the run is this process's, measured with a
  monotonic clock; in reschedule mode it starts at the first reschedule of this try, which the
  server keeps (``GetTaskRescheduleStartDate``, asked only when ``task_reschedule_count > 0``);
* otherwise poke mode sleeps the next interval (exponential backoff as Airflow computes it, jitter
  hash included), waking early when the task is cancelled, and pokes again; reschedule mode returns
  the date of the next poke: the task ends ``up_for_reschedule`` with the try number unchanged.

``execution_timeout`` bounds the whole loop, as Airflow's bounds ``execute``; the bound arguments
are resolved once, before the first poke, as Airflow renders a task's arguments once.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

from .authoring.sensors import PokeReturnValue, SensorSpec, SensorTimeout
from .errors import AirflowApiError, FailTask, SkipTask, TaskCancelled, TaskTimeout
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Callable, Mapping
    from typing import Any

    from .authoring.task import Task
    from .client import MessageClient
    from .context import Context
    from .timeouts import Watchdog

_MAX_INTERVAL = timedelta.max.total_seconds() - 1


class Rescheduled:
    """A reschedule-mode sensor's answer when not done: poke again at ``reschedule_date``."""

    __slots__ = ("reschedule_date",)

    def __init__(self, reschedule_date: datetime) -> None:
        self.reschedule_date = reschedule_date


def run_sensor(
    task: Task,
    context: Context,
    client: MessageClient,
    *,
    watchdog: Watchdog | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> Any:
    """Poke ``task`` as its ``SensorSpec`` says; the return value to push, or :class:`Rescheduled`.

    Raises what ends the task otherwise (``SkipTask``, ``SensorTimeout``, the poke's exception)."""
    from .execution import call_bounded, call_plain, free_arguments, task_logger

    args, kwargs = task.plan.arguments(context, client, lambda: task_logger(task))
    kwargs.update(free_arguments(task, context, client, arguments))  # a mapped sensor's element too
    is_async = task.plan.is_async
    if is_async:
        import asyncio  # noqa: F401  (imported before the loop, so no poke's time is spent on it)

    def poke() -> Any:
        return call_plain(task.fn, args, kwargs, is_async=is_async)

    loop = _Loop(task, context, client, poke)
    # execution_timeout bounds the whole loop (each poke is a plain call inside it)
    return call_bounded(task, loop.run, (), {}, is_async=False, watchdog=watchdog)


class _Loop:
    def __init__(self, task: Task, context: Context, client: MessageClient, poke: Callable[[], Any]):
        spec = task.sensor
        assert spec is not None
        self.spec: SensorSpec = spec
        self.task = task
        self.context = context
        self.client = client
        self.poke = poke

    def run(self) -> Any:
        spec, log = self.spec, runtime_log()
        started_at: datetime | float
        if spec.reschedule:
            first = first_reschedule_date(self.task, self.context, self.client)
            start_date = started_at = first or _utcnow()

            def run_duration() -> float:  # the server's clock: the run spans several processes
                return (_utcnow() - start_date).total_seconds()
        else:
            start_monotonic = started_at = time.monotonic()

            def run_duration() -> float:
                return time.monotonic() - start_monotonic

        poke_count = 1
        while True:
            done = self._poke_once()
            if done:
                log.info("Success criteria met. Exiting.")
                return done.xcom_value if isinstance(done, PokeReturnValue) else None
            if run_duration() > spec.timeout:
                message = (
                    f"Sensor has timed out; run duration of {run_duration()} seconds exceeds "
                    f"the specified timeout of {spec.timeout}."
                )
                if spec.soft_fail:
                    raise SkipTask(message)
                raise SensorTimeout(message)
            interval = next_poke_interval(
                spec, self.task.dag.dag_id, self.task.task_id, started_at, run_duration, poke_count
            )
            if spec.reschedule:
                reschedule_date = _utcnow() + timedelta(seconds=interval)
                log.info(
                    "Rescheduling task, marking task as UP_FOR_RESCHEDULE; next poke at %s", reschedule_date
                )
                return Rescheduled(reschedule_date)
            log.info("Sensor not done yet; poking again in %s s", interval)
            if self.context.wait_cancelled(max(interval, 0.0)):
                raise TaskCancelled(f"sensor {self.task.task_id!r} was asked to stop while waiting")
            poke_count += 1

    def _poke_once(self) -> Any:
        """One poke with Airflow's exception rules; a falsy value when not done."""
        spec = self.spec
        try:
            return self.poke()
        except (FailTask, TaskTimeout) as exc:  # AirflowSensorTimeout / AirflowFailException too
            if spec.soft_fail:
                raise SkipTask("Skipping due to soft_fail is set to True.") from exc
            if spec.never_fail:
                raise SkipTask("Skipping due to never_fail is set to True.") from exc
            raise
        except SkipTask:
            raise
        except Exception as exc:
            if spec.silent_fail:
                runtime_log().error("Sensor poke failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
                return False
            if spec.never_fail:
                raise SkipTask("Skipping due to never_fail is set to True.") from exc
            raise


def first_reschedule_date(task: Task, context: Context, client: MessageClient) -> datetime | None:
    """Airflow's ``get_first_reschedule_date``: the start of this try's first reschedule, asked only
    when the task was rescheduled (``task_reschedule_count > 0``). The try is the first one of the
    current retry budget (``max_tries - retries + 1``), as Airflow computes it."""
    if not context.task_reschedule_count:
        return None
    retries = task.effective_options.get("retries", 0) or 0
    body: dict[str, Any] = {
        "type": "GetTaskRescheduleStartDate",
        "ti_id": context.ti.id,
        "try_number": context.ti.max_tries - retries + 1,
    }
    answer = client.request(body) or {}
    if answer.get("type") == "ErrorResponse":
        raise AirflowApiError(body["type"], answer.get("error", ""), answer.get("detail"))
    value = answer.get("start_date")
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def next_poke_interval(
    spec: SensorSpec,
    dag_id: str,
    task_id: str,
    started_at: datetime | float,
    run_duration: Callable[[], float],
    poke_count: int,
) -> float:
    """Airflow's ``_get_next_poke_interval``: ``poke_interval``, or with ``exponential_backoff`` a
    doubling interval with a deterministic jitter (a SHA-1 of dag, task, start and poke number),
    never past the timeout, capped by ``max_wait``. In reschedule mode the poke number is estimated
    from the time elapsed, as each poke runs in a new process."""
    if not spec.exponential_backoff:
        return spec.poke_interval
    if spec.reschedule:
        elapsed = run_duration()
        cumulative, estimated = 0.0, 0
        while cumulative <= elapsed:
            estimated += 1
            cumulative += _jittered(spec, dag_id, task_id, started_at, estimated)
        poke_count = estimated or poke_count
    interval = min(
        spec.timeout - int(run_duration()), _jittered(spec, dag_id, task_id, started_at, poke_count)
    )
    if spec.max_wait:
        interval = min(spec.max_wait, interval)
    runtime_log().info("new %s interval is %s", spec.mode, interval)
    return interval


def _jittered(spec: SensorSpec, dag_id: str, task_id: str, started_at: datetime | float, count: int) -> float:
    min_backoff = max(int(spec.poke_interval * (2 ** (count - 2))), 1)
    digest = hashlib.sha1(f"{dag_id}#{task_id}#{started_at}#{count}".encode(), usedforsecurity=False)
    return min(min_backoff + int(digest.hexdigest(), 16) % min_backoff, _MAX_INTERVAL)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
