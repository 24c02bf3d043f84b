"""``TaskGroup``: Airflow's task groups for a bundle DAG (``with dag.task_group("extract_all"):``).

A group is a UI and authoring construct, not a runtime one: a task registered inside it gets the
group's prefix in its task id (``extract_all.rows``), the group's ``default_args`` (merged over the
DAG's, under the task's own) and nothing else; the runtime finds it by that full id. Dependencies
with a group follow ``airflow.sdk.definitions.taskgroup.TaskGroup`` step for step, because the
serialized ``task_group`` tree records them and must equal what the Python SDK writes:

* ``group >> x`` links the group's *leaves* (tasks with no downstream inside it) to ``x``'s roots and
  records ``x`` in ``downstream_task_ids`` (or, for a group ``x``, the group ids both ways);
* ``x >> group`` links ``x`` to the group's *roots* and records ``x`` in ``upstream_task_ids``;
* ``g1 >> g2`` therefore records ``g2.upstream_task_ids`` = the leaves of ``g1``, while ``g2 << g1``
  records ``g1.downstream_task_ids`` = the roots of ``g2``: Airflow's asymmetry, kept.

Linking a group that has no tasks yet is refused (Airflow would link nothing and keep no record of
the tasks added later, which is never what an author means).
"""

from __future__ import annotations

import re

from ..errors import RegistrationError
from ..options import DEFAULT_ARGS_OPTIONS, normalise_options
from . import binding
from .relations import Relatable

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Iterator, Mapping
    from typing import Any

    from .dag import Dag
    from .task import Task

# Airflow's ``validate_group_key``: no dots (they separate the prefix), at most 200 characters.
# A pattern string, compiled (and cached by ``re``) when the first group is made, not at import.
GROUP_ID_PATTERN = r"^[\w-]+$"
MAX_GROUP_ID_LENGTH = 200
DEFAULT_UI_COLOR = "CornflowerBlue"
DEFAULT_UI_FGCOLOR = "#000"


# ``TaskGroup``'s keyword arguments a bundle takes (``mapped`` groups aside): Airflow's names.
GROUP_OPTIONS = frozenset(
    {"prefix_group_id", "tooltip", "default_args", "ui_color", "ui_fgcolor", "group_display_name", "doc_md"}
)


def _read_doc_md(doc_md: str | None) -> str | None:
    """Airflow's ``TaskGroup`` doc_md converter: a value ending in ``.md`` that names a readable file
    is replaced by the file's text (read here, at registration, where the bundle runs; Airflow reads
    it where the DAG file is parsed); anything else is kept as written."""
    if doc_md is not None and doc_md.endswith(".md"):
        try:
            with open(doc_md) as fh:
                return fh.read()
        except FileNotFoundError:
            return doc_md
    return doc_md


def validate_group_id(value: Any, dag_id: str) -> str:
    """Airflow's ``validate_group_key``, made at registration so the error names the DAG (Airflow
    would raise it when importing the generated DAG file, far from the bundle)."""
    where = f"dag {dag_id!r}: task group id"
    if not isinstance(value, str):
        raise RegistrationError(f"{where} must be a str, got {type(value).__name__} {value!r}")
    if len(value) > MAX_GROUP_ID_LENGTH:
        raise RegistrationError(f"{where} {value[:40]!r}... is longer than {MAX_GROUP_ID_LENGTH} characters")
    if not re.match(GROUP_ID_PATTERN, value):
        raise RegistrationError(
            f"{where} {value!r} may contain only letters, digits, '_' and '-' (Airflow's rule for group keys)"
        )
    return value


class TaskGroup(Relatable):
    """A group of tasks of one DAG; ``with group:`` makes the tasks registered inside belong to it.

    The root group of a DAG has ``label`` None (Airflow's ``_group_id``) and is never entered."""

    def __init__(
        self,
        dag: Dag,
        label: str | None,
        parent: TaskGroup | None,
        *,
        prefix_group_id: bool = True,
        tooltip: str = "",
        default_args: Mapping[str, Any] | None = None,
        ui_color: str = DEFAULT_UI_COLOR,
        ui_fgcolor: str = DEFAULT_UI_FGCOLOR,
        group_display_name: str = "",
        doc_md: str | None = None,
    ):
        self.dag = dag
        self.label = label
        self.parent = parent
        where = f"task group {label!r} in dag {dag.dag_id!r}"
        for name, value in (
            ("tooltip", tooltip),
            ("ui_color", ui_color),
            ("ui_fgcolor", ui_fgcolor),
            ("group_display_name", group_display_name),
        ):
            if not isinstance(value, str):
                raise RegistrationError(f"{where}: {name} must be a str, got {type(value).__name__}")
        if not isinstance(prefix_group_id, bool):
            raise RegistrationError(f"{where}: prefix_group_id must be a bool")
        self.prefix_group_id = prefix_group_id
        self.tooltip, self.ui_color, self.ui_fgcolor = tooltip, ui_color, ui_fgcolor
        self.group_display_name = group_display_name
        if doc_md is not None and not isinstance(doc_md, str):
            raise RegistrationError(f"{where}: doc_md must be a str or None, got {type(doc_md).__name__}")
        self.doc_md = _read_doc_md(doc_md)  # core writes it into the serialized group when not None
        owner = f"{dag.dag_id}.{label}"
        own = normalise_options("task group", owner, default_args or {}, DEFAULT_ARGS_OPTIONS)
        self.own_default_args = own  # as given: what the generated DAG file's TaskGroup(...) writes
        # Airflow merges the parent's default_args into the group's when it is created.
        self.default_args: dict[str, Any] = {**(parent.default_args if parent else {}), **own}
        # node id (the full, prefixed id) -> Task or TaskGroup, in creation order
        self.children: dict[str, Task | TaskGroup] = {}
        self.upstream_group_ids: set[str] = set()
        self.downstream_group_ids: set[str] = set()
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()

    def __repr__(self) -> str:
        return f"<TaskGroup {self.dag.dag_id}.{self.group_id}>"

    # -- ids --------------------------------------------------------------------------------
    @property
    def group_id(self) -> str | None:
        """The full id: prefixed with the parent's when the parent prefixes (Airflow's ``group_id``)."""
        if self.label and self.parent is not None and self.parent.prefix_group_id and self.parent.label:
            return self.parent.child_id(self.label)
        return self.label

    def child_id(self, label: str) -> str:
        """``label`` prefixed with this group's id when it prefixes (Airflow's ``child_id``)."""
        group_id = self.group_id
        return f"{group_id}.{label}" if self.prefix_group_id and group_id else label

    # -- context ----------------------------------------------------------------------------
    def __enter__(self) -> TaskGroup:
        """Tasks registered (and called, for data passing) inside belong to this group."""
        self.dag.group_stack.append(self)
        binding.active_dags.append(self.dag)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        binding.active_dags.remove(self.dag)
        self.dag.group_stack.remove(self)

    # -- members ----------------------------------------------------------------------------
    def tasks(self) -> Iterator[Task]:
        """Every task of the group, nested groups' included (Airflow's ``iter(group)``)."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child.tasks()
            else:
                yield child

    @property
    def roots(self) -> list[Task]:
        """The tasks with no upstream inside the group."""
        tasks = list(self.tasks())
        ids = {task.task_id for task in tasks}
        return [task for task in tasks if ids.isdisjoint(task.upstream_task_ids)]

    @property
    def leaves(self) -> list[Task]:
        """The tasks with no downstream inside the group (bundles have no teardown tasks)."""
        tasks = list(self.tasks())
        ids = {task.task_id for task in tasks}
        return [task for task in tasks if ids.isdisjoint(task.downstream_task_ids)]

    def _require_tasks(self) -> None:
        if next(self.tasks(), None) is None:
            raise RegistrationError(
                f"dag {self.dag.dag_id!r}: task group {self.group_id!r} has no tasks yet; "
                "register its tasks before linking it"
            )

    # -- dependencies (Airflow's TaskGroup.update_relative / _set_relatives) ----------------
    def update_relative(self, other: Task | TaskGroup, upstream: bool) -> None:
        """Record ``other`` as upstream (or downstream) of this group, as Airflow does."""
        if isinstance(other, TaskGroup):
            parent, child = (self, other) if upstream else (other, self)
            parent.upstream_group_ids.add(child.group_id)  # type: ignore[arg-type]
            child.downstream_group_ids.add(parent.group_id)  # type: ignore[arg-type]
        elif upstream:
            self.upstream_task_ids.add(other.task_id)
        else:
            self.downstream_task_ids.add(other.task_id)

    def _set_relatives(self, others: list[Task | TaskGroup], upstream: bool) -> None:
        self._require_tasks()
        for other in others:
            if isinstance(other, TaskGroup):
                other._require_tasks()
            if other.dag is not self.dag:
                raise RegistrationError(
                    f"cannot link {self!r} and {other!r}: dependencies must stay inside one dag"
                )
        leaves = self.leaves
        for other in others:
            self.update_relative(other, upstream)
        if upstream:
            for task in self.roots:
                task.set_upstream(others)
        else:
            for task in leaves:
                task.set_downstream(others)

    def set_downstream(self, other: Any) -> None:
        self._set_relatives(nodes(other), upstream=False)

    def set_upstream(self, other: Any) -> None:
        self._set_relatives(nodes(other), upstream=True)


def nodes(value: Any) -> list[Task | TaskGroup]:
    """Tasks, groups, or references to task outputs (``extract() >> group`` inside ``with dag:``),
    alone or in a list."""
    from .task import Task

    single = (Task, TaskGroup, binding.XComArg)
    try:
        items = [value] if isinstance(value, single) else list(value)
    except TypeError:
        raise TypeError(
            f"dependencies need a Task, a TaskGroup or a list of them, got {type(value).__name__}"
        ) from None
    result: list[Task | TaskGroup] = []
    for item in items:
        if isinstance(item, binding.XComArg):
            item = item.task
        if not isinstance(item, (Task, TaskGroup)):
            raise TypeError(
                f"dependencies need a Task, a TaskGroup or a list of them, got {type(item).__name__}"
            )
        result.append(item)
    return result
