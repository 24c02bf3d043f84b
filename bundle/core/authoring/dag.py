"""``Dag``: a DAG of a bundle, its tasks and edges, ``with dag:``, and the checks Airflow makes
when it imports a Python DAG file (made here at registration, naming the DAG)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import RegistrationError
from ..options import DAG_OPTIONS, TASK_OPTIONS, normalise_options
from . import binding
from .group import TaskGroup
from .ids import task_id_of, validate_id
from .task import Task

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

    from ..registry import Registry
    from .params import Param


class _SensorDefault:
    """``@dag.sensor``'s default for an option not given: ``default_args``' value, else Airflow's."""

    def __repr__(self) -> str:
        return "<default_args or Airflow's default>"


SENSOR_DEFAULT = _SensorDefault()
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
        self.tasks: dict[str, Task] = {}  # by full task id (prefixed by its task groups)
        self.root_group = TaskGroup(self, None, None)
        self.group_stack: list[TaskGroup] = []  # the groups whose ``with`` block is open, innermost last
        self.group_ids: set[str] = set()  # Airflow's used_group_ids, less the task ids
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

    def task_group(self, group_id: str, **options: Any) -> TaskGroup:
        """A task group (Airflow's ``TaskGroup``): ``with dag.task_group("extract_all", tooltip=...,
        prefix_group_id=True, default_args={...}, ui_color=..., ui_fgcolor=...,
        group_display_name=..., doc_md=...):``. Created inside another group's block, it is nested
        in it. Another keyword is a ``RegistrationError`` naming the DAG and the group."""
        from .group import GROUP_OPTIONS, validate_group_id

        unknown = sorted(options.keys() - GROUP_OPTIONS)
        if unknown:
            raise RegistrationError(
                f"dag {self.dag_id!r}: task group {group_id!r}: unknown attribute {unknown[0]!r}; "
                f"Airflow's TaskGroup names are: {', '.join(sorted(GROUP_OPTIONS))}"
            )
        parent = self.current_group
        group = TaskGroup(self, validate_group_id(group_id, self.dag_id), parent, **options)
        full_id = group.group_id
        assert full_id is not None  # a named group's id: only the root group has none
        if full_id in self.group_ids or full_id in self.tasks:
            raise RegistrationError(f"dag {self.dag_id!r}: group id {full_id!r} is already used")
        self._check_fail_fast(group.default_args.get("trigger_rule"), f"task group {full_id!r} default_args")
        self.group_ids.update((full_id, f"{full_id}.upstream_join_id", f"{full_id}.downstream_join_id"))
        parent.children[full_id] = group
        return group

    @property
    def current_group(self) -> TaskGroup:
        """The innermost open ``with group:`` of this DAG, else its root group."""
        return self.group_stack[-1] if self.group_stack else self.root_group

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

    def branch(
        self, fn: Callable[..., Any] | None = None, /, *, task_id: str | None = None, **options: Any
    ) -> Any:
        """Register a branch task (Airflow's ``@task.branch``): it returns the task id(s) to follow
        (or ``None``) and the direct downstream tasks not followed are skipped
        (``bundle.core.authoring.branching``). Takes ``@dag.task``'s arguments."""
        from .branching import BRANCH, SkipRule

        return self._skipping(fn, task_id, options, SkipRule(BRANCH))

    def short_circuit(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        task_id: str | None = None,
        ignore_downstream_trigger_rules: bool = True,
        **options: Any,
    ) -> Any:
        """Register a short-circuit task (Airflow's ``@task.short_circuit``): a falsy return value
        skips every downstream task, or only the direct ones with
        ``ignore_downstream_trigger_rules=False``. Takes ``@dag.task``'s arguments."""
        from .branching import SHORT_CIRCUIT, SkipRule

        rule = SkipRule(SHORT_CIRCUIT, ignore_downstream_trigger_rules=ignore_downstream_trigger_rules)
        return self._skipping(fn, task_id, options, rule)

    def sensor(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        task_id: str | None = None,
        poke_interval: Any = SENSOR_DEFAULT,  # 60 s
        timeout: Any = SENSOR_DEFAULT,  # None: 7 days
        soft_fail: Any = SENSOR_DEFAULT,  # False
        mode: Any = SENSOR_DEFAULT,  # "poke"
        exponential_backoff: Any = SENSOR_DEFAULT,  # False
        max_wait: Any = SENSOR_DEFAULT,  # None
        silent_fail: Any = SENSOR_DEFAULT,  # False
        never_fail: Any = SENSOR_DEFAULT,  # False
        **options: Any,
    ) -> Any:
        """Register a sensor (Airflow's ``@task.sensor``): the function is the poke, called until it
        returns something truthy (or a ``PokeReturnValue`` whose ``xcom_value`` is pushed), with
        ``BaseSensorOperator``'s options (``bundle.core.authoring.sensors``). Takes ``@dag.task``'s
        arguments too. An option not given here comes from the task group's / DAG's
        ``default_args``, else Airflow's default (the comments)."""
        from .sensors import attach_sensor

        given = {
            name: value
            for name, value in (
                ("poke_interval", poke_interval),
                ("timeout", timeout),
                ("soft_fail", soft_fail),
                ("mode", mode),
                ("exponential_backoff", exponential_backoff),
                ("max_wait", max_wait),
                ("silent_fail", silent_fail),
                ("never_fail", never_fail),
            )
            if value is not SENSOR_DEFAULT
        }

        def register(function: Callable[..., Any]) -> Task:
            if "multiple_outputs" in options:  # @task.sensor passes multiple_outputs=False itself
                name = task_id if task_id is not None else _function_name(function)
                raise RegistrationError(
                    f"sensor {name!r} in dag {self.dag_id!r}: a sensor does not take multiple_outputs "
                    "(Airflow's @task.sensor always sets it False; a PokeReturnValue pushes one XCom)"
                )
            task = self.task(function, task_id=task_id, multiple_outputs=False, **options)
            attach_sensor(task, given)
            return task

        return register if fn is None else register(fn)

    def _skipping(self, fn: Any, task_id: str | None, options: dict[str, Any], rule: Any) -> Any:
        def register(function: Callable[..., Any]) -> Task:
            task = self.task(function, task_id=task_id, **options)
            task.skip_rule = rule
            return task

        return register if fn is None else register(fn)

    def add_task(self, fn: Callable[..., Any], **options: Any) -> Task:
        """Go's ``Dag.AddTask``: the task id is the function's name."""
        return self.add_task_with_name(_function_name(fn), fn, **options)

    def add_task_with_name(self, task_id: str, fn: Callable[..., Any], **options: Any) -> Task:
        """Go's ``Dag.AddTaskWithName``: for ids a Python ``@task.stub`` declares."""
        validate_id("task", task_id)
        group = self.current_group
        label, task_id = task_id, group.child_id(task_id)  # inside a group: Airflow's prefixed id
        if task_id != label:
            validate_id("task", task_id)
        if isinstance(fn, Task):
            fn = fn.fn
        if not callable(fn) or isinstance(fn, type):
            raise RegistrationError(f"task {task_id!r} in dag {self.dag_id!r}: {fn!r} is not a function")
        if task_id in self.tasks or task_id in self.group_ids:
            named = f"task {task_id!r}"
            if task_id != label:  # name the id the author wrote and the one Airflow sees
                named = f"task {label!r} of task group {group.group_id!r} (id {task_id!r})"
            what = "registered" if task_id in self.tasks else "used by a task group"
            raise RegistrationError(f"{named} is already {what} in dag {self.dag_id!r}")
        normalised = normalise_options("task", f"{self.dag_id}.{task_id}", options, TASK_OPTIONS)
        trigger_rule = normalised.get("trigger_rule", group.default_args.get("trigger_rule"))
        self._check_fail_fast(trigger_rule, f"task {task_id!r}")
        task = Task(self, task_id, fn, normalised, group)
        self.tasks[task_id] = task
        group.children[task_id] = task
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
            if task.expand_input is not None:
                for ref in task.expand_input.references():
                    place(ref.task)
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
