"""Branching (``@dag.branch``) and short-circuit (``@dag.short_circuit``) against Airflow's own code.

* A property: for random DAG shapes and branch results, the runtime skips exactly what Airflow's
  ``BranchMixIn.do_branch`` / ``SkipMixin.skip_all_except`` and ``ShortCircuitOperator.execute``
  skip for the same Python DAG (run here with a stand-in task instance), pushes the same
  ``skipmixin_key`` XCom, pushes ``return_value`` exactly when Airflow does, and fails where it fails.
* Under the released supervisor (tests/harness): the ``SkipDownstreamTasks`` request reaches the
  Execution API as ``PATCH .../skip-downstream`` (validated with core's model), after the XCom and
  before the task succeeds; an unknown id fails the task with Airflow's message.
* Serialization and the generated DAG file equal core's for ``@task.branch`` / ``@task.short_circuit``
  on every scheduler-relevant key (``_can_skip_downstream``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.standard.operators.branch import BranchMixIn
from airflow.providers.standard.operators.python import (
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from airflow.sdk import DAG
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.exceptions import AirflowException, DownstreamTasksSkipped
from airflow.serialization.serialized_objects import DagSerialization
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle import Bundle, RegistrationError
from bundle.introspection.serialization import serialize_dag
from bundle.target import load_target
from bundle.testing import FakeClient, run_task
from packer.dagfile import STUB_ONLY_TASK_KEYS
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

from . import branching_expected as expected
from .serialization_compare import compare_serialized

ROOT = Path(__file__).resolve().parent.parent
BRANCHING = ROOT / "tests" / "e2e" / "bundles" / "branching.py"
TWIN = ROOT / "tests" / "e2e" / "dags" / "python_branching.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BRANCHING)]
RUN = "manual__2026-01-01"


class _Noop(BaseOperator):
    def execute(self, context: Any) -> None:
        return None


class _TI:
    """The parts of a runtime task instance ``SkipMixin`` uses."""

    def __init__(self, task: Any, map_index: int):
        self.task, self.map_index, self.pushed = task, map_index, {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def airflow_outcome(
    edges: list[tuple[int, int]], n: int, kind: str, returned: Any, map_index: int, ignore: bool = True
) -> tuple[str, Any, dict[str, Any], bool]:
    """Airflow's own code on the Python DAG: (``ok`` / the error text, the skip list or None, the
    XComs SkipMixin pushed, whether execute() returned, i.e. the return value would be pushed)."""
    with DAG("shape", schedule=None):
        if kind == "branch":
            op = BranchPythonOperator(task_id="t0", python_callable=lambda: returned)
        else:
            op = ShortCircuitOperator(
                task_id="t0", python_callable=lambda: returned, ignore_downstream_trigger_rules=ignore
            )
        ops = [op] + [_Noop(task_id=f"t{i}") for i in range(1, n)]
        for up, down in edges:
            ops[up] >> ops[down]
    ti = _TI(op, map_index)
    try:
        if kind == "branch":
            BranchMixIn.do_branch(op, {"ti": ti}, returned)
        else:
            with mock.patch.object(PythonOperator, "execute", return_value=returned):
                op.execute({"ti": ti, "task": op, "dag_run": None})
    except DownstreamTasksSkipped as skip:
        return "ok", skip.tasks, ti.pushed, False
    except AirflowException as exc:
        return str(exc), None, ti.pushed, False
    return "ok", None, ti.pushed, returned is not None


def bundle_outcome(
    edges: list[tuple[int, int]], n: int, kind: str, returned: Any, map_index: int, ignore: bool = True
) -> tuple[str, Any, dict[str, Any], bool]:
    bundle = Bundle("b")
    dag = bundle.dag("shape")
    if kind == "branch":
        tasks = [dag.branch(task_id="t0")(lambda: returned)]
    else:
        tasks = [dag.short_circuit(task_id="t0", ignore_downstream_trigger_rules=ignore)(lambda: returned)]
    tasks += [dag.task(task_id=f"t{i}")(lambda: None) for i in range(1, n)]
    for up, down in edges:
        tasks[up] >> tasks[down]
    result = run_task(bundle, "shape", "t0", map_index=map_index)
    skipped = result.skipped_downstream or None
    pushed = dict(result.xcoms)
    returned_pushed = "return_value" in pushed
    pushed.pop("return_value", None)
    if result.state != "success":
        assert pushed == {} and skipped is None and not returned_pushed
        return str(result.error), None, pushed, False
    return "ok", skipped, pushed, returned_pushed


def _canonical(outcome: tuple[str, Any, dict[str, Any], bool]) -> tuple[Any, ...]:
    status, skipped, pushed, returned = outcome
    skipped = None if skipped is None else sorted(tuple(i) if isinstance(i, list) else i for i in skipped)
    return status, skipped, {k: expected.sorted_lists(v) for k, v in pushed.items()}, returned


@st.composite
def shapes(draw: st.DrawFn) -> tuple[list[tuple[int, int]], int]:
    n = draw(st.integers(1, 7))
    edges = sorted(
        {(up, down) for down in range(1, n) for up in draw(st.sets(st.integers(0, down - 1), max_size=3))}
    )
    return edges, n


_BRANCH_RESULTS = (
    st.none()
    | st.sampled_from([f"t{i}" for i in range(7)])
    | st.lists(st.sampled_from([f"t{i}" for i in range(8)]), max_size=3)
    | st.sampled_from([["t1", 5], 3, ("t1", "t2"), "nope"])
)


@settings(max_examples=150, deadline=None)
@given(shape=shapes(), returned=_BRANCH_RESULTS, map_index=st.sampled_from([-1, -1, 2]))
def test_branch_skips_what_airflow_skips(
    shape: tuple[list[tuple[int, int]], int], returned: Any, map_index: int
):
    edges, n = shape
    ours = bundle_outcome(edges, n, "branch", returned, map_index)
    airflows = airflow_outcome(edges, n, "branch", returned, map_index)
    if airflows[0] != "ok":  # the message is Airflow's, a set's repr included
        assert ours[0].startswith("'branch_task_ids' must") or ours[0].startswith("Unable to branch")
        assert ours[0].split(":")[0] == airflows[0].split(":")[0]
        assert ours[1:] == (None, {}, False)
        return
    assert _canonical(ours) == _canonical(airflows)


@settings(max_examples=100, deadline=None)
@given(
    shape=shapes(),
    returned=st.sampled_from([True, False, 0, 1, "", "yes", None, [], {"k": 1}]),
    map_index=st.sampled_from([-1, -1, 2]),
    ignore=st.booleans(),
)
def test_short_circuit_skips_what_airflow_skips(
    shape: tuple[list[tuple[int, int]], int], returned: Any, map_index: int, ignore: bool
):
    edges, n = shape
    ours = bundle_outcome(edges, n, "short_circuit", returned, map_index, ignore)
    airflows = airflow_outcome(edges, n, "short_circuit", returned, map_index, ignore)
    assert _canonical(ours) == _canonical(airflows)


@pytest.mark.parametrize("returned", ["grp", ["grp", "other"], "other", "grp.a", "grp.b"])
def test_a_task_group_id_stands_for_the_groups_roots_as_in_airflow(returned: Any) -> None:
    from airflow.sdk import TaskGroup

    with DAG("g", schedule=None):
        op = BranchPythonOperator(task_id="pick", python_callable=lambda: returned)
        with TaskGroup("grp") as group:
            _Noop(task_id="a") >> _Noop(task_id="b")
            _Noop(task_id="c")
        other, join = _Noop(task_id="other"), _Noop(task_id="j")
        op >> [group, other]
        [group, other] >> join
    ti = _TI(op, -1)
    try:
        BranchMixIn.do_branch(op, {"ti": ti}, returned)
        airflow_skip: Any = []
    except DownstreamTasksSkipped as skip:
        airflow_skip = skip.tasks

    bundle = Bundle("b")
    dag = bundle.dag("g")
    pick = dag.branch(task_id="pick")(lambda: returned)
    with dag.task_group("grp") as ours_group:
        a = dag.task(task_id="a")(lambda: None)
        a >> dag.task(task_id="b")(lambda: None)
        dag.task(task_id="c")(lambda: None)
    ours_other, ours_join = dag.task(task_id="other")(lambda: None), dag.task(task_id="j")(lambda: None)
    pick >> [ours_group, ours_other]
    [ours_group, ours_other] >> ours_join
    result = run_task(bundle, "g", "pick")
    assert result.state == "success", result.traceback
    assert sorted(map(tuple, result.skipped_downstream)) == sorted(airflow_skip)
    assert expected.sorted_lists(result.xcoms["skipmixin_key"]) == expected.sorted_lists(
        ti.pushed["skipmixin_key"]
    )


def test_branch_results_and_messages_in_bundle_testing() -> None:
    bundle = load_target(str(BRANCHING))
    result = run_task(bundle, expected.BUNDLE_DAG, "pick")
    assert result.state == "success", result.traceback
    assert result.skipped_downstream == [["right", -1]]
    assert result.xcoms == {"skipmixin_key": {"followed": ["join", "left"]}}  # no return_value
    assert result.messages[:2] == ["Branch into left", "Following branch {'left'}"]
    opened = run_task(bundle, expected.BUNDLE_DAG, "open_gate")
    assert (opened.skipped_downstream, opened.xcoms) == ([], {"return_value": "yes"})

    other = Bundle("b")
    dag = other.dag("d")

    @dag.branch(do_xcom_push=False)
    def choose() -> list:
        return ["a", "gone"]

    choose >> dag.task(task_id="a")(lambda: None)
    failed = run_task(other, "d", "choose", client=FakeClient())
    assert failed.state == "failed"
    assert str(failed.error) == (
        "'branch_task_ids' must contain only valid task_ids. Invalid tasks found: {'gone'}."
    )
    assert failed.client.skipped_downstream == [] and failed.xcoms == {}
    with pytest.raises(RegistrationError, match="ignore_downstream_trigger_rules must be a bool"):
        dag.short_circuit(task_id="s", ignore_downstream_trigger_rules="yes")(lambda: None)


# -- under the released supervisor -------------------------------------------------------------


def _skip_calls(run: Any) -> list[Any]:
    return [c.json for c in run.calls if c.method == "PATCH" and c.path.endswith("/skip-downstream")]


def _order(run: Any) -> list[str]:
    """The branch-relevant requests in order: XCom pushes, the skip, the final state."""
    names = []
    for call in run.calls:
        if call.method == "POST" and "/xcoms/" in call.path:
            names.append("xcom " + call.path.rsplit("/", 1)[-1])
        elif call.path.endswith("/skip-downstream"):
            names.append("skip")
        elif call.method == "PATCH" and call.path.endswith("/state"):
            names.append("state " + call.json["state"])
    return names


def _airflow_skip(task_id: str) -> tuple[Any, dict[str, Any]]:
    """What Airflow's own code skips and pushes for ``task_id`` of the Python twin."""
    bag = DagBag(dag_folder=str(TWIN))
    assert bag.import_errors == {}, bag.import_errors
    op = bag.dags[expected.PYTHON_DAG].task_dict[task_id]
    ti = _TI(op, -1)
    try:
        with mock.patch.object(PythonOperator, "execute", return_value=op.python_callable()):
            op.execute({"ti": ti, "task": op, "dag_run": None})
    except DownstreamTasksSkipped as skip:
        return skip.tasks, ti.pushed
    return None, ti.pushed


@pytest.mark.parametrize("task_id", ["pick", "gate", "soft_gate", "open_gate"])
def test_supervised_skip_requests_equal_airflows(task_id: str) -> None:
    api = FakeExecutionAPI()
    run = supervised_run(COMMAND, dag_id=expected.BUNDLE_DAG, task_id=task_id, run_id=RUN, api=api)
    assert run.api.problems() == [], run.describe()
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    airflow_skip, airflow_pushed = _airflow_skip(task_id)
    skips = _skip_calls(run)
    if airflow_skip is None:
        assert skips == []
        assert _order(run) == ["xcom return_value", "state success"]
    else:
        assert len(skips) == 1
        ours = [tuple(item) if isinstance(item, list) else item for item in skips[0]["tasks"]]
        assert sorted(ours) == sorted(airflow_skip)
        assert _order(run) == ["xcom skipmixin_key", "skip", "state success"]
    for key, value in airflow_pushed.items():
        assert expected.sorted_lists(run.api.xcom(expected.BUNDLE_DAG, RUN, task_id, key)) == (
            expected.sorted_lists(value)
        )


def test_supervised_unknown_branch_fails_with_airflows_message(tmp_path: Path) -> None:
    source = tmp_path / "bad_branch.py"
    source.write_text(
        "from bundle import Bundle\n"
        "bundle = Bundle('bad')\n"
        "dag = bundle.dag('bad_dag')\n"
        "@dag.branch\n"
        "def pick():\n"
        "    return 'nope'\n"
        "@dag.task\n"
        "def after():\n"
        "    pass\n"
        "pick >> after\n"
    )
    run = supervised_run(
        [sys.executable, "-m", "bundle", "--bundle", str(source)],
        dag_id="bad_dag",
        task_id="pick",
        run_id=RUN,
    )
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "failed", run.describe()
    assert _skip_calls(run) == []
    assert "Invalid tasks found: {'nope'}." in str(run.log_records)


# -- serialization and the generated DAG file --------------------------------------------------


def test_serialization_equals_cores_for_branch_and_short_circuit() -> None:
    bundle = load_target(str(BRANCHING))
    ours = serialize_dag(bundle.registry.dags[expected.BUNDLE_DAG], fileloc="x")
    DagSerialization.validate_schema(ours)
    bag = DagBag(dag_folder=str(TWIN))
    python = DagSerialization.to_dict(bag.dags[expected.PYTHON_DAG])
    python["dag"]["dag_id"] = expected.BUNDLE_DAG
    for entry in python["dag"]["tasks"]:  # the twin runs on Airflow's workers, the bundle on its queue
        entry["__var"]["queue"] = "python-bundle"
    # What @task / @task.branch write for their Python callables (the decorator's own fields) is
    # not the scheduler's business; _can_skip_downstream is, and is compared.
    decorator_keys = STUB_ONLY_TASK_KEYS | {"ui_color", "_needs_expansion", "has_retry_policy", "doc_md"}
    diffs = compare_serialized(ours, python, ignored_task_keys=decorator_keys)
    assert diffs == [], "\n".join(diffs)
    skippers = {t["__var"]["task_id"] for t in ours["dag"]["tasks"] if t["__var"].get("_can_skip_downstream")}
    assert skippers == {"pick", "gate", "soft_gate", "open_gate"}
    loaded = DagSerialization.from_dict(ours)
    assert loaded.task_dict["pick"].inherits_from_skipmixin
    assert not loaded.task_dict["left"].inherits_from_skipmixin


def test_generated_dag_file_declares_skip_capable_stubs(tmp_path: Path) -> None:
    from .test_dagfile import assert_same_dags, generated, import_with_dagbag

    bundle = load_target(str(BRANCHING))
    path, document = generated(bundle, tmp_path)
    source = path.read_text()
    assert "    pick_task.operator._can_skip_downstream = True\n" in source
    imported = import_with_dagbag(path)
    assert_same_dags(document, imported)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in imported[expected.BUNDLE_DAG]["dag"]["tasks"]}
    assert tasks["pick"]["_can_skip_downstream"] is True
    assert tasks["pick"]["_operator_name"] == "@task.stub"
    assert "_can_skip_downstream" not in tasks["left"]


def test_bundles_that_do_not_branch_never_load_the_branching_module() -> None:
    import subprocess

    plain = ROOT / "tests" / "bundles" / "data_passing_bundle.py"  # (the example bundle branches)
    code = (
        "import sys; from bundle.target import load_target; from bundle.testing import run_task; "
        f"b = load_target({str(plain)!r}); run_task(b, 'dp_dag', 'keyed'); "
        "print('bundle.core.authoring.branching' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
