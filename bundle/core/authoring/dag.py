"""``Dag``: a DAG of a bundle, its tasks and edges, ``with dag:``, and the checks Airflow makes
when it imports a Python DAG file (made here at registration, naming the DAG)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import RegistrationError
from ..options import DAG_OPTIONS, TASK_OPTIONS, normalise_options
from . import binding
from .ids import task_id_of, validate_id
from .task import Task

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

    from ..registry import Registry
    from .params import Param

DEFAULT_MAX_ACTIVE_RUNS = 16  # Airflow's [core] max_active_runs_per_dag default
FAIL_FAST_TRIGGER_RULES = frozenset({"all_success", "all_done_setup_success"})


class Dag:
    """A DAG of a bundle; ``@dag.task`` registers its tasks.

    ``with dag:`` opens Airflow's DAG context: calling one of the DAG's tasks inside it binds the
    arguments (upstream outputs or literals) instead of calling the function. When the block ends
    the DAG is checked complete (every parameter injected, bound or defaulted); DAGs built without
    ``with`` are checked when the bundle is served (``Registry.check_complete``)."""

    def __init__(self, registry: Registry, dag_id: str, options: Mapping[str, Any]):
        self.registry = registry
        self.dag_id = validate_id("dag", dag_id)
        options = dict(options)
        raw_params = options.pop("params", None)
        self.options = normalise_options("dag", dag_id, options, DAG_OPTIONS)
        self.tasks: dict[str, Task] = {}
        self.params: dict[str, Param] = {}
        if raw_params:
            from .params import normalise_params  # only DAGs with params load them

            schedulable = self.options.get("schedule") is not None
            self.params = normalise_params(self.dag_id, raw_params, schedulable=schedulable)
        self._check_airflow_rules()

    def __repr__(self) -> str:
        return f"<Dag {self.dag_id} tasks={list(self.tasks)}>"

    def __enter__(self) -> Dag:
        binding.active_dags.append(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        binding.active_dags.remove(self)
        if exc_type is None:
            self.check_complete()

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

    # -- completeness -----------------------------------------------------------------------
    def check_complete(self) -> None:
        """Every task can be called: each parameter is injected, bound or has a default."""
        for task in self.tasks.values():
            for param in binding.unbound_required(task):
                raise RegistrationError(
                    f"task {task.task_id!r} in dag {self.dag_id!r}: parameter {param.name!r} of "
                    f"{binding.function_name(task.fn)} is neither injectable (annotate it as Context, "
                    "Client or logging.Logger), bound (call the task inside `with dag:` or use "
                    ".bind(...) with an upstream's .output or a literal), nor has a default value"
                )

    def creation_order(self) -> list[Task]:
        """The tasks in the order a Python DAG file would create them: registration order, except
        that a task comes after the upstream tasks whose outputs are bound to it (Python must
        create those first). This is the order of the serialized ``tasks``."""
        ordered: list[Task] = []
        placed: set[str] = set()

        def place(task: Task) -> None:
            if task.task_id in placed:
                return
            placed.add(task.task_id)
            for value in task.bound.values():
                if isinstance(value, binding.XComArg):
                    place(value.task)
            ordered.append(task)

        for task in self.tasks.values():
            place(task)
        return ordered

    # -- Airflow's rules --------------------------------------------------------------------
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


def _function_name(fn: Callable[..., Any]) -> str:
    return fn.task_id if isinstance(fn, Task) else task_id_of(fn)
