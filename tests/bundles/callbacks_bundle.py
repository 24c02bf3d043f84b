"""Tasks with ``on_*_callback`` for tests/test_callbacks.py (released supervisor, bundle-run, in process).

Every callback logs one ``callback ...`` line with what it was given, and reads the variable
``cb_seen`` (a read request, allowed), so a test can tell from the task log and the Execution API's
call order when each ran and with which context.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from bundle import Bundle, Client, Context, FailTask, RequestNotAllowed, SkipTask, serve

bundle = Bundle("callback_tests", version="1", queue="pybundle")
log = logging.getLogger("callback_tests")


def record(ctx: Context, client: Client, exception) -> None:
    seen = client.get_variable("cb_seen", default="unset")
    log.info(
        "callback %s task=%s try=%s exception=%r var=%s",
        ctx.callback,
        ctx.ti.task_id,
        ctx.ti.try_number,
        exception,
        seen,
    )


def second(ctx: Context) -> None:
    log.info("callback second %s", ctx.callback)


def raises(ctx: Context) -> None:
    raise ValueError(f"callback {ctx.callback} broke")


def writes(ctx: Context, client: Client) -> None:
    """Tries every kind of request a callback may not send; logs what each raised."""
    attempts = {
        "set_variable": lambda: client.set_variable("cb_written", "x"),
        "push_xcom": lambda: client.push_xcom("cb_key", 1),
        "succeed": lambda: client.request({"type": "TaskState", "state": "skipped"}),
        "trigger": lambda: client.trigger_dag_run("other_dag", "cb_run"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except RequestNotAllowed as exc:
            log.info("refused %s: %s|%s|%s", name, exc.request_type, exc.group, exc.workload)
        else:
            log.info("allowed %s", name)
    raise RequestNotAllowed("uncaught on purpose") from None  # and an escaping one changes nothing


def hangs(ctx: Context) -> None:
    log.info("callback hangs starts")
    time.sleep(120)


dag = bundle.dag(
    "callbacks_dag",
    default_args={"on_failure_callback": record, "on_retry_callback": [record, second]},
)


@dag.task(on_execute_callback=record, on_success_callback=[raises, record])
def succeeds(client: Client) -> str:
    client.get_variable("task_var", default=None)
    return "ok"


@dag.task(retries=1)
def fails() -> None:
    raise RuntimeError("task broke")


@dag.task(on_failure_callback=[writes, record])
def fails_hard() -> None:
    raise FailTask("no retry")


@dag.task(on_skipped_callback=record)
def skips() -> None:
    raise SkipTask("nothing to do")


@dag.task(on_success_callback=[hangs, record])
def hangs_after() -> None:
    return None


@dag.task(on_execute_callback=writes, on_success_callback=writes)
def guarded(client: Client) -> None:
    client.push_xcom("task_key", "task value")  # the task itself may still write


with dag.task_group("grp", default_args={"on_skipped_callback": second}):

    @dag.task
    def grouped() -> None:
        raise SkipTask("grouped skip")


# For bundle-run: a task that fails its first try and succeeds on the retry.
local = bundle.dag("callbacks_local")


@local.task(
    retries=1,
    retry_delay=timedelta(seconds=1),
    on_retry_callback=record,
    on_success_callback=record,
    on_execute_callback=second,
)
def flaky(ctx: Context) -> None:
    if ctx.ti.try_number == 1:
        raise RuntimeError("first try fails")


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
