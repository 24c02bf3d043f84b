"""A bundle whose tasks defer to the standard provider's triggers and trigger another DAG
(tests/e2e/test_deferral.py). tests/e2e/dags/python_deferral.py is the same DAGs written with
Airflow's own deferrable operators (``self.defer``, ``TriggerDagRunOperator``).

* ``wait_time`` defers to a ``TimeDeltaTrigger`` a few seconds ahead and resumes with its event;
* ``wait_file`` defers to a ``FileTrigger`` on ``conf["path"]``, which the test creates;
* ``quick`` runs while the others are deferred;
* ``trigger_child`` / ``trigger_child_deferred`` trigger ``deferral_child`` and wait for it, by
  polling ``GetDagRunState`` / by deferring to ``DagStateTrigger``;
* ``deferral_bad_dag.bad_classpath`` defers to a trigger the triggerer cannot import.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from bundle import Bundle, Context, serve
from bundle.triggers import FileTrigger, TimeDeltaTrigger, Trigger

WAIT = timedelta(seconds=8)
# The deferred wait's child run takes this long, so its DagStateTrigger cannot fire before the
# scheduler has read the executor's event of the deferral: Airflow 3.3.2's scheduler fails a task
# whose trigger beat that event ("finished with state success, but ... queued"), Python task or not.
CHILD_SLEEP = 15

bundle = Bundle("deferral", version="1.0.0", queue="python-bundle")
dag = bundle.dag("deferral_dag", schedule=None)
child = bundle.dag("deferral_child", schedule=None)
bad = bundle.dag("deferral_bad_dag", schedule=None)


@dag.task
def wait_time(ctx: Context) -> None:
    ctx.defer(trigger=TimeDeltaTrigger(WAIT), method_name="time_done", kwargs={"n": 3})


@wait_time.resume
def time_done(event: datetime, n: int) -> dict:
    return {"n": n, "event_is_datetime": isinstance(event, datetime) and event.utcoffset() is not None}


@dag.task
def wait_file(ctx: Context) -> None:
    ctx.defer(trigger=FileTrigger(ctx.dag_run.conf["path"], poke_interval=1.0), method_name="file_done")


@wait_file.resume
def file_done(event: object) -> dict:
    return {"event": event}


@dag.task
def quick() -> str:
    return "quick"


@dag.task
def trigger_child(ctx: Context) -> None:
    ctx.trigger_dag_run("deferral_child", conf={"from": "poll"}, wait_for_completion=True, poke_interval=2)


@dag.task
def trigger_child_deferred(ctx: Context) -> None:
    ctx.trigger_dag_run(
        "deferral_child",
        conf={"from": "defer", "sleep": CHILD_SLEEP},
        wait_for_completion=True,
        poke_interval=2,
        deferrable=True,
    )


@child.task
def child_work(ctx: Context) -> str:
    time.sleep(ctx.dag_run.conf.get("sleep", 0))
    return f"child of {ctx.dag_run.conf.get('from')}"


@bad.task
def bad_classpath(ctx: Context) -> None:
    ctx.defer(trigger=Trigger("no_such_package.triggers.NeverTrigger", x=1), method_name="never")


@bad_classpath.resume
def never(event: object) -> None: ...


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
