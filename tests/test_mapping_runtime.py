"""Dynamic task mapping at run time (bundle/core/mapped.py): each mapped task instance receives
the element Airflow's own resolution gives (the expand input of the same DAG written with
airflow.sdk, resolved by task-sdk 1.3.2's ``DictOfListsExpandInput`` / ``ListOfDictsExpandInput``
for the same map index and XComs), under the released supervisor and through bundle.testing; a
reduce gets the mapped results lazily with a bounded number of requests; a task mapped over sends
``mapped_length``; labels are sent and survive the terminal message."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle.core.mapped import LazyXComSequence
from bundle.target import load_target
from bundle.testing import FakeClient, run_task
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

BUNDLE = Path(__file__).parent / "bundles" / "mapping_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG = "map_dag"
RUN = "manual__2026-01-01"
TESTING_RUN = "manual__2026-01-01T00:00:00+00:00"  # bundle.testing's default run id

# What the unmapped upstreams returned, and what the mapped upstream (double) pushed per map index.
UPSTREAM = {
    "numbers": [1, 2, 3, 4, 5],
    "config": {"eu": 3, "us": 1},
    "kwargs_source": [{"name": "r", "size": 2}, {"name": "s"}],
}
DOUBLED = [2, 4, 6, 8, 10]
WIDTHS = {"double": 5, "plus_one": 5, "combine": 12, "regions": 2, "sized": 2, "literal_kwargs": 2}


def airflow_elements(task_id: str) -> list[dict[str, Any]]:
    """The kwargs task-sdk 1.3.2 resolves for each map index of ``task_id`` in the same DAG
    written with airflow.sdk, given UPSTREAM / DOUBLED (JSON-normalised: a tuple is a list)."""
    from airflow.sdk import DAG as AirflowDag
    from airflow.sdk import task
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import (
        GetXComCount,
        GetXComSequenceItem,
        XComCountResponse,
        XComSequenceIndexResult,
    )

    class Comms:  # what the supervisor answers LazyXComSequence over double's results
        def send(self, msg: Any) -> Any:
            assert msg.task_id == "double", msg
            if isinstance(msg, GetXComCount):
                return XComCountResponse(len=len(DOUBLED))
            if isinstance(msg, GetXComSequenceItem):
                return XComSequenceIndexResult(root=DOUBLED[msg.offset])
            raise AssertionError(msg)

    class TI:
        run_id, dag_id = RUN, DAG

        def __init__(self, map_index: int):
            self.map_index = map_index

        def xcom_pull(self, task_ids: str, key: str, default: Any, map_indexes: Any) -> Any:
            assert key == "return_value" and map_indexes is None
            return UPSTREAM[task_ids]

    with AirflowDag(DAG) as dag:

        @task
        def numbers(): ...
        @task
        def double(x, factor): ...
        @task
        def plus_one(value): ...
        @task
        def combine(letter, number, pair): ...
        @task
        def config(): ...
        @task
        def regions(region): ...
        @task
        def kwargs_source(): ...
        @task
        def sized(name, size=0): ...
        @task
        def literal_kwargs(name, size=0): ...

        doubled = double.partial(factor=2).expand(x=numbers())
        plus_one.expand(value=doubled)
        combine.expand(letter=["a", "b"], number=[1, 2, 3], pair={"k": "v", "w": "z"})
        regions.expand(region=config())
        sized.expand_kwargs(kwargs_source())
        literal_kwargs.expand_kwargs([{"name": "p", "size": 1}, {"name": "q"}])

    expand_input = dag.get_task(task_id)._get_specified_expand_input()
    previous = getattr(task_runner, "SUPERVISOR_COMMS", None)
    task_runner.SUPERVISOR_COMMS = Comms()
    try:
        resolved = [expand_input.resolve({"ti": TI(i)})[0] for i in range(WIDTHS[task_id])]
    finally:
        task_runner.SUPERVISOR_COMMS = previous
    return json.loads(json.dumps(resolved))


def _defaults(task_id: str, element: dict[str, Any]) -> dict[str, Any]:
    """What the bundle task returns for an element: its kwargs, defaults filled in."""
    if task_id in ("sized", "literal_kwargs"):
        return {"size": 0, **element}
    return element


def _testing_client() -> FakeClient:
    xcoms: dict[Any, Any] = {task_id: value for task_id, value in UPSTREAM.items()}
    xcoms.update({(DAG, TESTING_RUN, "double", "return_value", i): v for i, v in enumerate(DOUBLED)})
    return FakeClient(xcoms=xcoms)


@pytest.mark.parametrize("task_id", sorted(WIDTHS))
def test_every_map_index_receives_airflows_element(task_id: str) -> None:
    bundle = load_target(str(BUNDLE))
    expected = airflow_elements(task_id)
    assert len(expected) == WIDTHS[task_id]
    for map_index, element in enumerate(expected):
        result = run_task(bundle, DAG, task_id, client=_testing_client(), map_index=map_index)
        assert result.state == "success", result.traceback
        if task_id == "double":  # returns x * factor, factor=2 from partial()
            assert set(element) == {"x"}  # partial(factor=2) is not part of the expand input
            assert result.return_value == element["x"] * 2
        else:
            assert json.loads(json.dumps(result.return_value)) == _defaults(task_id, element)
        # pushed under its own map index, as JSON
        assert result.xcoms["return_value"] == json.loads(json.dumps(result.return_value))


def test_element_lookup_costs_the_same_requests_at_index_0_and_999() -> None:
    """O(1) requests per instance whatever the width: one GetXCom for an unmapped upstream, one
    GetXComCount + one GetXComSequenceItem for a mapped one."""
    bundle = load_target(str(BUNDLE))
    wide = list(range(1000))
    kinds = {}
    for map_index in (0, 999):
        client = FakeClient(xcoms={"numbers": wide})
        result = run_task(bundle, DAG, "double", client=client, map_index=map_index)
        assert result.return_value == wide[map_index] * 2
        kinds[map_index] = [r["type"] for r in client.requests if r["type"] != "SetXCom"]
        xcoms = {(DAG, TESTING_RUN, "double", "return_value", i): i for i in range(1000)}
        client = FakeClient(xcoms=xcoms)
        result = run_task(bundle, DAG, "plus_one", client=client, map_index=map_index)
        assert result.return_value == {"value": map_index}
        kinds[(map_index, "mapped")] = [r["type"] for r in client.requests if r["type"] != "SetXCom"]
        item = [r for r in client.requests if r["type"] == "GetXComSequenceItem"]
        assert [r["offset"] for r in item] == [map_index]
    assert kinds[0] == kinds[999] == ["GetXCom", "SetRenderedMapIndex"]
    assert kinds[(0, "mapped")] == kinds[(999, "mapped")] == ["GetXComCount", "GetXComSequenceItem"]


def test_reduce_is_lazy_cached_and_in_map_index_order() -> None:
    bundle = load_target(str(BUNDLE))
    client = _testing_client()
    result = run_task(bundle, DAG, "total", client=client)
    assert result.state == "success", result.traceback
    assert result.return_value == {"sum": 30, "len": 5, "first": 2, "again": 2, "all": DOUBLED}
    # sum() fetched everything with one slice; len, [0] twice and list() asked nothing more
    # then one SetXCom per key and the return_value: `-> dict` infers multiple_outputs, as in Airflow
    assert [r["type"] for r in client.requests] == ["GetXComSequenceSlice", *["SetXCom"] * 6]

    seq = LazyXComSequence(_testing_client().bind(client._ti), "double")
    assert repr(seq) == "LazyXComSequence(<unevaluated length>)"
    assert (len(seq), len(seq), seq[1], seq[1], seq[-1], seq[4], seq[1:3], seq[1:3]) == (
        5,
        5,
        4,
        4,
        10,
        10,
        [4, 6],
        [4, 6],
    )
    kinds = [r["type"] for r in seq._client.requests]
    assert kinds == ["GetXComCount", "GetXComSequenceItem", "GetXComSequenceItem", "GetXComSequenceSlice"]
    assert repr(seq) == "LazyXComSequence([5 items])"
    with pytest.raises(IndexError):
        seq[7]
    assert seq == DOUBLED and list(seq) == DOUBLED


def test_unmappable_upstream_and_missing_push_fail_with_airflows_messages() -> None:
    bundle = load_target(str(BUNDLE))
    scalar = run_task(bundle, DAG, "scalar")
    assert (scalar.state, scalar.reason) == (
        "failed",
        "UnmappableXComTypePushed: unmappable return type 'int'",
    )
    assert scalar.xcoms == {}  # nothing was pushed
    numbers = run_task(bundle, DAG, "numbers")
    pushed = [r for r in numbers.client.requests if r["type"] == "SetXCom"]
    assert [(r["key"], r["mapped_length"], r["map_index"]) for r in pushed] == [("return_value", 5, -1)]
    empty = run_task(bundle, DAG, "nothing")
    assert [r.get("mapped_length") for r in empty.client.requests] == [0]
    over = run_task(bundle, DAG, "over_scalar", client=FakeClient(xcoms={"scalar": 7}), map_index=0)
    assert over.state == "failed"
    assert "can't map over value of type <class 'int'>" in over.reason and "'item'" in over.reason
    plain = run_task(bundle, DAG, "total", client=_testing_client())  # a reduce: no mapped_length
    assert "mapped_length" not in next(r for r in plain.client.requests if r["type"] == "SetXCom")


def test_map_index_template_errors_fail_the_task_after_it_ran() -> None:
    bundle = load_target(str(BUNDLE))
    result = run_task(bundle, DAG, "bad_label", map_index=0)
    assert result.state == "failed"
    assert "map_index_template '{nope}' does not render (no argument 'nope')" in result.reason
    assert not [r for r in result.client.requests if r["type"] == "SetRenderedMapIndex"]


# -- under the released supervisor ----------------------------------------------------------------
def _api() -> FakeExecutionAPI:
    xcoms = {(DAG, RUN, task_id, "return_value"): value for task_id, value in UPSTREAM.items()}
    xcoms.update({(DAG, RUN, "double", "return_value", i): v for i, v in enumerate(DOUBLED)})
    return FakeExecutionAPI(xcoms=xcoms)


@pytest.mark.parametrize(
    ("task_id", "map_index", "label"),
    [
        ("double", 0, "n=1"),
        ("double", 4, "n=5"),
        ("combine", 7, "b1"),
        ("regions", 1, "us"),
        ("sized", 0, "r"),
        ("plus_one", 3, None),
    ],
)
def test_supervised_mapped_instance_gets_its_element_and_label(
    task_id: str, map_index: int, label: str | None
) -> None:
    api = _api()
    run = supervised_run(COMMAND, dag_id=DAG, task_id=task_id, run_id=RUN, map_index=map_index, api=api)
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "success", run.describe()
    element = airflow_elements(task_id)[map_index]
    pushed = api.xcom(DAG, RUN, task_id, "return_value", map_index)  # pushed under its map index
    if task_id == "double":
        assert pushed == element["x"] * 2
    else:
        assert pushed == _defaults(task_id, element)
    update = run.state_updates[-1]
    assert update["state"] == "success" and update.get("rendered_map_index") == label
    labels = run.api.calls_to("PATCH", "/task-instances/*/rendered-map-index")
    assert [c.json for c in labels] == ([label] if label else [])
    reads = [
        (c.method, c.path.rsplit("/", 2)[-2:])
        for c in run.calls
        if "/xcoms/" in c.path and c.method != "POST"
    ]
    if task_id in ("plus_one",):  # a mapped upstream: count + one item
        assert reads == [("HEAD", ["double", "return_value"]), ("GET", ["item", str(map_index)])]
    elif task_id == "combine":  # literals only: nothing to read
        assert reads == []
    else:  # an unmapped upstream: one GetXCom
        assert len(reads) == 1 and reads[0][0] == "GET"


def test_supervised_upstream_sends_mapped_length_and_unmappable_output_fails() -> None:
    api = FakeExecutionAPI()
    run = supervised_run(COMMAND, dag_id=DAG, task_id="numbers", run_id=RUN, api=api)
    assert run.final_state == "success", run.describe()
    posts = run.api.calls_to("POST", "/xcoms/*")
    assert [c.query.get("mapped_length") for c in posts] == ["5"]
    assert api.xcom_meta[(DAG, RUN, "numbers", "return_value", -1)] == {"mapped_length": 5}
    run = supervised_run(COMMAND, dag_id=DAG, task_id="scalar", run_id=RUN)
    assert run.final_state == "failed", run.describe()
    assert "unmappable return type 'int'" in str(run.log_records)
    assert run.api.calls_to("POST", "/xcoms/*") == []


def test_supervised_reduce_reads_all_results_with_one_request() -> None:
    api = _api()
    run = supervised_run(COMMAND, dag_id=DAG, task_id="total", run_id=RUN, api=api)
    assert run.final_state == "success", run.describe()
    assert api.xcom(DAG, RUN, "total", "return_value") == {
        "sum": 30,
        "len": 5,
        "first": 2,
        "again": 2,
        "all": DOUBLED,
    }
    reads = [c for c in run.calls if "/xcoms/" in c.path and c.method != "POST"]
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in reads] == [("GET", "slice")]


def test_supervised_label_survives_retry_and_failure() -> None:
    api = FakeExecutionAPI(max_tries=1)
    run = supervised_run(COMMAND, dag_id=DAG, task_id="flaky", run_id=RUN, map_index=1, api=api)
    assert run.final_state == "up_for_retry", run.describe()
    assert run.state_updates[-1]["rendered_map_index"] == "code 8"
    assert [c.json for c in run.api.calls_to("PATCH", "/task-instances/*/rendered-map-index")] == ["code 8"]
    run = supervised_run(COMMAND, dag_id=DAG, task_id="flaky", run_id=RUN, map_index=0, try_number=2)
    assert run.final_state == "failed", run.describe()
    assert run.state_updates[-1]["rendered_map_index"] == "code 7"  # TaskState, then finish()


# -- go-plugin mode (Edge Worker) ------------------------------------------------------------------
def test_plugin_mode_resolves_the_element_and_repeats_the_label(tmp_path: Path) -> None:
    """The same runtime path in go-plugin mode: the workload's map_index selects the element (GET
    of the upstream's XCom), PATCH /rendered-map-index sends the label and the terminal PATCH
    /state repeats it."""
    pytest.importorskip("grpc")
    from tests.plugin_host import ExecutionApiServer, PluginHost, bundle_command, execute_request

    api = FakeExecutionAPI(xcoms={(DAG, TESTING_RUN, "numbers", "return_value"): UPSTREAM["numbers"]})
    ti = api.add_task_instance(dag_id=DAG, run_id=TESTING_RUN, task_id="double", map_index=3, state="queued")
    with ExecutionApiServer(api) as server:
        home = tmp_path / "airflow_home"
        home.mkdir()
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__EXECUTION_API_URL": server.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
        }
        request = execute_request(ti_id=ti, dag_id=DAG, run_id=TESTING_RUN, task_id="double", map_index=3)
        with PluginHost.start(bundle_command(BUNDLE), env=env) as host:
            host.execute(request, timeout=60)
            host.kill()
    api.assert_clean()
    assert api.ti_state(ti) == "success"
    assert api.xcom(DAG, TESTING_RUN, "double", "return_value", 3) == 8
    assert [c.json for c in api.calls_to("PATCH", "/task-instances/*/rendered-map-index")] == ["n=4"]
    assert api.state_updates[-1]["rendered_map_index"] == "n=4"


def test_supervised_label_survives_a_deferral_and_the_resumed_run() -> None:
    from .test_deferral import stored_next_kwargs

    first = supervised_run(COMMAND, dag_id=DAG, task_id="waits", run_id=RUN, map_index=1)
    assert first.server_state == "deferred", first.describe()
    patch = first.state_updates[-1]
    assert patch["rendered_map_index"] == "wait 6" and patch["next_method"] == "resumed"
    api = FakeExecutionAPI(
        run_context={"next_method": "resumed", "next_kwargs": stored_next_kwargs(patch, None)}
    )
    second = supervised_run(COMMAND, dag_id=DAG, task_id="waits", run_id=RUN, map_index=1, api=api)
    assert second.server_state == "success", second.describe()
    assert api.xcom(DAG, RUN, "waits", "return_value", 1) == 6
    assert second.state_updates[-1]["rendered_map_index"] == "wait 6"  # rendered again on resume


def test_a_mapped_sensor_pokes_with_its_element_and_label() -> None:
    from bundle import Bundle

    b = Bundle("s")
    dag = b.dag("sd")

    @dag.sensor(poke_interval=0, map_index_template="file {name}")
    def arrived(name: str) -> bool:
        return name == "b"

    with dag:
        arrived.expand(name=["a", "b"])
    result = run_task(b, "sd", "arrived", map_index=1)
    assert result.state == "success", result.traceback
    assert result.rendered_map_index == "file b"
    sent = [r for r in result.client.requests if r["type"] == "SetRenderedMapIndex"]
    assert sent == [{"type": "SetRenderedMapIndex", "rendered_map_index": "file b"}]


_LITERALS = st.one_of(
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=2), st.none()), min_size=1, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=2), st.integers(0, 9), min_size=1, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_LITERALS, min_size=1, max_size=3), st.data())
def test_cross_products_split_as_airflow_does(literals: list, data: st.DataObject) -> None:
    """Any literal cross product: each map index gets task-sdk's ``DictOfListsExpandInput`` element."""
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput

    from bundle import Bundle

    names = [f"a{i}" for i in range(len(literals))]
    b = Bundle("h")
    dag = b.dag("hd")
    scope: dict[str, Any] = {}
    exec(f"def echo({', '.join(names)}):\n    return [{', '.join(names)}]", scope)
    echo = dag.task(scope["echo"])
    with dag:
        echo.expand(**dict(zip(names, literals, strict=True)))
    width = 1
    for value in literals:
        width *= len(value)
    map_index = data.draw(st.integers(0, width - 1))

    class TI:
        pass

    ti = TI()
    ti.map_index = map_index
    theirs, _ = DictOfListsExpandInput(dict(zip(names, literals, strict=True))).resolve({"ti": ti})
    result = run_task(b, "hd", "echo", map_index=map_index)
    assert result.state == "success", result.traceback
    assert result.return_value == [theirs[name] for name in names]
    assert result.client.requests == [r for r in result.client.requests if r["type"] == "SetXCom"]
