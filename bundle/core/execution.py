"""Run one task and decide its outcome; the same path for every mode and for ``bundle.testing``.

The outcome rules are Airflow's: a non-``None`` return value is pushed as the ``return_value`` XCom
(a failed push fails the task), ``SkipTask`` skips, ``FailTask`` fails without retry, any other
exception (``TaskTimeout`` included) fails or asks for a retry when the run has one left, and an
unknown task is ``removed``. A branch or short-circuit task then skips downstream tasks
(``bundle.core.authoring.branching``; after a skip its return value is not pushed). Before the task runs, the XComs of earlier tries that Airflow lists in
``xcom_keys_to_clear`` are deleted, and ``execution_timeout`` bounds the task's call (not its XCom
push), both as Airflow's Python task runner does (``bundle.core.timeouts``).
Modes only translate the ``TaskOutcome`` into their peer's terminal message.
"""

from __future__ import annotations

from collections.abc import Mapping

from .client import Client
from .context import Context
from .errors import FailTask, SkipTask, TaskTimeout
from .records import Record
from .registry import Registry, Task
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    import logging
    from collections.abc import Iterable
    from typing import Any

    from .timeouts import Watchdog

SUCCESS, UP_FOR_RETRY, FAILED, SKIPPED, REMOVED = "success", "up_for_retry", "failed", "skipped", "removed"


class TaskOutcome(Record):
    state: str
    return_value: Any = None
    error: BaseException | None = None
    reason: str | None = None


def execute_task(
    registry: Registry,
    context: Context,
    client: Client,
    *,
    xcom_keys_to_clear: Iterable[str] = (),
    watchdog: Watchdog | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> TaskOutcome:
    """Find, bind and run the task named by ``context.ti``; never raises for task errors.

    ``xcom_keys_to_clear``: the run context's list of XComs earlier tries pushed, deleted first
    (one ``DeleteXCom`` each; a failure there fails the task, as in Airflow). ``watchdog``: the
    mode's backstop for a task its ``execution_timeout`` cannot interrupt. ``arguments``: values for
    free parameters given by ``bundle.testing`` instead of their bindings."""
    log = runtime_log
    ti = context.ti
    task = registry.lookup_task(ti.dag_id, ti.task_id)
    if task is None:
        reason = f"task {ti.task_id!r} of dag {ti.dag_id!r} is not registered in this bundle"
        log().error("Task not registered: %s", reason)
        return TaskOutcome(REMOVED, reason=reason)
    try:
        _clear_xcoms(client, xcom_keys_to_clear)
        context.params = _params(task, context)
        result = invoke(task, context, client, watchdog=watchdog, arguments=arguments)
        skipped_downstream = False
        if task.skip_rule is not None:  # a branch or short-circuit task; only these load it
            from .authoring.branching import apply_skip_rule

            skipped_downstream = apply_skip_rule(task, result, ti.map_index, client)
        # As in Airflow, where the skip is raised out of execute(): no return_value after a skip.
        options = task.effective_options
        if result is not None and not skipped_downstream and options.get("do_xcom_push", True):
            _push_result(client, result, multiple_outputs=options.get("multiple_outputs", False))
    except SkipTask as exc:
        log().info("Task skipped: %s", exc or "SkipTask raised")
        return TaskOutcome(SKIPPED, error=exc, reason=str(exc) or None)
    except FailTask as exc:
        log().error("Task failed without retry: %s", exc or "FailTask raised", exc_info=exc)
        return TaskOutcome(FAILED, error=exc, reason=_describe(exc))
    except (Exception, SystemExit, TaskTimeout) as exc:
        outcome = failure_outcome(context, exc)
        retry = outcome.state == UP_FOR_RETRY
        log().error("Task failed with exception%s", "; will retry" if retry else "", exc_info=exc)
        return outcome
    if context.is_cancelled():
        log().error("Task was cancelled; reporting failed")
        return TaskOutcome(FAILED, return_value=result, reason="task was cancelled")
    return TaskOutcome(SUCCESS, return_value=result)


def failure_outcome(context: Context, exc: BaseException) -> TaskOutcome:
    """A failed task's outcome, Airflow's rule: a retry when the run has one left and the task was
    not cancelled, else failed."""
    retry = context.should_retry and not context.is_cancelled()
    return TaskOutcome(UP_FOR_RETRY if retry else FAILED, error=exc, reason=_describe(exc))


def _clear_xcoms(client: Client, keys: Iterable[str]) -> None:
    for key in keys:
        runtime_log().debug("Clearing XCom with key %s", key)  # Airflow's record, at its level
        client.delete_xcom(key)


def _params(task: Task, context: Context) -> dict[str, Any]:
    """``ctx.params``: the DAG's params merged with the run's conf, validated (Airflow's
    ``process_params``); only DAGs with params load the validator."""
    conf = context.dag_run.conf
    if not task.dag.params:
        return dict(conf)  # undeclared conf keys are params too, as in Airflow
    from .authoring.params import resolve_params

    return resolve_params(task.dag.params, conf)


def invoke(
    task: Task,
    context: Context,
    client: Client,
    *,
    watchdog: Watchdog | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> Any:
    """Call the task function with its injected and bound arguments (``async def`` included),
    bounded by its ``execution_timeout`` when it has one (``timedelta(0)`` is none, as in Airflow).
    Each bound reference costs one ``GetXCom`` (``bundle.core.authoring.binding``)."""
    args, kwargs = task.plan.arguments(context, client, lambda: task_logger(task))
    if task.bound or arguments:
        from .authoring.binding import resolve_arguments

        kwargs.update(resolve_arguments(task, client, arguments))
    limit = task.effective_options.get("execution_timeout")
    if limit:
        from .timeouts import call_with_timeout  # only tasks with a limit pay for it

        return call_with_timeout(
            task.fn, args, kwargs, is_async=task.plan.is_async, limit=limit, watchdog=watchdog
        )
    if task.plan.is_async:
        import asyncio  # only async tasks pay for it

        return asyncio.run(task.fn(*args, **kwargs))
    return task.fn(*args, **kwargs)


def task_logger(task: Task) -> logging.Logger:
    """The logger injected into a task: named after the task's module, like ``__name__`` loggers."""
    import logging

    return logging.getLogger(getattr(task.fn, "__module__", None) or "task")


def _push_result(client: Client, result: Any, *, multiple_outputs: bool) -> None:
    if multiple_outputs:
        if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
            raise TypeError(f"multiple_outputs=True needs a dict with str keys, got {type(result).__name__}")
        for key, value in result.items():
            client.push_xcom(key, value)
    client.push_xcom("return_value", result)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
