"""Dynamic task mapping, as declared: ``task.partial(**constants).expand(x=...)`` and
``task.expand_kwargs(...)`` (Airflow's names and checks).

Declaring a mapping records, on the task, its constants (``task.bound``, as a call binds them) and
its ``ExpandInput``: what the scheduler expands over, in Airflow's two shapes. ``dict-of-lists``
(``expand``): each named argument maps over a literal list or dict, or over an upstream task's output
(``XComArg``), several arguments giving their cross product in Airflow's order. ``list-of-dicts``
(``expand_kwargs``): one set of keyword arguments per element, from a literal list of dicts or an
upstream's output. References add ``upstream >> task`` as binding does.

Only the declaration lives here: which element a mapped task instance receives, the reduce of a
mapped task's results and the upstream's ``mapped_length`` are run-time matters
(``bundle.core.mapped``); serialization and the generated DAG file read ``task.expand_input``.
"""

from __future__ import annotations

from ..errors import RegistrationError
from ..injection import function_name
from . import binding
from .jsonvalue import is_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Mapping
    from typing import Any

    from .task import Task

DICT_OF_LISTS, LIST_OF_DICTS = "dict-of-lists", "list-of-dicts"  # Airflow's expand-input type names

# task-sdk 1.3.2's KNOWN_CONTEXT_KEYS: Airflow refuses them as partial() / expand() names (its @task
# would inject the context there), so the generated DAG file's stub could not be mapped over them.
AIRFLOW_CONTEXT_KEYS = frozenset(
    {
        "asset_state_store", "conn", "dag", "dag_run", "data_interval_end", "data_interval_start", "ds",
        "ds_nodash", "exception", "expanded_ti_count", "inlet_events", "inlets", "logical_date", "macros",
        "map_index_template", "outlet_events", "outlets", "params", "partition_date", "partition_key",
        "prev_data_interval_end_success", "prev_data_interval_start_success", "prev_end_date_success",
        "prev_start_date_success", "reason", "run_id", "task", "task_instance", "task_instance_key_str",
        "task_reschedule_count", "task_state_store", "templates_dict", "test_mode", "ti",
        "triggering_asset_events", "try_number", "ts", "ts_nodash", "ts_nodash_with_tz", "var",
    }
)  # fmt: skip


class ExpandInput:
    """What a mapped task maps over (Airflow's ``DictOfListsExpandInput`` / ``ListOfDictsExpandInput``).

    ``kind`` DICT_OF_LISTS: ``value`` maps each expanded parameter name, in the order given, to a
    literal list, a literal dict or an ``XComArg``. ``kind`` LIST_OF_DICTS: ``value`` is a literal
    list of dicts (str keys) or an ``XComArg`` whose value is one."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: Any):
        self.kind = kind
        self.value = value

    def __repr__(self) -> str:
        return f"ExpandInput({self.kind!r}, {self.value!r})"

    def references(self) -> list[binding.XComArg]:
        """The upstream outputs it maps over, in order."""
        if self.kind == DICT_OF_LISTS:
            return [value for value in self.value.values() if isinstance(value, binding.XComArg)]
        return [self.value] if isinstance(self.value, binding.XComArg) else []

    def names(self) -> list[str] | None:
        """The parameters it gives values to, or None when only run time knows (``expand_kwargs``
        over an upstream's output)."""
        if self.kind == DICT_OF_LISTS:
            return list(self.value)
        if isinstance(self.value, binding.XComArg):
            return None
        return sorted({name for kwargs in self.value for name in kwargs})


class PartialTask:
    """``task.partial(**constants)``: the constants of a mapped task, waiting for ``.expand(...)``
    or ``.expand_kwargs(...)`` (Airflow's ``_TaskDecorator.partial``)."""

    __slots__ = ("constants", "task")

    def __init__(self, task: Task, constants: Mapping[str, Any]):
        _check_not_context(_where(task), "partial", constants)
        self.task = task
        self.constants = dict(constants)

    def __repr__(self) -> str:
        return f"<PartialTask {self.task.dag.dag_id}.{self.task.task_id} {self.constants!r}>"

    def expand(self, **mapped: Any) -> binding.XComArg:
        """Map the task over each named argument's list, dict or upstream output (cross product)."""
        where = _where(self.task)
        if not mapped:
            raise RegistrationError(f"{where}: expand() needs at least one argument to map over")
        _check_not_context(where, "expand", mapped)
        for name in mapped:
            if name in self.constants:
                raise RegistrationError(
                    f"{where}: parameter {name!r} is given to both partial() and expand()"
                )
        for name, value in mapped.items():
            _check_mappable(where, name, value)
        if self.task.options.get("trigger_rule") == "always" and any(
            isinstance(value, binding.XComArg) for value in mapped.values()
        ):  # as Airflow's _TaskDecorator.expand refuses it
            raise RegistrationError(
                f"{where}: Task-generated mapping within a task using 'expand' is not allowed with "
                "trigger rule 'always'."
            )
        return _declare(self.task, self.constants, ExpandInput(DICT_OF_LISTS, dict(mapped)))

    def expand_kwargs(self, kwargs: Any) -> binding.XComArg:
        """Map the task over a list of keyword-argument dicts, literal or an upstream's output."""
        where = _where(self.task)
        if isinstance(kwargs, binding.XComArg):
            _check_return_value(where, kwargs)
            return _declare(self.task, self.constants, ExpandInput(LIST_OF_DICTS, kwargs))
        if not isinstance(kwargs, (list, tuple)):
            raise RegistrationError(
                f"{where}: expand_kwargs() takes a list of dicts or an upstream task's output, "
                f"got {type(kwargs).__name__}"
            )
        free = {param.name for param in self.task.plan.free}
        for position, item in enumerate(kwargs):
            if not isinstance(item, dict) or not all(isinstance(key, str) for key in item):
                raise RegistrationError(
                    f"{where}: expand_kwargs() element {position} must be a dict with str keys, "
                    f"got {type(item).__name__}"
                )
            for name, value in item.items():
                if name not in free:
                    raise RegistrationError(
                        f"{where}: expand_kwargs() element {position} names {name!r}, which is not a "
                        f"free parameter of {function_name(self.task.fn)}"
                    )
                if name in self.constants:
                    raise RegistrationError(
                        f"{where}: parameter {name!r} is given to both partial() and expand_kwargs()"
                    )
                if not is_json(value):
                    raise RegistrationError(
                        f"{where}: expand_kwargs() element {position} gives {name!r} a "
                        f"{type(value).__name__}; literal values must be JSON (references inside "
                        "literals are not supported)"
                    )
        return _declare(self.task, self.constants, ExpandInput(LIST_OF_DICTS, [dict(i) for i in kwargs]))


def _where(task: Task) -> str:
    return f"task {task.task_id!r} in dag {task.dag.dag_id!r}"


def _check_not_context(where: str, call: str, names: Mapping[str, Any]) -> None:
    """Airflow's ``_TaskDecorator._validate_arg_names``: no context variable as a mapped name."""
    found = sorted(AIRFLOW_CONTEXT_KEYS.intersection(names))  # Airflow lists a set: any order
    if len(found) == 1:
        raise RegistrationError(f"{where}: cannot call {call}() on task context variable {found[0]!r}")
    if found:
        listed = ", ".join(repr(name) for name in found)
        raise RegistrationError(f"{where}: cannot call {call}() on task context variables {listed}")


def _check_return_value(where: str, ref: binding.XComArg) -> None:
    """Airflow maps over an upstream's ``return_value`` only (``ensure_xcomarg_return_value``): the
    scheduler's lengths (``TaskMap``) are recorded for that XCom alone."""
    if ref.key != binding.RETURN_KEY:
        raise RegistrationError(
            f"{where}: cannot map over XCom with custom key {ref.key!r} from task {ref.task_id!r}"
        )


def _check_mappable(where: str, name: str, value: Any) -> None:
    if isinstance(value, binding.XComArg):
        _check_return_value(where, value)
        return
    if isinstance(value, (list, tuple, dict)):
        if isinstance(value, dict) and not all(isinstance(key, str) for key in value):
            raise RegistrationError(f"{where}: expand() argument {name!r} is a dict with non-str keys")
        if not is_json(list(value) if not isinstance(value, dict) else value):
            raise RegistrationError(
                f"{where}: expand() argument {name!r} must hold JSON values (references inside "
                "literals are not supported)"
            )
        return
    raise RegistrationError(
        f"{where}: expand() got an unexpected type {type(value).__name__!r} for argument {name!r}: "
        "map over a list, a dict or an upstream task's output"
    )


def _declare(task: Task, constants: Mapping[str, Any], expand_input: ExpandInput) -> binding.XComArg:
    """Record the mapping on the task: constants bound as a call binds them (checks and edges
    included), the expanded names checked against the function, references linked upstream."""
    where = _where(task)
    if task.expand_input is not None:
        raise RegistrationError(f"{where}: it is already mapped; a task is mapped once per DAG")
    free = {param.name for param in task.plan.free}
    if expand_input.kind == DICT_OF_LISTS:
        for name in expand_input.value:
            if name not in free:
                raise RegistrationError(
                    f"{where}: expand() got an unexpected argument {name!r}: {function_name(task.fn)} "
                    "has no such free parameter"
                )
    binding.bind(task, (), constants)
    for ref in expand_input.references():
        task.dag._add_edge(ref.task, task)  # raises on a cycle or a task of another DAG
    if expand_input.kind == DICT_OF_LISTS:
        for name, value in expand_input.value.items():
            if not isinstance(value, binding.XComArg):
                expand_input.value[name] = list(value) if isinstance(value, tuple) else value
    task.expand_input = expand_input
    return task.output
