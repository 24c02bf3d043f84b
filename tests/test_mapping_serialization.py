"""Dynamic task mapping, the static side: DagSerialization against core 3.3.2 and the generated DAG file.

Each case builds one DAG twice from the same code: with pybundle (``@dag.task``, ``dag.task_group``)
and with Airflow's Python SDK (``@task``, ``TaskGroup``), the mapping declared with the same
``.partial(...).expand(...)`` / ``.expand_kwargs(...)`` calls. pybundle's dict must pass core's
schema, load with ``from_dict`` into the same scheduler-side operators (``SerializedMappedOperator``
with the same expand input, parse-time length and mapped dependencies), and equal
``DagSerialization.to_dict`` of the Python DAG on every key but the decorator's own (what ``@task``
writes about its Python callable, listed in ``DECORATOR_KEYS`` with the reason). The generated DAG
file (``@task.stub(...)`` declared with ``.partial(...).expand(...)``) must import into core's DagBag
and the real ``DagFileProcessorProcess`` and serialize like the bundle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, Param, TaskGroup, task
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Bundle, RegistrationError
from bundle import Param as BundleParam
from bundle.introspection.serialization import serialize_dag
from packer.dagfile import STUB_ONLY_TASK_KEYS

from .serialization_compare import compare_serialized, loaded_view

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc

# What @task writes about its Python callable and a bundle task does not have (the scheduler reads
# none of it): the decorator's class, module, callable name and template fields (STUB_ONLY_TASK_KEYS:
# a bundle task templates nothing, so its template_fields are []), and the operator class's
# ui_color. A mapped task's op_kwargs live inside partial_kwargs, which is compared whole.
DECORATOR_KEYS = STUB_ONLY_TASK_KEYS | {"ui_color"}


class Side:
    """One SDK's spelling of a DAG: ``task(**options)`` (a decorator), ``group(...)``, the DAG."""

    def __init__(self, python: bool, dag_options: dict[str, Any]):
        self.python = python
        if python:
            self.dag: Any = DAG("mapping", schedule=None, **dag_options)
        else:
            self.bundle = Bundle("mapping")
            options = dict(dag_options)
            if "params" in options:
                options["params"] = {
                    name: BundleParam(p.value, **p.schema) if isinstance(p, Param) else p
                    for name, p in options["params"].items()
                }
            self.dag = self.bundle.dag("mapping", **options)

    def task(self, **options: Any) -> Callable[[Callable[..., Any]], Any]:
        return task(**options) if self.python else self.dag.task(**options)

    def group(self, group_id: str, **options: Any) -> Any:
        return TaskGroup(group_id, **options) if self.python else self.dag.task_group(group_id, **options)

    def serialized(self) -> dict[str, Any]:
        if self.python:
            return DagSerialization.to_dict(self.dag)
        return serialize_dag(self.bundle.registry.dags["mapping"], fileloc="/x")


Case = Callable[[Side], None]


def literal_list(side: Side) -> None:
    @side.task()
    def square(x: int) -> int:
        """Squares: a mapped task's docstring is not its doc_md, as for @task."""
        return x * x

    square.expand(x=[1, 2, 3])


def literal_dict(side: Side) -> None:
    @side.task()
    def show(pair: list) -> str:
        return str(pair)

    show.expand(pair={"a": 1, "b": [2, 3], "c": {"d": None}})


def upstream_output(side: Side) -> None:
    @side.task()
    def numbers() -> list:
        return [1, 2, 3, 4, 5]

    @side.task()
    def square(x: int) -> int:
        return x * x

    square.expand(x=numbers())


def mapped_upstream(side: Side) -> None:
    @side.task()
    def square(x: int) -> int:
        return x * x

    @side.task()
    def double(y: int) -> int:
        return 2 * y

    double.expand(y=square.expand(x=[1, 2]))


def cross_product(side: Side) -> None:
    @side.task()
    def numbers() -> list:
        return [1, 2]

    @side.task()
    def combine(x: int, y: str, z: int) -> str:
        return f"{x}{y}{z}"

    combine.expand(y=["a", "b", "c"], x=numbers(), z=[7])


def expand_kwargs_literal(side: Side) -> None:
    @side.task()
    def pair(a: str, b: int = 0) -> str:
        return a * b

    pair.expand_kwargs([{"a": "p", "b": 1}, {"a": "q"}, {"b": 3, "a": "r"}])


def expand_kwargs_upstream(side: Side) -> None:
    @side.task()
    def make() -> list:
        return [{"a": "p", "b": 1}]

    @side.task()
    def pair(a: str, b: int = 0) -> str:
        return a * b

    pair.partial(b=4).expand_kwargs(make())


def partial_constants(side: Side) -> None:
    @side.task(multiple_outputs=True)
    def config() -> dict:
        return {"base": 10, "scale": 2}

    @side.task()
    def limit() -> int:
        return 3

    @side.task()
    def scaled(x: int, base: int, scale: int, limit: int, label: str, extra: dict) -> int:
        return x

    settings = config()
    scaled.partial(
        base=settings["base"],
        scale=settings["scale"],
        limit=limit(),
        label="L",
        extra={"k": [1, {"n": None}]},
    ).expand(x=[1, 2])


def map_index_template(side: Side) -> None:
    @side.task(map_index_template="{customer}-{x}")
    def visit(customer: str, x: int) -> str:
        return customer

    visit.partial(x=1).expand(customer=["ann", "bob"])


def reduce_downstream(side: Side) -> None:
    @side.task()
    def square(x: int) -> int:
        return x * x

    @side.task()
    def total(values: list, offset: int) -> int:
        return sum(values) + offset

    total(values=square.expand(x=[1, 2, 3]), offset=1)


def in_a_task_group(side: Side) -> None:
    @side.task()
    def numbers() -> list:
        return [1, 2]

    listed = numbers()  # an Airflow task belongs to the group it is called in, a bundle's to its own
    with side.group("process", default_args={"retries": 3, "owner": "group-owner"}):

        @side.task(pool="p")
        def square(x: int) -> int:
            return x * x

        squares = square.expand(x=listed)

        @side.task()
        def total(values: list) -> int:
            return sum(values)

        total(values=squares)


def every_option(side: Side) -> None:
    options: dict[str, Any] = {
        "owner": "data-team",
        "start_date": datetime(2026, 2, 1, tzinfo=UTC),
        "end_date": datetime(2026, 11, 30, tzinfo=UTC),
        "trigger_rule": "all_done",
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
        "do_xcom_push": False,
        "doc_md": "maps things",
        "map_index_template": "{x}",
        "max_active_tis_per_dag": 3,
        "max_active_tis_per_dagrun": 4,
        "task_display_name": "Mapped!",
        "multiple_outputs": True,
    }

    @side.task(**options)
    def everything(x: int) -> dict:
        return {"x": x}

    @side.task(
        retry_delay=timedelta(seconds=300),
        retries=0,
        queue="default",
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
    )
    def at_defaults(x: int) -> None: ...

    @side.task(priority_weight=2**40)
    def heavy(x: int) -> None: ...

    everything.expand(x=[1])
    at_defaults.expand(x=[1])
    heavy.expand(x=[1])


CASES: dict[str, tuple[Case, dict[str, Any]]] = {
    "literal_list": (literal_list, {}),
    "literal_dict": (literal_dict, {}),
    "upstream_output": (upstream_output, {}),
    "mapped_upstream": (mapped_upstream, {}),
    "cross_product": (cross_product, {}),
    "expand_kwargs_literal": (expand_kwargs_literal, {}),
    "expand_kwargs_upstream": (expand_kwargs_upstream, {}),
    "partial_constants": (partial_constants, {}),
    "map_index_template": (map_index_template, {}),
    "reduce_downstream": (reduce_downstream, {}),
    "in_a_task_group": (in_a_task_group, {"default_args": {"retries": 1, "do_xcom_push": False}}),
    "every_option": (
        every_option,
        {
            "start_date": datetime(2026, 1, 1, tzinfo=UTC),
            "end_date": datetime(2027, 1, 1, tzinfo=UTC),
            "params": {"n": Param(3, type="integer"), "plain": 5},
            "default_args": {
                "retries": 4,
                "owner": "x",
                "executor": "LocalExecutor",
                "multiple_outputs": True,
            },
        },
    ),
}


def both(name: str) -> tuple[Side, Side]:
    build, dag_options = CASES[name]
    sides = Side(False, dag_options), Side(True, dag_options)
    for side in sides:
        with side.dag:
            build(side)
    return sides


@pytest.fixture(autouse=True)
def configured_executors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A case names LocalExecutor; DagBag refuses a task whose executor is not configured. The
    value is tests/test_dagfile.py's: executor_loader keeps per-team tables that clearing
    _executor_names does not reset, so the modules must agree."""
    from airflow.executors import executor_loader

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor,CeleryExecutor")
    executor_loader._executor_names.clear()
    yield
    executor_loader._executor_names.clear()


@pytest.mark.parametrize("name", sorted(CASES))
def test_serialization_equals_cores_for_the_same_mapping(name: str) -> None:
    ours_side, python_side = both(name)
    ours, python = ours_side.serialized(), python_side.serialized()
    DagSerialization.validate_schema(ours)
    diffs = compare_serialized(ours, python, ignored_task_keys=DECORATOR_KEYS)
    assert diffs == [], "\n".join(diffs)
    assert loaded_view(ours) == loaded_view(python)
    ours_dag, python_dag = DagSerialization.from_dict(ours), DagSerialization.from_dict(python)
    mapped = [t for t in python_dag.task_dict.values() if t.is_mapped]
    assert mapped, "every case maps a task"
    for python_task in mapped:
        our_task = ours_dag.task_dict[python_task.task_id]
        assert type(our_task).__name__ == "SerializedMappedOperator"
        assert our_task.partial_kwargs == python_task.partial_kwargs
        assert sorted(o.task_id for o in our_task.iter_mapped_dependencies()) == sorted(
            o.task_id for o in python_task.iter_mapped_dependencies()
        )
        ours_count = _parse_time_count(our_task)
        assert ours_count == _parse_time_count(python_task)


def _parse_time_count(task: Any) -> Any:
    from airflow.exceptions import NotMapped

    try:
        return task.get_parse_time_mapped_ti_count()
    except NotMapped:
        return "not mapped"
    except Exception as exc:  # an upstream reference: only run time knows
        return type(exc).__name__


def test_the_expand_input_and_partial_kwargs_are_cores_encoding() -> None:
    """Spot checks of what the comparison above proves, so a reader sees the shape."""
    ours = both("partial_constants")[0].serialized()
    scaled = next(t["__var"] for t in ours["dag"]["tasks"] if t["__var"]["task_id"] == "scaled")
    assert scaled["_is_mapped"] is True and scaled["_disallow_kwargs_override"] is False
    assert scaled["op_kwargs_expand_input"] == {
        "type": "dict-of-lists",
        "value": {"__type": "dict", "__var": {"x": [1, 2]}},
    }
    assert scaled["partial_kwargs"]["op_kwargs"]["__var"]["base"] == {
        "__type": "xcomref",
        "__var": {"task_id": "config", "key": "base"},
    }
    assert scaled["partial_kwargs"]["op_args"] == []
    assert not {"retry_delay", "_needs_expansion", "has_retry_policy", "doc_md"} & scaled.keys()
    kwargs = next(
        t["__var"] for t in both("expand_kwargs_upstream")[0].serialized()["dag"]["tasks"]
        if t["__var"]["task_id"] == "pair"
    )  # fmt: skip
    assert kwargs["_disallow_kwargs_override"] is True
    assert kwargs["op_kwargs_expand_input"] == {
        "type": "list-of-dicts",
        "value": {"__type": "xcomref", "__var": {"task_id": "make", "key": "return_value"}},
    }


def test_map_index_template_is_a_python_format_written_as_given() -> None:
    """The bundle's label is ``str.format`` over the task's arguments, rendered by its runtime; it
    travels as the string given, like any template (the scheduler never renders it). A Python DAG
    writes Jinja instead (``{{ task.op_kwargs['x'] }}``): the one legitimate difference from a
    Python twin, in that string only."""
    ours = both("map_index_template")[0].serialized()
    visit = next(t["__var"] for t in ours["dag"]["tasks"] if t["__var"]["task_id"] == "visit")
    assert visit["partial_kwargs"]["map_index_template"] == "{customer}-{x}"


# -- registration errors Airflow gives at parse time -------------------------------------------------


def _airflow_error(build: Callable[[Any], Any]) -> str:
    with DAG("errors", schedule=None):
        try:
            build(task)
        except (TypeError, ValueError) as exc:
            return str(exc)
    raise AssertionError("Airflow accepted it")


def _bundle_error(build: Callable[[Any], Any]) -> str:
    dag = Bundle("errors").dag("errors")
    with pytest.raises(RegistrationError) as raised, dag:
        build(dag.task)
    return str(raised.value)


def _custom_key(decorate: Any) -> None:
    @decorate(multiple_outputs=True)
    def config() -> dict:
        return {"rows": [1]}

    @decorate()
    def use(x: int) -> None: ...

    use.expand(x=config()["rows"])


def _custom_key_kwargs(decorate: Any) -> None:
    @decorate(multiple_outputs=True)
    def config() -> dict:
        return {"rows": [1]}

    @decorate()
    def use(x: int) -> None: ...

    use.expand_kwargs(config()["rows"])


def _always_over_upstream(decorate: Any) -> None:
    @decorate()
    def numbers() -> list:
        return [1]

    @decorate(trigger_rule="always")
    def use(x: int) -> None: ...

    use.expand(x=numbers())


def _always_over_upstream_kwargs(decorate: Any) -> None:
    @decorate()
    def numbers() -> list:
        return [1]

    @decorate(trigger_rule="always")
    def use(x: int) -> None: ...

    use.expand_kwargs(numbers())


def _context_name(decorate: Any) -> None:
    @decorate()
    def use(ti: int) -> None: ...

    use.expand(ti=[1])


def _context_names_in_partial(decorate: Any) -> None:
    @decorate()
    def use(x: int, params: int, ds: int) -> None: ...

    use.partial(params=1, ds=2).expand(x=[1])


@pytest.mark.parametrize(
    "build",
    [_custom_key, _custom_key_kwargs, _always_over_upstream, _context_name, _context_names_in_partial],
    ids=lambda f: f.__name__.strip("_"),
)
def test_parse_time_refusals_follow_airflow(build: Callable[[Any], Any]) -> None:
    airflow_message = _airflow_error(build).split(" from <")[0]  # Airflow names the upstream by its repr
    message = _bundle_error(build)
    if "variables " in airflow_message:  # Airflow lists the names from a set: in any order
        head, names = airflow_message.split("variables ")
        assert head + "variables " in message and sorted(names.split(", ")) == sorted(
            message.split("variables ")[1].split(", ")
        ), (airflow_message, message)
    else:
        assert airflow_message in message, (airflow_message, message)
    assert "'use'" in message and "'errors'" in message


def test_always_over_an_upstream_kwargs_list_is_accepted_as_in_airflow() -> None:
    """Airflow refuses trigger_rule="always" with expand_kwargs only for references *inside* a
    literal list (which a bundle cannot write); over an upstream's output it is accepted."""
    with DAG("errors", schedule=None):
        _always_over_upstream_kwargs(task)
    dag = Bundle("errors").dag("errors")
    with dag:
        _always_over_upstream_kwargs(dag.task)
    assert dag.tasks["use"].is_mapped


def test_a_literal_expansion_of_any_length_parses_as_in_airflow() -> None:
    """``[core] max_map_length`` is the scheduler's run-time check (core's expand_mapped_task), not
    a parse-time one: a literal list longer than it serializes, in pybundle as in Airflow."""
    dag = Bundle("long").dag("long")

    @dag.task
    def one(x: int) -> None: ...

    with dag:
        one.expand(x=list(range(2000)))
    ours = serialize_dag(dag, fileloc="x")
    DagSerialization.validate_schema(ours)
    assert DagSerialization.from_dict(ours).task_dict["one"].get_parse_time_mapped_ti_count() == 2000


# -- the generated DAG file ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_dag_file_declares_the_same_mapping(name: str, tmp_path: Path) -> None:
    from .test_dagfile import assert_same_dags, generated, import_with_dagbag

    path, document = generated(both(name)[0].bundle, tmp_path)
    imported = import_with_dagbag(path)
    assert_same_dags(document, imported)
    source = path.read_text()
    assert ".expand(" in source or ".expand_kwargs(" in source


def test_generated_file_spells_partial_expand_and_reduce(tmp_path: Path) -> None:
    from .test_dagfile import generated, import_with_dagbag

    path, _ = generated(both("partial_constants")[0].bundle, tmp_path)
    source = path.read_text()
    assert "scaled_task = scaled.partial(\n" in source
    assert 'base=config_task["base"]' in source and ").expand(x=[1, 2])" in source
    path, _ = generated(both("reduce_downstream")[0].bundle, tmp_path, "reduce.py")
    source = path.read_text()
    assert "square_task = square.expand(x=[1, 2, 3])" in source
    assert "total_task = total(values=square_task, offset=1)" in source
    tasks = {t["__var"]["task_id"]: t["__var"] for t in import_with_dagbag(path)["mapping"]["dag"]["tasks"]}
    assert tasks["total"]["op_kwargs"]["values"] == (
        "{{ task_instance.xcom_pull(task_ids='square', dag_id='mapping', key='return_value') }}"
    )
    path, _ = generated(both("expand_kwargs_upstream")[0].bundle, tmp_path, "kwargs.py")
    assert "pair_task = pair.partial(b=4).expand_kwargs(make_task)" in path.read_text()


def test_real_dag_processor_parses_a_mapped_dag_file(tmp_path: Path) -> None:
    from .test_dagfile import assert_same_dags, generated

    bundle = Bundle("mapping")
    for name in ("upstream_output", "cross_product", "expand_kwargs_literal", "reduce_downstream"):
        side = Side(False, {})
        side.bundle, side.dag = bundle, bundle.dag(name)
        with side.dag:
            CASES[name][0](side)
    path, document = generated(bundle, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tests.peers.dag_processor", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout)
    assert parsed["import_errors"] == {} and parsed["warnings"] == [], parsed
    by_id = {dag["dag"]["dag_id"]: dag for dag in parsed["dags"]}  # the processor's order is its own
    assert_same_dags(
        document, {dag.dag_id: by_id[dag.dag_id] for dag in document.dags if dag.dag_id in by_id}
    )


def _long_lines(bundle: Bundle, long_names: bool) -> None:
    """Mapped calls that need each layout: split at .expand(, at .partial( with the tail flat or
    split, and (``long_names``: heads past 88 columns) the right-hand side in parentheses."""
    dag = bundle.dag("long_names" if long_names else "long_lines")
    name = "a_task_with_a_rather_long_name_indeed" if long_names else "medium_named"

    def fn(first_argument: str, second_argument: Any, third: Any = None) -> None: ...

    def other(values: list) -> None: ...

    first = dag.task(task_id=name)(fn)
    second = dag.task(task_id=f"{name}_2")(fn)
    third = dag.task(task_id=f"{name}_3")(fn)
    fourth = dag.task(task_id=f"{name}_4")(other)
    with dag:
        first.partial(second_argument=12345678).expand(
            first_argument=["a fairly long literal string", "and another fairly long one", "x" * 30]
        )
        second.partial(second_argument="s" * 40, third="t" * 20).expand(first_argument=["a"])
        third.partial(second_argument="s" * 40, third="t" * 20).expand(first_argument=["u" * 40, "v" * 40])
        fourth.expand_kwargs([{"values": [1, 2, 3]}, {"values": ["y" * 40, "z" * 40]}])


@pytest.mark.parametrize("line_length", [88, 110])
def test_generated_mapping_files_are_ruff_formatted(tmp_path: Path, line_length: int) -> None:
    """Stable under ``ruff format`` at 88 columns and longer, like every generated file, except
    where a task id is so long that ``instance = function.partial(`` passes 88 columns: ruff then
    parenthesizes the right-hand side at 88 and takes the parentheses out again at 110 (as it would
    for a plain task's ``instance = function(`` past 88 columns), so that layout is checked at 88."""
    from .test_dagfile import RUFF, generated

    bundle = Bundle("mapping")
    for name, (build, dag_options) in CASES.items():
        side = Side(False, {})
        options = {k: v for k, v in dag_options.items() if k != "params"}
        side.bundle, side.dag = bundle, bundle.dag(name, **options)
        with side.dag:
            build(side)
    _long_lines(bundle, long_names=False)
    if line_length == 88:
        _long_lines(bundle, long_names=True)
    path, _ = generated(bundle, tmp_path)
    source = path.read_text()
    assert "_task = medium_named.partial(second_argument=12345678).expand(\n" in source
    assert ').expand(first_argument=["a"])\n' in source  # .partial( split, the tail flat
    if line_length == 88:
        assert "a_task_with_a_rather_long_name_indeed_task = (\n" in source
    result = subprocess.run(
        [RUFF, "format", "--isolated", "--check", "--diff", f"--line-length={line_length}", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the e2e bundle and its Python twin (tests/e2e/test_mapping.py runs both) --------------------

E2E_BUNDLE = ROOT / "tests" / "e2e" / "bundles" / "mapping.py"
E2E_TWIN = ROOT / "tests" / "e2e" / "dags" / "python_mapping.py"


def test_the_e2e_bundle_serializes_like_its_python_twin() -> None:
    """Three legitimate differences, normalised here with their reasons: the dag id (both run in
    one deployment), the queue (the twin runs on Airflow's own workers, the bundle on its queue) and
    the labels (the twin's Jinja templates render the strings the bundle's str.format ones do: the
    e2e test compares the rendered labels)."""
    from airflow.dag_processing.dagbag import DagBag

    from bundle.target import load_target

    ours = serialize_dag(load_target(str(E2E_BUNDLE)).registry.dags["mapping_dag"], fileloc="x")
    DagSerialization.validate_schema(ours)
    bag = DagBag(dag_folder=str(E2E_TWIN))
    assert bag.import_errors == {}
    python = DagSerialization.to_dict(bag.dags["python_mapping_dag"])
    python["dag"]["dag_id"] = "mapping_dag"
    templates = {}
    for ours_entry, entry in zip(ours["dag"]["tasks"], python["dag"]["tasks"], strict=True):
        task_data, our_data = entry["__var"], ours_entry["__var"]
        target = task_data.get("partial_kwargs", task_data)
        target["queue"] = "python-bundle"
        if "map_index_template" in target:
            assert "{{" in target["map_index_template"]
            templates[task_data["task_id"]] = target["map_index_template"]
            target["map_index_template"] = our_data["partial_kwargs"]["map_index_template"]
    assert sorted(templates) == ["combine", "greet", "scale", "square"]
    diffs = compare_serialized(ours, python, ignored_task_keys=DECORATOR_KEYS)
    assert diffs == [], "\n".join(diffs)


def test_the_e2e_bundles_dag_file_round_trips(tmp_path: Path) -> None:
    from bundle.target import load_target

    from .test_dagfile import assert_same_dags, generated, import_with_dagbag

    path, document = generated(load_target(str(E2E_BUNDLE)), tmp_path)
    assert_same_dags(document, import_with_dagbag(path))


def test_coordinator_parse_mode_answers_the_mapped_dag() -> None:
    """A DagFileParseRequest from core's real DagFileProcessorProcess: the bundle's own answer (not
    the generated file) carries the mapped operators, which core validates and loads."""
    from tests.harness.supervised import parse_dag_file

    run = parse_dag_file([sys.executable, "-m", "bundle", "--bundle", str(E2E_BUNDLE)])
    assert run.errors == [], run.describe()
    assert run.exit_code == 0 and run.dag_ids == ["mapping_dag"]
    [data] = run.serialized_dags
    DagSerialization.validate_schema(data)
    loaded = DagSerialization.from_dict(data)
    mapped = sorted(task_id for task_id, task in loaded.task_dict.items() if task.is_mapped)
    assert mapped == ["combine", "greet", "never", "scale", "square"]
    assert loaded.task_dict["combine"].get_parse_time_mapped_ti_count() == 6
    assert [op.task_id for op in loaded.task_dict["scale"].iter_mapped_dependencies()] == ["square"]


def test_a_mapped_sensor_keeps_is_sensor_in_serialization_and_dag_file(tmp_path: Path) -> None:
    """Core writes ``_is_sensor`` for a mapped ``@task.sensor`` (ReadyToRescheduleDep joins its
    deps); the bundle does too. The one difference from the twin, normalised with its reason: the
    twin's partial_kwargs list its sensor options, which the bundle's runtime uses and the
    scheduler does not (and a ``@task.stub`` cannot take)."""
    from .test_dagfile import assert_same_dags, generated, import_with_dagbag

    bundle = Bundle("sensing")
    dag = bundle.dag("sensing")

    @dag.sensor(mode="reschedule", poke_interval=5, timeout=60)
    def wait(x: int) -> bool:
        return True

    with dag:
        wait.expand(x=[1, 2])
    with DAG("sensing", schedule=None) as python_dag:

        @task.sensor(mode="reschedule", poke_interval=5, timeout=60)
        def wait(x: int) -> bool:  # the twin
            return True

        wait.expand(x=[1, 2])
    ours, python = serialize_dag(dag, fileloc="x"), DagSerialization.to_dict(python_dag)
    DagSerialization.validate_schema(ours)
    sensor_options = {"mode", "poke_interval", "timeout"}
    partial = python["dag"]["tasks"][0]["__var"]["partial_kwargs"]
    assert sensor_options <= partial.keys()
    for name in sensor_options:
        del partial[name]
    diffs = compare_serialized(ours, python, ignored_task_keys=DECORATOR_KEYS)
    assert diffs == [], "\n".join(diffs)
    assert DagSerialization.from_dict(ours).task_dict["wait"]._is_sensor
    path, document = generated(bundle, tmp_path)
    assert "wait_task.operator._is_sensor = True" in path.read_text()
    assert_same_dags(document, import_with_dagbag(path))


def test_the_context_keys_are_airflows() -> None:
    from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS

    from bundle.core.authoring.mapping import AIRFLOW_CONTEXT_KEYS

    assert AIRFLOW_CONTEXT_KEYS == KNOWN_CONTEXT_KEYS


def test_the_dag_file_refuses_a_mapping_it_cannot_write() -> None:
    """A serialization from another runtime (a classic operator's ``expand_input``, an encoded
    value the file has no literal for) is refused in one line naming DAG, task and attribute."""
    from packer.dagfile import DagFileError, render

    from .test_dagfile import document_of

    for attribute, change in (
        ("_expand_input_attr", lambda task: task.update(_expand_input_attr="expand_input")),
        (
            "op_kwargs_expand_input",
            lambda task: task["op_kwargs_expand_input"]["value"]["__var"].update(
                x={"__type": "set", "__var": [1]}
            ),
        ),
    ):
        document = document_of(both("literal_list")[0].bundle)
        change(document.dags[0].serialized["dag"]["tasks"][0]["__var"])
        with pytest.raises(DagFileError) as raised:
            render(document, "cmd")
        message = str(raised.value)
        assert "'mapping'" in message and "'square'" in message and repr(attribute) in message
        assert "\n" not in message
