"""The ``Registry``: all DAGs of one bundle, what every mode reads.

This is the Go SDK's ``Registry`` / ``Dag.AddTask`` / ``AddTaskWithName`` shape, with the checks
Airflow would otherwise make much later (on the scheduler or the worker): ids Airflow rejects,
duplicates, non-callables, signatures that cannot be satisfied, and dependency cycles all raise
``RegistrationError`` while the bundle module is imported (or, for what only a complete DAG shows,
when it is served), naming the offending id. The authoring concepts live in
``bundle.core.authoring``; the few names every mode needs with the ``Registry`` (``Dag``, ``Task``,
the id rules and defaults) are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator

from .authoring.dag import DEFAULT_MAX_ACTIVE_RUNS, FAIL_FAST_TRIGGER_RULES, Dag
from .authoring.ids import MAX_ID_LENGTH, validate_id
from .authoring.task import DEFAULT_QUEUE, Task
from .errors import RegistrationError

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

__all__ = [
    "DEFAULT_MAX_ACTIVE_RUNS",
    "DEFAULT_QUEUE",
    "FAIL_FAST_TRIGGER_RULES",
    "MAX_ID_LENGTH",
    "Dag",
    "Registry",
    "Task",
    "validate_id",
]


class Registry:
    """All DAGs of one bundle, in registration order."""

    def __init__(self, default_queue: str | None = None):
        if default_queue is not None:
            validate_id("queue", default_queue)
        self.default_queue = default_queue
        self.dags: dict[str, Dag] = {}

    def add_dag(self, dag_id: str, **options: Any) -> Dag:
        if dag_id in self.dags:
            raise RegistrationError(f"dag {dag_id!r} is already registered")
        dag = Dag(self, dag_id, options)
        self.dags[dag_id] = dag
        return dag

    def adopt(self, dag: Dag) -> None:
        """Add a DAG built elsewhere (``Bundle.register_dags`` uses it)."""
        if dag.dag_id in self.dags and self.dags[dag.dag_id] is not dag:
            raise RegistrationError(f"dag {dag.dag_id!r} is already registered")
        self.dags[dag.dag_id] = dag

    def get_or_add_dag(self, dag_id: str) -> Dag:
        return self.dags.get(dag_id) or self.add_dag(dag_id)

    def lookup_task(self, dag_id: str, task_id: str) -> Task | None:
        dag = self.dags.get(dag_id)
        return dag.tasks.get(task_id) if dag is not None else None

    def __iter__(self) -> Iterator[Dag]:
        return iter(self.dags.values())

    def check_complete(self) -> None:
        """Every DAG's tasks can be called (``Dag.check_complete``): run before any task runs."""
        for dag in self.dags.values():
            dag.check_complete()

    def task_ids(self) -> dict[str, list[str]]:
        """``{dag_id: [task ids in registration order]}`` with dag ids sorted, as the dumps print them."""
        return {dag_id: list(self.dags[dag_id].tasks) for dag_id in sorted(self.dags)}
