"""DagSerialization v3 for a bundle's DAGs, as the DAG processor stores them.

Airflow's scheduler and UI never see a pybundle DAG object: they see the dict this module builds,
carried in a ``DagFileParsingResult``. Airflow loads it with ``DagSerialization.from_dict`` and
treats it exactly as if its own Python serializer had written it, so the output follows what
apache-airflow-core 3.3.2's ``DagSerialization.to_dict`` writes for a plain Python operator with
the same attributes, key for key (spec ``coordinator-protocol.md`` §13.3):

* DAG keys are a closed set in the schema, so only known keys are written; the config-dependent
  limits Python always writes (``catchup``, ``max_active_*``...) are written with Airflow's
  built-in defaults, because this process cannot read the deployment's ``airflow.cfg``.
* ``start_date`` / ``end_date`` / ``dagrun_timeout`` are bare numbers; ``default_args`` keeps the
  generic ``{"__type", "__var"}`` wrappers; the timetable is always wrapped.
* A task key equal to its schema default is left out (``from_dict`` restores it), except
  ``retry_delay``, which Python writes even at its default.
* Task dates are clamped to the DAG's dates and dropped when equal to them, and the DAG takes its
  start date (and time zone) from ``default_args`` when it has none, as the Python SDK does.

A task's ``doc_md`` defaults to its function's docstring, as Airflow's ``@task`` does.

Tasks carry ``language: "python"``, ``task_type`` and ``_task_module`` like the Go SDK's; Airflow
never imports them (routing is by ``queue``). ``task_type`` is the task function's name in
CamelCase with a ``Task`` suffix (``extract_rows`` → ``ExtractRowsTask``): the function is the
closest thing a bundle task has to an operator class, so tasks sharing a function share a type in
the UI. ``_task_module`` is the function's ``__module__``.

Standard library only: this runs in coordinator mode, where start-up time matters and neither
Airflow nor YAML is importable.
"""

from __future__ import annotations

import functools
import gc
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone, tzinfo

from ..core.authoring.group import TaskGroup
from ..core.errors import RegistrationError
from ..core.options import CALLBACK_OPTIONS
from ..core.registry import Dag, Registry, Task

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

SERIALIZER_VERSION = 3
LANGUAGE = "python"

# Airflow's built-in defaults for the DAG attributes Python's serializer always writes (they have no
# schema default, so leaving them out would not round-trip): [scheduler] catchup_by_default,
# [core] max_active_tasks_per_dag / max_active_runs_per_dag / max_consecutive_failed_dag_runs_per_dag,
# [dag_processor] disable_bundle_versioning.
DAG_CONFIG_DEFAULTS: dict[str, Any] = {
    "catchup": False,
    "max_active_tasks": 16,
    "max_active_runs": 16,
    "max_consecutive_failed_dag_runs": 0,
    "disable_bundle_versioning": False,
}

# [core] default_task_retry_delay: every task has a retry delay, and Python always writes it.
DEFAULT_RETRY_DELAY = timedelta(seconds=300)

# ``definitions.operator.properties.*.default`` of core 3.3.2's schema.json for the options a bundle
# task can set. Python leaves a key out when the value equals these, and ``from_dict`` fills it in.
OPERATOR_SCHEMA_DEFAULTS: dict[str, Any] = {
    "owner": "airflow",
    "trigger_rule": "all_success",
    "depends_on_past": False,
    "ignore_first_depends_on_past": False,
    "wait_for_past_depends_before_skipping": False,
    "wait_for_downstream": False,
    "retries": 0,
    "queue": "default",
    "pool": "default_pool",
    "pool_slots": 1,
    "retry_exponential_backoff": 0,
    "priority_weight": 1,
    "weight_rule": "downstream",
    "do_xcom_push": True,
    "multiple_outputs": False,
}

# Airflow stores priority weights in a 32-bit column and clamps them to it when a task is built.
PRIORITY_WEIGHT_RANGE = (-(2**31), 2**31 - 1)

# Task options written under another key.
_TASK_KEY_RENAMES = {"task_display_name": "_task_display_name"}
_DURATION_OPTIONS = frozenset({"retry_delay", "max_retry_delay", "execution_timeout"})
_DATE_OPTIONS = frozenset({"start_date", "end_date"})
_ASSET_OPTIONS = frozenset({"outlets", "inlets"})

_TIMETABLES = "airflow.timetables"
PARAM_CLASS = "airflow.sdk.definitions.param.Param"
_ARG_NOT_SET = {"__type": "arg_not_set", "__var": None}


def serialize_registry(
    registry: Registry, *, fileloc: str, relative_fileloc: str | None = None
) -> list[dict[str, Any]]:
    """Every DAG of the registry, in registration order (one ``DagFileParsingResult`` carries them all).

    The cyclic GC is paused meanwhile: the result is a growing tree of fresh, acyclic dicts and lists,
    which the GC would traverse again and again for nothing; with it running, the cost per DAG grew
    with the bundle (measured, 20 tasks per DAG: 0.23 ms at 100 DAGs, 0.35 ms at 1,000)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return [serialize_dag(dag, fileloc=fileloc, relative_fileloc=relative_fileloc) for dag in registry]
    finally:
        if paused:
            gc.enable()


def dag_file_document(registry: Registry, dag_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """What ``bundle-pack dag-file`` renders: each DAG's serialization (all DAGs, or ``dag_ids`` in the
    registry's order) with what DagSerialization does not carry: its task functions' raw docstrings,
    and each task's bound arguments (``_bindings``), which the file passes to the stubs.

    Raises ``KeyError`` naming the first of ``dag_ids`` the registry does not have."""
    wanted = set(dag_ids)
    for dag_id in wanted:
        if dag_id not in registry.dags:
            raise KeyError(dag_id)
    return [
        {
            "serialized": serialize_dag(dag, fileloc=""),
            "docs": {task_id: _docstring(task.fn) for task_id, task in dag.tasks.items()},
            "bindings": _bindings(dag),
            "group_default_args": _group_default_args(dag.root_group),
            **_dag_callback_counts(dag),
        }
        for dag in registry
        if not wanted or dag.dag_id in wanted
    ]


def _dag_callback_counts(dag: Dag) -> dict[str, Any]:
    """``{"dag_callbacks": {kind: count}}`` for a DAG with DAG-level callbacks (the DAG file bounds
    the bundle's process by their number), else nothing."""
    if not (dag.options.get("on_success_callback") or dag.options.get("on_failure_callback")):
        return {}
    from ..core.dag_callbacks import callback_counts

    return {"dag_callbacks": callback_counts(dag)}


def _group_default_args(group: TaskGroup) -> dict[str, Any]:
    """``{group_id: default_args}`` (Airflow's generic encoding) of the groups that set their own,
    unmerged: DagSerialization keeps only their effect on the tasks; the DAG file writes them."""
    found = {}
    for child in group.children.values():
        if isinstance(child, TaskGroup):
            # Callbacks run in the bundle's runtime: the DAG file's TaskGroup(...) never gets them.
            own = {k: v for k, v in child.own_default_args.items() if k not in CALLBACK_OPTIONS}
            if own:
                assert child.group_id is not None  # only the root group has no id
                found[child.group_id] = _wrap(own)
            found.update(_group_default_args(child))
    return found


def _bindings(dag: Dag) -> dict[str, list[list[Any]]]:
    """``{task_id: [[parameter, {"xcom": [upstream_task_id, key]} | {"literal": value}], ...]}``
    for the tasks with bound arguments, in parameter order."""
    from ..core.authoring.binding import XComArg

    result = {}
    for task in dag.tasks.values():
        if task.bound:
            result[task.task_id] = [
                [
                    name,
                    {"xcom": [value.task_id, value.key]}
                    if isinstance(value, XComArg)
                    else {"literal": value},
                ]
                for name, value in task.bound.items()
            ]
    return result


def serialize_dag(dag: Dag, *, fileloc: str, relative_fileloc: str | None = None) -> dict[str, Any]:
    """``{"__version": 3, "dag": {...}}`` for one DAG, as ``DagSerialization.to_dict`` writes it.

    ``fileloc`` / ``relative_fileloc`` say where Airflow thinks the DAG came from (the parsed file),
    so they are the caller's to choose. Raises ``RegistrationError`` for a DAG the Python SDK would
    refuse to import, so the caller can report it as an import error instead of Airflow failing
    later on the scheduler."""
    options = dag.options
    default_args: Mapping[str, Any] = options.get("default_args", {})
    schedule = options.get("schedule")
    # Like the Python SDK: a DAG without start_date takes default_args' (but not its end_date).
    start_date: datetime | None = options.get("start_date") or default_args.get("start_date")
    end_date: datetime | None = options.get("end_date")
    tz = _encode_timezone(start_date)

    data: dict[str, Any] = {"dag_id": dag.dag_id, "fileloc": fileloc}
    if relative_fileloc is not None:
        data["relative_fileloc"] = relative_fileloc
    data["timezone"] = tz
    data["timetable"] = _timetable(schedule, tz)
    for key, default in DAG_CONFIG_DEFAULTS.items():
        data[key] = options.get(key, default)
    if start_date is not None:
        data["start_date"] = start_date.timestamp()
    if end_date is not None:
        data["end_date"] = end_date.timestamp()
    if options.get("dagrun_timeout") is not None:
        data["dagrun_timeout"] = options["dagrun_timeout"].total_seconds()
    for key in ("description", "doc_md", "is_paused_upon_creation"):
        if options.get(key) is not None:
            data[key] = options[key]
    if options.get("dag_display_name") not in (None, dag.dag_id):
        data["dag_display_name"] = options["dag_display_name"]
    if options.get("tags"):
        data["tags"] = list(options["tags"])
    # Written only when true: false is their schema default.
    for key in ("render_template_as_native_obj", "fail_fast"):
        if options.get(key):
            data[key] = True
    if default_args:
        data["default_args"] = _wrap(callback_flags(default_args))

    task_params = serialize_params(dag.params, source="dag") if dag.params else None
    data["tasks"] = [
        {"__type": "operator", "__var": _serialize_task(task, start_date, end_date, task_params)}
        for task in dag.creation_order()
    ]
    data["dag_dependencies"] = _dag_dependencies(dag, schedule)
    data["task_group"] = _root_task_group(dag)
    data["edge_info"] = {}
    data["params"] = serialize_params(dag.params, source=None)
    data["deadline"] = None
    data["allowed_run_types"] = None
    # Only when true, as core writes them: the scheduler then sends the DAG processor a
    # DagCallbackRequest, which the generated DAG file routes to the bundle (docs/callbacks.md).
    for key in ("on_success_callback", "on_failure_callback"):
        if options.get(key):
            data[f"has_{key}"] = True
    return {"__version": SERIALIZER_VERSION, "dag": data}


# -- tasks ----------------------------------------------------------------------------------------


def serialize_params(params: Mapping[str, Any], *, source: str | None) -> list[Any]:
    """A DAG's params as core writes them: ``[[name, {"__class", "default", "description",
    "schema", "source"}], ...]`` in declaration order; every task of the DAG carries them too, with
    ``source: "dag"`` (the DAG's own list has ``source: None``). A param without a default writes
    Airflow's ``NOTSET`` marker."""
    from ..core.authoring.params import NOTSET

    return [
        [
            name,
            {
                "__class": PARAM_CLASS,
                "default": _ARG_NOT_SET if param.default is NOTSET else _wrap(param.default),
                "description": param.description,
                "schema": _wrap(param.schema),
                "source": source,
            },
        ]
        for name, param in params.items()
    ]


def _serialize_task(
    task: Task, dag_start: datetime | None, dag_end: datetime | None, params: list[Any] | None
) -> dict[str, Any]:
    options = callback_flags(_as_airflow_builds_it(task.effective_options))
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_type": task_type_of(task.fn),
        "_task_module": task_module_of(task.fn),
        "language": LANGUAGE,
        "template_fields": [],
        "retry_delay": options.get("retry_delay", DEFAULT_RETRY_DELAY).total_seconds(),
        # What Python writes for every plain, unmapped operator without a retry policy.
        "_needs_expansion": False,
        "has_retry_policy": False,
    }
    if task.skip_rule is not None:
        # A branch / short-circuit task is a SkipMixin operator to the scheduler: when a task it
        # skipped is cleared, NotPreviouslySkippedDep reads its skipmixin_key XCom and skips it again.
        data["_can_skip_downstream"] = True
    if task.sensor is not None:
        # What core writes for every sensor: _is_sensor adds ReadyToRescheduleDep to the task's deps,
        # and ReadyToRescheduleDep reads reschedule for a task in state None (e.g. once cleared).
        data["_is_sensor"] = True
        data["reschedule"] = task.sensor.reschedule
    for name, value in options.items():
        if name in _DATE_OPTIONS or name == "retry_delay" or value is None:
            continue
        if name in OPERATOR_SCHEMA_DEFAULTS and OPERATOR_SCHEMA_DEFAULTS[name] == value:
            continue
        if name in _DURATION_OPTIONS:
            value = value.total_seconds()
        elif name in _ASSET_OPTIONS:
            if not value:
                continue  # core leaves an empty list out
            from ..core.authoring.assets import encode_asset

            value = [encode_asset(asset) for asset in value]
        elif name == "retry_exponential_backoff" and not math.isfinite(value):
            raise RegistrationError(
                f"task {task.task_id!r} in dag {task.dag.dag_id!r}: retry_exponential_backoff must be finite"
            )
        data[_TASK_KEY_RENAMES.get(name, name)] = value
    start = _clamp(options.get("start_date"), dag_start, max)
    end = _clamp(options.get("end_date"), dag_end, min)
    if start is not None and start != dag_start:
        data["start_date"] = start.timestamp()
    if end is not None and end != dag_end:
        data["end_date"] = end.timestamp()
    if not data.get("doc_md"):
        doc = _docstring(task.fn)
        if doc:  # as Airflow's @task does (an empty doc_md included): the docstring documents the task
            data["doc_md"] = doc
    if task.downstream_task_ids:
        data["downstream_task_ids"] = sorted(task.downstream_task_ids)
    if params is not None:
        data["params"] = params
    if task.expand_input is not None:  # a MappedOperator to core: its own shape (introspection.mapping)
        from .mapping import mapped_task

        return mapped_task(task, data, OPERATOR_SCHEMA_DEFAULTS)
    return data


def callback_flags(options: Mapping[str, Any]) -> dict[str, Any]:
    """``on_X_callback: [fn, ...]`` -> ``has_on_X_callback: True`` (left out when empty), as core
    serializes callbacks: the scheduler only learns that a task has them."""
    result = {}
    for name, value in options.items():
        if name in CALLBACK_OPTIONS:
            if value:
                result[f"has_{name}"] = True
        else:
            result[name] = value
    return result


def _docstring(fn: Callable[..., Any]) -> str | None:
    """A task function's own docstring (not that of ``functools.partial`` or of a callable's class)."""
    fn = _unwrap(fn)
    return fn.__doc__ if hasattr(fn, "__code__") and isinstance(fn.__doc__, str) else None


def _as_airflow_builds_it(options: dict[str, Any]) -> dict[str, Any]:
    """The adjustments ``BaseOperator.__init__`` makes to what it is given."""
    options = dict(options)
    if options.get("wait_for_downstream"):
        options["depends_on_past"] = True  # waiting for the previous run's downstream implies it
    if "priority_weight" in options:
        low, high = PRIORITY_WEIGHT_RANGE
        options["priority_weight"] = max(low, min(high, options["priority_weight"]))
    return options


def _clamp(
    task_date: datetime | None, dag_date: datetime | None, pick: Callable[[datetime, datetime], datetime]
) -> datetime | None:
    """A task runs within its DAG's dates: the later start / earlier end of the two wins."""
    if task_date is None or dag_date is None:
        return task_date or dag_date
    return pick(task_date, dag_date)


def _root_task_group(dag: Dag) -> dict[str, Any]:
    """The DAG's ``task_group`` tree: its root group (``_group_id`` None) and the nested groups."""
    return _task_group(dag.root_group)


def _task_group(group: TaskGroup) -> dict[str, Any]:
    """One group as core's ``TaskGroupSerialization.serialize_task_group`` writes it: children by
    full node id, the relatives' ids sorted, ``doc_md`` only when the group has one."""
    data = {
        "_group_id": group.label,
        "group_display_name": group.group_display_name,
        "prefix_group_id": group.prefix_group_id,
        "tooltip": group.tooltip,
        "ui_color": group.ui_color,
        "ui_fgcolor": group.ui_fgcolor,
        "children": {
            node_id: ["taskgroup", _task_group(child)]
            if isinstance(child, TaskGroup)
            else ["operator", node_id]
            for node_id, child in group.children.items()
        },
        "upstream_group_ids": sorted(group.upstream_group_ids),
        "downstream_group_ids": sorted(group.downstream_group_ids),
        "upstream_task_ids": sorted(group.upstream_task_ids),
        "downstream_task_ids": sorted(group.downstream_task_ids),
    }
    if group.doc_md is not None:
        data["doc_md"] = group.doc_md
    return data


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def task_type_of(fn: Callable[..., Any]) -> str:
    """``extract_rows`` → ``ExtractRowsTask``; a callable object is named by its class."""
    fn = _unwrap(fn)
    name = getattr(fn, "__name__", None) or type(fn).__name__
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", name) if part)
    if not camel or camel == "Lambda":
        return "PythonTask"
    return camel if camel.endswith("Task") else f"{camel}Task"


def task_module_of(fn: Callable[..., Any]) -> str:
    """The module that defines the task function (informational: Airflow never imports it)."""
    fn = _unwrap(fn)
    module = getattr(fn, "__module__", None) or getattr(type(fn), "__module__", None)
    return module if isinstance(module, str) and module else "__main__"


# -- DAG attributes -------------------------------------------------------------------------------


def _timetable(schedule: str | timedelta | None, tz: str | int) -> dict[str, Any]:
    """The timetable Airflow 3.3 builds from a plain ``schedule`` (with the default
    ``[scheduler] create_cron_data_intervals = False``: trigger timetables, not data intervals)."""
    if schedule is None:
        return {"__type": f"{_TIMETABLES}.simple.NullTimetable", "__var": {}}
    if schedule == "@once":
        return {"__type": f"{_TIMETABLES}.simple.OnceTimetable", "__var": {}}
    if schedule == "@continuous":
        return {"__type": f"{_TIMETABLES}.simple.ContinuousTimetable", "__var": {}}
    if isinstance(schedule, timedelta):
        return {
            "__type": f"{_TIMETABLES}.trigger.DeltaTriggerTimetable",
            "__var": {"delta": schedule.total_seconds(), "interval": 0.0},
        }
    if not isinstance(schedule, str):  # an Asset or an asset expression (options.py checked it)
        from ..core.authoring.assets import asset_timetable

        return asset_timetable(schedule)
    # options.py has already expanded presets such as @daily into cron expressions.
    return {
        "__type": f"{_TIMETABLES}.trigger.CronTriggerTimetable",
        "__var": {"expression": schedule, "timezone": tz, "interval": 0.0, "run_immediately": False},
    }


def _dag_dependencies(dag: Dag, schedule: Any) -> list[dict[str, str]]:
    """Core's ``dag_dependencies``: one entry per outlet of each task and per asset of an asset
    schedule; empty (and the asset module not loaded) for a DAG without assets."""
    outlets = [task.effective_options.get("outlets") or [] for task in dag.tasks.values()]
    if not any(outlets) and (schedule is None or isinstance(schedule, (str, timedelta))):
        return []
    from ..core.authoring.assets import dag_dependencies

    return dag_dependencies(dag.dag_id, outlets, schedule)


def _encode_timezone(start_date: datetime | None) -> str | int:
    """The DAG's time zone, which Airflow takes from its start date: an IANA name, ``"UTC"`` for a
    zero offset, or a fixed offset in seconds (Airflow's encoding of a fixed-offset zone)."""
    tz: tzinfo | None = start_date.tzinfo if start_date is not None else None
    if tz is None or tz is timezone.utc:
        return "UTC"
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)  # zoneinfo / pendulum, pytz
    if isinstance(name, str) and name:
        return name
    offset = tz.utcoffset(start_date)
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return "UTC" if seconds == 0 else seconds


def _wrap(value: Any) -> Any:
    """Airflow's generic encoding, used for ``default_args``: JSON scalars and lists as they are,
    everything else as ``{"__type": ..., "__var": ...}``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return {"__type": "datetime", "__var": value.timestamp()}
    if isinstance(value, timedelta):
        return {"__type": "timedelta", "__var": value.total_seconds()}
    if isinstance(value, Mapping):
        return {"__type": "dict", "__var": {str(k): _wrap(v) for k, v in value.items()}}
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return {"__type": "tuple", "__var": [_wrap(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"__type": "set", "__var": sorted(_wrap(v) for v in value)}
    from ..core.authoring.assets import Asset, encode_asset  # default_args may hold outlets / inlets

    if isinstance(value, Asset):
        return encode_asset(value)
    raise TypeError(f"cannot serialize {type(value).__name__} {value!r} for Airflow")
