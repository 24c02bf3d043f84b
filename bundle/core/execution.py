"""Run one task and decide its outcome; the same path for every mode and for ``bundle.testing``.

The outcome rules are Airflow's: a non-``None`` return value is pushed as the ``return_value`` XCom
(a failed push fails the task), ``SkipTask`` skips, ``FailTask`` fails without retry, any other
exception (``TaskTimeout`` included) fails or asks for a retry when the run has one left, and an
unknown task is ``removed``. A branch or short-circuit task then skips downstream tasks
(``bundle.core.authoring.branching``; after a skip its return value is not pushed). Before the task runs, the XComs of earlier tries that Airflow lists in
``xcom_keys_to_clear`` are deleted, and ``execution_timeout`` bounds the task's call (not its XCom
push), both as Airflow's Python task runner does (``bundle.core.timeouts``). A sensor's function is
poked by ``bundle.core.sensing`` instead (``up_for_reschedule`` when a reschedule-mode poke is not done).
Modes only translate the ``TaskOutcome`` into their peer's terminal message.
"""

from __future__ import annotations

from collections.abc import Mapping

from .client import MessageClient
from .context import Context
from .errors import FailTask, SkipTask, TaskTimeout
from .options import CALLBACK_OPTIONS
from .records import Record
from .registry import Registry, Task
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    import logging
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime
    from typing import Any

    from .timeouts import Watchdog

SUCCESS, UP_FOR_RETRY, FAILED, SKIPPED, REMOVED = "success", "up_for_retry", "failed", "skipped", "removed"
UP_FOR_RESCHEDULE = "up_for_reschedule"  # a reschedule-mode sensor not done yet (bundle.core.sensing)
DEFERRED = "deferred"  # the task deferred to a trigger (bundle.core.deferral)


class TaskOutcome(Record):
    state: str
    return_value: Any = None
    error: BaseException | None = None
    reason: str | None = None
    reschedule_date: datetime | None = None  # up_for_reschedule: when the sensor pokes again
    # success: {"task_outlets": [...], "outlet_events": [...]} for SucceedTask (bundle.core.asset_events);
    # None for a task that neither declares outlets / inlets nor touched ctx.outlet_events
    assets: dict[str, Any] | None = None
    defer: dict[str, Any] | None = None  # deferred: the DeferTask body (bundle.core.deferral)
    # the rendered map_index_template a mode repeats in its terminal state (bundle.core.mapped)
    rendered_map_index: str | None = None


def execute_task(
    registry: Registry,
    context: Context,
    client: MessageClient,
    *,
    xcom_keys_to_clear: Iterable[str] = (),
    watchdog: Watchdog | None = None,
    arguments: Mapping[str, Any] | None = None,
    resume: tuple[str, Any] | None = None,
) -> TaskOutcome:
    """Find, bind and run the task named by ``context.ti``; never raises for task errors.

    ``resume``: ``(ti_context.next_method, next_kwargs)`` of a task resumed after a deferral: the
    named resume function runs instead of the task function and no XComs are cleared.

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
        if resume is None:
            _clear_xcoms(client, xcom_keys_to_clear)
        context.params = _params(task, context)
        options = task.effective_options
        if options.get("outlets") or options.get("inlets"):  # only tasks with assets load them
            from .asset_events import prepare

            prepare(task, context, client)
        if options.get("on_execute_callback"):  # as Airflow: just before execute; never fails it
            from .callbacks import run_callbacks  # only tasks with callbacks load them

            run_callbacks(task, "on_execute_callback", context, client)
        if task.sensor is not None:  # only sensors load the poke loop
            from .sensing import Rescheduled, run_sensor

            result = run_sensor(task, context, client, watchdog=watchdog, arguments=arguments)
            if isinstance(result, Rescheduled):
                return TaskOutcome(UP_FOR_RESCHEDULE, reschedule_date=result.reschedule_date)
        elif resume is not None:  # only resumed tasks load it
            from .deferral import resume_task

            if options.get("map_index_template") is not None:  # its label, rendered again as in Airflow
                from .mapped import label_on_resume

                label_on_resume(task, context, client)
            result = resume_task(task, context, client, resume, watchdog)
        else:
            result = invoke(task, context, client, watchdog=watchdog, arguments=arguments)
        if context.map_label is not None:  # map_index_template: rendered again, as in Airflow
            context.map_label.after_success(client)
        skipped_downstream = False
        if task.skip_rule is not None:  # a branch or short-circuit task; only these load it
            from .authoring.branching import apply_skip_rule

            skipped_downstream = apply_skip_rule(task, result, ti.map_index, client)
        # As in Airflow, where the skip is raised out of execute(): no return_value after a skip.
        length = None
        if not skipped_downstream and task.expand_input is None and _mapped_over(task):
            from .mapped import mapped_length  # only tasks a mapped task expands over load it

            length = mapped_length(result if options.get("do_xcom_push", True) else None)
        if result is not None and not skipped_downstream and options.get("do_xcom_push", True):
            multiple = options.get("multiple_outputs", False)
            _push_result(client, result, multiple_outputs=multiple, mapped_length=length)
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
    except BaseException as exc:  # ctx.defer / ctx.trigger_dag_run end the task this way
        if getattr(exc, "suspends_task", False) is not True:
            raise
        from .deferral import suspended_outcome

        return suspended_outcome(exc, task, context, client)
    if context.is_cancelled():
        log().error("Task was cancelled; reporting failed")
        return TaskOutcome(FAILED, return_value=result, reason="task was cancelled")
    if context._assets is not None or options.get("outlets"):
        from .asset_events import terminal_fields

        try:
            assets = terminal_fields(task, context)
        except TypeError as exc:  # an extra that cannot travel (not JSON)
            log().error("Task failed with exception", exc_info=exc)
            return failure_outcome(context, exc)
        return TaskOutcome(SUCCESS, return_value=result, assets=assets)
    return TaskOutcome(SUCCESS, return_value=result)


def failure_outcome(context: Context, exc: BaseException) -> TaskOutcome:
    """A failed task's outcome, Airflow's rule: a retry when the run has one left and the task was
    not cancelled, else failed."""
    retry = context.should_retry and not context.is_cancelled()
    return TaskOutcome(UP_FOR_RETRY if retry else FAILED, error=exc, reason=_describe(exc))


def _clear_xcoms(client: MessageClient, keys: Iterable[str]) -> None:
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
    client: MessageClient,
    *,
    watchdog: Watchdog | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> Any:
    """Call the task function with its injected and bound arguments (``async def`` included),
    bounded by its ``execution_timeout`` when it has one (``timedelta(0)`` is none, as in Airflow).
    Each bound reference costs one ``GetXCom`` (``bundle.core.authoring.binding``); a mapped task
    instance's element a few more, whatever the width (``bundle.core.mapped``)."""
    args, kwargs = task.plan.arguments(context, client, lambda: task_logger(task))
    kwargs.update(free_arguments(task, context, client, arguments))
    return call_bounded(task, task.fn, args, kwargs, is_async=task.plan.is_async, watchdog=watchdog)


def call_bounded(
    task: Task,
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    is_async: bool,
    watchdog: Watchdog | None = None,
) -> Any:
    """Call ``fn`` (the task function, a sensor's poke loop, a resume function) under ``task``'s
    ``execution_timeout`` when it has one, else as :func:`call_plain` does.

    Written once because every way a task's code runs must be bounded alike (Airflow bounds
    ``execute`` and ``resume_execution`` the same way), and so that the start-up cost stays where it
    is: ``bundle.core.timeouts`` (and ``threading``) is imported only by a task with a limit."""
    limit = task.effective_options.get("execution_timeout")
    if limit:
        from .timeouts import call_with_timeout  # only tasks with a limit pay for it

        return call_with_timeout(fn, args, kwargs, is_async=is_async, limit=limit, watchdog=watchdog)
    return call_plain(fn, args, kwargs, is_async=is_async)


def call_plain(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], *, is_async: bool
) -> Any:
    """Call ``fn``, running it to completion in a fresh event loop when it is ``async def``;
    ``asyncio`` is imported only then, so a plain task never pays for it."""
    if is_async:
        import asyncio  # only async functions pay for it

        return asyncio.run(fn(*args, **kwargs))
    return fn(*args, **kwargs)


def free_arguments(
    task: Task, context: Context, client: MessageClient, arguments: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The values of the parameters nothing injects: bound ones (one ``GetXCom`` per reference), a
    mapped task instance's element (``bundle.core.mapped``), ``arguments`` given by
    ``bundle.testing``; then the task's ``map_index_template`` label, sent once they are known."""
    resolved: dict[str, Any] = {}
    if task.bound or arguments or task.expand_input is not None:
        from .authoring.binding import resolve_arguments

        resolved = resolve_arguments(task, client, arguments, map_index=context.ti.map_index)
    if task.effective_options.get("map_index_template") is not None and context.map_label is None:
        from .mapped import start_label  # SetRenderedMapIndex

        start_label(task, context, client, resolved)
    return resolved


def task_logger(task: Task) -> logging.Logger:
    """The logger injected into a task: named after the task's module, like ``__name__`` loggers."""
    import logging

    return logging.getLogger(getattr(task.fn, "__module__", None) or "task")


def _push_result(
    client: MessageClient, result: Any, *, multiple_outputs: bool, mapped_length: int | None = None
) -> None:
    if multiple_outputs:
        if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
            raise TypeError(f"multiple_outputs=True needs a dict with str keys, got {type(result).__name__}")
        for key, value in result.items():
            client.push_xcom(key, value)
    if mapped_length is None:
        client.push_xcom("return_value", result)
    else:  # a mapped task expands over it: the scheduler needs the length
        from .mapped import push_return_value

        push_return_value(client, result, mapped_length)


def _mapped_over(task: Task) -> bool:
    """Whether a mapped task of the DAG expands over this task's output (Airflow's
    ``iter_mapped_dependants``; a reduce does not count)."""
    return any(
        other.expand_input is not None and any(ref.task is task for ref in other.expand_input.references())
        for other in task.dag.tasks.values()
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_finalizers(registry: Registry, context: Context, client: MessageClient, outcome: TaskOutcome) -> None:
    """Airflow's ``finalize()``: the task's ``on_success/skipped/retry/failure_callback`` for the
    state just reported; modes call it *after* the terminal message, as the Python task runner
    does. Only tasks with callbacks load ``bundle.core.callbacks``; it never raises."""
    task = registry.lookup_task(context.ti.dag_id, context.ti.task_id)
    if task is None:
        return
    options = task.effective_options
    if not any(options.get(kind) for kind in CALLBACK_OPTIONS):
        return
    from .callbacks import run_terminal_callbacks

    run_terminal_callbacks(task, context, client, outcome)
