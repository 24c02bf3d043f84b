"""The authoring API: registration errors at import time, injection, dependencies, options."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from bundle import (
    Bundle,
    Client,
    ConnectionClient,
    Context,
    RegistrationError,
    VariableClient,
    XComClient,
)
from bundle.core.provider import registry_of


@pytest.fixture
def b() -> Bundle:
    return Bundle("b", version="1")


def test_task_id_defaults_to_function_name_and_task_stays_callable(b):
    dag = b.dag("d")

    @dag.task
    def extract(x: int = 2) -> int:
        """doc"""
        return x * 21

    assert extract.task_id == "extract"
    assert extract() == 42 and extract(1) == 21
    assert extract.__name__ == "extract" and extract.__doc__ == "doc"
    assert b.registry.lookup_task("d", "extract") is extract


def test_explicit_task_id_and_task_handler_share_the_dag(b):
    etl = b.dag("simple_dag")

    @etl.task(task_id="transform", retries=2)
    def transform_rows(client: Client) -> None: ...

    @b.task_handler("simple_dag", "load")
    def load(ctx: Context) -> None: ...

    @b.task_handler("other_dag", "stub")
    def stub() -> None: ...

    assert list(b.registry.task_ids()) == ["other_dag", "simple_dag"]
    assert b.registry.task_ids()["simple_dag"] == ["transform", "load"]
    assert transform_rows.options == {"retries": 2}


@pytest.mark.parametrize(
    ("dag_id", "message"),
    [
        ("", "dag id must not be empty"),
        ("x" * 251, "Airflow allows 250"),
        ("has space", "may contain only letters, digits"),
        ("slash/id", "may contain only letters, digits"),
        (42, "dag id must be a str"),
    ],
)
def test_invalid_dag_ids_are_rejected(b, dag_id, message):
    with pytest.raises(RegistrationError, match=message):
        b.dag(dag_id)


def test_valid_ids_include_unicode_letters_dots_dashes_and_250_chars(b):
    b.dag("日本語.dag-1_x")
    b.dag("d" * 250)


def test_duplicate_dag_and_task_ids_name_the_id(b):
    dag = b.dag("d")
    with pytest.raises(RegistrationError, match="dag 'd' is already registered"):
        b.dag("d")
    dag.add_task(lambda_free)
    with pytest.raises(RegistrationError, match="task 'lambda_free' is already registered in dag 'd'"):
        dag.add_task_with_name("lambda_free", lambda_free)


def lambda_free() -> None: ...


def test_non_callables_classes_and_lambdas(b):
    dag = b.dag("d")
    with pytest.raises(RegistrationError, match="task 'x' in dag 'd': 3 is not a function"):
        dag.add_task_with_name("x", 3)  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="is not a function"):
        dag.add_task_with_name("cls", dict)
    with pytest.raises(RegistrationError, match="cannot derive a task id"):
        dag.add_task(lambda: None)
    dag.add_task_with_name("named_lambda", lambda: None)


def test_uninjectable_parameter_names_function_and_parameter(b):
    """Binding happens after registration, so an unbound parameter is refused when the DAG is
    complete: here when the bundle is served (registry_of), before any task runs."""
    dag = b.dag("d")

    @dag.task
    def needs_data(ctx: Context, rows: list) -> None: ...

    with pytest.raises(RegistrationError, match=r"parameter 'rows' of .*needs_data is neither injectable"):
        registry_of(b)


def test_unresolvable_annotation_is_a_registration_error(b):
    dag = b.dag("d")
    with pytest.raises(RegistrationError, match="cannot resolve the annotations"):

        @dag.task
        def broken(ctx: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821


def test_defaults_and_varargs_are_left_alone(b):
    dag = b.dag("d")

    @dag.task
    def flexible(log: logging.Logger, limit: int = 5, *args, **kwargs) -> None: ...

    assert [(i.name, i.source) for i in flexible.plan.injections] == [("log", "logger")]


def test_injection_by_annotation_in_any_order_including_narrow_clients(b):
    dag = b.dag("d")

    @dag.task
    def t(
        v: VariableClient, log: logging.Logger, c: ConnectionClient, ctx: Context, x: XComClient, full: Client
    ): ...

    assert [i.source for i in t.plan.injections] == [
        "client",
        "logger",
        "client",
        "context",
        "client",
        "client",
    ]


def test_object_annotation_is_not_mistaken_for_a_client(b):
    dag = b.dag("d")

    @dag.task
    def t(anything: object) -> None: ...

    assert t.plan.injections == () and [p.name for p in t.plan.free] == ["anything"]
    with pytest.raises(RegistrationError, match="parameter 'anything'"):
        registry_of(b)


def test_dependencies_with_shift_operators_and_lists(b):
    dag = b.dag("d")
    a, c, d_, e = (dag.add_task_with_name(n, lambda_free) for n in "acde")
    assert (a >> [c, d_]) == [c, d_]
    [c, d_] >> e
    e << a
    assert a.downstream_task_ids == ["c", "d", "e"]
    assert e.upstream_task_ids == ["c", "d", "a"]


@pytest.mark.parametrize("edges", [["ab", "ba"], ["ab", "bc", "ca"], ["aa"]])
def test_cycles_are_rejected_when_declared(b, edges):
    dag = b.dag("d")
    tasks = {n: dag.add_task_with_name(n, lambda_free) for n in "abc"}
    *ok, closing = edges
    for up, down in ok:
        tasks[up] >> tasks[down]
    with pytest.raises(RegistrationError, match="would create a cycle"):
        tasks[closing[0]] >> tasks[closing[1]]


def test_cross_dag_dependency_is_rejected(b):
    one = b.dag("one").add_task_with_name("a", lambda_free)
    two = b.dag("two").add_task_with_name("b", lambda_free)
    with pytest.raises(RegistrationError, match="dependencies must stay inside one dag"):
        one >> two


def test_shift_with_a_non_task_is_a_type_error(b):
    a = b.dag("d").add_task_with_name("a", lambda_free)
    with pytest.raises(TypeError, match="dependencies need a Task"):
        a >> "b"  # type: ignore[operator]


def test_dag_and_task_options_are_normalised(b):
    dag = b.dag(
        "d",
        schedule="@daily",
        start_date=datetime(2026, 1, 1),
        tags={"b", "a"},
        dagrun_timeout=60,
        default_args={"retries": 3, "owner": "data"},
    )
    task = dag.add_task_with_name("t", lambda_free, retry_delay=30, trigger_rule="all_done", queue="q")
    assert dag.options["schedule"] == "0 0 * * *"
    assert dag.options["start_date"] == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert dag.options["tags"] == ["a", "b"]
    assert dag.options["dagrun_timeout"] == timedelta(seconds=60)
    assert task.effective_options == {
        "retries": 3,
        "owner": "data",
        "retry_delay": timedelta(seconds=30),
        "trigger_rule": "all_done",
        "queue": "q",
    }


def test_bundle_default_queue_applies_unless_task_sets_one():
    b = Bundle("b", queue="python-bundle")
    dag = b.dag("d")
    assert dag.add_task_with_name("a", lambda_free).effective_options["queue"] == "python-bundle"
    assert dag.add_task_with_name("b", lambda_free, queue="gpu").effective_options["queue"] == "gpu"
    assert Bundle("x").dag("d").add_task_with_name("a", lambda_free).effective_options["queue"] == "default"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedul": "@daily"}, "dag 'd': unknown attribute 'schedul'"),
        ({"schedule": "@fortnightly"}, "unknown schedule preset '@fortnightly'"),
        ({"schedule": "every day"}, "is not a cron expression"),
        ({"schedule": 5}, "invalid schedule: expected None, a cron string"),
        ({"catchup": "yes"}, "invalid catchup: expected a bool"),
        ({"tags": "etl"}, "invalid tags: expected a list of str"),
        ({"max_active_runs": 0}, "invalid max_active_runs: must be >= 1"),
        ({"start_date": "2026-01-01"}, "invalid start_date: expected a datetime"),
        ({"default_args": {"retrys": 1}}, "dag 'd.default_args': unknown attribute 'retrys'"),
    ],
)
def test_bad_dag_options(b, kwargs, message):
    with pytest.raises(RegistrationError, match=message):
        b.dag("d", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retry": 1}, "task 'd.t': unknown attribute 'retry'"),
        ({"retries": -1}, "invalid retries: must be >= 0"),
        ({"retries": True}, "invalid retries: expected an int"),
        ({"trigger_rule": "sometimes"}, "invalid trigger_rule: 'sometimes' is not one of"),
        ({"retry_delay": "5m"}, "invalid retry_delay: expected a timedelta or a number of seconds"),
        ({"queue": ""}, "invalid queue: must not be empty"),
        ({"weight_rule": "sideways"}, "invalid weight_rule"),
    ],
)
def test_bad_task_options(b, kwargs, message):
    with pytest.raises(RegistrationError, match=message):
        b.dag("d").add_task_with_name("t", lambda_free, **kwargs)


def test_bundle_name_and_version_are_checked():
    with pytest.raises(RegistrationError, match="non-empty name"):
        Bundle("")
    with pytest.raises(RegistrationError, match="version must be a str"):
        Bundle("x", version=1)  # type: ignore[arg-type]


def test_registration_error_surfaces_at_import(write_bundle):
    """An unbound parameter is only known once the DAG is complete: the first thing that reads the
    registry (a dump, a parse, a task start) refuses the bundle, naming task and parameter."""
    from .conftest import run_python

    path = write_bundle("""
        from bundle import Bundle, serve
        bundle = Bundle("b")
        dag = bundle.dag("d")
        @dag.task
        def t(data): pass
        if __name__ == "__main__":
            raise SystemExit(serve(bundle))
    """)
    result = run_python(["-m", "bundle", "--bundle", str(path), "--dump-bundle-spec"])
    assert result.returncode == 1
    assert "task 't' in dag 'd': parameter 'data' of t is neither injectable" in result.stderr
    result = run_python([str(path), "--dump-bundle-spec"])
    assert result.returncode == 1 and "parameter 'data'" in result.stderr
