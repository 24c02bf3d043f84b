"""A mapped task's DagSerialization: the shape core 3.3.2 gives a ``MappedOperator``.

The scheduler expands a mapped task from its serialization alone (``get_mapped_ti_count`` reads the
expand input, ``TaskMap`` rows give the upstream lengths), so a bundle's mapped task must serialize
as ``DagSerialization.to_dict`` serializes the same ``@task`` function declared with
``.partial(...).expand(...)`` / ``.expand_kwargs(...)`` (``serialize_mapped_operator`` over a
``DecoratedMappedOperator``), which differs from a plain task's in more than a flag:

* ``_is_mapped: true``, ``_expand_input_attr: "op_kwargs_expand_input"`` and, under that name,
  ``{"type": "dict-of-lists" | "list-of-dicts", "value": ...}`` in Airflow's generic encoding
  (dicts wrapped, references as ``xcomref``); ``_disallow_kwargs_override`` is false for
  ``expand`` and true for ``expand_kwargs`` (its ``strict`` default).
* The task's attributes move into ``partial_kwargs``: only those given (by the task, its task
  groups' or the DAG's ``default_args``; none of ``retry_delay`` by default, but written when given,
  even at 300 s), encoded generically (durations as ``timedelta`` wrappers), schema defaults left out,
  plus ``op_kwargs`` (the ``partial()`` constants, literals or ``xcomref``) and ``op_args: []``.
  As in ``_TaskDecorator._expand``: ``do_xcom_push`` counts only when the task itself sets it (not
  from ``default_args``); ``multiple_outputs`` is not serialized; the priority weight is not
  clamped; ``wait_for_downstream`` implies ``depends_on_past``.
* ``start_date`` / ``end_date``, ``params``, ``downstream_task_ids`` and ``_can_skip_downstream``
  stay at the top; ``retry_delay``, ``_needs_expansion`` and ``has_retry_policy`` are not written;
  the function's docstring does not become ``doc_md`` (``DecoratedOperator.__init__``, which does
  that, never runs for a mapped task).
* A mapped sensor keeps ``_is_sensor`` (what the scheduler reads); unlike a mapped ``@task.sensor``
  it does not list its sensor options (``mode``, ``poke_interval``...) in ``partial_kwargs``: the
  bundle's runtime pokes, the scheduler reads none of them, and a ``@task.stub`` cannot take them.

Loaded only when a DAG has a mapped task.
"""

from __future__ import annotations

from ..core.authoring.binding import XComArg
from ..core.authoring.mapping import DICT_OF_LISTS
from ..core.registry import Task

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

EXPAND_INPUT_ATTR = "op_kwargs_expand_input"  # where @task's mapped operators keep what they map over

# What a mapped operator keeps at the top of its serialization (serialize_mapped_operator's
# _serialize_node over MappedOperator's fields); every other option goes to partial_kwargs.
_NODE_KEYS = (
    "task_id",
    "task_type",
    "_task_module",
    "language",
    "template_fields",
    "start_date",
    "end_date",
    "downstream_task_ids",
    "params",
    "_can_skip_downstream",
    "_is_sensor",  # ReadyToRescheduleDep joins a mapped sensor's deps too; reschedule is not a field
)
# Options _TaskDecorator._expand takes only from the task's own arguments, never from default_args.
_OWN_ONLY = frozenset({"do_xcom_push"})
# Options a mapped @task never serializes, or serializes at the top (handled by _NODE_KEYS).
_NOT_PARTIAL = frozenset({"multiple_outputs", "start_date", "end_date"})
_DURATIONS = frozenset({"retry_delay", "max_retry_delay", "execution_timeout"})
# Options the plain serialization has already encoded as core does inside partial_kwargs too.
_ENCODED_AS_IS = frozenset({"outlets", "inlets"})


def mapped_task(task: Task, plain: dict[str, Any], schema_defaults: dict[str, Any]) -> dict[str, Any]:
    """The serialization of mapped ``task``, from its plain serialization ``plain`` (what the task
    would be unmapped) and the operator schema defaults core leaves out."""
    expand_input = task.expand_input
    assert expand_input is not None
    data: dict[str, Any] = {key: plain[key] for key in _NODE_KEYS if key in plain}
    data["_is_mapped"] = True
    data["_expand_input_attr"] = EXPAND_INPUT_ATTR
    data["_disallow_kwargs_override"] = expand_input.kind != DICT_OF_LISTS
    if expand_input.kind == DICT_OF_LISTS:
        value: Any = encode({name: item for name, item in expand_input.value.items()})
    elif isinstance(expand_input.value, XComArg):
        value = encode(expand_input.value)
    else:
        value = [encode(kwargs) for kwargs in expand_input.value]
    data[EXPAND_INPUT_ATTR] = {"type": expand_input.kind, "value": value}
    data["partial_kwargs"] = _partial_kwargs(task, plain, schema_defaults)
    return data


def _partial_kwargs(task: Task, plain: dict[str, Any], schema_defaults: dict[str, Any]) -> dict[str, Any]:
    options = task.effective_options
    partial: dict[str, Any] = {}
    for name, value in options.items():
        if name in _NOT_PARTIAL or value is None:
            continue
        if name in _OWN_ONLY and name not in task.options:
            continue
        if name in schema_defaults and schema_defaults[name] == value:
            continue
        if name in _DURATIONS:
            value = {"__type": "timedelta", "__var": value.total_seconds()}
        elif name in _ENCODED_AS_IS:
            if name not in plain:
                continue  # empty: core leaves it out
            value = plain[name]
        partial[name] = value
    if options.get("wait_for_downstream"):
        partial["depends_on_past"] = True  # as BaseOperator.partial / _expand do
    partial["op_kwargs"] = encode(dict(task.bound))
    partial["op_args"] = []
    return partial


def encode(value: Any) -> Any:
    """Airflow's generic encoding of a mapping value: JSON scalars and lists as they are, dicts
    wrapped, an upstream reference as ``xcomref``."""
    if isinstance(value, XComArg):
        return {"__type": "xcomref", "__var": {"task_id": value.task_id, "key": value.key}}
    if isinstance(value, dict):
        return {"__type": "dict", "__var": {str(key): encode(item) for key, item in value.items()}}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return {"__type": "tuple", "__var": [encode(item) for item in value]}
    return value
