"""Bound arguments: an upstream task's output given to a task as an ordinary parameter.

A *bound argument* is a task parameter that is neither injected (``Context``, ``Client``,
``logging.Logger``) nor left to its default: the DAG says where its value comes from, either a
literal or an ``XComArg``, the reference to one XCom of an upstream task (``extract.output`` is its
``return_value``; ``extract.output["rows"]`` the XCom pushed under ``"rows"``, as Airflow's
``PlainXComArg.__getitem__`` means it: with ``multiple_outputs=True`` each key is its own XCom).

Binding happens while the DAG is defined (``with dag: load(extract())`` or ``load.bind(...)``) and
adds ``upstream >> task``. At run time ``resolve_arguments`` reads each reference with one
``GetXCom`` (current run, the upstream's task id and key, ``map_index`` -1: the unmapped instance),
with Airflow's ``PlainXComArg.resolve`` rules for a missing XCom, then checks plain-type annotations.
"""

from __future__ import annotations

from ..errors import RegistrationError
from ..injection import KEYWORD_ONLY, POSITIONAL_ONLY, FreeParameter, function_name
from .jsonvalue import is_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Mapping
    from typing import Any

    from ..client import MessageClient
    from .dag import Dag
    from .task import Task

RETURN_KEY = "return_value"
# DAGs whose ``with`` block is open, innermost last: a task called inside its own DAG's block binds.
active_dags: list[Dag] = []
# Annotations a bound value is checked against; anything else (unions, generics, classes) is not.
PLAIN_TYPES = (int, float, str, bool, dict, list)
_MISSING = object()


class XComArg:
    """A reference to the XCom ``key`` of ``task`` in the current run (Airflow's ``PlainXComArg``)."""

    __slots__ = ("key", "task")

    def __init__(self, task: Task, key: str = RETURN_KEY):
        self.task = task
        self.key = key

    def __getitem__(self, key: str) -> XComArg:
        """``output["rows"]``: the XCom pushed under ``rows`` (``multiple_outputs=True``)."""
        if not isinstance(key, str):
            raise ValueError(f"XComArg only supports str lookup, received {type(key).__name__}")
        return XComArg(self.task, key)

    def __iter__(self) -> Any:
        raise TypeError("'XComArg' object is not iterable")  # a stray * would loop forever

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XComArg) and (other.task, other.key) == (self.task, self.key)

    def __hash__(self) -> int:
        return hash((id(self.task), self.key))

    def __repr__(self) -> str:
        if self.key == RETURN_KEY:
            return f"XComArg({self.task!r})"
        return f"XComArg({self.task!r}, {self.key!r})"

    @property
    def task_id(self) -> str:
        return self.task.task_id

    # ``extract() >> load()`` inside ``with dag:`` links the tasks, as in Airflow
    def __rshift__(self, other: Any) -> Any:
        return self.task >> other

    def __lshift__(self, other: Any) -> Any:
        return self.task << other

    def __rrshift__(self, other: Any) -> Any:
        return other >> self.task if not isinstance(other, list) else self.task.__rrshift__(other)

    def __rlshift__(self, other: Any) -> Any:
        return other << self.task if not isinstance(other, list) else self.task.__rlshift__(other)


def bind(task: Task, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Record ``task(*args, **kwargs)``: positional arguments fill the free parameters in order."""
    where = f"task {task.task_id!r} in dag {task.dag.dag_id!r}"
    if task.bound:
        raise RegistrationError(
            f"{where}: its arguments are already bound; a task is called once per DAG "
            "(register another task to run the function twice)"
        )
    free = {param.name: param for param in task.plan.free}
    positional = [param for param in task.plan.free if param.kind != KEYWORD_ONLY]
    if len(args) > len(positional):
        raise RegistrationError(
            f"{where}: {function_name(task.fn)} takes {len(positional)} positional argument(s) "
            f"besides the injected ones, {len(args)} given"
        )
    values: dict[str, Any] = {param.name: value for param, value in zip(positional, args, strict=False)}
    for name, value in kwargs.items():
        if name not in free:
            raise RegistrationError(f"{where}: {function_name(task.fn)} has no free parameter {name!r}")
        if name in values:
            raise RegistrationError(f"{where}: parameter {name!r} is given twice")
        values[name] = value
    for name, value in values.items():
        _check_bindable(where, free[name], value)
    for value in values.values():
        if isinstance(value, XComArg):
            task.dag._add_edge(value.task, task)  # raises on a cycle or a task of another DAG
    task.bound = {param.name: values[param.name] for param in task.plan.free if param.name in values}


def _check_bindable(where: str, param: FreeParameter, value: Any) -> None:
    if param.kind == POSITIONAL_ONLY:
        raise RegistrationError(
            f"{where}: parameter {param.name!r} is positional-only; make it a regular parameter to bind it"
        )
    if isinstance(value, XComArg):
        return
    if hasattr(value, "task_id") and hasattr(value, "fn"):
        raise RegistrationError(
            f"{where}: parameter {param.name!r} is given the task {value!r} itself; "
            "pass its output (call it inside `with dag:`, or use .output)"
        )
    if not is_json(value):
        raise RegistrationError(
            f"{where}: parameter {param.name!r} is given {type(value).__name__} {value!r:.60}; a literal "
            "argument must be JSON (None, bool, int, float, str, list, dict with str keys) without "
            "references inside: the generated DAG file carries it"
        )
    problem = type_problem(param.annotation, value)
    if problem:
        raise RegistrationError(f"{where}: parameter {param.name!r} is given {problem}")


def type_problem(annotation: Any, value: Any) -> str | None:
    """Why ``value`` does not fit a plain-type ``annotation`` (JSON's view: an int is a float, a
    bool is not an int), or None when it fits or the annotation is not a plain type."""
    if annotation not in PLAIN_TYPES:
        return None
    if annotation is list and getattr(value, "is_lazy_xcom_sequence", False):
        return None  # a mapped upstream's results (a reduce): a sequence, fetched on demand
    if annotation is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif annotation is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    else:
        fits = isinstance(value, annotation)
    if fits:
        return None
    if value is None:
        return f"missing (None), but it is annotated {annotation.__name__}"
    return f"{type(value).__name__} {value!r:.80}, but it is annotated {annotation.__name__}"


def unbound_required(task: Task) -> list[FreeParameter]:
    """The free parameters with neither a binding nor a default: the task could never be called."""
    expanded: list[str] = []
    if task.expand_input is not None:
        names = task.expand_input.names()
        if names is None:  # expand_kwargs over an upstream's output: only run time knows its keys
            return []
        expanded = names
    return [
        param
        for param in task.plan.free
        if not param.has_default and param.name not in task.bound and param.name not in expanded
    ]


class XComNotFound(LookupError):
    """A bound reference whose XCom the upstream task never pushed (Airflow's ``XComNotFound``)."""

    def __init__(self, dag_id: str, task_id: str, key: str):
        super().__init__(dag_id, task_id, key)
        self.dag_id, self.task_id, self.key = dag_id, task_id, key

    def __str__(self) -> str:  # Airflow's text, word for word
        return f'XComArg result from {self.task_id} at {self.dag_id} with key="{self.key}" is not found!'


def resolve_arguments(
    task: Task, client: MessageClient, given: Mapping[str, Any] | None = None, *, map_index: int = -1
) -> dict[str, Any]:
    """The bound arguments' values, as keyword arguments: one ``GetXCom`` per reference (a
    mapped task's output: its lazy sequence of results; a mapped task: its element at
    ``map_index`` too, ``bundle.core.mapped``).

    ``given`` (``bundle.testing.run_task(arguments=...)``) replaces the binding of the parameters it
    names, without a request. A missing XCom follows ``PlainXComArg.resolve``: ``None`` for
    ``return_value`` and for any key of a ``multiple_outputs`` upstream, else ``XComNotFound``."""
    values: dict[str, Any] = {}
    annotations = {param.name: param.annotation for param in task.plan.free}
    if given:
        for name in given:
            if name not in annotations:
                raise TypeError(
                    f"task {task.task_id!r} has no free parameter {name!r} to give a value to "
                    f"(its free parameters: {', '.join(annotations) or 'none'})"
                )
    for name, value in task.bound.items():
        if given and name in given:
            continue
        if isinstance(value, XComArg):
            value = _pull(task, client, value)
            problem = type_problem(annotations[name], value)
            if problem:
                raise TypeError(
                    f"task {task.task_id!r}: argument {name!r} (XCom {value_key(name, task)}) is {problem}"
                )
        values[name] = value
    if task.expand_input is not None:  # a mapped task instance: its element (only these load it)
        from ..mapped import element_arguments

        for name, value in element_arguments(task, client, map_index, given).items():
            if not (given and name in given):
                values[name] = value
    for name, value in (given or {}).items():
        problem = type_problem(annotations[name], value)
        if problem:
            raise TypeError(f"task {task.task_id!r}: argument {name!r} is {problem}")
        values[name] = value
    return values


def value_key(name: str, task: Task) -> str:
    ref = task.bound[name]
    return f"{ref.key!r} of task {ref.task_id!r}"


def _pull(task: Task, client: MessageClient, ref: XComArg) -> Any:
    if ref.task.expand_input is not None:  # a reduce: all results of a mapped task, lazily
        from ..mapped import pull_reduce

        return pull_reduce(client, ref)
    value = client.get_xcom(ref.task_id, ref.key, map_index=-1, default=_MISSING)
    if value is not _MISSING:
        return value
    if ref.key == RETURN_KEY or ref.task.effective_options.get("multiple_outputs"):
        return None
    raise XComNotFound(task.dag.dag_id, ref.task_id, ref.key)
