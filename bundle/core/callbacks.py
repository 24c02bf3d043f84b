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
from .options import CALLBACK_OPTIONS
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
# The five task callback kinds, spelled once where the options are (execution.py checks them too).
CALLBACK_KINDS = CALLBACK_OPTIONS
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

        def spec() -> bytes:  # the same call, as data, for a process that shares nothing of ours
            return callback_spec(task, kind, index, context, label)

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
            spec=spec,
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


# -- a callback as data (go-plugin mode: the zygote's children, bundle.core.zygote) -----------------
def callback_spec(task: Task, kind: str, index: int, context: CallbackContext, label: str) -> bytes:
    """Which callback of which task to run, with its context, pickled for a process forked from
    the zygote. Only the context's data fields are sent (never the runtime's ``Client``, which
    the asset accessors hold: ``_dumps`` refuses one anywhere); each that cannot be pickled
    arrives as ``None``; ``map_label`` as its ``text`` only; the exception, if it cannot be
    pickled, as a stand-in ``Exception`` with the same type name and text (and no traceback)."""
    import pickle

    fields = {}
    for name in _SENT_FIELDS:
        value = getattr(context, name, None)
        if name == "map_label" and value is not None:
            value = SentLabel(getattr(value, "text", None))
        try:
            fields[name] = _dumps(value)
        except Exception:
            fields[name] = _dumps(None)
    exception = context.exception
    try:
        pickled_exception = _dumps(exception)
        pickle.loads(pickled_exception)
    except Exception:
        pickled_exception = b""
    logging_levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level
    }
    return _dumps(
        {
            "dag_id": context.ti.dag_id,  # as run_finalizers looked the task up
            "task_id": context.ti.task_id,
            "kind": kind,
            "index": index,
            "label": label,
            "fields": fields,
            "cancelled": bool(context.cancelled.is_set()),
            "exception": pickled_exception,
            "exception_text": (type(exception).__name__, str(exception)) if exception is not None else None,
            "root_level": logging.getLogger().level,
            "levels": logging_levels,
        }
    )


# The Context's data: what a callback reads. Not ``_assets`` (it holds the runtime's client).
_SENT_FIELDS = ("ti", "dag_run", "params", "should_retry", "task_reschedule_count", "map_label")


class SentLabel:
    """``ctx.map_label`` in a zygote's child: the rendered ``map_index_template`` (``text``) only."""

    __slots__ = ("text",)

    def __init__(self, text: str | None) -> None:
        self.text = text

    def __reduce__(self) -> tuple[Any, ...]:
        return SentLabel, (self.text,)


def spec_invoker(spec: bytes, registry: Any) -> tuple[Callable[[Client], Any], Any, str, str]:
    """In the zygote's child: what ``callback_spec`` described, as ``(invoke, ti, what, label)``."""
    import pickle

    described = pickle.loads(spec)
    label = str(described["label"])

    def invoke(client: Client) -> Any:
        logging.getLogger().setLevel(described["root_level"])
        for name, level in described["levels"].items():
            logging.getLogger(name).setLevel(level)
        task = registry.lookup_task(described["dag_id"], described["task_id"])
        if task is None:
            raise LookupError(f"task {described['dag_id']}.{described['task_id']} is not registered here")
        fn = task.effective_options[described["kind"]][described["index"]]
        context = object.__new__(CallbackContext)
        context._assets = None  # made on first use, with this process's client
        for name, value in described["fields"].items():
            object.__setattr__(context, name, pickle.loads(value))
        context.cancelled = threading.Event()
        if described["cancelled"]:
            context.cancelled.set()
        context.exception = _exception(described)
        context.callback = described["kind"]
        args, kwargs = _arguments(task, fn, context, client)
        return fn(*args, **kwargs)

    ti = pickle.loads(described["fields"]["ti"]) if "ti" in described["fields"] else None
    return invoke, ti, "task callback", label


def _exception(described: dict[str, Any]) -> BaseException | None:
    import pickle

    if described["exception"]:
        try:
            return pickle.loads(described["exception"])
        except Exception:
            pass
    if described["exception_text"] is None:
        return None
    name, text = described["exception_text"]
    return type(str(name), (Exception,), {"__module__": "bundle.core.callbacks"})(text)


def _dumps(value: Any) -> bytes:
    """``pickle.dumps`` that also carries read-only mappings (``dag_run.conf``) and events."""
    import io
    import pickle
    from types import MappingProxyType

    from .client import MessageClient

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, MessageClient):  # its transport holds the task's token
                raise TypeError("the runtime's client is never sent to a callback's process")
            if type(obj) is MappingProxyType:
                return _read_only, (dict(obj),)
            if isinstance(obj, threading.Event):
                return _event, (obj.is_set(),)
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def _read_only(mapping: dict[str, Any]) -> Any:
    from types import MappingProxyType

    return MappingProxyType(mapping)


def _event(is_set: bool) -> threading.Event:
    event = threading.Event()
    if is_set:
        event.set()
    return event
