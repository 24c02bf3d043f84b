"""The Airflow Python-SDK twin of tests/e2e/bundles/worker_slots.py: same tasks, pools (its own
two), priorities, trigger, pokes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator, Variable, task

WAIT = timedelta(seconds=25)
POKE_INTERVAL = 8
DEFER_POOL, RESCHEDULE_POOL = "python_slots_defer", "python_slots_resched"


class Waiter(BaseOperator):
    def execute(self, context):
        deferred_at = datetime.now(timezone.utc).isoformat()
        self.defer(trigger=TimeDeltaTrigger(WAIT), method_name="resumed", kwargs={"deferred_at": deferred_at})

    def resumed(self, context, event, deferred_at):
        return deferred_at


with DAG(dag_id="python_worker_slots_dag", schedule=None):
    Waiter(task_id="waiter", pool=DEFER_POOL, priority_weight=10)

    @task(pool=DEFER_POOL)
    def after_defer() -> str:
        return "ran while the waiter was deferred"

    @task.sensor(
        mode="reschedule", poke_interval=POKE_INTERVAL, timeout=300, pool=RESCHEDULE_POOL, priority_weight=10
    )
    def sensor(**context) -> bool:
        key = f"pokes__{context['dag'].dag_id}__{context['run_id']}__{context['ti'].task_id}"
        pokes = int(Variable.get(key, default="0")) + 1
        Variable.set(key, str(pokes))
        return pokes >= 3

    @task(pool=RESCHEDULE_POOL)
    def after_poke() -> str:
        return "ran while the sensor was up_for_reschedule"

    after_defer()
    sensor()
    after_poke()
