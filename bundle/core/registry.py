"""Registry, DAGs and tasks: the data every mode reads.

This is the Go SDK's ``Registry`` / ``Dag.AddTask`` / ``AddTaskWithName`` shape, with the checks
Airflow would otherwise make much later (on the scheduler or the worker): ids Airflow rejects,
duplicates, non-callables, signatures that cannot be injected, and dependency cycles all raise
``RegistrationError`` while the bundle module is imported, naming the offending id.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from .errors import RegistrationError
from .injection import InjectionPlan, plan_injection
from .options import DAG_OPTIONS, TASK_OPTIONS, normalise_options

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

MAX_ID_LENGTH = 250
_ID_PATTERN = re.compile(r"^[\w.-]+$")
DEFAULT_QUEUE = "default"
DEFAULT_MAX_ACTIVE_RUNS = 16  # Airflow's [core] max_active_runs_per_dag default
FAIL_FAST_TRIGGER_RULES = frozenset({"all_success", "all_done_setup_success"})


def validate_id(kind: str, value: Any) -> str:
    """Airflow's ``validate_key``: a non-empty str of at most 250 letters, digits, ``_``, ``.``, ``-``."""
    if not isinstance(value, str):
        raise RegistrationError(f"{kind} id must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise RegistrationError(f"{kind} id must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise RegistrationError(
            f"{kind} id {value[:40]!r}... is {len(value)} characters; Airflow allows {MAX_ID_LENGTH}"
        )
    if not _ID_PATTERN.match(value):
        raise RegistrationError(f"{kind} id {value!r} may contain only letters, digits, '_', '.' and '-'")
    return value


class Task:
    """A registered task. Calling it calls the plain function, so tasks stay unit-testable;
    ``a >> b`` and ``a << b`` declare dependencies the way Airflow users write them."""

    def __init__(self, dag: Dag, task_id: str, fn: Callable[..., Any], options: dict[str, Any]):
        self.dag = dag
        self.task_id = task_id
        self.fn = fn
        self.options = options
        self.plan: InjectionPlan = plan_injection(fn, f"task {task_id!r} in dag {dag.dag_id!r}")
        self.upstream_task_ids: list[str] = []
        self.downstream_task_ids: list[str] = []
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.dag.dag_id}.{self.task_id}>"

    @property
    def effective_options(self) -> dict[str, Any]:
        """Task options over the DAG's ``default_args``, with the bundle's default queue."""
        merged = {**self.dag.options.get("default_args", {}), **self.options}
        merged.setdefault("queue", self.dag.default_queue or DEFAULT_QUEUE)
        return merged

    # -- dependencies -----------------------------------------------------------------------
    def set_downstream(self, other: Task | Iterable[Task]) -> None:
        for task in _tasks(other):
            self.dag._add_edge(self, task)

    def set_upstream(self, other: Task | Iterable[Task]) -> None:
        for task in _tasks(other):
            self.dag._add_edge(task, self)

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Task:  # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Task:  # [a, b] << self
        self.set_downstream(other)
        return self


def _tasks(value: Any) -> list[Task]:
    items = [value] if isinstance(value, Task) else value
    try:
        tasks = list(items)
    except TypeError:
        raise TypeError(f"dependencies need a Task or a list of Tasks, got {type(value).__name__}") from None
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"dependencies need a Task or a list of Tasks, got {type(task).__name__}")
    return tasks


class Dag:
    """A DAG of a bundle; ``@dag.task`` registers its tasks."""

    def __init__(self, registry: Registry, dag_id: str, options: Mapping[str, Any]):
        self.registry = registry
        self.dag_id = validate_id("dag", dag_id)
        self.options = normalise_options("dag", dag_id, options, DAG_OPTIONS)
        self.tasks: dict[str, Task] = {}
        self._check_airflow_rules()

    def __repr__(self) -> str:
        return f"<Dag {self.dag_id} tasks={list(self.tasks)}>"

    @property
    def default_queue(self) -> str | None:
        return self.registry.default_queue

    def task(
        self, fn: Callable[..., Any] | None = None, /, *, task_id: str | None = None, **options: Any
    ) -> Any:
        """Register a task: ``@dag.task`` or ``@dag.task(task_id=..., retries=...)``.

        The task id defaults to the function name, as with Airflow's ``@task``."""

        def register(function: Callable[..., Any]) -> Task:
            return self.add_task_with_name(
                task_id if task_id is not None else _function_name(function), function, **options
            )

        return register if fn is None else register(fn)

    def add_task(self, fn: Callable[..., Any], **options: Any) -> Task:
        """Go's ``Dag.AddTask``: the task id is the function's name."""
        return self.add_task_with_name(_function_name(fn), fn, **options)

    def add_task_with_name(self, task_id: str, fn: Callable[..., Any], **options: Any) -> Task:
        """Go's ``Dag.AddTaskWithName``: for ids a Python ``@task.stub`` declares."""
        validate_id("task", task_id)
        if isinstance(fn, Task):
            fn = fn.fn
        if not callable(fn) or isinstance(fn, type):
            raise RegistrationError(f"task {task_id!r} in dag {self.dag_id!r}: {fn!r} is not a function")
        if task_id in self.tasks:
            raise RegistrationError(f"task {task_id!r} is already registered in dag {self.dag_id!r}")
        normalised = normalise_options("task", f"{self.dag_id}.{task_id}", options, TASK_OPTIONS)
        self._check_fail_fast(normalised.get("trigger_rule"), f"task {task_id!r}")
        task = Task(self, task_id, fn, normalised)
        self.tasks[task_id] = task
        return task

    def _check_airflow_rules(self) -> None:
        """The DAG-level checks Airflow makes when it imports a Python DAG file."""
        options, where = self.options, f"dag {self.dag_id!r}"
        schedule = options.get("schedule")
        if schedule == "@continuous" and options.get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS) > 1:
            raise RegistrationError(
                f"{where}: a @continuous schedule allows one active run; set max_active_runs=1"
            )
        start_date = options.get("start_date") or options.get("default_args", {}).get("start_date")
        if options.get("catchup") and schedule is not None and start_date is None:
            raise RegistrationError(f"{where}: catchup=True needs a start_date")
        self._check_fail_fast(options.get("default_args", {}).get("trigger_rule"), "default_args")

    def _check_fail_fast(self, trigger_rule: str | None, where: str) -> None:
        if self.options.get("fail_fast") and trigger_rule not in (None, *FAIL_FAST_TRIGGER_RULES):
            raise RegistrationError(
                f"dag {self.dag_id!r}: {where} has trigger_rule {trigger_rule!r}, but a fail_fast dag "
                f"allows only {', '.join(sorted(FAIL_FAST_TRIGGER_RULES))}"
            )

    def _add_edge(self, upstream: Task, downstream: Task) -> None:
        if upstream.dag is not self or downstream.dag is not self:
            raise RegistrationError(
                f"cannot link {upstream!r} >> {downstream!r}: dependencies must stay inside one dag"
            )
        if downstream.task_id in upstream.downstream_task_ids:
            return
        if upstream is downstream or self._reaches(downstream, upstream):
            raise RegistrationError(
                f"dag {self.dag_id!r}: {upstream.task_id!r} >> {downstream.task_id!r} would create a cycle"
            )
        upstream.downstream_task_ids.append(downstream.task_id)
        downstream.upstream_task_ids.append(upstream.task_id)

    def _reaches(self, start: Task, goal: Task) -> bool:
        stack, seen = [start.task_id], set()
        while stack:
            current = stack.pop()
            if current == goal.task_id:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(self.tasks[current].downstream_task_ids)
        return False


class Registry:
    """All DAGs of one bundle, in registration order."""

    def __init__(self, default_queue: str | None = None):
        if default_queue is not None:
            validate_id("queue", default_queue)
        self.default_queue = default_queue
        self.dags: dict[str, Dag] = {}

    def add_dag(self, dag_id: str, **options: Any) -> Dag:
        if dag_id in self.dags:
            raise RegistrationError(f"dag {dag_id!r} is already registered")
        dag = Dag(self, dag_id, options)
        self.dags[dag_id] = dag
        return dag

    def adopt(self, dag: Dag) -> None:
        """Add a DAG built elsewhere (``Bundle.register_dags`` uses it)."""
        if dag.dag_id in self.dags and self.dags[dag.dag_id] is not dag:
            raise RegistrationError(f"dag {dag.dag_id!r} is already registered")
        self.dags[dag.dag_id] = dag

    def get_or_add_dag(self, dag_id: str) -> Dag:
        return self.dags.get(dag_id) or self.add_dag(dag_id)

    def lookup_task(self, dag_id: str, task_id: str) -> Task | None:
        dag = self.dags.get(dag_id)
        return dag.tasks.get(task_id) if dag is not None else None

    def __iter__(self) -> Iterator[Dag]:
        return iter(self.dags.values())

    def task_ids(self) -> dict[str, list[str]]:
        """``{dag_id: [task ids in registration order]}`` with dag ids sorted, as the dumps print them."""
        return {dag_id: list(self.dags[dag_id].tasks) for dag_id in sorted(self.dags)}


def _function_name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, Task):
        return fn.task_id
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not _ID_PATTERN.match(name):
        raise RegistrationError(
            f"cannot derive a task id from {fn!r}; name it explicitly (task_id=... or add_task_with_name)"
        )
    return name
