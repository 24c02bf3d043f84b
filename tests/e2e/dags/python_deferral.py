"""The Airflow Python-SDK twin of tests/e2e/bundles/deferral.py, with Airflow's own deferrable
operators: same task ids, triggers, resume values and TriggerDagRun options."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.triggers.file import FileTrigger
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator, task

WAIT = timedelta(seconds=8)
CHILD_SLEEP = 15  # as in the bundle: the deferred wait's child outlasts the scheduler's deferral event


class WaitTime(BaseOperator):
    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(WAIT), method_name="time_done", kwargs={"n": 3})

    def time_done(self, context, event, n):
        return {"n": n, "event_is_datetime": isinstance(event, datetime) and event.utcoffset() is not None}


class WaitFile(BaseOperator):
    def execute(self, context):
        path = context["dag_run"].conf["path"]
        self.defer(trigger=FileTrigger(path, poke_interval=1.0), method_name="file_done")

    def file_done(self, context, event):
        return {"event": event}


with DAG(dag_id="python_deferral_dag", schedule=None):
    WaitTime(task_id="wait_time")
    WaitFile(task_id="wait_file")

    @task
    def quick() -> str:
        return "quick"

    quick()
    TriggerDagRunOperator(
        task_id="trigger_child",
        trigger_dag_id="python_deferral_child",
        conf={"from": "poll"},
        wait_for_completion=True,
        poke_interval=2,
        openlineage_inject_parent_info=False,
    )
    TriggerDagRunOperator(
        task_id="trigger_child_deferred",
        trigger_dag_id="python_deferral_child",
        conf={"from": "defer", "sleep": CHILD_SLEEP},
        wait_for_completion=True,
        poke_interval=2,
        deferrable=True,
        openlineage_inject_parent_info=False,
    )

with DAG(dag_id="python_deferral_child", schedule=None):

    @task
    def child_work(dag_run=None) -> str:
        time.sleep(dag_run.conf.get("sleep", 0))
        return f"child of {dag_run.conf.get('from')}"

    child_work()
