"""Task callbacks (``on_execute_callback``, ``on_success_callback``, ``on_failure_callback``,
``on_retry_callback``, ``on_skipped_callback``), run where Airflow's Python task runner runs them.

apache-airflow-task-sdk 1.3.2's ``task_runner`` runs ``on_execute_callback`` just before the task's
``execute`` (after the XComs of earlier tries were cleared, outside ``execution_timeout``), and the
other four in ``finalize()``, which ``main()`` calls *after* ``run()`` has sent the terminal message
(``SucceedTask`` / ``RetryTask`` / ``TaskState``): success -> ``on_success_callback``, skipped ->
``on_skipped_callback``, up_for_retry -> ``on_retry_callback``, failed -> ``on_failure_callback``.
Each callback of a list runs in turn; one that raises is logged and the next still runs; nothing a
callback does changes the outcome. pybundle does the same, and adds what the Python runner leaves
to the supervisor's ``task_success_overtime``:

* least privilege that the callback's code cannot undo: each callback runs in a process of its
  own, forked from the runtime, whose only way to Airflow is a proxy in the runtime that forwards
  read + logging requests (``bundle.core.messages.CALLBACK_ACCESS``) and answers anything else
  with ``RequestNotAllowed`` (``bundle.core.confinement``). Clients that answer from memory
  (``bundle.testing``) run callbacks in process, limited to the same requests;
* a bound: each callback gets ``PYBUNDLE_CALLBACK_TIMEOUT_SECONDS`` (default 10 s, below the
  supervisor's 20 s ``task_success_overtime``, after which it would stop the process); one still
  running then is logged with the stack it is stuck in and killed (in process: abandoned on a
  daemon thread that dies with the process).

A callback declares what it needs as a task does, by annotation (``Context`` -- here a
``CallbackContext`` with ``exception`` and ``callback`` -- ``Client``, ``logging.Logger``), plus a
parameter named ``exception`` for the task's exception (``None`` unless it failed or will retry).

Loaded only by tasks that have callbacks.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
import time

from .context import Context
from .injection import CLIENT, CONTEXT, InjectionPlan, function_name, plan_injection
from .messages import CALLBACK_ACCESS
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Callable
    from typing import Any

    from .client import Client
    from .execution import TaskOutcome
    from .registry import Task

TIMEOUT_ENV = "PYBUNDLE_CALLBACK_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 10.0
CALLBACK_KINDS = (
    "on_execute_callback",
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
)
EXCEPTION_PARAMETER = "exception"
# Which callbacks Airflow's finalize() runs for each terminal state (none for removed).
_FOR_STATE = {
    "success": "on_success_callback",
    "skipped": "on_skipped_callback",
    "up_for_retry": "on_retry_callback",
    "failed": "on_failure_callback",
}


class CallbackContext(Context):
    """The task's ``Context`` as a callback sees it: ``exception`` is the task's exception for
    ``on_failure_callback`` / ``on_retry_callback`` (else ``None``, as Airflow's
    ``context["exception"]``), ``callback`` the kind being run (``"on_failure_callback"``)."""

    __slots__ = ("callback", "exception")

    def __init__(self, task_context: Context, callback: str, exception: BaseException | None) -> None:
        for cls in type(task_context).__mro__:  # every slot, whatever later features add to Context
            for name in getattr(cls, "__slots__", ()):
                if hasattr(task_context, name):
                    object.__setattr__(self, name, getattr(task_context, name))
        self.callback = callback
        self.exception = exception

    def __repr__(self) -> str:
        return f"CallbackContext({self.callback}, ti={self.ti!r}, exception={self.exception!r})"


class _Plan:
    __slots__ = ("exception_arg", "injection")

    def __init__(self, injection: InjectionPlan, exception_arg: tuple[str, bool] | None):
        self.injection = injection
        self.exception_arg = exception_arg  # (name, positional) of the ``exception`` parameter


def normalise_callbacks(value: Any) -> tuple[Callable[..., Any], ...]:
    """A callable or a list of them (Airflow's ``TaskStateChangeCallbackAttrType``) -> a tuple,
    each signature checked now so a bad callback fails at import, not after the task ran."""
    if value is None:
        return ()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not callable(item):
            raise TypeError(f"expected a callable or a list of callables, got {type(item).__name__}")
        plan_callback(item)
    return tuple(items)


def plan_callback(fn: Callable[..., Any]) -> _Plan:
    """How to call ``fn``: injected parameters by annotation, ``exception`` by name, defaults.

    (A positional-only ``exception`` comes after the injected parameters: ``plan_injection``
    refuses the other order, so appending it last is right.)"""
    where = f"callback {function_name(fn)}"
    injection = plan_injection(fn, where)
    exception_arg = None
    for free in injection.free:
        if free.name == EXCEPTION_PARAMETER:
            exception_arg = (free.name, free.kind == "positional-only")
        elif not free.has_default:
            raise ValueError(
                f"{where}: parameter {free.name!r} cannot be given: annotate it Context, Client or "
                f"logging.Logger, name it {EXCEPTION_PARAMETER!r}, or give it a default"
            )
    return _Plan(injection, exception_arg)


def has_callbacks(task: Task) -> bool:
    """True when any of the task's effective options (default_args included) holds a callback."""
    options = task.effective_options
    return any(options.get(kind) for kind in CALLBACK_KINDS)


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        runtime_log().warning("Ignoring %s=%r: not a number of seconds", TIMEOUT_ENV, raw)
        return DEFAULT_TIMEOUT_SECONDS
    return value if value > 0 else DEFAULT_TIMEOUT_SECONDS


def run_callbacks(
    task: Task, kind: str, context: Context, client: Client, exception: BaseException | None = None
) -> int:
    """Run the task's ``kind`` callbacks in order, each bounded and with a read+logging client.

    Never raises: a callback's failure is logged. Returns how many callbacks ran."""
    callbacks = task.effective_options.get(kind) or ()
    if not callbacks:
        return 0
    callback_context = CallbackContext(context, kind, exception)
    limit = timeout_seconds()
    confine = _confines(client)
    callback_client = client if confine else _restricted(client)
    for index, fn in enumerate(callbacks):
        _run_one(task, kind, index, fn, callback_context, callback_client, limit, confine)
    return len(callbacks)


def _confines(client: Client) -> bool:
    """Whether callbacks run in a process of their own: for a client with a real channel to
    Airflow (``MessageClient.confine_callbacks``), wherever ``fork`` exists."""
    return bool(getattr(client, "confine_callbacks", False)) and hasattr(os, "fork")


def run_terminal_callbacks(task: Task | None, context: Context, client: Client, outcome: TaskOutcome) -> int:
    """Airflow's ``finalize()``: the callbacks for the state just reported (after the terminal
    message), with the task's exception for failure and retry."""
    kind = _FOR_STATE.get(outcome.state)
    if task is None or kind is None:
        return 0
    failed = outcome.state in ("failed", "up_for_retry")
    return run_callbacks(task, kind, context, client, outcome.error if failed else None)


def _restricted(client: Client) -> Client:
    restricted = getattr(client, "restricted", None)
    if restricted is None:  # a client that is not a MessageClient: nothing to narrow
        return client
    return restricted(CALLBACK_ACCESS)


def _run_one(
    task: Task,
    kind: str,
    index: int,
    fn: Callable[..., Any],
    context: CallbackContext,
    client: Client,
    limit: float,
    confine: bool = False,
) -> None:
    label = f"{kind}[{index}] {function_name(fn)}"
    if confine:
        from .confinement import run_confined

        def invoke_with(confined: Client) -> Any:  # in the callback's process, on its client
            args, kwargs = _arguments(task, fn, context, confined)
            return fn(*args, **kwargs)

        started = time.monotonic()
        runtime_log().debug("Running task callback %s in a process of its own", label)
        run_confined(
            invoke_with,
            client=client,  # type: ignore[arg-type]
            access=CALLBACK_ACCESS,
            what="task callback",
            label=label,
            limit=limit,
            abandoned=", the task's state stands",
        )
        runtime_log().debug("Task callback %s ended after %.3f s", label, time.monotonic() - started)
        return

    def invoke() -> Any:
        args, kwargs = _arguments(task, fn, context, client)
        return fn(*args, **kwargs)

    run_bounded(
        invoke,
        what="task callback",
        label=label,
        thread_name=f"pybundle-{kind}",
        limit=limit,
        level=logging.DEBUG,
        abandoned=", the task's state stands",
    )


def run_bounded(
    invoke: Callable[[], Any],
    *,
    what: str,
    label: str,
    thread_name: str,
    limit: float,
    level: int,
    abandoned: str = "",
) -> None:
    """Run one callback (``invoke`` binds its arguments and calls it; a coroutine it returns is
    awaited) on a daemon thread in a copy of the caller's context variables (go-plugin mode routes
    log records by them), for at most ``limit`` seconds. A hang is logged with the stack it is stuck
    in and abandoned, an exception with its traceback; neither is raised. Task and DAG callbacks
    share it; ``level`` is their start/finish records' level."""
    failure: list[BaseException] = []

    def call() -> None:
        try:
            result = invoke()
            if hasattr(result, "__await__"):
                import asyncio

                async def wait() -> Any:
                    return await result

                asyncio.run(wait())
        except BaseException as exc:  # a callback never changes the outcome, whatever it raises
            failure.append(exc)

    title = what[0].upper() + what[1:]
    runner = contextvars.copy_context()
    thread = threading.Thread(target=runner.run, args=(call,), name=thread_name, daemon=True)
    started = time.monotonic()
    runtime_log().log(level, "Running %s %s", what, label)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        runtime_log().error(
            "%s %s did not finish within %.1f s (%s); abandoned it%s. It was here:\n%s",
            title,
            label,
            limit,
            TIMEOUT_ENV,
            abandoned,
            _stack_of(thread),
        )
        return
    if failure:
        exc = failure[0]
        runtime_log().error("Failed to run %s %s: %s: %s", what, label, type(exc).__name__, exc, exc_info=exc)
        return
    runtime_log().log(level, "%s %s finished in %.3f s", title, label, time.monotonic() - started)


def _arguments(
    task: Task, fn: Callable[..., Any], context: CallbackContext, client: Client
) -> tuple[list[Any], dict[str, Any]]:
    plan = plan_callback(fn)
    from .execution import task_logger

    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for injection in plan.injection.injections:
        source = injection.source
        value = context if source == CONTEXT else client if source == CLIENT else task_logger(task)
        if injection.positional:
            args.append(value)
        else:
            kwargs[injection.name] = value
    if plan.exception_arg is not None:
        name, positional = plan.exception_arg
        if positional:
            args.append(context.exception)
        else:
            kwargs[name] = context.exception
    return args, kwargs


def _stack_of(thread: threading.Thread) -> str:
    import traceback

    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "  (no stack: the thread just ended)"
    ours = os.path.dirname(os.path.dirname(__file__))  # the bundle package: pybundle's own frames
    frames = [
        entry
        for entry in traceback.extract_stack(frame)
        if not entry.filename.startswith(ours) and os.path.basename(entry.filename) != "threading.py"
    ]
    return "".join(traceback.format_list(frames)).rstrip()
