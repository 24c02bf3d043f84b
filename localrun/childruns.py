"""DAG runs a task triggers (``ctx.trigger_dag_run``) of a DAG of the same bundle, run by bundle-run too.

In a deployment the scheduler runs a triggered DAG run like any other; bundle-run does the same for
the DAGs of its bundle, so a ``TriggerDagRun`` that waits (polling ``GetDagRunState``, or deferred to
``DagStateTrigger``) sees the run go queued, running, then success or failed. A triggered run is
its own DAG run in the same store (the run id, conf and logical date the request named, created by
the embedded API), run by its own :class:`~localrun.runner.DagRunner` with its own worker process.

bundle-run is single-threaded: the triggered runs advance one step at a time from the parent's
progress ticks, which come a few times a second both while the parent waits (a deferral, a retry
delay) and while one of its tasks runs under the supervisor (a polling wait). A step that runs a
task blocks the parent's worker loop for that try only (the parent's relayed API calls wait, as on a
busy API server); every try is bounded by ``--task-timeout``, so nothing can wait forever.

A ``TriggerDagRun`` for a DAG outside the bundle is answered 404 ``Dag with dag_id ... not found``
by the API (bundle-run knows no other DAGs), so the task fails as in a deployment without that DAG.
"""

from __future__ import annotations

from typing import Any, Protocol

from .dagmodel import DagSpec
from .progress import TaskRow
from .runtypes import ProgressView, RunResult
from .store import Store
from .workerproc import WorkerProcess


class TriggeredRunner(Protocol):
    """What :class:`TriggeredRuns` uses of a run's runner (``runner.DagRunner``, which passes itself
    as the parent and makes the children): described here so this module never imports the runner."""

    api: Any
    store: Store
    bundle_dags: dict[str, DagSpec]
    dag: DagSpec
    run_id: str
    worker: WorkerProcess | None

    def spawn_triggered(self, dag: DagSpec, run_id: str) -> TriggeredRunner: ...

    def create_run(self) -> None: ...

    def advance(self) -> bool: ...

    def finish(self) -> RunResult: ...

    def interrupt(self) -> None: ...


class ChildProgress:
    """A triggered run's tasks as extra rows ``<dag_id>/<task>`` of the parent's display."""

    def __init__(self, parent: ProgressView, dag_id: str) -> None:
        self.parent = parent
        self.prefix = f"{dag_id}/"

    def _rows(self) -> dict[str, TaskRow] | None:
        rows = getattr(self.parent, "rows", None)
        return rows if isinstance(rows, dict) else None

    def begin(self, dag_id: str, run_id: str, task_ids: list[str], max_tries: dict[str, int]) -> None:
        rows = self._rows()
        if rows is not None:
            for task_id in task_ids:
                rows[self.prefix + task_id] = TaskRow(self.prefix + task_id, max_tries.get(task_id, 1))
        self.parent.status(f"running triggered DAG run {dag_id} {run_id}")

    def update(
        self, task_id: str, state: str, try_number: int, duration: float | None, note: str | None
    ) -> None:
        rows = self._rows()
        if rows is not None and self.prefix + task_id not in rows:
            rows[self.prefix + task_id] = TaskRow(self.prefix + task_id, 1)
        if rows is not None:
            self.parent.update(self.prefix + task_id, state, try_number, duration, note)

    def retry_at(self, task_id: str, when: float) -> None:
        if (rows := self._rows()) is not None and self.prefix + task_id in rows:
            self.parent.retry_at(self.prefix + task_id, when)

    def expanded(self, task_id: str, names: list[str]) -> None:
        if (rows := self._rows()) is not None and self.prefix + task_id in rows:
            self.parent.expanded(self.prefix + task_id, [self.prefix + n for n in names])

    def label(self, name: str, text: str | None) -> None:
        if (rows := self._rows()) is not None and self.prefix + name in rows:
            self.parent.label(self.prefix + name, text)

    def status(self, text: str | None) -> None:
        self.parent.status(text)

    def tick(self) -> None:
        self.parent.tick()

    def end(self) -> None:
        self.parent.status(None)


class TriggeredRuns:
    """The triggered runs of one parent runner: adopted from the API, advanced, finished."""

    def __init__(self, parent: TriggeredRunner) -> None:
        self.parent = parent
        self.active: list[TriggeredRunner] = []
        self.results: list[RunResult] = []
        self._busy = False

    def adopt(self) -> None:
        """Start a runner for each run the API created for a DAG of the bundle since the last call."""
        api = self.parent.api
        triggered = getattr(api, "triggered", None)
        while triggered:
            dag_id, run_id = triggered.pop(0)
            dag = self.parent.bundle_dags.get(dag_id)
            if dag is None:  # the API refuses DAGs it does not know, so only without bundle_dags
                continue
            child = self.parent.spawn_triggered(dag, run_id)
            child.create_run()
            self.active.append(child)
            api.running.add((dag_id, run_id))

    def advance(self) -> None:
        """One step of every active triggered run (not re-entered from inside a step)."""
        if self._busy:
            return
        self._busy = True
        try:
            self.adopt()
            for child in list(self.active):
                if not child.advance():
                    self.active.remove(child)
                    self.results.append(child.finish())
                    self.parent.api.running.discard((child.dag.dag_id, child.run_id))
                    if child.worker is not None:
                        child.worker.stop()
                        child.worker = None
        finally:
            self._busy = False

    def interrupt(self) -> None:
        for child in self.active:
            child.interrupt()
            self.results.append(child.finish())
            self.parent.api.running.discard((child.dag.dag_id, child.run_id))
        self.active.clear()

    def is_running(self, dag_id: str, run_id: str) -> bool:
        """True while bundle-run is still running that DAG run (so its state may still change), by
        whichever runner: the run's own, or still to be adopted."""
        api = self.parent.api
        return (dag_id, run_id) in api.running or (dag_id, run_id) in api.triggered

    def dag_state_watch(self, kwargs: dict[str, Any]) -> dict[str, Any] | str | None:
        """What ``DagStateTrigger.run`` would conclude now (task-sdk's ``get_dr_count`` then
        ``get_dagrun_state`` per run id): ``{run_id: state}`` once every watched run is in one of
        ``states``; an error when that can no longer happen here; None while it may."""
        dag_id, run_ids, states = kwargs.get("dag_id"), kwargs.get("run_ids"), kwargs.get("states")
        if not isinstance(run_ids, list) or not run_ids or not isinstance(states, list):
            return "bundle-run runs DagStateTrigger only with run_ids and states (not execution_dates)"
        if dag_id not in self.parent.bundle_dags:
            known = ", ".join(sorted(self.parent.bundle_dags))
            return (
                f"DagStateTrigger waits for DAG {dag_id!r}, which is not in this bundle; bundle-run runs "
                f"only the DAGs of this bundle ({known})"
            )
        found = {r: (self.parent.store.get_dag_run(dag_id, r) or {}).get("state") for r in run_ids}
        if all(s in states for s in found.values()):
            return found
        if any(self.is_running(dag_id, r) for r in run_ids):
            return None
        stuck = {r: s for r, s in found.items() if s not in states}
        return (
            f"DagStateTrigger waits for runs of {dag_id} to be in {states}, but bundle-run is not running "
            f"them and they never will be: {stuck}"
        )


def summary(result: RunResult, store: Any) -> dict[str, Any]:
    """A triggered run for the report: its ids, state and each task instance's state and try."""
    tis = store.task_instances(result.dag_id, result.run_id)
    return {
        "dag_id": result.dag_id,
        "run_id": result.run_id,
        "state": result.state,
        "tasks": {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): {
                "state": ti["state"],
                "try_number": ti["try_number"],
            }
            for ti in sorted(tis, key=lambda t: (t["task_id"], t["map_index"]))
        },
    }
