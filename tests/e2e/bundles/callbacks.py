"""A bundle whose tasks have ``on_failure_callback`` / ``on_retry_callback`` (tests/e2e/test_callbacks.py).

The callbacks may only read and log: each logs what it saw (the task's exception, a variable the
deployment imported) and what a write attempt raised, so the test reads them from the task log.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bundle import Bundle, Client, Context, RequestNotAllowed, serve

bundle = Bundle("callbacks", version="1.0.0", queue="python-bundle")
log = logging.getLogger("callbacks")
dag = bundle.dag("callbacks_dag", schedule=None)


def alert(ctx: Context, client: Client, exception) -> None:
    """Stands for a Slack / PagerDuty alert: reads a setting, logs, may not write."""
    minimum = client.get_variable("min_amount")
    try:
        client.set_variable("alerted", "yes")
    except RequestNotAllowed as exc:
        refused = f"{exc.request_type} ({exc.group}) refused for a {exc.workload}"
    else:
        refused = "set_variable was allowed"
    log.info(
        "%s for %s try %s: %r; min_amount=%s; %s",
        ctx.callback,
        ctx.ti.task_id,
        ctx.ti.try_number,
        exception,
        minimum,
        refused,
    )


@dag.task(on_failure_callback=alert)
def doomed() -> None:
    raise ValueError("the warehouse is on fire")


@dag.task(retries=1, retry_delay=timedelta(seconds=1), on_retry_callback=alert)
def flaky(ctx: Context) -> str:
    if ctx.ti.try_number == 1:
        raise RuntimeError("first try fails")
    return "second try"


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
