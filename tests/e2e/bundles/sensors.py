"""Sensors in both modes (tests/e2e/test_sensors.py, tests/test_sensors.py, bundle-run).

tests/e2e/dags/python_sensors.py is the same DAG written with Airflow's ``@task.sensor``: same task
ids, options and pokes, so the two runs' states and tries can be compared in one deployment. Each
poke counts itself in a Variable named after the DAG, run and task, so a poke made by a new process
(reschedule mode) sees the earlier ones.

* ``wait_third`` (reschedule, every 8 s): done on its third poke, pushing ``{"pokes": 3}``; the
  scheduler reschedules it twice, with the try number unchanged. ``after`` gets its value.
* ``never_done`` (reschedule every 8 s, timeout 12 s, ``retries=1``): times out; failed on try 1, not retried.
* ``soft_never``: the same with ``soft_fail=True``: skipped.
* ``poke_third`` (poke, every 1 s): done on its third poke in one process, pushing "p3".

The reschedule intervals are 8 s, not 2: on a loaded machine the executor reports a finished poke a
few seconds late, and a report that arrives after the next poke was queued makes Airflow's scheduler
fail the task ("finished with state success, but the task instance's state attribute is queued"),
for a Python sensor as for a bundle's.
"""

from __future__ import annotations

from bundle import Bundle, Client, Context, PokeReturnValue, serve

bundle = Bundle("sensors", version="1.0.0", queue="python-bundle")
dag = bundle.dag("sensor_dag", schedule=None)


def count_poke(ctx: Context, client: Client) -> int:
    """This poke's number: one more than the Variable says so far."""
    key = f"pokes__{ctx.dag_id}__{ctx.run_id}__{ctx.task_id}"
    count = int(client.get_variable(key, default="0")) + 1
    client.set_variable(key, str(count))
    return count


@dag.sensor(mode="reschedule", poke_interval=8, timeout=300)
def wait_third(ctx: Context, client: Client) -> PokeReturnValue:
    pokes = count_poke(ctx, client)
    return PokeReturnValue(pokes >= 3, {"pokes": pokes})


@dag.task
def after(result: dict) -> int:
    return result["pokes"]


@dag.sensor(mode="reschedule", poke_interval=8, timeout=12, retries=1)
def never_done(ctx: Context, client: Client) -> bool:
    count_poke(ctx, client)
    return False


@dag.sensor(mode="reschedule", poke_interval=8, timeout=12, soft_fail=True)
def soft_never(ctx: Context, client: Client) -> bool:
    count_poke(ctx, client)
    return False


@dag.sensor(poke_interval=1, timeout=60)
def poke_third(ctx: Context, client: Client) -> PokeReturnValue:
    return PokeReturnValue(count_poke(ctx, client) >= 3, "p3")


with dag:
    after(wait_third())

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
