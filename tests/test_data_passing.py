"""TaskFlow data passing and params: serialization against core 3.3.2, bundle.testing, and runs under
the released supervisor (bound values arrive as JSON types, a missing XCom and an invalid conf fail
the task with Airflow's messages)."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import pytest
from airflow.sdk import DAG
from airflow.sdk import Param as AirflowParam
from airflow.serialization.serialized_objects import DagSerialization
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle import Bundle, Context, Param, RegistrationError
from bundle.core.authoring import param_schema
from bundle.core.provider import registry_of
from bundle.introspection.serialization import serialize_dag
from bundle.testing import FakeClient, run_task
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task as supervised_run

from .serialization_compare import assert_equivalent
from .test_serialization import Noop

BUNDLE = Path(__file__).parent / "bundles" / "data_passing_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
RUN = "manual__2026-01-01"
PARAMS = {
    "n": (3, {"type": "integer", "minimum": 1, "maximum": 10}, "how many"),
    "tag": ("a", {"enum": ["a", "b"]}, None),
}


def etl_bundle() -> Bundle:
    b = Bundle("b")
    dag = b.dag(
        "etl",
        params={name: Param(d, description=desc, **schema) for name, (d, schema, desc) in PARAMS.items()}
        | {"plain": 5},
    )

    @dag.task
    def extract() -> dict:
        return {"rows": 4}

    @dag.task
    def transform(data: dict, factor: int = 2) -> int:
        return data["rows"] * factor

    @dag.task
    def load(total: int, label: str) -> list:
        return [total, label]

    @dag.task
    def report(ctx: Context) -> dict:
        return dict(ctx.params)

    with dag:
        load(transform(extract(), factor=3), label="L")
    return b


def test_serialization_equals_core_for_bound_edges_and_params() -> None:
    b = etl_bundle()
    params = {
        name: AirflowParam(d, description=desc, **schema) for name, (d, schema, desc) in PARAMS.items()
    } | {"plain": 5}
    with DAG("etl", schedule=None, params=params) as python:
        # `-> dict` makes extract and report multiple_outputs tasks, as Airflow's @task infers it
        extract = Noop(task_id="extract", multiple_outputs=True)
        transform, load = (Noop(task_id=t) for t in ("transform", "load"))
        Noop(task_id="report", multiple_outputs=True)
        extract >> transform >> load
    ours = serialize_dag(b.registry.dags["etl"], fileloc="/x")
    DagSerialization.validate_schema(ours)
    assert_equivalent(ours, DagSerialization.to_dict(python))
    assert [p[0] for p in ours["dag"]["params"]] == ["n", "tag", "plain"]


def test_creation_order_puts_bound_upstreams_first() -> None:
    b = Bundle("b")
    dag = b.dag("d")

    @dag.task
    def load(data) -> None: ...

    @dag.task
    def extract() -> int:
        return 1

    load.bind(extract.output)
    assert [t.task_id for t in dag.creation_order()] == ["extract", "load"]
    assert list(dag.tasks) == ["load", "extract"] and extract.downstream_task_ids == ["load"]


def test_calls_outside_the_dag_context_call_the_function() -> None:
    b = etl_bundle()
    load = b.registry.dags["etl"].tasks["load"]
    assert load(1, "x") == [1, "x"]


def test_registration_errors_name_task_and_parameter() -> None:
    b = Bundle("b")
    dag = b.dag("d")

    @dag.task
    def load(rows: int) -> None: ...

    with pytest.raises(
        RegistrationError, match=r"task 'load' in dag 'd': parameter 'rows' of .*load is neither"
    ):
        with dag:
            pass
    with pytest.raises(
        RegistrationError, match=r"parameter 'rows' is given str 'x', but it is annotated int"
    ):
        load.bind("x")
    with pytest.raises(RegistrationError, match="has no free parameter 'other'"):
        load.bind(other=1)
    with pytest.raises(RegistrationError, match="must be JSON"):
        load.bind(object())
    with pytest.raises(RegistrationError, match="not allowed to define a Schedule"):
        b.dag("s", schedule="@daily", params={"p": Param(type="string")})
    with pytest.raises(RegistrationError, match="keyword 'pattern'"):
        b.dag("u", params={"p": Param("a", pattern="^a")})


def test_bundle_testing_resolves_bound_arguments_with_one_get_xcom_each() -> None:
    b = etl_bundle()
    result = run_task(b, "etl", "transform", client=FakeClient(xcoms={"extract": {"rows": 2}}))
    assert result.state == "success" and result.return_value == 6
    gets = [r for r in result.client.requests if r["type"] == "GetXCom"]
    assert gets == [
        {
            "type": "GetXCom",
            "key": "return_value",
            "dag_id": "etl",
            "run_id": result.client.requests[0]["run_id"],
            "task_id": "extract",
            "map_index": -1,
        }
    ]
    assert run_task(b, "etl", "transform", arguments={"data": {"rows": 5}}).return_value == 15
    bad = run_task(b, "etl", "load", client=FakeClient(xcoms={"transform": "7"}))
    assert bad.state == "failed"
    assert (
        bad.reason
        == "TypeError: task 'load': argument 'total' (XCom 'return_value' of task 'transform') is str '7', but it is annotated int"
    )
    missing = run_task(b, "etl", "transform")
    assert missing.state == "failed" and "missing (None), but it is annotated dict" in missing.reason


def test_params_merge_with_conf_and_invalid_conf_fails() -> None:
    b = etl_bundle()
    result = run_task(b, "etl", "report", conf={"n": 7, "extra": [1]})
    assert result.return_value == {"n": 7, "tag": "a", "plain": 5, "extra": [1]}
    invalid = run_task(b, "etl", "report", conf={"tag": "c"})
    assert invalid.state == "failed"
    assert invalid.reason == "ParamValidationError: Invalid input for param tag: 'c' is not one of ['a', 'b']"


_SCHEMAS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["integer", "number", "string", "boolean", "null", "array", "object", ["integer", "null"]]),
        "enum": st.lists(st.one_of(st.integers(-3, 3), st.booleans(), st.text(max_size=2), st.none()), min_size=1, max_size=3),
        "minimum": st.integers(-5, 5), "maximum": st.floats(-5, 5), "exclusiveMinimum": st.integers(-5, 5),
        "exclusiveMaximum": st.integers(-5, 5), "minLength": st.integers(0, 3), "maxLength": st.integers(0, 3),
        "const": st.integers(-1, 1) | st.booleans(),
    },
)  # fmt: skip
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-8, 8) | st.floats(-8, 8, allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=4,
)


@settings(max_examples=400, deadline=None)
@given(schema=_SCHEMAS, value=_VALUES)
def test_validator_agrees_with_jsonschema(schema: dict, value: object) -> None:
    """Airflow validates with jsonschema.validate: same verdict, and the same message."""
    assert param_schema.schema_problem(schema) is None
    try:
        jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as exc:
        expected = exc.message
    else:
        expected = None
    assert param_schema.validate(value, schema) == expected


def test_supervised_bound_arguments_arrive_with_json_types_and_params_merge() -> None:
    api = FakeExecutionAPI(
        xcoms={
            ("dp_dag", RUN, "extract", "rows"): [1, 2],
            ("dp_dag", RUN, "extract", "return_value"): {"rows": [1, 2]},
        }
    )
    api.add_dag_run("dp_dag", RUN, conf={"n": 9, "more": True})
    run = supervised_run(COMMAND, dag_id="dp_dag", task_id="load", run_id=RUN, api=api)
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "success", run.describe()
    assert run.api.xcom("dp_dag", RUN, "load", "return_value") == {
        "rows": [1, 2],
        "whole": {"rows": [1, 2]},
        "limit": 5,
        "params": {"n": 9, "label": "x", "more": True},
    }
    gets = [c for c in run.calls if c.method == "GET" and "/xcoms/" in c.path]
    assert sorted(c.path.rsplit("/", 1)[-1] for c in gets) == ["return_value", "rows"]


def test_supervised_missing_xcom_and_invalid_conf_fail_with_airflows_messages() -> None:
    run = supervised_run(COMMAND, dag_id="dp_dag", task_id="needs_key", run_id=RUN)
    assert run.api.problems() == [], run.describe()
    assert run.final_state == "failed", run.describe()
    assert run.find_logs("Task failed with exception")
    assert 'XComArg result from keyed at dp_dag with key="absent" is not found!' in str(run.log_records)
    api = FakeExecutionAPI()
    api.add_dag_run("dp_dag", RUN, conf={"n": 11})
    run = supervised_run(COMMAND, dag_id="dp_dag", task_id="extract", run_id=RUN, api=api)
    assert run.final_state == "failed", run.describe()
    assert "Invalid input for param n: 11 is greater than the maximum of 10" in str(run.log_records)


def test_registry_of_accepts_the_harness_bundle() -> None:
    from bundle.target import load_target

    assert list(registry_of(load_target(str(BUNDLE))).dags["dp_dag"].tasks["load"].bound) == [
        "rows",
        "whole",
        "limit",
    ]


def test_generated_dag_file_carries_bindings_and_params(tmp_path: Path) -> None:
    """The stubs are called with the upstream references: core sees the same edges and op_kwargs as
    for a hand-written TaskFlow stub DAG, and the params as Param objects."""
    from .test_dagfile import assert_same_dags, generated, import_with_dagbag

    path, document = generated(etl_bundle(), tmp_path)
    source = path.read_text()
    assert "from airflow.sdk import DAG, Param, task" in source
    assert 'load_task = load(total=transform_task, label="L")' in source
    assert "def transform(data, factor): ..." in source
    imported = import_with_dagbag(path)
    assert_same_dags(document, imported)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in imported["etl"]["dag"]["tasks"]}
    assert tasks["transform"]["op_kwargs"] == {
        "data": "{{ task_instance.xcom_pull(task_ids='extract', dag_id='etl', key='return_value') }}",
        "factor": 3,
    }
