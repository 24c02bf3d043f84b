"""Run one task and decide its outcome; the same path for every mode and for ``bundle.testing``.

The outcome rules are Airflow's: a non-``None`` return value is pushed as the ``return_value`` XCom
(a failed push fails the task), ``SkipTask`` skips, ``FailTask`` fails without retry, any other
exception fails or asks for a retry when the run has one left, and an unknown task is ``removed``.
Modes only translate the ``TaskOutcome`` into their peer's terminal message.
"""

from __future__ import annotations

from collections.abc import Mapping

from .client import Client
from .context import Context
from .errors import FailTask, SkipTask
from .records import Record
from .registry import Registry, Task

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    import logging
    from typing import Any

SUCCESS, UP_FOR_RETRY, FAILED, SKIPPED, REMOVED = "success", "up_for_retry", "failed", "skipped", "removed"
RUNTIME_LOGGER = "bundle.runtime"


class TaskOutcome(Record):
    state: str
    return_value: Any = None
    error: BaseException | None = None
    reason: str | None = None


def runtime_log() -> logging.Logger:
    """The runtime's own logger. Imported on first use: a task that never logs never loads
    ``logging`` (and the ``traceback``/``tokenize``/``textwrap`` it drags in), which is a good
    part of a coordinator's start-up; see ``bundle.coordinator.log_install``."""
    import logging

    return logging.getLogger(RUNTIME_LOGGER)


def execute_task(registry: Registry, context: Context, client: Client) -> TaskOutcome:
    """Find, bind and run the task named by ``context.ti``; never raises for task errors."""
    log = runtime_log
    ti = context.ti
    task = registry.lookup_task(ti.dag_id, ti.task_id)
    if task is None:
        reason = f"task {ti.task_id!r} of dag {ti.dag_id!r} is not registered in this bundle"
        log().error("Task not registered: %s", reason)
        return TaskOutcome(REMOVED, reason=reason)
    try:
        result = invoke(task, context, client)
        if result is not None and task.effective_options.get("do_xcom_push", True):
            _push_result(task, client, result)
    except SkipTask as exc:
        log().info("Task skipped: %s", exc or "SkipTask raised")
        return TaskOutcome(SKIPPED, error=exc, reason=str(exc) or None)
    except FailTask as exc:
        log().error("Task failed without retry: %s", exc or "FailTask raised", exc_info=exc)
        return TaskOutcome(FAILED, error=exc, reason=_describe(exc))
    except (Exception, SystemExit) as exc:
        retry = context.should_retry and not context.is_cancelled()
        log().error("Task failed with exception%s", "; will retry" if retry else "", exc_info=exc)
        return TaskOutcome(UP_FOR_RETRY if retry else FAILED, error=exc, reason=_describe(exc))
    if context.is_cancelled():
        log().error("Task was cancelled; reporting failed")
        return TaskOutcome(FAILED, return_value=result, reason="task was cancelled")
    return TaskOutcome(SUCCESS, return_value=result)


def invoke(task: Task, context: Context, client: Client) -> Any:
    """Call the task function with its injected arguments (``async def`` included)."""
    args, kwargs = task.plan.arguments(context, client, lambda: task_logger(task))
    if task.plan.is_async:
        import asyncio  # only async tasks pay for it

        return asyncio.run(task.fn(*args, **kwargs))
    return task.fn(*args, **kwargs)


def task_logger(task: Task) -> logging.Logger:
    """The logger injected into a task: named after the task's module, like ``__name__`` loggers."""
    import logging

    return logging.getLogger(getattr(task.fn, "__module__", None) or "task")


def _push_result(task: Task, client: Client, result: Any) -> None:
    if task.effective_options.get("multiple_outputs"):
        if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
            raise TypeError(f"multiple_outputs=True needs a dict with str keys, got {type(result).__name__}")
        for key, value in result.items():
            client.push_xcom(key, value)
    client.push_xcom("return_value", result)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
