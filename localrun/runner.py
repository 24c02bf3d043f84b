"""One DAG run, start to finish: decide what runs next, run it through the worker, record the outcome.

Like Airflow's scheduler, but for one run on one machine and one task at a time:

* every selected task gets a task instance (state none) when the run is created;
* a task is decided once all its upstream tasks are final, by its trigger rule (``rules.py``):
  it runs, or becomes ``skipped`` / ``upstream_failed`` without running;
* a try that ends ``up_for_retry`` is retried after the task's retry delay (scaled by
  ``--retry-delay-scale``), as a new try with a new task-instance id; other ready tasks run in
  the meantime;
* the run's state follows Airflow's rule: failed if a leaf task failed or is upstream_failed,
  success otherwise.

The supervisor reports states through the Execution API. Where it could not (it raised before
the task started, the worker was lost, the task exited without a terminal message), the
outcome is reconciled here and the reason kept in the task instance's note.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .dagmodel import OK_STATES, TERMINAL_STATES, DagSpec, TaskSpec
from .rules import RUN, decide
from .store import Store, iso, parse_iso, utcnow
from .tasklog import last_error
from .workerproc import WorkerLost, WorkerProcess

WAITING_STATES = frozenset({None, "scheduled", "queued"})
UNSUPPORTED_STATES = frozenset({"deferred", "up_for_reschedule", "awaiting_input"})
LOCAL_BUNDLE_NAME = "bundle-run"


class ProgressView(Protocol):
    """What the runner tells the display (``progress.py``); the display never affects the run."""

    def begin(self, dag_id: str, run_id: str, task_ids: list[str], max_tries: dict[str, int]) -> None: ...

    def update(
        self, task_id: str, state: str, try_number: int, duration: float | None, note: str | None
    ) -> None: ...

    def retry_at(self, task_id: str, when: float) -> None: ...

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


@dataclass
class RunSettings:
    """The knobs of a run that are not the DAG itself."""

    retry_delay_scale: float = 1.0
    task_timeout: float = 600.0
    worker_start_timeout: float = 300.0
    conf: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    log_folder: Path | None = None
    """Where the supervisor writes task logs (``[logging] base_log_folder``): read after an interrupt."""


@dataclass
class RunResult:
    """How the run ended; task states live in the store (``final_states``)."""

    dag_id: str
    run_id: str
    state: str
    task_ids: list[str]
    tries: list[TryRecord]
    interrupted: bool = False

    def final_states(self, store: Store) -> dict[str, str | None]:
        """Each selected task's final state (None for a task that never got decided)."""
        return {t: (store.ti(self.dag_id, self.run_id, t) or {}).get("state") for t in self.task_ids}


class DagRunner:
    """Runs the selected tasks of one DAG, in a new DAG run, through a :class:`WorkerProcess`."""

    def __init__(
        self,
        dag: DagSpec,
        selection: list[str],
        store: Store,
        new_worker: Callable[[], WorkerProcess],
        worker: WorkerProcess | None,
        progress: ProgressView,
        settings: RunSettings,
        dag_version_id: str,
    ) -> None:
        self.dag = dag
        self.selection = selection
        self.store = store
        self.new_worker = new_worker
        self.worker = worker
        self.progress = progress
        self.settings = settings
        self.dag_version_id = dag_version_id
        self.tries: list[TryRecord] = []
        self.run_id = settings.run_id or f"manual__{iso(utcnow())}"
        self._current: tuple[str, int, str, float] | None = None
        """The try in progress: task id, try number, log path (relative), monotonic start."""

    # -- the run --------------------------------------------------------------------------------------
    def create_run(self) -> None:
        """A manual DAG run 'now', with one task instance (state none) per selected task."""
        now = iso(utcnow())
        self.store.create_dag_run(
            dag_id=self.dag.dag_id,
            run_id=self.run_id,
            logical_date=now,
            data_interval_start=now,
            data_interval_end=now,
            run_after=now,
            run_type="manual",
            state="queued",
            conf=self.settings.conf,
        )
        for task_id in self.selection:
            task = self.dag.tasks[task_id]
            self.store.create_task_instance(
                dag_id=self.dag.dag_id,
                run_id=self.run_id,
                task_id=task_id,
                max_tries=task.retries,
                queue=task.queue,
                state=None,
            )
        self.progress.begin(
            self.dag.dag_id,
            self.run_id,
            self.selection,
            {t: self.dag.tasks[t].retries + 1 for t in self.selection},
        )

    def execute(self) -> RunResult:
        """Run until every selected task is final; Ctrl-C stops the current try and ends the run."""
        self.create_run()
        interrupted = False
        try:
            while self._step():
                pass
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt()
        state = self._finish_run()
        self.progress.status(None)
        self.progress.end()
        return RunResult(self.dag.dag_id, self.run_id, state, self.selection, self.tries, interrupted)

    def _step(self) -> bool:
        """Decide or run one task; wait for a retry if that is all there is. False when nothing is left."""
        retry_times: list[float] = []
        for task_id in self.selection:
            ti = self._ti(task_id)
            state = ti["state"]
            if state in WAITING_STATES:
                upstream = [
                    self._ti(u)["state"] for u in self.dag.tasks[task_id].upstream if u in self.selection
                ]
                if not all(s in TERMINAL_STATES for s in upstream):
                    continue
                decision = decide(self.dag.tasks[task_id].trigger_rule, upstream)
                if decision == RUN:
                    self._run_try(self.dag.tasks[task_id])
                else:
                    note = f"trigger rule {self.dag.tasks[task_id].trigger_rule}: upstream {', '.join(sorted(set(upstream)))}"
                    self.store.update_ti(ti["id"], state=decision, note=note)
                    self.progress.update(task_id, decision, ti["try_number"], None, note)
                return True
            if state == "up_for_retry":
                due = ti["next_retry_at"] or 0.0
                if due <= time.time():
                    self._run_try(self.dag.tasks[task_id])
                    return True
                retry_times.append(due)
        if retry_times:
            self._wait_until(min(retry_times))
            return True
        return False

    def _wait_until(self, when: float) -> None:
        while time.time() < when:
            self.progress.tick()
            time.sleep(min(0.1, max(0.0, when - time.time())))

    # -- one try --------------------------------------------------------------------------------------
    def _run_try(self, task: TaskSpec) -> None:
        ti = self.store.start_next_try(self._ti(task.task_id)["id"])
        try_number = ti["try_number"]
        self.progress.update(task.task_id, "running", try_number, None, None)
        worker = self._worker()
        message = {
            "op": "run",
            "ti": {
                "id": ti["id"],
                "task_id": task.task_id,
                "dag_id": self.dag.dag_id,
                "run_id": self.run_id,
                "try_number": try_number,
                "dag_version_id": self.dag_version_id,
                "map_index": -1,
                "queue": task.queue,
            },
            "log_path": f"dag_id={self.dag.dag_id}/run_id={self.run_id}/task_id={task.task_id}/attempt={try_number}.log",
            "bundle_name": LOCAL_BUNDLE_NAME,
            "dag_rel_path": self.dag.relative_fileloc or Path(self.dag.fileloc).name or "dag.py",
        }
        started = time.monotonic()
        self._current = (task.task_id, try_number, message["log_path"], started)
        try:
            result = worker.call(
                message,
                timeout=self.settings.task_timeout,
                on_tick=self.progress.tick,
                what=f"task {task.task_id}",
            )
        except WorkerLost as exc:
            self.worker = None
            result = {"exception": str(exc), "worker_lost": True, "duration": time.monotonic() - started}
        self._current = None
        timed_out = worker.timed_out
        state, note = self._reconcile(ti["id"], result, timed_out)
        log = _read_text(result.get("log_file"))
        self.store.put_log(self.store.ti_by_id(ti["id"]) or ti, log)
        if state in ("failed", "up_for_retry") and not note and (note := last_error(log)):
            self.store.update_ti(ti["id"], note=note)
        current = self.store.ti_by_id(ti["id"]) or {}
        # What a person waited for: the try under the supervisor, process start to exit. (The task
        # instance's own duration, /run to the final state, is in the state and the JSON report.)
        duration = result.get("duration")
        self.tries.append(
            TryRecord(
                task.task_id,
                try_number,
                state,
                duration,
                note,
                log,
                list(result.get("supervisor_errors") or []),
                result.get("exception"),
                current.get("duration"),
            )
        )
        if state == "up_for_retry":
            wait = (
                task.retry_wait(try_number, current.get("retry_delay_override"))
                * self.settings.retry_delay_scale
            )
            when = time.time() + wait
            self.store.update_ti(ti["id"], next_retry_at=when)
            self.progress.retry_at(task.task_id, when)
        self.progress.update(task.task_id, state, try_number, duration, note)

    def _reconcile(self, ti_id: str, result: dict[str, Any], timed_out: bool) -> tuple[str, str | None]:
        """The try's final state: the API's record, corrected where the supervisor could not report."""
        ti = self.store.ti_by_id(ti_id) or {}
        reported, local = ti.get("state"), result.get("final_state")
        note = ti.get("note")
        retry_or_fail = "up_for_retry" if ti.get("try_number", 1) <= ti.get("max_tries", 0) else "failed"
        if result.get("exception"):
            state = retry_or_fail
            note = f"the supervisor could not run the task: {result['exception']}"
        elif reported in TERMINAL_STATES or reported == "up_for_retry":
            state = reported
        elif reported in UNSUPPORTED_STATES:
            state, note = "failed", note or f"{reported} is not supported by bundle-run"
        elif local in TERMINAL_STATES or local == "up_for_retry":
            state = local
            note = f"the supervisor did not report a final state to the API (task state {reported}); using its own: {local}"
        elif local == "SERVER_TERMINATED":
            state, note = "failed", "the supervisor stopped the task: the API said it should not be running"
        else:
            state, note = "failed", f"no final state (API: {reported}, supervisor: {local})"
        if timed_out:
            note = f"timed out after {self.settings.task_timeout:g}s (--task-timeout) and was stopped" + (
                f"; {note}" if note else ""
            )
        fields: dict[str, Any] = {"state": state, "note": note}
        if not ti.get("end_date"):
            end = utcnow()
            fields["end_date"] = iso(end)
            start = parse_iso(ti.get("start_date"))
            fields["duration"] = (end - start).total_seconds() if start else result.get("duration")
        self.store.update_ti(ti_id, **fields)
        return state, note

    def _worker(self) -> WorkerProcess:
        if self.worker is None or not self.worker.alive:
            self.progress.status("starting a new worker (the previous one was lost)")
            self.worker = self.new_worker()
            self.worker.start(self.settings.worker_start_timeout, on_tick=self.progress.tick)
            self.progress.status(None)
        return self.worker

    # -- ending ---------------------------------------------------------------------------------------
    def _interrupt(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        if self._current is not None:
            task_id, try_number, log_path, started = self._current
            folder = self.settings.log_folder
            log = _read_text(str(folder / log_path)) if folder else ""
            ti = self._ti(task_id)
            self.store.put_log(ti, log)
            note = "interrupted (Ctrl-C or SIGTERM)"
            self.tries.append(TryRecord(task_id, try_number, "failed", time.monotonic() - started, note, log))
        for task_id in self.selection:
            ti = self._ti(task_id)
            if ti["state"] not in TERMINAL_STATES:
                state = "failed" if ti["state"] in ("running", "queued") else ti["state"]
                self.store.update_ti(ti["id"], state=state, note="interrupted (Ctrl-C or SIGTERM)")
                if state == "failed":
                    self.progress.update(task_id, "failed", ti["try_number"], None, "interrupted")

    def _finish_run(self) -> str:
        states = {t: self._ti(t)["state"] for t in self.selection}
        leaves = self.dag.leaves(self.selection)
        if any(states[t] in ("failed", "upstream_failed") for t in leaves) or any(
            s not in TERMINAL_STATES for s in states.values()
        ):
            state = "failed"
        else:
            state = "success"
        self.store.update_dag_run(self.dag.dag_id, self.run_id, state=state, end_date=iso(utcnow()))
        return state

    def _ti(self, task_id: str) -> dict[str, Any]:
        ti = self.store.ti(self.dag.dag_id, self.run_id, task_id)
        assert ti is not None, task_id
        return ti


def exit_state_ok(states: dict[str, str | None]) -> bool:
    """True when every task succeeded or was skipped (``bundle-run`` then exits 0)."""
    return all(s in OK_STATES for s in states.values())


def new_dag_version_id(dag_id: str, fileloc: str) -> str:
    """A stable id for 'this DAG from this bundle file', like Airflow's DAG version id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bundle-run:{fileloc}#{dag_id}"))


def _read_text(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
