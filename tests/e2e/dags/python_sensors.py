"""The Airflow Python-SDK twin of tests/e2e/bundles/sensors.py: same task ids, options and pokes."""

from __future__ import annotations

from airflow.sdk import DAG, PokeReturnValue, Variable, get_current_context, task


def count_poke() -> int:
    context = get_current_context()
    key = f"pokes__{context['dag'].dag_id}__{context['run_id']}__{context['ti'].task_id}"
    count = int(Variable.get(key, default="0")) + 1
    Variable.set(key, str(count))
    return count


with DAG(dag_id="python_sensor_dag", schedule=None):

    @task.sensor(mode="reschedule", poke_interval=8, timeout=300)
    def wait_third() -> PokeReturnValue:
        pokes = count_poke()
        return PokeReturnValue(pokes >= 3, {"pokes": pokes})

    @task
    def after(result: dict) -> int:
        return result["pokes"]

    @task.sensor(mode="reschedule", poke_interval=8, timeout=12, retries=1)
    def never_done() -> bool:
        count_poke()
        return False

    @task.sensor(mode="reschedule", poke_interval=8, timeout=12, soft_fail=True)
    def soft_never() -> bool:
        count_poke()
        return False

    @task.sensor(poke_interval=1, timeout=60)
    def poke_third() -> PokeReturnValue:
        return PokeReturnValue(count_poke() >= 3, "p3")

    after(wait_third())
    never_done()
    soft_never()
    poke_third()
