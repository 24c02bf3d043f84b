"""DAG-level callbacks (tests/e2e/test_dag_callbacks.py and tests/test_dag_callbacks.py).

``dag_callbacks_failing`` fails (its task raises) and has an ``on_failure_callback``;
``dag_callbacks_passing`` succeeds and has an ``on_success_callback``. Each callback logs one marker
line with what it was given (run, reason, the relevant task, conf, an environment variable it read,
the write it was refused), which the tests find in the DAG processor's log.
"""

from __future__ import annotations

import logging

from bundle import Bundle, Client, Context, RequestNotAllowed, serve

bundle = Bundle("dag_callbacks", version="1.0.0", queue="python-bundle")
log = logging.getLogger("dag_callbacks")


def report(ctx: Context, client: Client, log: logging.Logger) -> None:
    """Stands for a per-run alert: reads from the environment, logs, may not write."""
    try:  # only the environment answers: a variable that is only in Airflow's database is refused
        seen = client.get_variable("dag_callback_marker")
    except RequestNotAllowed as exc:
        seen = f"{exc.request_type} refused"
    try:
        client.set_variable("alerted", "yes")
    except RequestNotAllowed as exc:
        refused = f"{exc.request_type} ({exc.group}) refused for a {exc.workload}"
    else:
        refused = "set_variable was allowed"
    log.info(
        "DAG-CALLBACK-MARKER %s dag=%s run=%s reason=%s state=%s ti=%s conf=%s var=%s; %s",
        ctx.callback,
        ctx.dag_run.dag_id,
        ctx.dag_run.run_id,
        ctx.reason,
        ctx.dag_run_state,
        ctx.ti.task_id,
        dict(ctx.dag_run.conf),
        seen,
        refused,
    )


failing = bundle.dag("dag_callbacks_failing", schedule=None, on_failure_callback=report)
passing = bundle.dag("dag_callbacks_passing", schedule=None, on_success_callback=[report])


@failing.task
def explode() -> None:
    raise ValueError("boom for the DAG callback")


@passing.task
def fine() -> str:
    return "ok"


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
