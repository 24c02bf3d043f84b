"""Assets: ``bundle.Asset`` against ``airflow.sdk.Asset``, outlets / inlets / asset schedules against
core 3.3.2's ``DagSerialization.to_dict`` and the generated DAG file, and the run-time shapes
(``SucceedTask.task_outlets`` / ``outlet_events``, inlet and triggering events) against the released
task runner and under the released supervisor."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk import Asset as PyAsset
from airflow.sdk.bases.operator import BaseOperator
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Asset, AssetAll, AssetAny, Bundle, Context, RegistrationError
from bundle.introspection.serialization import serialize_dag
from bundle.target import load_target
from bundle.testing import FakeClient, run_task
from packer.dagfile import LOCATION_DAG_KEYS, STUB_ONLY_TASK_KEYS
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

from .serialization_compare import compare_serialized, loaded_view

ROOT = Path(__file__).resolve().parent.parent
ASSET_BUNDLE = ROOT / "tests" / "bundles" / "asset_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(ASSET_BUNDLE)]
RUN = "manual__2026-01-01"
ORDERS_KEY = {"name": "pybundle_orders", "uri": "s3://warehouse/orders"}


class Noop(BaseOperator):
    def execute(self, context: Any) -> None:
        return None


# -- Asset() as Airflow defines it ------------------------------------------------------------------

ASSET_ARGUMENTS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("orders",), {}),
    ((), {"uri": "s3://Bucket/orders/"}),
    (("orders", "S3://bucket/path//"), {"group": "sales", "extra": {"a": [1, {"b": None}]}}),
    (("n", "postgres://user:secret@host:5432/db?b=2&a=1#frag"), {}),
    (("n", "file:///tmp/data/"), {}),
    (("n", "x-custom://Keep/As/Is/"), {}),
    (("n", "relative/path/"), {}),
    (("n", "airflow://reserved"), {}),
    ((), {}),
    (("",), {}),
    (("   ",), {}),
    (("self",), {}),
    (("context",), {}),
    (("n" * 1501,), {}),
    (("n", "u" * 1501), {}),
    (("n",), {"group": ""}),
    (("n",), {"group": " "}),
    ((3,), {}),
    (("n", "http://host"), {}),
]


def _outcome(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            asset = factory(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            return ("error", type(exc).__name__, str(exc))
    return (asset.name, asset.uri, asset.group, asset.extra, [str(w.message) for w in caught])


@pytest.mark.parametrize(("args", "kwargs"), ASSET_ARGUMENTS)
def test_asset_names_uris_and_errors_are_airflows(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert _outcome(Asset, args, kwargs) == _outcome(PyAsset, args, kwargs)


def test_asset_expressions_build_airflows_trees() -> None:
    def tree(a: Any, b: Any, c: Any) -> list[Any]:
        return [a | b | c, a & b & c, (a & b) | c, a & (b | c), (a | b) | (b & c)]

    ours = [serialize_dag(_bundle_dag(schedule=x), fileloc="")["dag"]["timetable"] for x in tree(*_ours())]
    python = [DagSerialization.to_dict(DAG("d", schedule=x))["dag"]["timetable"] for x in tree(*_pythons())]
    assert ours == python
    a, b, c = _ours()
    assert (a | b | c) == AssetAny(a, b, c) and (a & b) == AssetAll(a, b) and a == Asset("a", "s3://b/a/")
    assert {a: 1}[Asset("a", "s3://b/a")] == 1 and a != Asset("a", "s3://b/a", group="g")


def _ours() -> tuple[Asset, Asset, Asset]:
    return Asset("a", "s3://b/a/"), Asset(uri="file:///tmp/b"), Asset("c", group="g", extra={"k": 1})


def _pythons() -> tuple[PyAsset, PyAsset, PyAsset]:
    return PyAsset("a", "s3://b/a/"), PyAsset(uri="file:///tmp/b"), PyAsset("c", group="g", extra={"k": 1})


def _bundle_dag(**options: Any) -> Any:
    bundle = Bundle("b")
    dag = bundle.dag("d", **options)
    return dag


# -- serialization ------------------------------------------------------------------------------------


def _schedules(a: Any, b: Any, c: Any) -> dict[str, Any]:
    return {"one": a, "list": [a, b], "tuple": (a, c), "and_or": (a & b) | c, "empty_list": []}


@pytest.mark.parametrize("schedule", ["one", "list", "tuple", "and_or", "empty_list", "none"])
def test_serialization_equals_cores(schedule: str) -> None:
    """Outlets, inlets (task and default_args), an asset schedule and the dag_dependencies of both."""
    a, b, c = _ours()
    pa, pb, pc = _pythons()
    ours_schedule = _schedules(a, b, c).get(schedule)
    py_schedule = _schedules(pa, pb, pc).get(schedule)

    with DAG("d", schedule=py_schedule, default_args={"inlets": [pc], "retries": 1}) as py_dag:
        Noop(task_id="produce", outlets=[pa, pb, pa], inlets=pc)
        Noop(task_id="again", outlets=[pa])
        Noop(task_id="plain", inlets=[])
    bundle = Bundle("b")
    dag = bundle.dag("d", schedule=ours_schedule, default_args={"inlets": [c], "retries": 1})
    dag.task(task_id="produce", outlets=[a, b, a], inlets=c)(lambda: None)
    dag.task(task_id="again", outlets=[a])(lambda: None)
    dag.task(task_id="plain", inlets=[])(lambda: None)

    ours = serialize_dag(dag, fileloc="x")
    python = DagSerialization.to_dict(py_dag)
    DagSerialization.validate_schema(json.loads(json.dumps(ours)))
    assert compare_serialized(ours, python) == []
    assert ours["dag"]["dag_dependencies"] == python["dag"]["dag_dependencies"]
    assert loaded_view(ours) == loaded_view(python)
    loaded = DagSerialization.from_dict(json.loads(json.dumps(ours)))
    assert [o.name for o in loaded.task_dict["produce"].outlets] == ["a", "file:///tmp/b", "a"]


def test_dags_without_assets_serialize_and_load_as_before() -> None:
    dag = _bundle_dag(schedule="@daily")
    dag.task(task_id="t")(lambda: None)
    data = serialize_dag(dag, fileloc="x")["dag"]
    assert data["dag_dependencies"] == [] and "outlets" not in data["tasks"][0]["__var"]


@pytest.mark.parametrize(
    ("where", "options", "message"),
    [
        ("task", {"outlets": ["s3://not-an-asset"]}, "task 'd.t': invalid outlets: expected Asset objects"),
        ("task", {"inlets": [PyAsset("x")]}, "task 'd.t': invalid inlets: expected Asset objects"),
        ("dag", {"schedule": [Asset("a"), "b"]}, "dag 'd': invalid schedule: All elements in 'schedule'"),
        ("dag", {"schedule": 5}, "dag 'd': invalid schedule: expected None, a cron string"),
        ("dag", {"default_args": {"outlets": "x"}}, "dag 'd.default_args': invalid outlets"),
    ],
)
def test_registration_errors_name_the_dag_task_and_attribute(
    where: str, options: dict[str, Any], message: str
) -> None:
    bundle = Bundle("b")
    with pytest.raises(RegistrationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        if where == "dag":
            bundle.dag("d", **options)
        else:
            bundle.dag("d").task(task_id="t", **options)(lambda: None)


# -- the generated DAG file -----------------------------------------------------------------------------


def test_generated_dag_file_declares_the_assets(tmp_path: Path) -> None:
    from .test_dagfile import _view, generated, import_with_dagbag

    path, document = generated(load_target(str(ASSET_BUNDLE)), tmp_path)
    source = path.read_text()
    assert "from airflow.sdk import DAG, Asset, AssetAny, task" in source
    imported = import_with_dagbag(path)
    assert sorted(imported) == sorted(dag.dag_id for dag in document.dags)
    for dag in document.dags:
        diffs = compare_serialized(
            dag.serialized,
            imported[dag.dag_id],
            ignored_dag_keys=LOCATION_DAG_KEYS,
            ignored_task_keys=STUB_ONLY_TASK_KEYS,
        )
        assert diffs == [], "\n".join(diffs)
        assert _view(dag.serialized) == _view(imported[dag.dag_id])
        assert imported[dag.dag_id]["dag"]["dag_dependencies"] == dag.serialized["dag"]["dag_dependencies"]


@pytest.mark.parametrize("line_length", [88, 110])
def test_generated_asset_dag_file_is_ruff_clean(tmp_path: Path, line_length: int) -> None:
    from .test_dagfile import RUFF, generated

    path, _ = generated(load_target(str(ASSET_BUNDLE)), tmp_path)
    for command in (["format", "--check"], ["check", "--select", "I,F"]):
        isolated = [RUFF, *command, "--isolated", f"--line-length={line_length}", str(path)]
        result = subprocess.run(isolated, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_task_clearing_default_args_outlets_is_written_with_an_empty_list(tmp_path: Path) -> None:
    from .test_dagfile import assert_same_dags, generated, import_with_dagbag

    bundle = Bundle("b")
    dag = bundle.dag("d", default_args={"outlets": [Asset("a")]})
    dag.task(task_id="inherits")(lambda: None)
    dag.task(task_id="clears", outlets=[])(lambda: None)
    path, document = generated(bundle, tmp_path)
    assert "outlets=[]" in path.read_text()
    assert_same_dags(document, import_with_dagbag(path))


# -- run time: the shapes of the released task runner ----------------------------------------------------


def test_outlet_events_and_task_outlets_are_the_python_runners() -> None:
    """Our SucceedTask fields equal what task-sdk 1.3.2's own helpers build from the same extras."""
    from airflow.sdk.execution_time.comms import SucceedTask
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from airflow.sdk.execution_time.task_runner import _build_asset_profiles, _serialize_outlet_events

    from bundle.coordinator.task_mode import terminal_message

    bundle = Bundle("b")
    orders, other = Asset("orders", "s3://b/orders/"), Asset("other")
    dag = bundle.dag("d")

    @dag.task(outlets=[orders, other])
    def produce(ctx: Context) -> None:
        ctx.outlet_events[orders].extra["rows"] = 3
        ctx.outlet_events[Asset("orders", "s3://b/orders")].extra["note"] = "same key"
        ctx.outlet_events[other].add_partitions(["p2", "p1"])

    result = run_task(bundle, "d", "produce")
    assert result.state == "success", result.traceback

    py_orders, py_other = PyAsset("orders", "s3://b/orders/"), PyAsset("other")
    accessors = OutletEventAccessors()
    accessors[py_orders].extra["rows"] = 3
    accessors[py_orders].extra["note"] = "same key"
    accessors[py_other].add_partitions(["p2", "p1"])
    python_events = list(_serialize_outlet_events(accessors))
    python_outlets = [p.model_dump() for p in _build_asset_profiles([py_orders, py_other])]
    assert result.task_outlets == python_outlets
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731  (a set's order is not Airflow's)
    assert sorted(result.outlet_events, key=key) == sorted(python_events, key=key)

    from bundle.core.execution import SUCCESS, TaskOutcome

    body = terminal_message(
        TaskOutcome(
            SUCCESS, assets={"task_outlets": result.task_outlets, "outlet_events": result.outlet_events}
        )
    )
    message = SucceedTask.model_validate(body)
    assert [p.model_dump() for p in message.task_outlets] == python_outlets


def test_a_task_without_assets_sends_empty_lists_and_loads_no_asset_module() -> None:
    example = ROOT / "examples" / "bundle" / "example_dags.py"
    code = (
        "import sys; from bundle.target import load_target; from bundle.testing import run_task; "
        f"b = load_target({str(example)!r}); r = run_task(b, 'simple_dag', 'audit'); "
        "print(r.state, r.task_outlets, r.outlet_events, "
        "[m for m in ('bundle.core.authoring.assets', 'bundle.core.asset_events') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "success [] [] []", out.stderr


def test_inlet_events_and_client_reads_in_bundle_testing() -> None:
    bundle = load_target(str(ASSET_BUNDLE))
    events = [_event(i, {"i": i}) for i in (2, 1, 3)]
    result = run_task(bundle, "asset_either", "history", client=FakeClient(asset_events=events))
    assert result.state == "success", result.traceback
    assert result.return_value == {"count": 3, "extras": [{"i": 1}, {"i": 2}, {"i": 3}], "newest": {"i": 3}}
    kinds = [r["type"] for r in result.client.requests]
    # then one SetXCom per key and the return_value: `-> dict` infers multiple_outputs, as in Airflow
    assert kinds == [
        "ValidateInletsAndOutlets",
        "GetAssetEventByAsset",
        "GetAssetEventByAsset",
        *["SetXCom"] * 4,
    ]


def test_an_extra_that_is_not_json_fails_the_task_naming_the_asset() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("d")

    @dag.task(outlets=[Asset("out")], retries=1)
    def produce(ctx: Context) -> None:
        ctx.outlet_events[Asset("out")].extra["when"] = {1, 2}

    result = run_task(bundle, "d", "produce", max_tries=1)
    assert result.state == "up_for_retry" and isinstance(result.error, TypeError)
    assert "outlet_events[Asset(name='out', uri='out')].extra must hold JSON values" in str(result.error)


def test_a_key_that_is_not_an_inlet_is_a_key_error() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("d")

    @dag.task(inlets=[Asset("in")])
    def read(ctx: Context) -> None:
        ctx.inlet_events[Asset("elsewhere")]

    result = run_task(bundle, "d", "read")
    assert result.state == "failed" and isinstance(result.error, KeyError)


def test_inactive_assets_fail_the_task_without_retry_as_in_airflow() -> None:
    bundle = Bundle("b")
    dag = bundle.dag("d")
    ran = []

    @dag.task(outlets=[Asset("gone", "s3://b/gone")], retries=3)
    def produce() -> None:
        ran.append(True)

    client = FakeClient()
    original = client._memory.__call__

    def answer(body: dict[str, Any]) -> Any:
        if body["type"] == "ValidateInletsAndOutlets":
            client._memory.requests.append(body)
            return {"inactive_assets": [{"name": "gone", "uri": "s3://b/gone", "type": "Asset"}]}
        return original(body)

    client._transport = answer
    result = run_task(bundle, "d", "produce", client=client, max_tries=3)
    assert (result.state, ran) == ("failed", [])
    assert str(result.error) == (
        "Task has the following inactive assets in its inlets or outlets: Asset(name='gone', uri='s3://b/gone')"
    )


def _event(index: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": index,
        "timestamp": f"2026-01-0{index}T00:00:00+00:00",
        "extra": extra,
        "asset": {**ORDERS_KEY, "group": "sales", "extra": {"owner": "ops"}},
        "created_dagruns": [],
        "source_dag_id": "asset_producer",
        "source_task_id": "publish",
        "source_run_id": "r",
        "source_map_index": -1,
    }


# -- under the released supervisor --------------------------------------------------------------------


def test_supervised_producer_reports_outlets_and_extras() -> None:
    api = FakeExecutionAPI()
    run = supervised_run(COMMAND, dag_id="asset_producer", task_id="publish", run_id=RUN, api=api)
    assert run.api.problems() == [] and run.supervisor_errors == [], run.describe()
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    final = run.state_updates[-1]  # TISuccessStatePayload, validated by core's model in the fake API
    assert final["task_outlets"] == [
        {**ORDERS_KEY, "type": "Asset"},
        {"name": "pybundle_report", "uri": "pybundle_report", "type": "Asset"},
    ]
    assert final["outlet_events"] == [{"dest_asset_key": ORDERS_KEY, "extra": {"rows": 42, "run": RUN}}]
    # As Airflow's runner: the inlets and outlets are validated once, before the task runs (and pushes).
    paths = [c.path for c in run.calls]
    validate = [i for i, p in enumerate(paths) if p.endswith("/validate-inlets-and-outlets")]
    pushes = [i for i, p in enumerate(paths) if "/xcoms/" in p]
    assert len(validate) == 1 and pushes and validate[0] < pushes[0], paths


def test_parse_mode_answers_asset_dags_core_loads() -> None:
    """A DagFileParseRequest under core's DAG processor: the asset DAGs validate and load."""
    from tests.harness.supervised import parse_dag_file

    parsed = parse_dag_file(COMMAND)
    assert parsed.errors == [], parsed.describe()
    assert sorted(parsed.dag_ids) == ["asset_consumer", "asset_either", "asset_producer"]
    timetables = {d["dag"]["dag_id"]: d["dag"]["timetable"]["__type"] for d in parsed.serialized_dags}
    assert timetables["asset_consumer"] == "airflow.timetables.simple.AssetTriggeredTimetable"


def test_supervised_consumer_reads_the_triggering_event() -> None:
    api = FakeExecutionAPI()
    triggering = {
        "asset": {**ORDERS_KEY, "extra": {"owner": "ops"}},
        "extra": {"rows": 42, "run": "manual__producer"},
        "source_task_id": "publish",
        "source_dag_id": "asset_producer",
        "source_run_id": "manual__producer",
        "source_map_index": -1,
        "source_aliases": [],
        "timestamp": "2026-01-01T00:00:00Z",
        "partition_key": None,
    }
    api.add_dag_run("asset_consumer", RUN, run_type="asset_triggered", consumed_asset_events=[triggering])
    run = supervised_run(COMMAND, dag_id="asset_consumer", task_id="consume", run_id=RUN, api=api)
    assert run.api.problems() == [] and run.supervisor_errors == [], run.describe()
    assert run.final_state == "success", run.describe()
    assert run.api.xcom("asset_consumer", RUN, "consume", "return_value") == {
        "triggered_by": 1,
        "extra": {"rows": 42, "run": "manual__producer"},
        "source": ["asset_producer", "publish"],
    }
    # A consumer with inlets but no outlets still reports empty outlets.
    assert run.state_updates[-1]["task_outlets"] == [] and run.state_updates[-1]["outlet_events"] == []


def test_supervised_inlet_events_through_get_asset_event_by_asset() -> None:
    api = FakeExecutionAPI(asset_events=[_event(1, {"i": 1}), _event(2, {"i": 2})])
    run = supervised_run(COMMAND, dag_id="asset_either", task_id="history", run_id=RUN, api=api)
    assert run.api.problems() == [] and run.supervisor_errors == [], run.describe()
    assert run.final_state == "success", run.describe()
    assert run.api.xcom("asset_either", RUN, "history", "return_value") == {
        "count": 2,
        "extras": [{"i": 1}, {"i": 2}],
        "newest": {"i": 2},
    }
    queries = [c.query for c in run.calls if c.path.endswith("/asset-events/by-asset")]
    assert len(queries) == 2, queries


# -- bundle-run -----------------------------------------------------------------------------------------


def test_bundle_run_reports_asset_events_and_serves_them_to_later_runs(tmp_path: Path) -> None:
    """The producer's events appear in the summary (and --json-report); with --state, a later run's
    task reads them back through GetAssetEventByAsset."""
    from .test_bundle_run import bundle_run

    state = tmp_path / "state.db"
    produced = bundle_run(ASSET_BUNDLE, "--dag", "asset_producer", "--state", state, tmp_path=tmp_path)
    assert produced.returncode == 0, produced.describe()
    run_id = produced.report["run_id"]
    assert produced.report["asset_events"] == [
        {
            **_bundle_run_event("pybundle_orders", "s3://warehouse/orders"),
            "extra": {"rows": 42, "run": run_id},
        },
        {**_bundle_run_event("pybundle_report", "pybundle_report"), "extra": {}},
    ]
    assert (
        f'publish -> pybundle_orders (s3://warehouse/orders) extra {{"rows": 42, "run": "{run_id}"}}'
        in produced.stdout
    )
    read = bundle_run(ASSET_BUNDLE, "--dag", "asset_either", "--state", state, tmp_path=tmp_path)
    assert read.returncode == 0, read.describe()
    extra = {"rows": 42, "run": run_id}
    assert read.xcom("history") == {"count": 1, "extras": [extra], "newest": extra}
    assert read.report["asset_events"] == []  # history has no outlets


def _bundle_run_event(name: str, uri: str) -> dict[str, Any]:
    return {
        "source_task_id": "publish",
        "source_map_index": -1,
        "name": name,
        "uri": uri,
        "partition_key": None,
    }


# -- go-plugin mode ---------------------------------------------------------------------------------------

PLUGIN_RUN = "manual__2026-01-01T00:00:00+00:00"


def _plugin_execute(tmp_path: Path, api: FakeExecutionAPI, dag_id: str, task_id: str) -> str:
    """Run one task through a real plugin process (go-plugin gRPC) against the fake Execution API."""
    from tests.plugin_host import ExecutionApiServer, PluginHost, bundle_command, execute_request

    ti = api.add_task_instance(dag_id=dag_id, run_id=PLUGIN_RUN, task_id=task_id, state="queued")
    request = execute_request(
        ti_id=ti, dag_id=dag_id, run_id=PLUGIN_RUN, task_id=task_id, bundle_name="asset_bundle"
    )
    home = tmp_path / "airflow_home"
    home.mkdir(exist_ok=True)
    with ExecutionApiServer(api) as server:
        env = {"AIRFLOW_HOME": str(home), "AIRFLOW__EXECUTION_API_URL": server.url}
        with PluginHost.start(bundle_command(ASSET_BUNDLE), env=env) as host:
            host.execute(request, timeout=60)
            host.kill()
    api.assert_clean()  # every body validated by the Execution API's own models
    return ti


def test_go_plugin_mode_reports_outlets_and_reads_triggering_events(tmp_path: Path) -> None:
    api = FakeExecutionAPI()
    _plugin_execute(tmp_path, api, "asset_producer", "publish")
    final = api.state_updates[-1]  # PATCH /state: TISuccessStatePayload
    assert final["state"] == "success"
    assert final["task_outlets"][0] == {**ORDERS_KEY, "type": "Asset"}
    assert final["outlet_events"] == [
        {"dest_asset_key": ORDERS_KEY, "extra": {"rows": 42, "run": PLUGIN_RUN}}
    ]

    triggering = {
        "asset": {**ORDERS_KEY, "extra": {}},
        "extra": {"rows": 7},
        "source_task_id": "publish",
        "source_dag_id": "asset_producer",
        "source_run_id": "r1",
        "source_map_index": -1,
        "source_aliases": [],
        "timestamp": "2026-01-01T00:00:00Z",
    }
    api.add_dag_run(
        "asset_consumer", PLUGIN_RUN, run_type="asset_triggered", consumed_asset_events=[triggering]
    )
    _plugin_execute(tmp_path, api, "asset_consumer", "consume")
    assert api.xcom("asset_consumer", PLUGIN_RUN, "consume", "return_value") == {
        "triggered_by": 1,
        "extra": {"rows": 7},
        "source": ["asset_producer", "publish"],
    }
