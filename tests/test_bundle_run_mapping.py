"""``bundle-run`` expands mapped tasks as Airflow's scheduler does (localrun/mapping.py): literal
and upstream lengths, cross products, ``expand_kwargs``, mapping over a mapped upstream, a reduce,
zero-length expansions skipped, labels in the progress view and the summary, a length over
``[core] max_map_length`` refused, and trigger rules over every instance of a mapped upstream.
Each element equals what task-sdk 1.3.2's own expand-input resolution gives
(tests/test_mapping_runtime.py's ``airflow_elements``)."""

from __future__ import annotations

import re
from pathlib import Path

from .mapping_expected import EXPECTED
from .test_bundle_run import bundle_run, clean_env
from .test_mapping_runtime import UPSTREAM, WIDTHS, _defaults, airflow_elements

BUNDLE = Path(__file__).parent / "bundles" / "mapping_bundle.py"
E2E_MAPPING = Path(__file__).parent / "e2e" / "bundles" / "mapping.py"
MAPPED = ("plus_one", "combine", "regions", "sized", "literal_kwargs")


def _mapped_xcoms(run, task_id: str) -> list:
    rows = [x for x in run.report["xcoms"] if x["task_id"] == task_id and x["key"] == "return_value"]
    return [x["value"] for x in sorted(rows, key=lambda x: x["map_index"])]


def test_bundle_run_expands_like_the_scheduler(tmp_path: Path) -> None:
    selection = [a for task in ("total", "never", *MAPPED) for a in ("--task", task)]
    run = bundle_run(BUNDLE, *selection, tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    states = run.states()
    # literal, unmapped-upstream and mapped-upstream lengths, the 2 x 3 x 2 cross product
    for task_id, width in {"double": 5, **WIDTHS}.items():
        names = [n for n in states if n.startswith(f"{task_id}[")]
        assert names == [f"{task_id}[{i}]" for i in range(width)], states
        assert {states[n] for n in names} == {"success"}
    assert states["never"] == "skipped"  # zero-length expansion: never run
    assert run.report["tasks"]["never"]["note"] == "skipped: the map has 0 values to expand"
    assert run.tries("never") == []
    # every element is Airflow's, in map-index order
    for task_id in MAPPED:
        expected = [_defaults(task_id, e) for e in airflow_elements(task_id)]
        assert _mapped_xcoms(run, task_id) == expected, task_id
    assert _mapped_xcoms(run, "double") == [x * 2 for x in UPSTREAM["numbers"]]
    assert run.xcom("total") == {"sum": 30, "len": 5, "first": 2, "again": 2, "all": [2, 4, 6, 8, 10]}
    # labels: in the JSON report, the summary table and the progress lines
    labels = {n: r["rendered_map_index"] for n, r in run.report["tasks"].items() if r["map_index"] >= 0}
    assert [labels[f"double[{i}]"] for i in range(5)] == ["n=1", "n=2", "n=3", "n=4", "n=5"]
    assert [labels[f"combine[{i}]"] for i in range(12)] == [
        f"{letter}{number}" for letter in "ab" for number in (1, 2, 3) for _ in range(2)
    ]
    assert [labels[f"regions[{i}]"] for i in range(2)] == ["eu", "us"]
    assert labels["plus_one[0]"] is None  # no map_index_template
    assert re.search(r"^  double\[2\] \(n=3\) +success", run.stdout, re.M)  # the summary
    assert "double: expanded into 5 mapped task instances" in run.stderr
    assert "double[2] (n=3): success" in run.stderr
    assert "--- combine[7] (b1) · try 1 · success" in run.stdout


def test_bundle_run_failures_limits_and_surviving_labels(tmp_path: Path) -> None:
    env = clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"), AIRFLOW__CORE__MAX_MAP_LENGTH="3")
    selection = [a for task in ("double", "over_scalar", "flaky") for a in ("--task", task)]
    run = bundle_run(BUNDLE, *selection, "--retry-delay-scale", "0", tmp_path=tmp_path, env=env)
    assert run.returncode == 1, run.describe()
    states = run.states()
    # numbers returns 5 items, over max_map_length=3: the server refuses the push (as core's does)
    assert states["numbers"] == "failed"
    assert "pushed value is too large to map as a downstream's dependency" in str(run.tries("numbers"))
    assert states["double"] == "upstream_failed"  # never expanded
    # a task mapped over that returns an int fails with Airflow's message; its downstream cannot run
    assert states["scalar"] == "failed"
    assert "unmappable return type 'int'" in run.report["tasks"]["scalar"]["note"]
    assert states["over_scalar"] == "upstream_failed"
    # a literal of 2 is not limited by max_map_length (core checks pushed lengths only); each
    # instance retried once and failed, its label kept through RetryTask and TaskState
    assert states["flaky[0]"] == states["flaky[1]"] == "failed"
    assert [t["state"] for t in run.tries("flaky[1]")] == ["up_for_retry", "failed"]
    assert run.report["tasks"]["flaky[1]"]["rendered_map_index"] == "code 8"
    assert re.search(r"^  flaky\[0\] \(code 7\) +failed", run.stdout, re.M)


# -- units: the embedded API's TaskMap rows and the expansion length ---------------------------------
def test_api_records_mapped_length_within_max_map_length(monkeypatch) -> None:
    from localrun.api import ExecutionAPI
    from localrun.mapping import MappingSpec, MapSource, expansion_length
    from localrun.store import Store

    store = Store()
    api = ExecutionAPI(store)
    path = "/xcoms/d/r/up/return_value"
    assert api.handle("POST", path, [("mapped_length", "3")], "[1, 2, 3]").status == 201
    assert store.task_map_length("d", "r", "up") == 3
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")
    refused = api.handle("POST", "/xcoms/d/r/big/return_value", [("mapped_length", "3")], "[1, 2, 3]")
    assert (refused.status, refused.body["detail"]["reason"]) == (400, "unmappable_return_value_length")
    assert store.task_map_length("d", "r", "big") is None
    assert store.get_xcom("d", "r", "big", "return_value", -1) == (False, None)  # nothing stored

    spec = MappingSpec(
        "dict-of-lists",
        (
            ("a", MapSource(length=2)),
            ("b", MapSource(upstream="up")),
            ("c", MapSource(upstream="m", upstream_mapped=True)),
        ),
    )
    store.create_dag_run(dag_id="d", run_id="r")
    for map_index, state in enumerate(("success", "running")):
        store.create_task_instance(dag_id="d", run_id="r", task_id="m", map_index=map_index, state=state)
    assert expansion_length(spec, store, "d", "r") == (None, ["c"])  # an unfinished mapped upstream
    store.update_ti(store.ti("d", "r", "m", 1)["id"], state="success")
    store.set_xcom("d", "r", "m", "return_value", 0, "x")
    store.set_xcom("d", "r", "m", "return_value", 1, "y")
    assert expansion_length(spec, store, "d", "r") == (2 * 3 * 2, [])  # the product
    missing = MappingSpec("list-of-dicts", (("expand_kwargs() argument", MapSource(upstream="none")),))
    assert expansion_length(missing, store, "d", "r") == (None, ["expand_kwargs() argument"])


def test_bundle_run_agrees_with_the_deployment_on_the_e2e_mapping_dag(tmp_path: Path) -> None:
    """The DAG tests/e2e/test_mapping.py runs in the real scheduler, run by ``bundle-run``: the same
    instances (task id, map index), states, labels and XComs (tests/mapping_expected.py)."""
    run = bundle_run(E2E_MAPPING, tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    found = {}
    for name, row in run.report["tasks"].items():
        task_id = name.split("[")[0]
        xcoms = [
            x["value"]
            for x in run.report["xcoms"]
            if (x["task_id"], x["key"], x["map_index"]) == (task_id, "return_value", row["map_index"])
        ]
        found[(task_id, row["map_index"])] = (row["state"], row["rendered_map_index"], *(xcoms or [None]))
    assert found == EXPECTED
