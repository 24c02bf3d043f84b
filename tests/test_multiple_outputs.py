"""``multiple_outputs`` inferred from the return annotation, against task-sdk 1.3.2's own decorator:
the inference on a table of annotations (and random ones), what registration makes of it, what core
serializes for the ``@task.stub`` twin, the generated DAG file, and the XComs pushed under the
released supervisor compared with what Airflow's task runner pushes for the same functions."""

from __future__ import annotations

import collections
import collections.abc
import os
import sys
import types
import typing
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Dict, Optional, TypedDict, Union  # noqa: UP035 (Dict is tested)

import pytest
from airflow.sdk import DAG
from airflow.sdk import task as airflow_task
from airflow.serialization.serialized_objects import DagSerialization
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle import Bundle, RegistrationError
from bundle.core.authoring.outputs import infer_multiple_outputs
from bundle.introspection.serialization import serialize_dag
from packer.dagfile import LOCATION_DAG_KEYS, STUB_ONLY_TASK_KEYS
from tests.harness.supervised import run_task as supervised_run

from .serialization_compare import compare_serialized
from .test_dagfile import assert_same_dags, generated, import_with_dagbag

BUNDLE = Path(__file__).parent / "bundles" / "multiple_outputs_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
RUN = "manual__2026-01-01"
T = typing.TypeVar("T")


class Summary(TypedDict):
    rows: list


class MyMapping(collections.abc.Mapping):  # a Mapping subclass that is not a dict
    def __getitem__(self, key: str) -> int:
        raise KeyError(key)

    def __iter__(self) -> typing.Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class NotAMapping:
    pass


def airflow_infers(annotation: Any) -> bool:
    """Task-sdk's ``@task`` on a function annotated ``-> annotation`` in this module."""
    return airflow_task(_annotated(annotation)).multiple_outputs


def _annotated(annotation: Any) -> Any:
    def f(): ...

    f.__annotations__ = {"return": annotation}
    return f


# Objects and their source text (a string annotation, as `from __future__ import annotations` makes).
ANNOTATIONS: list[tuple[Any, str | None]] = [
    (dict, "dict"),
    (Dict, "Dict"),  # noqa: UP006
    (dict[str, int], "dict[str, int]"),
    (Dict[str, Any], "Dict[str, Any]"),  # noqa: UP006
    (collections.abc.Mapping, "collections.abc.Mapping"),
    (collections.abc.Mapping[str, Any], "collections.abc.Mapping[str, Any]"),
    (typing.Mapping, "typing.Mapping"),
    (typing.MutableMapping[str, int], "typing.MutableMapping[str, int]"),
    (OrderedDict, "OrderedDict"),
    (OrderedDict[str, int], "OrderedDict[str, int]"),
    (collections.defaultdict, "collections.defaultdict"),
    (collections.Counter, "collections.Counter"),
    (collections.ChainMap, "collections.ChainMap"),
    (types.MappingProxyType, "types.MappingProxyType"),
    (os._Environ, "os._Environ"),
    (Summary, "Summary"),
    (MyMapping, "MyMapping"),
    (Annotated[dict, "meta"], "Annotated[dict, 'meta']"),
    (Any, "Any"),
    (None, "None"),
    (type(None), None),
    (int, "int"),
    (str, "str"),
    (list, "list"),
    (list[dict], "list[dict]"),
    (NotAMapping, "NotAMapping"),
    (Optional[dict], "Optional[dict]"),  # noqa: UP045
    (dict | None, "dict | None"),
    (Union[dict, list], "Union[dict, list]"),  # noqa: UP007
    (T, "T"),
    (typing.Iterator[str], "typing.Iterator[str]"),
    (object, "object"),
    (type, "type"),
    (1, "1"),
    (None, "Undefined"),  # a name only a TYPE_CHECKING block imports: NameError, so False
    (None, "'dict'"),  # a string in the string: get_type_hints resolves it again
    (None, "'Undefined'"),
    (dict[str, "int"], "dict[str, 'int']"),  # a forward reference among the arguments: resolved
    (None, "dict[str, 'Undefined']"),  # ... and failing to resolve: NameError, so False
    (Dict[str, "Undefined"], "Dict[str, 'Undefined']"),  # noqa: UP006, F821
]


@pytest.mark.parametrize(("annotation", "text"), ANNOTATIONS, ids=lambda v: repr(v)[:40])
def test_inference_is_airflows_on_a_table_of_annotations(annotation: Any, text: str | None) -> None:
    forms = [text] if annotation is None and text not in (None, "None") else [annotation, text]
    for form in forms:
        if form is None:
            continue
        ours = infer_multiple_outputs(_annotated(form), "task 't' in dag 'd'")
        assert ours == airflow_infers(form), form
    if annotation in (dict, Summary, OrderedDict, MyMapping):  # the table does check both ways
        assert airflow_infers(annotation) is True
    if annotation in (Any, int, Optional[dict]):  # noqa: UP045
        assert airflow_infers(annotation) is False


# Random annotation source text from a small grammar of names and generic forms.
_NAMES = st.sampled_from(
    ["dict", "Dict", "OrderedDict", "Summary", "MyMapping", "Any", "None", "int", "list", "T", "Undefined",
     "NotAMapping", "collections.Counter", "collections.abc.Mapping", "typing.Mapping", "os.Missing", "1"]
)  # fmt: skip
_FORMS = [
    "Optional[{}]",
    "list[{}]",
    "dict[str, {}]",
    "Annotated[{}, 'x']",
    "{} | None",
    "Union[{}, int]",
    "'{}'",
    "typing.Mapping[str, {}]",
    "OrderedDict[str, {}]",
    "Dict[{}",  # a syntax error: Airflow's import fails on it
]
_SOURCES = st.recursive(_NAMES, lambda inner: st.tuples(st.sampled_from(_FORMS), inner).map(
    lambda pair: pair[0].format(pair[1])), max_leaves=4)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_SOURCES)
def test_inference_is_airflows_on_random_annotations(source: str) -> None:
    forms: list[Any] = [source]
    try:
        forms.append(eval(source, globals()))  # the evaluated annotation, where Python can build it
    except Exception:
        pass
    for form in forms:
        try:
            expected: Any = airflow_infers(form)
        except Exception as exc:  # Airflow's DAG import fails: registration fails, naming the task
            with pytest.raises(RegistrationError, match=r"task 't' in dag 'd': cannot resolve the return"):
                infer_multiple_outputs(_annotated(form), "task 't' in dag 'd'")
            assert not isinstance(exc, (NameError, TypeError))
            continue
        assert infer_multiple_outputs(_annotated(form), "task 't' in dag 'd'") is expected, form


def test_functions_without_annotations_or_code_infer_false() -> None:
    import functools

    def plain():
        return {}

    assert infer_multiple_outputs(plain, "x") is False
    assert infer_multiple_outputs(functools.partial(_annotated(dict)), "x") is False
    assert infer_multiple_outputs(print, "x") is False


# -- registration -----------------------------------------------------------------------------------


def _registered() -> tuple[Bundle, dict[str, Any]]:
    b = Bundle("b", queue="q")
    d = b.dag("d", default_args={"multiple_outputs": True})

    @d.task
    def mapping() -> dict: ...

    @d.task
    def typed() -> Summary: ...

    @d.task(multiple_outputs=False)
    def explicit_false() -> dict[str, int]: ...

    @d.task(multiple_outputs=True)
    def explicit_true() -> int: ...

    @d.task
    def scalar() -> int: ...

    @d.task
    def unannotated(): ...

    @d.branch
    def branch() -> dict: ...

    @d.short_circuit
    def short() -> dict: ...

    @d.sensor
    def sense() -> dict: ...

    with d.task_group("g", default_args={"multiple_outputs": False}):

        @d.task
        def grouped() -> OrderedDict[str, int]: ...

    return b, d.tasks


def test_registration_sets_effective_multiple_outputs_as_airflow_does() -> None:
    _, tasks = _registered()
    # Airflow, for the same decorators and annotations in a DAG with the same default_args:
    with DAG("d", schedule=None, default_args={"multiple_outputs": True}) as python:
        for fn_name, decorator in [
            ("mapping", airflow_task),
            ("typed", airflow_task),
            ("explicit_false", airflow_task(multiple_outputs=False)),
            ("explicit_true", airflow_task(multiple_outputs=True)),
            ("scalar", airflow_task),
            ("unannotated", airflow_task),
            ("branch", airflow_task.branch),
            ("short", airflow_task.short_circuit),
            ("sense", airflow_task.sensor),
        ]:
            decorator(tasks[fn_name].fn)()
    airflow = {t.task_id: t.multiple_outputs for t in python.tasks}
    ours = {task_id: bool(t.effective_options.get("multiple_outputs")) for task_id, t in tasks.items()}
    assert ours == {**airflow, "g.grouped": True}
    assert airflow["mapping"] and airflow["branch"] and not airflow["sense"] and not airflow["scalar"]
    assert tasks["mapping"].options == {}  # the author's options stay as written


def test_sensor_refuses_multiple_outputs_and_a_bad_annotation_names_the_task() -> None:
    b = Bundle("b")
    d = b.dag("d")
    with pytest.raises(RegistrationError, match=r"sensor 'poke' in dag 'd': a sensor does not take"):

        @d.sensor(multiple_outputs=True)
        def poke() -> bool: ...

    with pytest.raises(TypeError):  # Airflow: @task.sensor passes multiple_outputs itself
        airflow_task.sensor(multiple_outputs=True)(lambda: True)
    broken = _annotated("Dict[")
    with pytest.raises(SyntaxError):  # Airflow's decorator: the Python DAG file fails to import
        airflow_task(broken)
    with pytest.raises(RegistrationError, match=r"task 'f' in dag 'd': cannot resolve the return annotation"):
        d.task(broken)
    d.task(task_id="fine", multiple_outputs=False)(broken)  # explicit: the annotation is not read
    assert d.tasks["fine"].effective_options.get("multiple_outputs") is False


# -- serialization, the DAG file --------------------------------------------------------------------


def test_serialization_equals_cores_for_the_task_stub_twin() -> None:
    """Core infers multiple_outputs for ``@task.stub`` too: the twin is the same functions as stubs."""
    b, tasks = _registered()
    ours = serialize_dag(b.registry.dags["d"], fileloc="/x")
    DagSerialization.validate_schema(ours)
    with DAG("d", schedule=None, default_args={"multiple_outputs": True}) as python:
        for task_id, task in tasks.items():
            if task.sensor is not None or task.skip_rule is not None or "." in task_id:
                continue  # their own operators: compared below by the value they carry
            explicit = {k: v for k, v in task.options.items() if k == "multiple_outputs"}
            airflow_task.stub(queue="q", **explicit)(task.fn)()
    serialized = {t["__var"]["task_id"]: t["__var"] for t in ours["dag"]["tasks"]}
    stubs = {t["__var"]["task_id"]: t["__var"] for t in DagSerialization.to_dict(python)["dag"]["tasks"]}
    assert {k: v.get("multiple_outputs") for k, v in stubs.items()} == {
        "mapping": True, "typed": True, "explicit_false": None, "explicit_true": True,
        "scalar": None, "unannotated": None,
    }  # fmt: skip
    for task_id, python_task in stubs.items():
        diffs = compare_serialized(
            {"dag": {"tasks": [{"__type": "operator", "__var": serialized[task_id]}]}},
            {"dag": {"tasks": [{"__type": "operator", "__var": python_task}]}},
            ignored_dag_keys=LOCATION_DAG_KEYS,
            ignored_task_keys=STUB_ONLY_TASK_KEYS | {"downstream_task_ids", "doc_md"},
        )
        assert diffs == [], "\n".join(diffs)
    assert [serialized[t].get("multiple_outputs") for t in ("branch", "short", "sense", "g.grouped")] == [
        True, True, None, True,
    ]  # fmt: skip


def test_the_generated_dag_file_round_trips_inferred_multiple_outputs(tmp_path: Path) -> None:
    b, _ = _registered()
    path, document = generated(b, tmp_path)
    text = path.read_text()
    assert text.count("multiple_outputs=True") >= 4, text  # the stubs carry no annotations: explicit
    assert_same_dags(document, import_with_dagbag(path))


# -- the runtime ------------------------------------------------------------------------------------


def airflow_pushes(fn: Any, result: Any, **decorator: Any) -> dict[str, Any] | str:
    """What task-sdk 1.3.2's task runner pushes for ``result`` of ``@task``-decorated ``fn`` in a DAG
    with the bundle's default_args (``_push_xcom_if_needed``), or the error it raises."""
    from airflow.sdk.execution_time import task_runner

    pushed: dict[str, Any] = {}
    with DAG("mo_dag", schedule=None, default_args={"multiple_outputs": True}):
        operator = (airflow_task(**decorator) if decorator else airflow_task)(fn)().operator
    ti = types.SimpleNamespace(task=operator, is_mapped=False, xcom_push=pushed.__setitem__)
    original = task_runner._xcom_push
    task_runner._xcom_push = lambda ti, key, value, mapped_length=None: pushed.__setitem__(key, value)
    try:
        task_runner._push_xcom_if_needed(result, ti, types.SimpleNamespace(info=lambda *a, **k: None))
    except TypeError as exc:
        return f"TypeError: {exc}"
    finally:
        task_runner._xcom_push = original
    return pushed


@pytest.mark.parametrize(
    "task_id", ["plain_dict", "typed", "ordered", "explicit_false", "anything", "not_a_dict"]
)
def test_supervised_pushes_are_airflows(task_id: str) -> None:
    from bundle.target import load_target

    task = load_target(str(BUNDLE)).registry.dags["mo_dag"].tasks[task_id]
    explicit = {k: v for k, v in task.options.items() if k == "multiple_outputs"}
    expected = airflow_pushes(task.fn, task.fn(), **explicit)
    run = supervised_run(COMMAND, dag_id="mo_dag", task_id=task_id, run_id=RUN)
    assert run.api.problems() == [], run.describe()
    pushed = {key[3]: value for key, value in run.api.xcoms.items() if key[2] == task_id}
    if isinstance(expected, str):  # Airflow's runner fails the task: so does the bundle, pushing nothing
        assert run.final_state == "failed", run.describe()
        assert pushed == {}
        assert "multiple_outputs" in str(run.log_records)
    else:
        assert run.final_state == "success", run.describe()
        assert pushed == expected
        assert ("total" in pushed) is (task_id in ("plain_dict", "typed", "ordered"))
