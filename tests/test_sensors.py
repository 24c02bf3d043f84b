"""Sensors (``@dag.sensor``) against Airflow's own code and the released supervisor.

* Options: the names, defaults and refusals of task-sdk 1.3.2's ``BaseSensorOperator``; the next
  poke interval (exponential backoff, jitter hash, ``max_wait``) equals Airflow's
  ``_get_next_poke_interval`` for the same dag, task, start and poke count.
* Under the released supervisor (tests/harness): poke mode succeeds on its third poke and pushes the
  ``PokeReturnValue``'s value; a poke-mode timeout fails without retry (``soft_fail``: skipped);
  reschedule mode ends ``up_for_reschedule`` through ``RescheduleTask`` (the PATCH body validated by
  core's server model, the terminal message by task-sdk's ``RescheduleTask``); a rescheduled run
  asks ``GetTaskRescheduleStartDate`` for the first try of its retry budget and times out from it.
* A plain task does not import the sensor modules.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.sensor import BaseSensorOperator
from airflow.sdk.execution_time.comms import RescheduleTask

from bundle import Bundle, PokeReturnValue, RegistrationError, SensorTimeout
from bundle.coordinator.task_mode import terminal_message
from bundle.core.authoring.sensors import sensor_spec
from bundle.core.execution import UP_FOR_RESCHEDULE, TaskOutcome
from bundle.core.sensing import next_poke_interval
from bundle.testing import run_task
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

ROOT = Path(__file__).resolve().parent.parent
SENSORS = ROOT / "tests" / "bundles" / "sensor_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(SENSORS)]


# -- options ----------------------------------------------------------------------------------------


def test_defaults_are_airflows() -> None:
    with DAG("d", schedule=None):
        python = BaseSensorOperator(task_id="s")
    ours = sensor_spec("d.s", {})
    assert (ours.poke_interval, ours.timeout, ours.mode, ours.soft_fail) == (
        python.poke_interval,
        python.timeout,
        python.mode,
        python.soft_fail,
    )
    assert (ours.exponential_backoff, ours.max_wait, ours.silent_fail, ours.never_fail) == (
        python.exponential_backoff,
        python.max_wait,
        python.silent_fail,
        python.never_fail,
    )
    assert ours.reschedule is python.reschedule is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "wait"}, "the mode must be one of ['poke', 'reschedule']; received 'wait'"),
        ({"poke_interval": -1}, "poke_interval must be a timedelta or a non-negative number"),
        ({"timeout": "1h"}, "timeout must be a timedelta or a non-negative number"),
        ({"max_wait": -0.5}, "max_wait must be a timedelta or a non-negative number"),
        ({"soft_fail": True, "never_fail": True}, "soft_fail and never_fail are mutually exclusive"),
    ],
)
def test_bad_options_are_refused_naming_the_task(options: dict[str, Any], message: str) -> None:
    dag = Bundle("b").dag("d")
    with pytest.raises(RegistrationError, match=r"sensor 'd\.s'") as raised:
        dag.sensor(task_id="s", **options)(lambda: True)
    assert message in str(raised.value)
    with DAG("d", schedule=None), pytest.raises(ValueError):  # Airflow refuses them too
        BaseSensorOperator(task_id="s", **options)


def test_non_bool_flags_are_refused() -> None:
    """Stricter than Airflow (which takes any truthy value), like every other bundle option."""
    with pytest.raises(RegistrationError, match="soft_fail must be a bool"):
        Bundle("b").dag("d").sensor(task_id="s", soft_fail=1)(lambda: True)


def test_sensor_options_in_default_args_are_checked() -> None:
    # accepted and applied to sensors only: tests/test_sensor_default_args.py
    with pytest.raises(RegistrationError, match=r"dag 'd.default_args': invalid poke_interval"):
        Bundle("b").dag("d", default_args={"poke_interval": -5})


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
@pytest.mark.parametrize("max_wait", [None, 50])
def test_exponential_backoff_equals_airflows(mode: str, max_wait: float | None) -> None:
    with DAG("backoff_dag", schedule=None):
        python = BaseSensorOperator(
            task_id="wait",
            poke_interval=7,
            timeout=3600,
            mode=mode,
            exponential_backoff=True,
            max_wait=max_wait,
        )
    ours = sensor_spec(
        "backoff_dag.wait",
        {
            "poke_interval": 7,
            "timeout": 3600,
            "mode": mode,
            "exponential_backoff": True,
            "max_wait": max_wait,
        },
    )
    started: datetime | float = datetime(2026, 1, 1, tzinfo=timezone.utc) if mode == "reschedule" else 123.5
    for elapsed in (0.0, 3.0, 20.0, 100.0, 900.0, 3500.0):
        for count in (1, 2, 3, 6):

            def duration(elapsed: float = elapsed) -> float:
                return elapsed

            expected = python._get_next_poke_interval(started, duration, count)
            assert next_poke_interval(ours, "backoff_dag", "wait", started, duration, count) == expected


def test_silent_fail_and_never_fail() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("d")
    calls: list[int] = []

    @dag.sensor(poke_interval=0, silent_fail=True)
    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("not mounted yet")
        return True

    @dag.sensor(poke_interval=0, never_fail=True)
    def broken() -> bool:
        raise OSError("gone")

    @dag.sensor(poke_interval=0)
    def raising() -> bool:
        raise OSError("gone")

    assert run_task(bundle, "d", "flaky").state == "success" and len(calls) == 3
    assert run_task(bundle, "d", "broken").state == "skipped"
    assert run_task(bundle, "d", "raising", max_tries=1).state == "up_for_retry"  # retried, as Airflow


def test_a_poke_raising_sensor_timeout_fails_without_retry() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("d")

    @dag.sensor
    def gives_up() -> bool:
        raise SensorTimeout("upstream gone for good")

    result = run_task(bundle, "d", "gives_up", max_tries=3)
    assert result.state == "failed" and "upstream gone for good" in (result.reason or "")


def test_plain_return_values_are_not_pushed() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("d")

    @dag.sensor
    def truthy() -> str:
        return "yes"

    result = run_task(bundle, "d", "truthy")
    assert result.state == "success" and result.xcoms == {}  # as BaseSensorOperator.execute


def test_poke_mode_stops_waiting_when_cancelled() -> None:
    import threading

    bundle = Bundle("b")
    dag = bundle.dag("d")
    started = threading.Event()

    @dag.sensor(poke_interval=60)
    def forever() -> bool:
        started.set()
        return False

    from bundle.core.client import MessageClient
    from bundle.core.context import Context, DagRunInfo, TaskInstanceInfo
    from bundle.core.execution import execute_task
    from bundle.core.provider import registry_of

    context = Context(TaskInstanceInfo("d", "r", "forever"), DagRunInfo("d", "r"))
    threading.Thread(target=lambda: (started.wait(5), context.cancelled.set()), daemon=True).start()
    begun = datetime.now(timezone.utc)
    outcome = execute_task(registry_of(bundle), context, MessageClient(lambda body: None, context.ti))
    assert outcome.state == "failed" and "asked to stop" in (outcome.reason or "")
    assert datetime.now(timezone.utc) - begun < timedelta(seconds=10)


# -- the terminal message --------------------------------------------------------------------------


def test_reschedule_terminal_message_is_task_sdks_model() -> None:
    when = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
    body = terminal_message(TaskOutcome(UP_FOR_RESCHEDULE, reschedule_date=when))
    model = RescheduleTask.model_validate(body)
    assert model.model_dump() == body  # nothing dropped, nothing added by the model
    assert set(body) == {"type", "state", "reschedule_date", "end_date"}
    assert body["reschedule_date"] == when and body["end_date"].tzinfo is not None


# -- under the released supervisor -----------------------------------------------------------------


def _xcom(api: FakeExecutionAPI, task_id: str) -> Any:
    return {k[3]: v for k, v in api.xcoms.items() if k[2] == task_id}


def test_poke_mode_succeeds_on_third_poke_and_pushes_the_value() -> None:
    api = FakeExecutionAPI()
    run = supervised_run(COMMAND, dag_id="sensors", task_id="third_poke", api=api)
    assert api.problems() == [], run.describe()
    assert (run.final_state, run.server_state) == ("success", "success"), run.describe()
    assert _xcom(api, "third_poke") == {"return_value": {"pokes": 3}}
    assert run.find_logs("Success criteria met. Exiting."), run.describe()


@pytest.mark.parametrize(("task_id", "state"), [("poke_timeout", "failed"), ("poke_soft", "skipped")])
def test_poke_mode_timeout_is_not_retried(task_id: str, state: str) -> None:
    api = FakeExecutionAPI(max_tries=2)  # should_retry is True: a plain failure would be retried
    run = supervised_run(COMMAND, dag_id="sensors", task_id=task_id, api=api)
    assert api.problems() == [], run.describe()
    assert (run.final_state, run.server_state) == (state, state), run.describe()
    assert [u["state"] for u in run.state_updates] == [state]
    assert "Sensor has timed out; run duration of" in str(run.log_records)


def test_reschedule_mode_sends_reschedule_task() -> None:
    api = FakeExecutionAPI(max_tries=1)
    before = datetime.now(timezone.utc)
    run = supervised_run(COMMAND, dag_id="sensors", task_id="resched", api=api)
    after = datetime.now(timezone.utc)
    assert api.problems() == [], run.describe()  # the PATCH body passed core's TIStateUpdate
    assert (run.final_state, run.server_state) == ("up_for_reschedule", "up_for_reschedule"), run.describe()
    (update,) = run.state_updates
    assert set(update) == {"state", "reschedule_date", "end_date"}, update
    assert update["state"] == "up_for_reschedule"
    reschedule_date = datetime.fromisoformat(update["reschedule_date"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=30) <= reschedule_date <= after + timedelta(seconds=30)
    assert api.calls_to("GET", "/task-reschedules/*") == []  # first poke: nothing to ask


@pytest.mark.parametrize(("task_id", "state"), [("resched_timeout", "failed"), ("resched_soft", "skipped")])
def test_rescheduled_run_times_out_from_the_first_reschedule(task_id: str, state: str) -> None:
    ti_id = "0197a5d4-0000-7000-8000-00000000aa01"
    first = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    api = FakeExecutionAPI(
        max_tries=3,  # try 3 of a task with retries=1: its budget began at try 3 (3 - 1 + 1)
        run_context={"task_reschedule_count": 4},
        reschedule_start_dates={ti_id: first},
    )
    run = supervised_run(COMMAND, dag_id="sensors", task_id=task_id, api=api, ti_id=ti_id, try_number=3)
    assert api.problems() == [], run.describe()
    assert (run.final_state, run.server_state) == (state, state), run.describe()
    (ask,) = api.calls_to("GET", "/task-reschedules/*")
    assert ask.path.endswith(f"/task-reschedules/{ti_id}/start_date")
    expected_try = 3 - (1 if task_id == "resched_timeout" else 0) + 1
    assert str(ask.query.get("try_number")) in (str(expected_try), f"['{expected_try}']"), ask.query
    assert "exceeds the specified timeout of 60.0" in str(run.log_records)


def test_rescheduled_run_within_its_timeout_reschedules_again() -> None:
    ti_id = "0197a5d4-0000-7000-8000-00000000aa02"
    first = (datetime.now(timezone.utc) - timedelta(seconds=20)).isoformat()
    api = FakeExecutionAPI(
        max_tries=1, run_context={"task_reschedule_count": 1}, reschedule_start_dates={ti_id: first}
    )
    run = supervised_run(COMMAND, dag_id="sensors", task_id="resched_timeout", api=api, ti_id=ti_id)
    assert api.problems() == [], run.describe()
    assert run.server_state == "up_for_reschedule", run.describe()
    assert len(api.calls_to("GET", "/task-reschedules/*")) == 1


def test_reschedule_mode_done_pushes_the_value() -> None:
    api = FakeExecutionAPI()
    run = supervised_run(COMMAND, dag_id="sensors", task_id="resched_done", api=api)
    assert api.problems() == [], run.describe()
    assert run.server_state == "success", run.describe()
    assert _xcom(api, "resched_done") == {"return_value": "ok"}


# -- lean start-up ---------------------------------------------------------------------------------


def test_a_plain_task_does_not_load_the_sensor_modules() -> None:
    code = (
        "import sys\n"
        "from bundle import Bundle\n"
        "from bundle.testing import run_task\n"
        "b = Bundle('b'); d = b.dag('d')\n"
        "@d.task\n"
        "def plain(): return 1\n"
        "assert run_task(b, 'd', 'plain').state == 'success'\n"
        "print(sorted(m for m in sys.modules if 'sens' in m))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_poke_return_value_is_airflows_shape() -> None:
    assert not PokeReturnValue(False, 1) and PokeReturnValue(True)
    assert PokeReturnValue(True, {"a": 1}).xcom_value == {"a": 1}


# -- serialization and the generated DAG file ------------------------------------------------------

E2E_SENSORS = ROOT / "tests" / "e2e" / "bundles" / "sensors.py"
E2E_TWIN = ROOT / "tests" / "e2e" / "dags" / "python_sensors.py"


def test_serialization_equals_cores_for_task_sensor() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    from bundle.introspection.serialization import serialize_dag
    from bundle.target import load_target
    from packer.dagfile import STUB_ONLY_TASK_KEYS
    from tests.serialization_compare import compare_serialized

    bundle = load_target(str(E2E_SENSORS))
    ours = serialize_dag(bundle.registry.dags["sensor_dag"], fileloc="x")
    DagSerialization.validate_schema(ours)
    bag = DagBag(dag_folder=str(E2E_TWIN))
    assert bag.import_errors == {}, bag.import_errors
    python = DagSerialization.to_dict(bag.dags["python_sensor_dag"])
    python["dag"]["dag_id"] = "sensor_dag"
    for entry in python["dag"]["tasks"]:  # the twin runs on Airflow's workers, the bundle on its queue
        entry["__var"]["queue"] = "python-bundle"
    # The decorators' own fields (class, callable, ui_color) are not the scheduler's business;
    # _is_sensor and reschedule are, and are compared.
    decorator_keys = STUB_ONLY_TASK_KEYS | {"ui_color", "_needs_expansion", "has_retry_policy", "doc_md"}
    diffs = compare_serialized(ours, python, ignored_task_keys=decorator_keys)
    assert diffs == [], "\n".join(diffs)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in ours["dag"]["tasks"]}
    assert {t: (v.get("_is_sensor"), v.get("reschedule")) for t, v in tasks.items()} == {
        "wait_third": (True, True),
        "after": (None, None),
        "never_done": (True, True),
        "soft_never": (True, True),
        "poke_third": (True, False),
    }
    loaded = DagSerialization.from_dict(ours)
    deps = {type(dep).__name__ for dep in loaded.task_dict["wait_third"].deps}
    assert "ReadyToRescheduleDep" in deps
    assert "ReadyToRescheduleDep" not in {type(dep).__name__ for dep in loaded.task_dict["after"].deps}
    assert loaded.task_dict["wait_third"].reschedule is True


def test_generated_dag_file_declares_sensor_stubs(tmp_path: Path) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    from bundle.target import load_target
    from tests.test_dagfile import assert_same_dags, generated, import_with_dagbag

    bundle = load_target(str(E2E_SENSORS))
    path, document = generated(bundle, tmp_path)
    source = path.read_text()
    assert "    _sensor(wait_third_task, reschedule=True)\n" in source
    assert "    _sensor(poke_third_task, reschedule=False)\n" in source
    assert source.count("def _sensor(") == 1
    imported = import_with_dagbag(path)
    assert_same_dags(document, imported)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in imported["sensor_dag"]["dag"]["tasks"]}
    assert (tasks["wait_third"]["_is_sensor"], tasks["wait_third"]["reschedule"]) == (True, True)
    assert tasks["wait_third"]["_operator_name"] == "@task.stub"
    assert "_is_sensor" not in tasks["after"]
    loaded = DagSerialization.from_dict(imported["sensor_dag"])
    assert "ReadyToRescheduleDep" in {type(dep).__name__ for dep in loaded.task_dict["never_done"].deps}
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--diff", str(path)], capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


# -- bundle-run ------------------------------------------------------------------------------------


def test_bundle_run_runs_sensors_in_both_modes_as_airflow(tmp_path: Path) -> None:
    """The DAG tests/e2e runs beside its Python twin ends here as there: the local scheduler waits
    for each reschedule_date and runs the same try again, with task_reschedule_count and the first
    reschedule's start (the timeouts are counted from it)."""
    from tests import sensors_expected as expected
    from tests.test_bundle_run import bundle_run

    run = bundle_run(E2E_SENSORS, "--dag", expected.BUNDLE_DAG, tmp_path=tmp_path)
    assert run.report is not None, run.describe()
    rows = run.report["tasks"]
    assert {t: (row["state"], row["tries"]) for t, row in rows.items()} == expected.TASKS, run.describe()
    xcoms = {(x["task_id"], x["key"]): x["value"] for x in run.report["xcoms"]}
    assert xcoms == expected.XCOMS
    wait = run.tries("wait_third")
    assert [(t["try_number"], t["state"]) for t in wait] == [
        (1, "up_for_reschedule"),
        (1, "up_for_reschedule"),
        (1, "success"),
    ]
    # Each reschedule waited for its reschedule_date (poke_interval=8) before the next poke.
    pokes = [
        datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        for r in wait[-1]["log"]
        if r["event"].startswith(("Rescheduling task", "Success criteria met"))
    ]
    assert len(pokes) == 3 and all(b - a >= timedelta(seconds=8) for a, b in itertools.pairwise(pokes))
    never = run.tries("never_done")
    assert {t["try_number"] for t in never} == {1} and never[-1]["state"] == "failed"
    assert "exceeds the specified timeout of 12.0" in (never[-1]["note"] or "")
    assert "wait_third: up_for_reschedule (try 1/1" in run.stderr and "pokes again in" in run.stderr


# -- go-plugin mode --------------------------------------------------------------------------------


def test_plugin_mode_reschedules_through_the_execution_api(tmp_path: Path) -> None:
    """go-plugin mode reports states to the Execution API itself, so it can say up_for_reschedule
    (TIRescheduleStatePayload, validated by the fake with core's model); a rescheduled run asks
    task-reschedules/{id}/start_date and times out from it."""
    from tests.plugin_host import ExecutionApiServer, PluginHost, bundle_command, execute_request

    first = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    api = FakeExecutionAPI(max_tries=1)
    home = tmp_path / "home"
    home.mkdir()
    with ExecutionApiServer(api) as server:
        env = {"AIRFLOW_HOME": str(home), "AIRFLOW__EXECUTION_API_URL": server.url}
        with PluginHost.start(bundle_command(SENSORS), env=env) as host:
            waiting = api.add_task_instance(dag_id="sensors", run_id="r1", task_id="resched", state="queued")
            host.execute(
                execute_request(
                    ti_id=waiting,
                    dag_id="sensors",
                    run_id="r1",
                    task_id="resched",
                    bundle_name="sensor_tests",
                ),
                timeout=60,
            )
            api.run_context = {"task_reschedule_count": 2}
            api.reschedule_start_dates = {}
            late = api.add_task_instance(
                dag_id="sensors", run_id="r2", task_id="resched_timeout", state="queued"
            )
            api.reschedule_start_dates[late] = first
            host.execute(
                execute_request(
                    ti_id=late,
                    dag_id="sensors",
                    run_id="r2",
                    task_id="resched_timeout",
                    bundle_name="sensor_tests",
                ),
                timeout=60,
            )
            host.kill()
    assert api.problems() == [], host.stderr_text()
    assert api.task_instances[waiting]["state"] == "up_for_reschedule"
    (update,) = [c.json for c in api.calls_to("PATCH", f"/task-instances/{waiting}/state")]
    assert set(update) == {"state", "reschedule_date", "end_date"}
    assert api.task_instances[late]["state"] == "failed"  # SensorTimeout: no retry although max_tries=1
    assert len(api.calls_to("GET", f"/task-reschedules/{late}/start_date")) == 1
