"""Waiting without holding a slot (tests/e2e/test_worker_slots.py). tests/e2e/dags/python_worker_slots.py
is the same DAG with Airflow's own operators.

Two one-slot pools, each shared by a task that waits and a short task:

* ``waiter`` (pool ``bundle_slots_defer``, priority 10: the scheduler gives it the slot first) defers
  to a ``TimeDeltaTrigger`` ``WAIT`` ahead; its resume function returns the time it deferred at.
  ``after_defer`` (same pool) can only start once the waiter's slot is free.
* ``sensor`` (pool ``bundle_slots_resched``, priority 10) is a reschedule-mode sensor, done on its
  third poke ``POKE_INTERVAL`` apart; ``after_poke`` (same pool) likewise.

If waiting held the slot, ``after_defer`` / ``after_poke`` could only start after the waiter ended.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bundle import Bundle, Client, Context, serve
from bundle.triggers import TimeDeltaTrigger

WAIT = timedelta(seconds=25)
POKE_INTERVAL = 8  # s; as in tests/e2e/bundles/sensors.py: shorter is flaky on a loaded machine
DEFER_POOL, RESCHEDULE_POOL = "bundle_slots_defer", "bundle_slots_resched"

bundle = Bundle("worker_slots", version="1.0.0", queue="python-bundle")
dag = bundle.dag("worker_slots_dag", schedule=None)


@dag.task(pool=DEFER_POOL, priority_weight=10)
def waiter(ctx: Context) -> None:
    deferred_at = datetime.now(timezone.utc).isoformat()
    ctx.defer(trigger=TimeDeltaTrigger(WAIT), method_name="resumed", kwargs={"deferred_at": deferred_at})


@waiter.resume
def resumed(event: datetime, deferred_at: str) -> str:
    return deferred_at


@dag.task(pool=DEFER_POOL)
def after_defer() -> str:
    return "ran while the waiter was deferred"


@dag.sensor(
    mode="reschedule", poke_interval=POKE_INTERVAL, timeout=300, pool=RESCHEDULE_POOL, priority_weight=10
)
def sensor(ctx: Context, client: Client) -> bool:
    key = f"pokes__{ctx.dag_id}__{ctx.run_id}__{ctx.task_id}"
    pokes = int(client.get_variable(key, default="0")) + 1
    client.set_variable(key, str(pokes))
    return pokes >= 3


@dag.task(pool=RESCHEDULE_POOL)
def after_poke() -> str:
    return "ran while the sensor was up_for_reschedule"


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
