"""Compare two DagSerialization v3 dicts the way the cross-SDK conformance check does.

Shared by the serializer's tests (pybundle vs core's ``to_dict`` of the same Python DAG) and the
DAG-file generator's (pybundle vs core's ``to_dict`` of the generated stub file): a difference is
reported per key, with the schema defaults that leaving a key out stands for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.serialization.serialized_objects import DagSerialization

# Keys the conformance check does not compare (spec §13.3 rule 7, §13.5).
IGNORED_DAG_KEYS = frozenset({"fileloc", "relative_fileloc", "_processor_dags_folder"})
IGNORED_TASK_KEYS = frozenset(
    {
        "task_type",
        "_task_module",
        "language",
        "_needs_expansion",
        "has_retry_policy",
        "is_stub",
        "_arg_bindings",
    }
)


def normalise(value: Any) -> Any:
    """JSON's view (tuples are lists, str enums are strings) with every number a float."""
    value = json.loads(json.dumps(value))

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            return float(item)
        return item

    return walk(value)


def _compare_keys(
    path: str, ours: dict[str, Any], python: dict[str, Any], ignored: frozenset[str], defaults: dict[str, Any]
) -> list[str]:
    diffs = []
    for key in sorted((ours.keys() | python.keys()) - ignored):
        where = f"{path}.{key}"
        if key not in ours:
            if key in defaults and normalise(defaults[key]) == python[key]:
                continue  # Python wrote the schema default; leaving it out is equivalent
            diffs.append(f"{where}: missing in pybundle; python has {python[key]!r}")
        elif key not in python:
            diffs.append(f"{where}: only pybundle has it: {ours[key]!r}")
        elif ours[key] != python[key]:
            diffs.append(f"{where}:\n    pybundle {ours[key]!r}\n    python   {python[key]!r}")
    return diffs


def compare_serialized(
    ours: dict[str, Any],
    python: dict[str, Any],
    *,
    ignored_dag_keys: frozenset[str] = IGNORED_DAG_KEYS,
    ignored_task_keys: frozenset[str] = IGNORED_TASK_KEYS,
) -> list[str]:
    """Differences between two DagSerialization dicts under the conformance rules; [] when equal."""
    ours, python = normalise(ours), normalise(python)
    dag_defaults = DagSerialization.get_schema_defaults("dag")
    op_defaults = DagSerialization.get_schema_defaults("operator")
    diffs = _compare_keys(
        "",
        {k: v for k, v in ours.items() if k != "dag"},
        {k: v for k, v in python.items() if k != "dag"},
        frozenset(),
        {},
    )
    our_dag, py_dag = ours["dag"], python["dag"]
    diffs += _compare_keys("dag", our_dag, py_dag, ignored_dag_keys | {"tasks"}, dag_defaults)
    our_tasks = {t["__var"]["task_id"]: t for t in our_dag["tasks"]}
    py_tasks = {t["__var"]["task_id"]: t for t in py_dag["tasks"]}
    if list(our_tasks) != list(py_tasks):
        diffs.append(f"dag.tasks: task ids differ: pybundle {list(our_tasks)} python {list(py_tasks)}")
    for task_id in our_tasks.keys() & py_tasks.keys():
        ours_task, py_task = our_tasks[task_id], py_tasks[task_id]
        if ours_task["__type"] != py_task["__type"]:
            diffs.append(f"dag.tasks[{task_id}].__type: {ours_task['__type']!r} != {py_task['__type']!r}")
        diffs += _compare_keys(
            f"dag.tasks[{task_id}]", ours_task["__var"], py_task["__var"], ignored_task_keys, op_defaults
        )
    return diffs


def assert_equivalent(ours: dict[str, Any], python: dict[str, Any]) -> None:
    diffs = compare_serialized(ours, python)
    if diffs:
        pytest.fail("pybundle's serialization differs from Python's:\n" + "\n".join(diffs), pytrace=False)


TASK_ATTRIBUTES = (
    "queue", "pool", "pool_slots", "retries", "retry_delay", "max_retry_delay", "retry_exponential_backoff",
    "owner", "trigger_rule", "weight_rule", "priority_weight", "execution_timeout", "depends_on_past",
    "wait_for_downstream", "do_xcom_push", "doc_md", "task_display_name",
    "start_date", "end_date", "max_active_tis_per_dag", "max_active_tis_per_dagrun", "map_index_template",
    "executor", "multiple_outputs", "upstream_task_ids", "downstream_task_ids",
)  # fmt: skip
DAG_ATTRIBUTES = (
    "dag_id", "start_date", "end_date", "timezone", "catchup", "max_active_tasks", "max_active_runs",
    "max_consecutive_failed_dag_runs", "dagrun_timeout", "tags", "description", "doc_md", "dag_display_name",
    "fail_fast", "is_paused_upon_creation", "render_template_as_native_obj", "disable_bundle_versioning",
    "default_args",
)  # fmt: skip


def _plain(value: Any) -> str:
    """A comparable text for an attribute; objects without a value repr (priority strategies) by type."""
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    text = repr(value)
    return type(value).__name__ if " object at 0x" in text else text


def loaded_view(serialized: dict[str, Any]) -> dict[str, Any]:
    """What the scheduler sees after ``from_dict``: the attributes a bundle can set, as plain values."""
    dag = DagSerialization.from_dict(json.loads(json.dumps(serialized)))
    view: dict[str, Any] = {f"dag.{name}": _plain(getattr(dag, name, None)) for name in DAG_ATTRIBUTES}
    view["dag.timetable"] = (type(dag.timetable).__name__, repr(dag.timetable.summary))
    for task_id, task in dag.task_dict.items():
        for name in TASK_ATTRIBUTES:
            view[f"{task_id}.{name}"] = _plain(getattr(task, name, None))
    return view
