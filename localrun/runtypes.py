"""The types bundle-run's runner shares with what it drives and reports: the display it talks to
(:class:`ProgressView`), one supervised try (:class:`TryRecord`) and how a run ended
(:class:`RunResult`).

Their own module so that ``runner.py`` and ``childruns.py`` (a run's triggered runs) both import them
and neither imports the other's module for them: ``childruns.py`` imports nothing of ``runner.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .mapping import instance_name
from .store import Store


class ProgressView(Protocol):
    """What the runner tells the display (``progress.py``); the display never affects the run."""

    def begin(self, dag_id: str, run_id: str, task_ids: list[str], max_tries: dict[str, int]) -> None: ...

    def update(
        self, task_id: str, state: str, try_number: int, duration: float | None, note: str | None
    ) -> None: ...

    def retry_at(self, task_id: str, when: float) -> None: ...

    def expanded(self, task_id: str, names: list[str]) -> None: ...

    def label(self, name: str, text: str | None) -> None: ...

    def status(self, text: str | None) -> None: ...

    def tick(self) -> None: ...

    def end(self) -> None: ...


@dataclass
class TryRecord:
    """One supervised try, as the report shows it."""

    task_id: str
    try_number: int
    state: str
    duration: float | None
    note: str | None
    log: str
    supervisor_errors: list[dict[str, Any]] = field(default_factory=list)
    exception: str | None = None
    ti_duration: float | None = None
    """The task instance's duration as Airflow records it (entering running to the final state)."""
    map_index: int = -1
    label: str | None = None
    """A mapped task instance's rendered ``map_index_template``."""


@dataclass
class RunResult:
    """How the run ended; task states live in the store (``final_states``)."""

    dag_id: str
    run_id: str
    state: str
    task_ids: list[str]
    tries: list[TryRecord]
    interrupted: bool = False
    triggered: list[RunResult] = field(default_factory=list)
    """The DAG runs its tasks triggered of DAGs of the bundle, which bundle-run ran too (``childruns.py``)."""

    def final_states(self, store: Store) -> dict[str, str | None]:
        """Each selected task instance's final state (None for one that never got decided), by
        name: the task id, ``task[i]`` for a mapped task's instance i."""
        states: dict[str, str | None] = {}
        by_task: dict[str, list[dict[str, Any]]] = {}
        for ti in sorted(store.task_instances(self.dag_id, self.run_id), key=lambda ti: ti["map_index"]):
            by_task.setdefault(ti["task_id"], []).append(ti)
        for task_id in self.task_ids:
            mine = by_task.get(task_id, [])
            for ti in mine:
                states[instance_name(task_id, ti["map_index"])] = ti["state"]
            if not mine:
                states[task_id] = None
        return states
