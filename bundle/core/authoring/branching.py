"""Branching (``@dag.branch``) and short-circuit (``@dag.short_circuit``) tasks.

Both are Airflow's ``SkipMixin`` operators (``airflow/sdk/bases/skipmixin.py``, providers-standard's
``BranchMixIn`` / ``ShortCircuitOperator``), reproduced rule for rule so that a bundle DAG skips
exactly what its Python twin skips:

* **branch**: the function returns a task id, a list of them, or ``None``; a task-group id stands
  for the group's root tasks (``_expand_task_group_roots``). The direct downstream
  tasks not followed are skipped; a followed task's own downstream tasks count as followed (the
  join of an empty branch runs). ``skipmixin_key`` = ``{"followed": [...]}`` is pushed whenever the
  task has downstream tasks. An id that is not a task of the DAG fails the task with Airflow's
  message; a non-string id too. (An id of the DAG that is not directly downstream is accepted, as
  Airflow accepts it: its downstream tasks then count as followed.)
* **short-circuit**: a truthy return value continues; a falsy one skips every downstream task
  (``ignore_downstream_trigger_rules=True``, the default) or only the direct ones, and pushes
  ``skipmixin_key`` = ``{"skipped": [...]}``.

The skip itself is one ``SkipDownstreamTasks`` request, sent only for ``map_index == -1`` (Airflow
leaves mapped tasks to the scheduler's ``NotPreviouslySkippedDep``); the XCom is pushed for every map
index. In Airflow the skip is an exception (``DownstreamTasksSkipped``) raised out of ``execute``, so
when it is sent the return value is *not* pushed as ``return_value``; when nothing is skipped it is.
Either way the task then succeeds (``SucceedTask``): the request does not finish it.

Registration only marks the task (``Task.skip_rule``); the rest of this module runs only in a task
that branches, so bundles and tasks that do not branch never import it at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import GeneratorType

from ..errors import RegistrationError
from ..runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

    from ..client import MessageClient
    from .dag import Dag
    from .task import Task

BRANCH = "branch"
SHORT_CIRCUIT = "short_circuit"
XCOM_SKIPMIXIN_KEY = "skipmixin_key"  # Airflow's XCOM_SKIPMIXIN_KEY / _FOLLOWED / _SKIPPED
XCOM_SKIPMIXIN_FOLLOWED = "followed"
XCOM_SKIPMIXIN_SKIPPED = "skipped"


class BranchError(Exception):
    """A branch function's result Airflow would refuse (``AirflowException`` there): the task fails
    (and may retry, as in Airflow)."""


class SkipRule:
    """What a skip-capable task does with its return value: ``kind`` is :data:`BRANCH` or
    :data:`SHORT_CIRCUIT`; ``ignore_downstream_trigger_rules`` is short-circuit's option."""

    __slots__ = ("ignore_downstream_trigger_rules", "kind")

    def __init__(self, kind: str, *, ignore_downstream_trigger_rules: bool = True):
        if not isinstance(ignore_downstream_trigger_rules, bool):
            raise RegistrationError(
                f"ignore_downstream_trigger_rules must be a bool, got {ignore_downstream_trigger_rules!r}"
            )
        self.kind = kind
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def __repr__(self) -> str:
        if self.kind == BRANCH:
            return "SkipRule(branch)"
        return (
            f"SkipRule(short_circuit, ignore_downstream_trigger_rules={self.ignore_downstream_trigger_rules})"
        )


def apply_skip_rule(task: Task, result: Any, map_index: int, client: MessageClient) -> bool:
    """Skip what the task's rule says for ``result``; True when ``SkipDownstreamTasks`` was sent
    (the return value is then not pushed, as in Airflow). Raises :class:`BranchError`."""
    rule = task.skip_rule
    assert rule is not None
    if rule.kind == BRANCH:
        return _branch(task, result, map_index, client)
    return _short_circuit(task, result, rule.ignore_downstream_trigger_rules, map_index, client)


# -- branch ---------------------------------------------------------------------------------------


def _branch(task: Task, returned: Any, map_index: int, client: MessageClient) -> bool:
    """``BranchMixIn.do_branch`` + ``SkipMixin.skip_all_except``."""
    log = runtime_log()
    log.info("Branch into %s", returned)
    dag = task.dag
    followed = set() if returned is None else _branch_ids(dag, returned)
    log.info("Following branch %s", set(followed))  # a copy: the set grows below
    invalid = followed - dag.tasks.keys()
    if invalid:
        raise BranchError(
            f"'branch_task_ids' must contain only valid task_ids. Invalid tasks found: {invalid}."
        )
    downstream = sorted(task.downstream_task_ids)
    if not downstream:
        return False
    for task_id in list(followed):  # the join of an empty branch is downstream of the followed task
        followed.update(all_downstream(dag, task_id))
    skip = [[task_id, map_index] for task_id in downstream if task_id not in followed]
    log.info("Skipping tasks %s", [tuple(item) for item in skip])
    client.push_xcom(XCOM_SKIPMIXIN_KEY, {XCOM_SKIPMIXIN_FOLLOWED: [t for t in downstream if t in followed]})
    return _send_skip(skip, map_index, client)


def _branch_ids(dag: Dag, returned: Any) -> set[str]:
    """The returned ids as a set, task-group ids replaced by their groups' root tasks
    (``_expand_task_group_roots``); Airflow's messages for what it refuses."""
    items = [returned] if isinstance(returned, str) or not isinstance(returned, Iterable) else returned
    if isinstance(items, GeneratorType):
        items = list(items)
    expanded: list[Any] = []
    for item in items:
        expanded.extend(group_roots(dag, item) if isinstance(item, str) else [item])
    wrong = {(item, type(item).__name__) for item in expanded if not isinstance(item, str)}
    if wrong:
        raise BranchError(
            "Unable to branch to the specified tasks. The branching function returned invalid "
            f"'branch_task_ids': {wrong}. Please check that your function returns an Iterable of "
            "valid task IDs that exist in your DAG."
        )
    return set(expanded)


def group_roots(dag: Dag, branch_id: str) -> list[str]:
    """``[branch_id]`` for a task id; the id of a task group (Airflow's ``dag.task_group_dict``)
    stands for the group's root tasks, as in ``BranchMixIn._expand_task_group_roots``."""
    group = _find_group(getattr(dag, "root_group", None), branch_id)
    return [branch_id] if group is None else [task.task_id for task in group.roots]


def _find_group(group: Any, group_id: str) -> Any:
    if group is None:
        return None
    from .group import TaskGroup

    for child in group.children.values():
        if isinstance(child, TaskGroup):
            if child.group_id == group_id:
                return child
            found = _find_group(child, group_id)
            if found is not None:
                return found
    return None


# -- short-circuit --------------------------------------------------------------------------------


def _short_circuit(
    task: Task, condition: Any, ignore_downstream_trigger_rules: bool, map_index: int, client: MessageClient
) -> bool:
    """``ShortCircuitOperator.execute`` after the function returned ``condition``."""
    log = runtime_log()
    log.info("Condition result is %s", condition)
    if condition:
        log.info("Proceeding with downstream tasks...")
        return False
    if not task.downstream_task_ids:
        log.info("No downstream tasks; nothing to do.")
        return False
    if ignore_downstream_trigger_rules:
        skip = sorted(all_downstream(task.dag, task.task_id))
    else:
        skip = sorted(task.downstream_task_ids)
    log.info("Skipping downstream tasks")
    client.push_xcom(XCOM_SKIPMIXIN_KEY, {XCOM_SKIPMIXIN_SKIPPED: skip})
    return _send_skip(skip, map_index, client)


# -- shared ---------------------------------------------------------------------------------------


def all_downstream(dag: Dag, task_id: str) -> set[str]:
    """Every task downstream of ``task_id``, not itself (Airflow's ``get_flat_relative_ids``)."""
    found: set[str] = set()
    stack = list(dag.tasks[task_id].downstream_task_ids)
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(dag.tasks[current].downstream_task_ids)
    return found


def _send_skip(tasks: list[Any], map_index: int, client: MessageClient) -> bool:
    """``SkipMixin._set_state_to_skipped``: only an unmapped task skips (mapped ones leave it to
    ``NotPreviouslySkippedDep``), and only when there is something to skip."""
    if not tasks or map_index != -1:
        return False
    client.skip_downstream_tasks(tasks)
    return True
