"""Enforce a task's ``execution_timeout`` the way Airflow's Python task runner does.

Airflow (task-sdk 1.3.2, ``_run_execute_callable``) wraps only the task's ``execute`` call, not the
XCom push after it, in ``TimeoutPosix``: ``setitimer(ITIMER_REAL)`` and a SIGALRM handler raising
``AirflowTaskTimeout("Timeout, PID: <pid>")`` in the main thread. A limit of ``timedelta(0)`` is falsy
and means no limit; a negative one fails at once, before the task starts. The exception is a
``BaseException`` and retryable: the task ends ``up_for_retry`` when the run has a retry left.

What can interrupt a task depends on where it runs, so there are three ways here:

* a sync task on the main thread (coordinator mode, ``bundle.testing`` called from the main thread):
  the same SIGALRM alarm, raising :class:`~bundle.core.errors.TaskTimeout` in the task's code;
* an async task on the main thread: the coroutine is cancelled at the deadline (a signal would land
  in the event loop's machinery rather than in the task's code) and ``TaskTimeout`` raised;
* anywhere else (go-plugin mode runs each ``Execute`` on a gRPC thread, where signals cannot be
  used): the task runs on its own thread and the caller stops waiting at the deadline. Python cannot
  stop a thread, so it is abandoned, said so in the log, and may keep running in the background.

Neither a signal nor a cancellation ends a task blocked in a C call that ignores them, or one that
catches ``TaskTimeout`` and carries on; a mode that can do better (coordinator mode can report and
exit: its process runs one task) passes a ``watchdog``, armed for exactly the task's call.

This module is imported only by tasks that have a limit, so tasks without one pay nothing for it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from .errors import TaskTimeout
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Callable, Coroutine, Mapping, Sequence
    from typing import Any

    # arm(seconds) -> disarm: a mode's backstop for a task the timeout itself cannot stop.
    Watchdog = Callable[[float], Callable[[], None]]

# How long an abandoned-thread wait gives a cancelled coroutine to end by itself (its ``finally``
# blocks run), so that an async task that does stop is not reported as an abandoned thread.
ASYNC_SETTLE_SECONDS = 1.0
# An alarm that arrives inside a protected function is retried this much later.
ALARM_RETRY_SECONDS = 0.01
_PROTECTED: set[object] = set()


def protect_from_alarm(fn: Callable[..., Any]) -> None:
    """Never raise the timeout inside ``fn``, but just after it: e.g. while a frame is half-written
    to the supervisor, where an exception would corrupt the stream the terminal message still needs."""
    _PROTECTED.add(fn.__code__)


def timeout_error(limit: timedelta) -> TaskTimeout:
    """The exception a timed-out task ends with; Airflow's text, so logs read the same."""
    return TaskTimeout(f"Timeout, PID: {os.getpid()}", timeout=limit)


def call_with_timeout(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    is_async: bool,
    limit: timedelta,
    watchdog: Watchdog | None = None,
) -> Any:
    """Call the task function, raising ``TaskTimeout`` once it has run ``limit`` (see module doc)."""
    seconds = limit.total_seconds()
    if seconds <= 0:  # Airflow: "It's possible we're already timed out, so fast-fail if true"
        raise timeout_error(limit)
    import threading

    disarm = watchdog(seconds) if watchdog is not None else None
    try:
        if threading.current_thread() is not threading.main_thread():
            return _on_worker_thread(fn, args, kwargs, is_async, limit)
        if is_async:
            import asyncio

            return asyncio.run(_bounded(fn(*args, **kwargs), limit))
        return _with_alarm(fn, args, kwargs, limit)
    finally:
        if disarm is not None:
            disarm()


def log_timed_out(limit: timedelta) -> None:
    """The record every timed-out task's log gets, whichever way the timeout ended it."""
    runtime_log().error("Task timed out after %s (execution_timeout), PID: %d", limit, os.getpid())


def _with_alarm(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], limit: timedelta
) -> Any:
    """Airflow's ``TimeoutPosix``: SIGALRM raises ``TaskTimeout`` wherever the task's code is."""
    import signal

    state = {"running": True, "fired": False}

    def on_alarm(_signum: int, frame: Any) -> None:
        if not state["running"]:  # the task returned in the instant before the alarm was cancelled
            return
        while frame is not None:
            if frame.f_code in _PROTECTED:
                signal.setitimer(signal.ITIMER_REAL, ALARM_RETRY_SECONDS)
                return
            frame = frame.f_back
        state["fired"] = True
        raise timeout_error(limit)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit.total_seconds())
    try:
        return fn(*args, **kwargs)
    finally:
        state["running"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if state["fired"]:  # logged here, not in the handler: a record half-written there could deadlock
            log_timed_out(limit)


async def _bounded(coroutine: Coroutine[Any, Any, Any], limit: timedelta) -> Any:
    """Await the task's coroutine for at most ``limit``; then cancel it, let it unwind, time out.

    Unlike ``asyncio.wait_for``, a ``TimeoutError`` the task raises itself stays that error."""
    import asyncio

    task = asyncio.ensure_future(coroutine)
    done, _ = await asyncio.wait({task}, timeout=limit.total_seconds())
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task  # its finally / async-with blocks run; one that ignores the cancel keeps us here
    except asyncio.CancelledError:  # the usual end; a task that swallowed it still ran too long
        pass
    log_timed_out(limit)
    raise timeout_error(limit)


def _on_worker_thread(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], is_async: bool, limit: timedelta
) -> Any:
    """Run the task on its own thread and stop waiting at the deadline (no signals off the main thread).

    The thread runs in a copy of the caller's context variables, so its records still reach the
    task's log (go-plugin mode routes them by context)."""
    import contextvars
    import threading

    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            if is_async:
                import asyncio

                outcome["result"] = asyncio.run(_bounded(fn(*args, **kwargs), limit))
            else:
                outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller, who decides the task's outcome
            outcome["error"] = exc
        finally:
            finished.set()

    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(target,),
        name=f"pybundle-task-{getattr(fn, '__name__', 'task')}",
        daemon=True,
    )
    worker.start()
    wait = limit.total_seconds() + (ASYNC_SETTLE_SECONDS if is_async else 0.0)
    if not finished.wait(wait):
        log_timed_out(limit)
        runtime_log().error(
            "The task's thread %s cannot be stopped (Python threads cannot be killed): it is abandoned "
            "and may keep running in the background of this process",
            worker.name,
        )
        raise timeout_error(limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
