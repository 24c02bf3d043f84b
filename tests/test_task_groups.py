"""Task groups: authoring, DagSerialization against core 3.3.2, the released supervisor, bundle-run
and the generated DAG file.

Each serialization case builds one DAG twice, with pybundle's ``dag.task_group`` and with Airflow's
``TaskGroup`` (plain operators), and compares the dicts, ``task_group`` tree included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, TaskGroup
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Bundle, RegistrationError
from bundle.core.provider import registry_of
from bundle.introspection.serialization import serialize_dag
from bundle.target import load_target
from bundle.testing import FakeClient, run_task
from packer.dagfile import DagFileError, render
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

from .serialization_compare import assert_equivalent
from .test_bundle_run import bundle_run
from .test_dagfile import assert_same_dags, document_of, generated, import_with_dagbag
from .test_serialization import Noop

GROUPS_BUNDLE = Path(__file__).parent / "e2e" / "bundles" / "groups.py"
RUN = "manual__2026-01-01"


def _noop() -> None: ...


# -- the same DAG, built by both SDKs -------------------------------------------------------------
# A builder gets ``task(name)``, ``group(name, **kwargs)`` (a context manager) and builds a shape; it
# returns nothing, the links are made with >> / << on what those return.
Builder = Callable[[Callable[[str], Any], Callable[..., Any]], None]


def nested(task: Callable[[str], Any], group: Callable[..., Any]) -> None:
    a = task("a")
    with group("outer", tooltip="tt", default_args={"retries": 3, "pool": "p"}, doc_md="# Outer") as outer:
        b = task("b")
        with group("inner", prefix_group_id=False, ui_color="red", doc_md="two\n\n*lines*") as inner:
            task("c")
            with group("deep", group_display_name="Deep", ui_fgcolor="#fff"):
                task("e")
        b >> inner
    z = task("z")
    a >> outer >> z
    with group("g2") as g2:
        task("y")
    outer >> g2
    g2 << inner


def lists_and_empty(task: Callable[[str], Any], group: Callable[..., Any]) -> None:
    a, b = task("a"), task("b")
    with group("g", default_args={"retry_delay": timedelta(seconds=7), "owner": "team"}) as g:
        x, y = task("x"), task("y")
        x >> y
    with group("h") as h:
        task("w")
    with group("empty"):
        pass
    [a, b] >> g >> [h, task("tail")]


CASES: dict[str, Builder] = {"nested": nested, "lists_and_empty": lists_and_empty}


def _bundle_dag(builder: Builder) -> Any:
    bundle = Bundle("groups")
    dag = bundle.dag("grouped", default_args={"retries": 1})
    builder(lambda name: dag.add_task_with_name(name, _noop), dag.task_group)
    return bundle, dag


def _python_dag(builder: Builder) -> DAG:
    with DAG("grouped", schedule=None, default_args={"retries": 1}) as dag:
        builder(lambda name: Noop(task_id=name), TaskGroup)
    return dag


@pytest.mark.parametrize("name", sorted(CASES))
def test_serialization_equals_cores_task_group_tree(name: str) -> None:
    _, dag = _bundle_dag(CASES[name])
    ours = serialize_dag(dag, fileloc="")
    DagSerialization.validate_schema(ours)
    DagSerialization.from_dict(ours)
    assert_equivalent(ours, DagSerialization.to_dict(_python_dag(CASES[name])))


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_dag_file_round_trips_groups(name: str, tmp_path: Path) -> None:
    bundle, _ = _bundle_dag(CASES[name])
    path, document = generated(bundle, tmp_path)
    source = path.read_text()
    assert "from airflow.sdk import DAG, TaskGroup, task" in source
    assert 'with TaskGroup("g2") as g2_group:' in source or name != "nested"
    assert_same_dags(document, import_with_dagbag(path))


def test_the_e2e_bundles_dag_file_round_trips(tmp_path: Path) -> None:
    path, document = generated(load_target(str(GROUPS_BUNDLE)), tmp_path)
    source = path.read_text()
    assert '@task.stub(task_id="double", queue="python-bundle")' in source  # the label; group defaults
    assert (
        'default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},\n    ) as process_group:' in source
    )
    assert "process_double_task = process_double(rows=start_task)" in source
    assert_same_dags(document, import_with_dagbag(path))


def test_a_group_linked_before_its_tasks_changed_is_refused_by_the_dag_file() -> None:
    bundle = Bundle("late")
    dag = bundle.dag("late")
    after = dag.add_task_with_name("after", _noop)
    with dag.task_group("g") as g:
        dag.add_task_with_name("first", _noop)
    g >> after
    with g:  # a leaf added after the link: Airflow links only the leaves it saw
        dag.add_task_with_name("second", _noop)
    with pytest.raises(DagFileError, match=r"task group dependency \(g_group >> after_task\)"):
        render(document_of(bundle), "test")


# -- authoring --------------------------------------------------------------------------------------


def test_tasks_get_prefixed_ids_and_merged_default_args() -> None:
    bundle = Bundle("b", queue="q")
    dag = bundle.dag("d", default_args={"retries": 1, "owner": "dag"})
    with dag.task_group("outer", default_args={"retries": 2, "pool": "p"}):
        with dag.task_group("inner", default_args={"owner": "inner"}):

            @dag.task(pool="own")
            def rows() -> int:
                return 1

    assert rows.task_id == "outer.inner.rows"
    assert list(dag.tasks) == ["outer.inner.rows"]
    options = rows.effective_options
    assert (options["retries"], options["owner"], options["pool"], options["queue"]) == (
        2,
        "inner",
        "own",
        "q",
    )
    assert run_task(bundle, "d", "outer.inner.rows").return_value == 1


def test_data_passing_inside_and_across_groups() -> None:
    bundle = load_target(str(GROUPS_BUNDLE))
    dag = registry_of(bundle).dags["groups_dag"]
    assert list(dag.tasks) == [
        "start",
        "process.double",
        "process.stats.total",
        "process.stats.peak",
        "check",
        "finish",
    ]
    assert dag.tasks["finish"].upstream_task_ids == ["process.stats.total", "process.stats.peak"]
    # a dotted task id needs FakeClient's full locator: "a.b" is its shorthand for task a, key b
    run = "manual__t"
    xcoms = {
        ("groups_dag", run, "process.stats.total", "return_value"): 12,
        ("groups_dag", run, "process.stats.peak", "return_value"): 6,
    }
    result = run_task(bundle, "groups_dag", "finish", client=FakeClient(xcoms=xcoms), run_id=run)
    assert result.return_value == {"total": 12, "peak": 6}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda d: (d.task_group("g"), d.task_group("g")), "dag 'd': group id 'g' is already used"),
        (
            lambda d: (d.add_task_with_name("g", _noop), d.task_group("g")),
            "dag 'd': group id 'g' is already used",
        ),
        (
            lambda d: (d.task_group("g"), d.add_task_with_name("g", _noop)),
            "task 'g' is already used by a task group in dag 'd'",
        ),
        (
            lambda d: (d.add_task_with_name("g.x", _noop), _in_group(d, "g", "x")),
            r"task 'x' of task group 'g' \(id 'g.x'\) is already registered in dag 'd'",
        ),
        (lambda d: d.task_group("a.b"), "task group id 'a.b' may contain only letters"),
        (lambda d: d.task_group("g", tooltip=3), "tooltip must be a str"),
        (lambda d: d.task_group("g", default_args={"retriez": 1}), "unknown attribute 'retriez'"),
        (lambda d: d.task_group("g", doc_md=3), "task group 'g' in dag 'd': doc_md must be a str or None"),
        (
            lambda d: d.task_group("g", colour="red"),
            "dag 'd': task group 'g': unknown attribute 'colour'; Airflow's TaskGroup names are: default_args",
        ),
        (
            lambda d: d.add_task_with_name("t", _noop) >> d.task_group("g"),
            "task group 'g' has no tasks yet",
        ),
    ],
)
def test_registration_errors_name_the_ids(build: Callable[[Any], Any], message: str) -> None:
    dag = Bundle("b").dag("d")
    with pytest.raises(RegistrationError, match=message):
        build(dag)


def _in_group(dag: Any, group_id: str, task_id: str) -> None:
    with dag.task_group(group_id):
        dag.add_task_with_name(task_id, _noop)


def test_a_fail_fast_dag_refuses_a_groups_trigger_rule() -> None:
    dag = Bundle("b").dag("d", fail_fast=True)
    with pytest.raises(RegistrationError, match="task group 'g' default_args has trigger_rule 'all_done'"):
        dag.task_group("g", default_args={"trigger_rule": "all_done"})


# -- under the released supervisor, and bundle-run ----------------------------------------------------


def test_supervised_task_in_a_nested_group_runs_by_its_prefixed_id() -> None:
    api = FakeExecutionAPI(xcoms={("groups_dag", RUN, "process.double", "return_value"): [2, 4, 6]})
    command = [sys.executable, "-m", "bundle", "--bundle", str(GROUPS_BUNDLE)]
    run = supervised_run(command, dag_id="groups_dag", task_id="process.stats.total", run_id=RUN, api=api)
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "success", run.describe()
    assert run.api.xcom("groups_dag", RUN, "process.stats.total", "return_value") == 12


def test_bundle_run_runs_groups_with_their_default_args(tmp_path: Path) -> None:
    run = bundle_run(GROUPS_BUNDLE, "--dag", "groups_dag", "--retry-delay-scale", "0", tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    assert run.states() == dict.fromkeys(
        ["start", "process.double", "process.stats.total", "process.stats.peak", "check", "finish"], "success"
    )
    assert [t["state"] for t in run.tries("process.stats.peak")] == ["up_for_retry", "success"]
    assert run.xcom("finish") == {"total": 12, "peak": 6}
    assert "process.stats.peak" in run.stdout


def test_group_doc_md_naming_a_markdown_file_is_read_as_airflow_reads_it(tmp_path: Path) -> None:
    doc = tmp_path / "group.md"
    doc.write_text("# From a file\n")
    missing = str(tmp_path / "missing.md")
    dag = Bundle("b").dag("d")
    with DAG("d", schedule=None):
        for name, given in (("read", str(doc)), ("kept", missing), ("plain", "text.md here")):
            ours = dag.task_group(name, doc_md=given).doc_md
            assert ours == TaskGroup(name, doc_md=given).doc_md
    assert dag.root_group.children["read"].doc_md == "# From a file\n"
    assert dag.root_group.children["kept"].doc_md == missing
