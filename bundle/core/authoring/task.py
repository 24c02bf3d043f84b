"""``Task``: a registered task function, its options, dependencies and bound arguments."""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..injection import InjectionPlan, plan_injection
from ..options import SENSOR_DEFAULT_ARGS
from . import binding
from .relations import Relatable

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

    from .branching import SkipRule
    from .dag import Dag
    from .group import TaskGroup
    from .mapping import ExpandInput, PartialTask
    from .sensors import SensorSpec

DEFAULT_QUEUE = "default"


class Task(Relatable):
    """A registered task.

    Calling it calls the plain function, so tasks stay unit-testable, except inside its DAG's
    ``with dag:`` block, where a call binds the arguments instead (Airflow's TaskFlow call syntax)
    and returns a reference to the task's output: ``load(transform(extract()))``. ``task.output``
    (and ``task.output["key"]``) is that reference outside a call; ``a >> b`` and ``a << b``
    declare dependencies the way Airflow users write them."""

    # ``@dag.branch`` / ``@dag.short_circuit`` set it (``authoring.branching``); None: a plain task.
    skip_rule: SkipRule | None = None
    # ``@dag.sensor`` sets it (``authoring.sensors``); None: not a sensor.
    sensor: SensorSpec | None = None
    # ``.expand(...)`` / ``.expand_kwargs(...)`` set it (``authoring.mapping``); None: not mapped.
    expand_input: ExpandInput | None = None

    def __init__(
        self,
        dag: Dag,
        task_id: str,
        fn: Callable[..., Any],
        options: dict[str, Any],
        group: TaskGroup | None = None,
    ):
        self.dag = dag
        self.task_id = task_id  # the full id: prefixed by its task groups as Airflow prefixes it
        self.group = group  # None: the DAG's root group
        self.fn = fn
        self.options = options
        self.plan: InjectionPlan = plan_injection(fn, f"task {task_id!r} in dag {dag.dag_id!r}")
        # Airflow's @task: explicit, else inferred from the return annotation; default_args' value
        # never applies (the decorator always passes its own). ``authoring.outputs``.
        self.multiple_outputs: bool = options.get("multiple_outputs", False)
        if "multiple_outputs" not in options and "return" in getattr(fn, "__annotations__", ()):
            from .outputs import infer_multiple_outputs

            self.multiple_outputs = infer_multiple_outputs(fn, f"task {task_id!r} in dag {dag.dag_id!r}")
        self.upstream_task_ids: list[str] = []
        self.downstream_task_ids: list[str] = []
        # parameter name -> XComArg or literal, filled by bind(); empty for most tasks
        self.bound: dict[str, Any] = {}
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if binding.active_dags and binding.active_dags[-1] is self.dag:
            return self.bind(*args, **kwargs)
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.dag.dag_id}.{self.task_id}>"

    @property
    def output(self) -> binding.XComArg:
        """The reference to this task's ``return_value`` XCom; ``output["k"]`` for the XCom ``k``."""
        return binding.XComArg(self)

    def bind(self, *args: Any, **kwargs: Any) -> binding.XComArg:
        """Bind upstream outputs (``other.output``) or literals to this task's parameters, as a call
        inside ``with dag:`` does; each reference adds ``upstream >> self``. Returns ``self.output``."""
        binding.bind(self, args, kwargs)
        return self.output

    # -- deferral (``bundle.core.deferral``) ------------------------------------------------------
    def resume(self, fn: Any = None) -> Any:
        """Register a resume function for ``ctx.defer(method_name=...)``: ``@task.resume`` (named
        after the function) or ``@task.resume("name")``. Called instead of the task function when
        the trigger fires, with the deferral's ``kwargs`` and the trigger's ``event``."""
        from ..deferral import resume_decorator

        return resume_decorator(self, fn)

    # -- dynamic task mapping (``authoring.mapping``) -----------------------------------------
    @property
    def is_mapped(self) -> bool:
        return self.expand_input is not None

    def partial(self, **constants: Any) -> PartialTask:
        """The arguments every mapped instance shares: ``task.partial(limit=5).expand(x=...)``."""
        from .mapping import PartialTask

        return PartialTask(self, constants)

    def expand(self, **mapped: Any) -> binding.XComArg:
        """Map the task: one task instance per element (cross product over several arguments) of
        literal lists/dicts or upstream outputs. Returns the reference to all their results."""
        return self.partial().expand(**mapped)

    def expand_kwargs(self, kwargs: Any) -> binding.XComArg:
        """Map the task over a list of keyword-argument dicts (literal or an upstream's output)."""
        return self.partial().expand_kwargs(kwargs)

    @property
    def effective_options(self) -> dict[str, Any]:
        """Task options over its task group's ``default_args`` over the DAG's, with the bundle's
        default queue (Airflow's ``get_merged_defaults``). Sensor arguments in ``default_args`` are
        left out: they reach a sensor's ``self.sensor`` only (``authoring.sensors``)."""
        group_args = self.group.default_args if self.group is not None else {}
        merged = {**self.dag.options.get("default_args", {}), **group_args, **self.options}
        merged.setdefault("queue", self.dag.default_queue or DEFAULT_QUEUE)
        for key in SENSOR_DEFAULT_ARGS.keys() & merged.keys():  # a sensor's are in self.sensor
            del merged[key]
        if self.multiple_outputs or "multiple_outputs" in merged:
            merged["multiple_outputs"] = self.multiple_outputs
        return merged

    # -- dependencies -----------------------------------------------------------------------
    def set_downstream(self, other: Any) -> None:
        self._set_relatives(other, upstream=False)

    def set_upstream(self, other: Any) -> None:
        self._set_relatives(other, upstream=True)

    def _set_relatives(self, other: Any, upstream: bool) -> None:
        """Airflow's ``DAGNode._set_relatives``: a task group on the other side records this task
        (``update_relative``) and is linked through its leaves (upstream) or roots (downstream)."""
        from .group import TaskGroup, nodes

        for node in nodes(other):
            if isinstance(node, TaskGroup):
                node._require_tasks()
                node.update_relative(self, not upstream)
                relatives = node.leaves if upstream else node.roots
            else:
                relatives = [node]
            for task in relatives:
                if upstream:
                    self.dag._add_edge(task, self)
                else:
                    self.dag._add_edge(self, task)
