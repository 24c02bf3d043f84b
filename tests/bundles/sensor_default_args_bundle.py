"""Sensor arguments in DAG and task-group default_args (tests/test_sensor_default_args.py); the
Python twin there declares the same DAG with Airflow's @task.sensor."""

from datetime import timedelta

from bundle import Bundle

bundle = Bundle("sensor_default_args", version="1.0", queue="python-bundle")
DEFAULT_ARGS = {
    "poke_interval": 5,
    "mode": "reschedule",
    "timeout": timedelta(seconds=30),
    "soft_fail": True,
    "exponential_backoff": True,
    "max_wait": 20,
    "silent_fail": True,
    "retries": 1,
}
GROUP_DEFAULT_ARGS = {"mode": "poke", "poke_interval": 9, "never_fail": True, "soft_fail": False}
dag = bundle.dag("sensor_defaults", schedule=None, default_args=DEFAULT_ARGS)


@dag.sensor
def inherits() -> bool:
    return False


@dag.sensor(poke_interval=7, mode="poke")
def overrides() -> bool:
    return True


@dag.task
def plain() -> int:
    return 1


with dag.task_group("g", default_args=GROUP_DEFAULT_ARGS):

    @dag.sensor
    def grouped() -> bool:
        return True


inherits >> plain
