"""Dynamic task mapping in ``bundle-run``: expanding a mapped task as Airflow's scheduler does.

The worker reads each mapped task's expand input from core's deserialized DAG
(``SerializedMappedOperator``, :func:`summarise_mapping`); the runner asks :func:`expansion_length`
once the task's trigger rule lets its unmapped task instance (map index -1) run, and then, like
``TaskMap.expand_mapped_task`` in apache-airflow-core 3.3.2:

* the length is the product of each expanded argument's length (``expand``) or the list's length
  (``expand_kwargs``): a literal counts itself; an unmapped upstream's comes from the
  ``mapped_length`` its ``return_value`` push carried (a ``TaskMap`` row, kept by the embedded API,
  which refuses one over ``[core] max_map_length``, ``AIRFLOW__CORE__MAX_MAP_LENGTH``, 1024 by
  default, with the server's 400); a mapped upstream's is the number of ``return_value`` XComs its
  instances pushed;
* a missing length fails the task instance ``upstream_failed`` ("Cannot expand ... missing upstream
  values"), a zero length skips it, otherwise it becomes map index 0 and 1..n-1 are created.

``bundle-run`` runs one task instance at a time, so ``max_active_tis_per_dag`` (of any value) and
``max_active_tis_per_dagrun`` always hold.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any

from .store import Store

RETURN_KEY = "return_value"
DICT_OF_LISTS, LIST_OF_DICTS = "dict-of-lists", "list-of-dicts"


@dataclass(frozen=True)
class MapSource:
    """What one expanded argument (or ``expand_kwargs``'s list) maps over."""

    length: int | None = None
    """A literal's length; None for an upstream's output."""
    upstream: str | None = None
    key: str = RETURN_KEY
    upstream_mapped: bool = False


@dataclass(frozen=True)
class MappingSpec:
    """A mapped task's expand input, as far as its length is concerned."""

    kind: str
    sources: tuple[tuple[str, MapSource], ...]
    """``(argument name, source)`` in declared order; one ``("expand_kwargs() argument", ...)``
    for ``expand_kwargs``."""
    max_active_tis_per_dag: int | None = None
    map_index_template: str | None = None

    @property
    def upstreams(self) -> list[str]:
        return [source.upstream for _, source in self.sources if source.upstream]


def summarise_mapping(task: Any) -> dict[str, Any] | None:
    """The JSON summary of a core ``SerializedMappedOperator``'s expand input (None: not mapped)."""
    from airflow.serialization.definitions.mappedoperator import SerializedMappedOperator, is_mapped

    if not isinstance(task, SerializedMappedOperator):
        return None
    expand_input = task._get_specified_expand_input()
    kind = expand_input.EXPAND_INPUT_TYPE
    # core types ``value`` as the union of both kinds' shapes; ``kind`` says which one it is
    value: Any = expand_input.value
    items = value.items() if kind == DICT_OF_LISTS else [("expand_kwargs() argument", value)]
    sources = []
    for name, item in items:
        upstream = getattr(item, "operator", None)
        if upstream is not None:
            source = {"upstream": upstream.task_id, "key": item.key, "upstream_mapped": is_mapped(upstream)}
        else:
            source = {"length": len(item)}
        sources.append([name, source])
    return {
        "kind": kind,
        "sources": sources,
        "max_active_tis_per_dag": task.max_active_tis_per_dag,
        "map_index_template": task.map_index_template,
    }


def mapping_from_summary(summary: dict[str, Any] | None) -> MappingSpec | None:
    if not summary:
        return None
    sources = tuple((str(name), MapSource(**source)) for name, source in summary["sources"])
    return MappingSpec(
        kind=summary["kind"],
        sources=sources,
        max_active_tis_per_dag=summary.get("max_active_tis_per_dag"),
        map_index_template=summary.get("map_index_template"),
    )


def expansion_length(
    spec: MappingSpec, store: Store, dag_id: str, run_id: str
) -> tuple[int | None, list[str]]:
    """``(length, missing)``: the number of task instances to create, or None and the names of the
    arguments whose length is not known (Airflow's ``NotFullyPopulated``)."""
    lengths: dict[str, int] = {}
    missing: list[str] = []
    for name, source in spec.sources:
        length = source.length if source.upstream is None else _upstream_length(source, store, dag_id, run_id)
        if length is None:
            missing.append(name)
        else:
            lengths[name] = length
    if missing:
        return None, sorted(missing)
    return functools.reduce(operator.mul, lengths.values(), 1), []


def _upstream_length(source: MapSource, store: Store, dag_id: str, run_id: str) -> int | None:
    assert source.upstream is not None
    if source.upstream_mapped:  # core counts the return_value XComs of the mapped instances
        unfinished = [
            ti
            for ti in store.task_instances(dag_id, run_id)
            if ti["task_id"] == source.upstream and ti["state"] not in FINISHED
        ]
        if unfinished:
            return None
        return store.mapped_xcom_count(dag_id, run_id, source.upstream, RETURN_KEY)
    return store.task_map_length(dag_id, run_id, source.upstream)


FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def instance_name(task_id: str, map_index: int) -> str:
    """How the progress view, the report and ``--json-report`` name a task instance."""
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def not_expanded_note(task_id: str, run_id: str, missing: list[str]) -> str:
    """Airflow's scheduler log line for a mapped task it cannot expand."""
    return f"Cannot expand {task_id!r} for run {run_id}; missing upstream values: {missing}"


def zero_length_note(length: int) -> str:
    return f"skipped: the map has {length} values to expand"
