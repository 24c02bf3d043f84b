"""Sensor arguments in DAG and task-group ``default_args``, as Airflow's ``apply_defaults`` gives
them: to sensors only (the decorator's own win, a group's over the DAG's), ignored by every other
task; serialized as core serializes the Python twin, carried by the generated DAG file, and used by
the runtime under the released supervisor."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, TaskGroup, task
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Bundle, RegistrationError
from bundle.core.authoring.sensors import SENSOR_OPTIONS
from bundle.introspection.serialization import serialize_dag
from bundle.target import load_target
from packer.dagfile import STUB_ONLY_TASK_KEYS
from tests.bundles import sensor_default_args_bundle as source
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

from .serialization_compare import compare_serialized
from .test_dagfile import assert_same_dags, generated, import_with_dagbag

BUNDLE = Path(source.__file__)
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG_ID = "sensor_defaults"


def python_twin() -> Any:
    """The same DAG with Airflow's own decorators."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with DAG(DAG_ID, schedule=None, default_args=source.DEFAULT_ARGS) as dag:

        @task.sensor(queue="python-bundle")
        def inherits() -> bool:
            return False

        @task.sensor(queue="python-bundle", poke_interval=7, mode="poke")
        def overrides() -> bool:
            return True

        @task(queue="python-bundle")
        def plain() -> int:
            return 1

        first = inherits()
        overrides()
        first >> plain()
        with TaskGroup("g", default_args=source.GROUP_DEFAULT_ARGS):

            @task.sensor(queue="python-bundle")
            def grouped() -> bool:
                return True

            grouped()
    return dag


def _seconds(value: Any) -> Any:
    return value.total_seconds() if hasattr(value, "total_seconds") else value


def test_sensors_get_default_args_as_airflows_do_and_other_tasks_ignore_them() -> None:
    dag = load_target(str(BUNDLE)).registry.dags[DAG_ID]
    twin = python_twin()
    for task_id in ("inherits", "overrides", "g.grouped"):
        spec, operator = dag.tasks[task_id].sensor, twin.task_dict[task_id]
        ours = {name: getattr(spec, name) for name in SENSOR_OPTIONS}
        airflow = {name: _seconds(getattr(operator, name)) for name in SENSOR_OPTIONS}
        assert ours == airflow, task_id
    assert (
        dag.tasks["inherits"].sensor.mode == "reschedule" and dag.tasks["inherits"].sensor.poke_interval == 5
    )
    assert dag.tasks["g.grouped"].sensor.mode == "poke" and dag.tasks["g.grouped"].sensor.never_fail
    plain = dag.tasks["plain"]
    assert plain.sensor is None and not SENSOR_OPTIONS & plain.effective_options.keys()
    assert not any(hasattr(twin.task_dict["plain"], name) for name in ("poke_interval", "mode"))
    assert plain.effective_options["retries"] == 1  # the rest of default_args still applies


def test_serialization_equals_cores_for_the_python_twin() -> None:
    ours = serialize_dag(load_target(str(BUNDLE)).registry.dags[DAG_ID], fileloc="x")
    DagSerialization.validate_schema(ours)
    python = DagSerialization.to_dict(python_twin())
    decorator_keys = STUB_ONLY_TASK_KEYS | {"ui_color", "_needs_expansion", "has_retry_policy", "doc_md"}
    diffs = compare_serialized(ours, python, ignored_task_keys=decorator_keys)
    assert diffs == [], "\n".join(diffs)
    assert ours["dag"]["default_args"]["__var"]["poke_interval"] == 5  # as given, as core writes it
    tasks = {t["__var"]["task_id"]: t["__var"] for t in ours["dag"]["tasks"]}
    assert {t: v.get("reschedule") for t, v in tasks.items()} == {
        "inherits": True,
        "overrides": False,
        "plain": None,
        "g.grouped": False,
    }
    assert not SENSOR_OPTIONS & tasks["plain"].keys()


def test_the_generated_dag_file_carries_them_and_round_trips(tmp_path: Path) -> None:
    path, document = generated(load_target(str(BUNDLE)), tmp_path)
    text = path.read_text()
    assert '"mode": "reschedule"' in text and '"never_fail": True' in text, text
    assert_same_dags(document, import_with_dagbag(path))


def test_bad_values_and_names_are_refused_naming_the_owner() -> None:
    with pytest.raises(RegistrationError, match=r"dag 'd.default_args': invalid mode: 'sometimes'"):
        Bundle("b").dag("d", default_args={"mode": "sometimes"})
    dag = Bundle("b").dag("d")
    with pytest.raises(RegistrationError, match=r"task group 'd.g': invalid soft_fail"):
        dag.task_group("g", default_args={"soft_fail": "yes"})
    with pytest.raises(RegistrationError, match=r"unknown attribute 'poke_intervall'"):
        dag.task_group("h", default_args={"poke_intervall": 5})
    # exclusive options are checked where they meet, on the sensor, as in Airflow
    both = Bundle("b").dag("e", default_args={"soft_fail": True, "never_fail": True})
    both.task(lambda: None, task_id="plain")  # a plain task does not see them
    with pytest.raises(RegistrationError, match=r"sensor 'e.s': soft_fail and never_fail are mutually"):
        both.sensor(task_id="s")(lambda: True)
    with pytest.raises(RegistrationError, match=r"unknown attribute 'poke_interval'"):
        both.task(lambda: None, task_id="t", poke_interval=5)  # still not a task option


def test_supervised_sensor_reschedules_with_the_dags_default_args() -> None:
    api = FakeExecutionAPI(max_tries=1)
    run = supervised_run(COMMAND, dag_id=DAG_ID, task_id="inherits", api=api)
    assert api.problems() == [], run.describe()
    assert (run.final_state, run.server_state) == ("up_for_reschedule", "up_for_reschedule"), run.describe()
