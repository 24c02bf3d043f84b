"""DagSerialization v3 of pybundle DAGs against apache-airflow-core 3.3.2.

Every case builds one DAG twice, with pybundle's API and with the Airflow SDK (a plain
``BaseOperator`` subclass per task), and checks that pybundle's dict passes
``DagSerialization.validate_schema``, loads with ``DagSerialization.from_dict``, loads into the same
scheduler-side DAG as Python's, and equals ``DagSerialization.to_dict`` of the Python DAG on every
key except the ones the cross-SDK conformance check ignores (spec ``coordinator-protocol.md``
§13.3 rule 7 and §13.5). The cases follow the shapes of the shared cross-SDK fixture.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest

pytest.importorskip("airflow.serialization.serialized_objects")

from airflow.sdk import DAG
from airflow.sdk.bases.operator import BaseOperator
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Bundle, RegistrationError
from bundle.introspection.serialization import (
    serialize_dag,
    serialize_registry,
    task_module_of,
    task_type_of,
)

from .serialization_compare import assert_equivalent, compare_serialized, loaded_view

FILELOC = "/srv/airflow/dags/example_bundle"
UTC = timezone.utc
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


class Noop(BaseOperator):
    """The Python-side stand-in for a bundle task: a plain operator with no extra fields."""

    def execute(self, context: Any) -> None:
        return None


# -- cases ----------------------------------------------------------------------------------------


@dataclass
class Case:
    """One DAG shape. ``dag`` / ``tasks`` are given to both SDKs (Airflow's names and types);
    ``bundle_dag`` / ``bundle_tasks`` replace values on the pybundle side only, to exercise its
    normalisation (seconds for durations, naive datetimes, presets)."""

    id: str
    dag: dict[str, Any] = field(default_factory=dict)
    tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=lambda: [("solo", {})])
    edges: list[tuple[str, str]] = field(default_factory=list)
    queue: str | None = None
    bundle_dag: dict[str, Any] = field(default_factory=dict)
    bundle_tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        return f"case_{self.id}"


EVERY_TASK_OPTION: dict[str, Any] = {
    "owner": "data-team",
    "start_date": datetime(2026, 2, 1, tzinfo=UTC),
    "end_date": datetime(2026, 11, 30, tzinfo=UTC),
    "trigger_rule": "all_done",
    "depends_on_past": True,
    "ignore_first_depends_on_past": True,
    "wait_for_past_depends_before_skipping": True,
    "wait_for_downstream": True,
    "retries": 2,
    "queue": "typescript",
    "pool": "tiny",
    "pool_slots": 2,
    "execution_timeout": timedelta(seconds=120),
    "retry_delay": timedelta(seconds=600),
    "retry_exponential_backoff": 2,
    "max_retry_delay": timedelta(seconds=900),
    "priority_weight": 5,
    "weight_rule": "upstream",
    "executor": "LocalExecutor",
    "do_xcom_push": False,
    "doc_md": "extracts things",
    "map_index_template": "{{ task.task_id }}",
    "max_active_tis_per_dag": 3,
    "max_active_tis_per_dagrun": 4,
    "task_display_name": "Extract!",
    "multiple_outputs": True,
}

# Every option explicitly at its default: Python writes none of them (bar retry_delay).
EVERY_TASK_OPTION_AT_DEFAULT: dict[str, Any] = {
    "owner": "airflow",
    "trigger_rule": "all_success",
    "depends_on_past": False,
    "ignore_first_depends_on_past": False,
    "wait_for_past_depends_before_skipping": False,
    "wait_for_downstream": False,
    "retries": 0,
    "queue": "default",
    "pool": "default_pool",
    "pool_slots": 1,
    "retry_delay": timedelta(seconds=300),
    "retry_exponential_backoff": 0,
    "priority_weight": 1,
    "weight_rule": "downstream",
    "do_xcom_push": True,
    "multiple_outputs": False,
    "execution_timeout": None,
    "max_retry_delay": None,
    "doc_md": None,
}

DAG_CASES = [
    Case("minimal"),
    Case(
        "cron_every_option",
        dag={
            "schedule": "0 3 * * *",
            "description": "a Dag that sets everything",
            "dag_display_name": "Conformance Cron",
            "doc_md": "# notes",
            "tags": ["gamma", "alpha", "gamma"],
            "start_date": JAN_1,
            "end_date": datetime(2026, 12, 31, 23, 30, 15, tzinfo=UTC),
            "dagrun_timeout": timedelta(seconds=300),
            "catchup": True,
            "render_template_as_native_obj": True,
            "disable_bundle_versioning": True,
            "is_paused_upon_creation": True,
            "max_active_tasks": 8,
            "max_active_runs": 3,
            "max_consecutive_failed_dag_runs": 2,
        },
        tasks=[("extract", EVERY_TASK_OPTION), ("transform", EVERY_TASK_OPTION_AT_DEFAULT)],
        edges=[("extract", "transform")],
        bundle_dag={"dagrun_timeout": 300, "start_date": datetime(2026, 1, 1)},  # seconds, naive = UTC
        bundle_tasks={"extract": {"execution_timeout": 120, "retry_delay": 600.0, "max_retry_delay": 900}},
    ),
    Case(
        "once_fail_fast_fan_out",
        dag={"schedule": "@once", "fail_fast": True},
        tasks=[("seed", {}), ("beta", {}), ("alpha", {"trigger_rule": "all_done_setup_success"})],
        edges=[("seed", "beta"), ("seed", "alpha")],
    ),
    Case("continuous", dag={"schedule": "@continuous", "max_active_runs": 1}, tasks=[("watch", {})]),
    Case(
        "timedelta_schedule",
        dag={"schedule": timedelta(hours=1, seconds=5), "start_date": JAN_1, "catchup": True},
    ),
    Case("timedelta_schedule_days", dag={"schedule": timedelta(days=7)}),
    Case(
        "diamond",
        dag={"schedule": "0 0 * * *"},
        tasks=[("root", {}), ("right", {}), ("left", {}), ("join", {})],
        edges=[("root", "right"), ("root", "left"), ("right", "join"), ("left", "join")],
    ),
    Case("cron_seconds", dag={"schedule": "30 3 * * MON-FRI 15"}, tasks=[("tick", {})]),
    Case(
        "timezone_named",
        dag={"schedule": "0 6 * * *", "start_date": datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Berlin"))},
    ),
    Case(
        "timezone_fixed_offset",
        dag={
            "schedule": "0 6 * * *",
            "start_date": datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=-3))),
        },
        tasks=[("solo", {"end_date": datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=5)))})],
    ),
    Case(
        "dag_values_python_keeps_or_drops",
        # display name == dag id and empty tags are dropped; "" and False are kept.
        dag={
            "dag_display_name": "case_dag_values_python_keeps_or_drops",
            "tags": [],
            "description": "",
            "doc_md": "",
            "is_paused_upon_creation": False,
            "fail_fast": False,
            "render_template_as_native_obj": False,
            "catchup": False,
        },
    ),
    Case(
        "default_args",
        dag={
            "schedule": "@daily",
            "default_args": {
                "start_date": JAN_1,
                "end_date": datetime(2026, 5, 1, tzinfo=UTC),
                "retries": 3,
                "retry_delay": timedelta(seconds=30),
                "owner": "ops",
                "queue": "from-default-args",
                "trigger_rule": "all_done",
                "weight_rule": "absolute",
                "execution_timeout": None,
                "depends_on_past": False,
                "retry_exponential_backoff": 2.5,
            },
        },
        tasks=[
            ("inherits", {}),
            (
                "overrides",
                {"retries": 0, "owner": "airflow", "queue": "default", "weight_rule": "downstream"},
            ),
            ("own_values", {"retries": 1, "retry_delay": timedelta(seconds=5), "trigger_rule": "one_failed"}),
        ],
        edges=[("inherits", "overrides"), ("inherits", "own_values")],
        bundle_dag={"schedule": "@daily"},
    ),
    Case(
        "default_args_without_dates",
        dag={
            "default_args": {
                "pool": "shared",
                "priority_weight": 4,
                "execution_timeout": timedelta(minutes=5),
            }
        },
        tasks=[("a", {}), ("b", {"priority_weight": 1})],
        edges=[("a", "b")],
    ),
    Case(
        "bundle_queue",
        queue="py-rt",
        tasks=[
            ("uses_bundle_queue", {}),
            ("explicit", {"queue": "gpu"}),
            ("explicit_default", {"queue": "default"}),
        ],
        edges=[("uses_bundle_queue", "explicit"), ("uses_bundle_queue", "explicit_default")],
    ),
    Case(
        "bundle_queue_under_default_args",
        queue="py-rt",
        dag={"default_args": {"queue": "from-default-args"}},
        tasks=[("a", {}), ("b", {"queue": "task-queue"})],
    ),
    Case(
        "many_tasks",
        dag={"schedule": "0 */2 * * *", "start_date": JAN_1, "tags": [f"t{i}" for i in range(12)]},
        queue="py-rt",
        tasks=[(f"task_{i:03d}", {"priority_weight": i % 5, "retries": i % 3}) for i in range(60)],
        edges=[
            (f"task_{i:03d}", f"task_{j:03d}") for i in range(60) for j in (i + 1, i + 7, i + 13) if j < 60
        ],
    ),
]

PRESET_CASES = [
    Case(f"preset_{preset.strip('@')}", dag={"schedule": preset})
    for preset in ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
]


def _one_option_case(name: str, value: Any, bundle_value: Any = None) -> Case:
    case = Case(
        f"option_{name}_{re.sub(r'[^0-9A-Za-z]+', '_', str(value)).strip('_')[:30]}",
        dag={"schedule": "@daily", "start_date": JAN_1, "end_date": datetime(2027, 1, 1, tzinfo=UTC)},
        tasks=[("configured", {name: value}), ("plain", {})],
        edges=[("configured", "plain")],
    )
    if bundle_value is not None:
        case.bundle_tasks = {"configured": {name: bundle_value}}
    return case


TASK_OPTION_CASES = [
    _one_option_case("retries", 4),
    _one_option_case("retry_delay", timedelta(seconds=42), bundle_value=42),
    _one_option_case("retry_delay", timedelta(seconds=300)),
    _one_option_case("max_retry_delay", timedelta(hours=1), bundle_value=3600.0),
    _one_option_case("retry_exponential_backoff", 2.0),
    _one_option_case("owner", "data-team"),
    _one_option_case("queue", "special"),
    _one_option_case("pool", "small_pool"),
    _one_option_case("pool_slots", 3),
    *(
        _one_option_case("trigger_rule", rule)
        for rule in ("all_done", "one_success", "none_failed", "always")
    ),
    _one_option_case("execution_timeout", timedelta(minutes=10), bundle_value=600),
    _one_option_case("priority_weight", 7),
    _one_option_case("priority_weight", 0),
    _one_option_case("priority_weight", 2**40),  # clamped to the database's 32-bit range
    _one_option_case("priority_weight", -(2**40)),
    _one_option_case("weight_rule", "upstream"),
    _one_option_case("weight_rule", "absolute"),
    _one_option_case("doc_md", "# Runbook\n\nrestart it"),
    _one_option_case("task_display_name", "Nice name"),
    _one_option_case("start_date", datetime(2026, 6, 1, tzinfo=UTC)),
    _one_option_case("start_date", datetime(2025, 6, 1, tzinfo=UTC)),  # before the DAG's: clamped away
    _one_option_case("start_date", JAN_1),
    _one_option_case("end_date", datetime(2026, 6, 1, tzinfo=UTC)),
    _one_option_case("end_date", datetime(2028, 1, 1, tzinfo=UTC)),  # after the DAG's: clamped away
    _one_option_case("depends_on_past", True),
    _one_option_case("wait_for_downstream", True),
    _one_option_case("do_xcom_push", False),
    _one_option_case("executor", "CeleryExecutor"),
    _one_option_case("map_index_template", "{{ task.task_id }}"),
    _one_option_case("max_active_tis_per_dag", 2),
    _one_option_case("max_active_tis_per_dagrun", 1),
    _one_option_case("multiple_outputs", True),
]

ALL_CASES = DAG_CASES + PRESET_CASES + TASK_OPTION_CASES


# -- builders -------------------------------------------------------------------------------------


def _function(name: str) -> Callable[[], None]:
    def task_function() -> None:
        return None

    task_function.__name__ = task_function.__qualname__ = name
    return task_function


def build_bundle(case: Case) -> Bundle:
    """The case with pybundle's API: ``Bundle.dag``, ``@dag.task(...)`` and ``>>``."""
    bundle = Bundle("serialization-tests", queue=case.queue)
    dag = bundle.dag(case.dag_id, **{**case.dag, **case.bundle_dag})
    tasks = {}
    for task_id, options in case.tasks:
        decorator = dag.task(task_id=task_id, **{**options, **case.bundle_tasks.get(task_id, {})})
        tasks[task_id] = decorator(_function(task_id))
    for upstream, downstream in case.edges:
        tasks[upstream] >> tasks[downstream]
    return bundle


def build_airflow_dag(case: Case) -> DAG:
    """The same case with the Airflow SDK; the bundle queue becomes each task's queue when
    neither the task nor default_args sets one, which is what pybundle's default queue means."""
    with DAG(case.dag_id, **case.dag) as dag:
        operators = {}
        for task_id, options in case.tasks:
            kwargs = dict(options)
            if case.queue and "queue" not in kwargs and "queue" not in case.dag.get("default_args", {}):
                kwargs["queue"] = case.queue
            operators[task_id] = Noop(task_id=task_id, **kwargs)
        for upstream, downstream in case.edges:
            operators[upstream] >> operators[downstream]
    return dag


def ours_and_python(case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    bundle = build_bundle(case)
    ours = serialize_dag(
        bundle.registry.dags[case.dag_id], fileloc=FILELOC, relative_fileloc="example_bundle"
    )
    return ours, DagSerialization.to_dict(build_airflow_dag(case))


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_matches_python_serialization(case: Case) -> None:
    ours, python = ours_and_python(case)
    DagSerialization.validate_schema(ours)
    assert_equivalent(ours, python)
    assert loaded_view(ours) == loaded_view(python)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_loads_with_from_dict(case: Case) -> None:
    ours, _ = ours_and_python(case)
    dag = DagSerialization.from_dict(json.loads(json.dumps(ours)))
    assert dag.dag_id == case.dag_id
    assert list(dag.task_dict) == [task_id for task_id, _ in case.tasks]
    for task_id, options in case.tasks:
        task = dag.task_dict[task_id]
        assert task.downstream_task_ids == {down for up, down in case.edges if up == task_id}
        assert task.upstream_task_ids == {up for up, down in case.edges if down == task_id}
        default_args = case.dag.get("default_args", {})
        expected_queue = options.get("queue") or default_args.get("queue") or case.queue or "default"
        assert task.queue == expected_queue
        assert task.retries == options.get("retries", default_args.get("retries", 0))
        assert task.language == "python"
    expected_timetable = {
        None: "NullTimetable",
        "@once": "OnceTimetable",
        "@continuous": "ContinuousTimetable",
    }.get(case.dag.get("schedule"), "CronTriggerTimetable")
    if isinstance(case.dag.get("schedule"), timedelta):
        expected_timetable = "DeltaTriggerTimetable"
    assert type(dag.timetable).__name__ == expected_timetable


def test_minimal_output_exactly() -> None:
    """The whole dict for the smallest DAG, so a change of shape shows up as a readable diff."""
    bundle = Bundle("b", queue="py-rt")
    dag = bundle.dag("example_two", schedule="0 3 * * *", start_date=JAN_1)

    @dag.task
    def extract() -> None: ...

    @dag.task
    def load() -> None: ...

    extract >> load
    task = {"template_fields": [], "retry_delay": 300.0, "_needs_expansion": False, "has_retry_policy": False}
    assert serialize_dag(dag, fileloc=FILELOC, relative_fileloc="example_bundle") == {
        "__version": 3,
        "dag": {
            "dag_id": "example_two",
            "fileloc": FILELOC,
            "relative_fileloc": "example_bundle",
            "timezone": "UTC",
            "timetable": {
                "__type": "airflow.timetables.trigger.CronTriggerTimetable",
                "__var": {
                    "expression": "0 3 * * *",
                    "timezone": "UTC",
                    "interval": 0.0,
                    "run_immediately": False,
                },
            },
            "catchup": False,
            "max_active_tasks": 16,
            "max_active_runs": 16,
            "max_consecutive_failed_dag_runs": 0,
            "disable_bundle_versioning": False,
            "start_date": 1767225600.0,
            "tasks": [
                {
                    "__type": "operator",
                    "__var": {
                        "task_id": "extract",
                        "task_type": "ExtractTask",
                        "_task_module": __name__,
                        "language": "python",
                        **task,
                        "queue": "py-rt",
                        "downstream_task_ids": ["load"],
                    },
                },
                {
                    "__type": "operator",
                    "__var": {
                        "task_id": "load",
                        "task_type": "LoadTask",
                        "_task_module": __name__,
                        "language": "python",
                        **task,
                        "queue": "py-rt",
                    },
                },
            ],
            "dag_dependencies": [],
            "task_group": {
                "_group_id": None,
                "group_display_name": "",
                "prefix_group_id": True,
                "tooltip": "",
                "ui_color": "CornflowerBlue",
                "ui_fgcolor": "#000",
                "children": {"extract": ["operator", "extract"], "load": ["operator", "load"]},
                "upstream_group_ids": [],
                "downstream_group_ids": [],
                "upstream_task_ids": [],
                "downstream_task_ids": [],
            },
            "edge_info": {},
            "params": [],
            "deadline": None,
            "allowed_run_types": None,
        },
    }


def test_diamond_written_with_decorators() -> None:
    """Plain ``@dag.task`` functions and list dependencies; downstream ids come out sorted."""
    bundle = Bundle("b")
    dag = bundle.dag("conformance_diamond", schedule="0 0 * * *")

    @dag.task
    def root() -> None: ...

    @dag.task
    def right() -> None: ...

    @dag.task
    def left() -> None: ...

    @dag.task(retries=2)
    def join() -> None: ...

    root >> [right, left]
    [right, left] >> join

    ours = serialize_dag(dag, fileloc=FILELOC)
    DagSerialization.validate_schema(ours)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in ours["dag"]["tasks"]}
    assert tasks["root"]["downstream_task_ids"] == ["left", "right"]
    assert "downstream_task_ids" not in tasks["join"]
    assert "relative_fileloc" not in ours["dag"]

    with DAG("conformance_diamond", schedule="0 0 * * *") as python_dag:
        py_root, py_right, py_left = Noop(task_id="root"), Noop(task_id="right"), Noop(task_id="left")
        py_join = Noop(task_id="join", retries=2)
        py_root >> [py_right, py_left]
        [py_right, py_left] >> py_join
    assert_equivalent(ours, DagSerialization.to_dict(python_dag))

    loaded = DagSerialization.from_dict(ours)
    assert loaded.task_dict["join"].upstream_task_ids == {"left", "right"}
    assert loaded.task_dict["join"].retries == 2


def test_task_markers() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("markers")

    @dag.task(task_id="renamed")
    def extract_rows() -> None: ...

    dag.add_task_with_name("lambda_task", lambda: None)
    dag.add_task_with_name("already_named", _function("CleanupTask"))

    tasks = {t["__var"]["task_id"]: t["__var"] for t in serialize_dag(dag, fileloc=FILELOC)["dag"]["tasks"]}
    assert tasks["renamed"]["task_type"] == "ExtractRowsTask"
    assert tasks["renamed"]["_task_module"] == __name__
    assert tasks["lambda_task"]["task_type"] == "PythonTask"
    assert tasks["already_named"]["task_type"] == "CleanupTask"
    assert all(task["language"] == "python" for task in tasks.values())
    assert task_type_of(_function("fetch-data.v2")) == "FetchDataV2Task"
    assert task_module_of(_function("x")) == __name__


def test_serialize_registry_keeps_registration_order() -> None:
    bundle = Bundle("b")
    for dag_id in ("zeta", "alpha", "mid"):
        bundle.dag(dag_id).task(task_id="t")(_function("t"))
    result = serialize_registry(bundle.registry, fileloc=FILELOC, relative_fileloc="rel")
    assert [item["dag"]["dag_id"] for item in result] == ["zeta", "alpha", "mid"]
    assert {item["dag"]["fileloc"] for item in result} == {FILELOC}
    assert {item["dag"]["relative_fileloc"] for item in result} == {"rel"}
    assert serialize_registry(Bundle("empty").registry, fileloc=FILELOC) == []


@pytest.mark.parametrize("case", DAG_CASES, ids=lambda case: case.id)
def test_output_travels_as_json_and_msgpack(case: Case) -> None:
    ours, _ = ours_and_python(case)
    assert json.loads(json.dumps(ours, allow_nan=False)) == ours
    packed = msgpack.packb(ours)
    assert msgpack.unpackb(packed, strict_map_key=False) == json.loads(json.dumps(ours))
    DagSerialization.validate_schema(json.dumps(ours))


def test_dag_processor_accepts_the_parsing_result() -> None:
    """The DAG processor's own model of the result message takes the output, msgpack round trip included."""
    from airflow.dag_processing.processor import ToManager
    from pydantic import TypeAdapter

    case = next(case for case in DAG_CASES if case.id == "cron_every_option")
    ours, _ = ours_and_python(case)
    message = {
        "type": "DagFileParsingResult",
        "fileloc": FILELOC,
        "serialized_dags": [{"data": ours, "last_loaded": None}],
        "import_errors": {},
        "warnings": [],
    }
    result = TypeAdapter(ToManager).validate_python(msgpack.unpackb(msgpack.packb(message)))
    lazy = result.serialized_dags[0]
    assert lazy.dag_id == case.dag_id
    assert lazy.hash
    assert type(lazy.timetable).__name__ == "CronTriggerTimetable"
    assert lazy.has_task_concurrency_limits is True
    assert lazy.owner == "data-team"
    assert lazy._real_dag.task_dict["extract"].queue == "typescript"


INVALID_CASES = [
    Case("continuous_without_max_active_runs_1", dag={"schedule": "@continuous"}),
    Case("catchup_without_start_date", dag={"schedule": "0 0 * * *", "catchup": True}),
    Case(
        "fail_fast_with_other_trigger_rule",
        dag={"fail_fast": True},
        tasks=[("t", {"trigger_rule": "all_done"})],
    ),
    Case(
        "fail_fast_with_trigger_rule_from_default_args",
        dag={"fail_fast": True, "default_args": {"trigger_rule": "one_success"}},
    ),
]


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda case: case.id)
def test_dags_airflow_rejects_are_refused(case: Case) -> None:
    """Python fails to import these DAGs; pybundle refuses to register them, naming the DAG."""
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises ValueError or an AirflowException
        build_airflow_dag(case)
    with pytest.raises(RegistrationError, match=case.dag_id):
        build_bundle(case)


def test_comparator_reports_differences() -> None:
    """The helper itself: a real difference and an extra key fail, a schema default Python wrote does not."""
    ours, python = ours_and_python(DAG_CASES[0])
    assert compare_serialized(ours, python) == []
    task = ours["dag"]["tasks"][0]["__var"]
    task["retries"] = 5
    python["dag"]["tasks"][0]["__var"]["pool"] = "default_pool"
    ours["dag"]["tags"] = ["x"]
    diffs = compare_serialized(ours, python)
    assert len(diffs) == 2, diffs
    assert diffs[0].startswith("dag.tags: only pybundle") and diffs[1].startswith("dag.tasks[solo].retries")


def test_imports_only_the_standard_library() -> None:
    """Coordinator mode runs without Airflow, YAML or gRPC installed."""
    code = (
        "import sys; import bundle.introspection.serialization; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'airflow', 'yaml', 'grpc', 'google'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
