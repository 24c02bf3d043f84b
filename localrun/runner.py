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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .dagmodel import OK_STATES, TERMINAL_STATES, DagSpec, TaskSpec
from .mapping import expansion_length, instance_name, not_expanded_note, zero_length_note
from .rules import RUN, decide
from .runtypes import ProgressView, RunResult, TryRecord
from .store import Store, iso, parse_iso, utcnow
from .tasklog import last_error
from .workerproc import WorkerLost, WorkerProcess

WAITING_STATES = frozenset({None, "scheduled", "queued"})
UNSUPPORTED_STATES = frozenset({"awaiting_input"})
WAITS_FOR_TIME = frozenset({"up_for_retry", "up_for_reschedule"})  # run again at next_retry_at
LOCAL_BUNDLE_NAME = "bundle-run"
TiState = Any
"""A row of ``Store.ti_states`` (an ``sqlite3.Row``: id, task_id, map_index, state, try_number,
next_retry_at, read by column name)."""


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
    trigger_env: dict[str, str] | None = None
    """The environment of bundle-run's trigger processes (the worker's: its private AIRFLOW_HOME)."""


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
        self._selected = frozenset(selection)
        self.store = store
        self.new_worker = new_worker
        self.worker = worker
        self.progress = progress
        self.settings = settings
        self.dag_version_id = dag_version_id
        self.tries: list[TryRecord] = []
        self.run_id = settings.run_id or f"manual__{iso(utcnow())}"
        self._current: tuple[str, int, str, float, int] | None = None
        self.api: Any = None
        """The embedded ExecutionAPI (``app.py`` sets it): where a deferral's trigger is recorded."""
        self._triggerer: Any = None  # localrun.triggers.Triggerer, started by the first deferral
        """The try in progress: task id, try number, log path (relative), monotonic start, map index."""
        self.bundle_dags: dict[str, DagSpec] = {dag.dag_id: dag}
        """The bundle's DAGs (``app.py`` sets them all): a triggered run of one of them is run too."""
        self.version_id_of: Callable[[str], str] = lambda dag_id: new_dag_version_id(dag_id, dag.fileloc)
        self.nonblocking = False
        """A triggered run's runner: never sleeps for a retry or trigger, its parent's loop ticks."""
        self._children: Any = None  # localrun.childruns.TriggeredRuns, once a task triggered a run

    # -- the run --------------------------------------------------------------------------------------
    def create_run(self) -> None:
        """A manual DAG run 'now', with one task instance (state none) per selected task (a triggered
        run's DAG run exists already: the API created it)."""
        now = iso(utcnow())
        if self.store.get_dag_run(self.dag.dag_id, self.run_id) is None:
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
        with self.store.transaction():  # one commit for all of them: 10,000 tasks in a fraction of a second
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
            while self._children_pending():  # runs its tasks triggered: they end too, as in Airflow
                self._wait_until(time.time() + 0.1)
        except KeyboardInterrupt:
            interrupted = True
            self.interrupt()
        result = self.finish()
        result.interrupted = interrupted
        return result

    def advance(self) -> bool:
        """One step of the run (a triggered run's runner is advanced this way); False when done."""
        more = self._step()
        self._tick_children()  # its own triggered runs (a nonblocking runner never sleeps to tick)
        return more or self._children_pending()

    def finish(self) -> RunResult:
        """Stop the triggers, set the DAG run's final state, close the display."""
        if self._triggerer is not None:
            self._triggerer.stop()
        state = self._finish_run()
        self.progress.status(None)
        self.progress.end()
        triggered = list(self._children.results) if self._children is not None else []
        return RunResult(self.dag.dag_id, self.run_id, state, self.selection, self.tries, False, triggered)

    def _tick(self) -> None:
        """The display's tick, and a step of the runs this run's tasks triggered (``childruns.py``)."""
        self.progress.tick()
        self._tick_children()

    def _tick_children(self) -> None:
        if self._children is None and getattr(self.api, "triggered", None):
            from .childruns import TriggeredRuns

            self._children = TriggeredRuns(self)
        if self._children is not None:
            self._children.advance()

    def _children_pending(self) -> bool:
        if getattr(self.api, "triggered", None):
            return True
        return self._children is not None and bool(self._children.active)

    def _step(self) -> bool:
        """Decide or run one task; wait for a retry if that is all there is. False when nothing is left."""
        retry_times: list[float] = []
        by_task = self._instances_by_task()  # one read of the run per step, not one per upstream
        for task_id, ti in self._instances(by_task):
            state = ti["state"]
            name = instance_name(task_id, ti["map_index"])
            if state in WAITING_STATES:
                # As Airflow's trigger rules count them: every task instance of each upstream task
                # (all the map indexes of a mapped one).
                upstream = [
                    other["state"]
                    for u in self.dag.tasks[task_id].upstream
                    if u in self._selected
                    for other in by_task.get(u, ())
                ]
                if not all(s in TERMINAL_STATES for s in upstream):
                    continue
                decision = decide(self.dag.tasks[task_id].trigger_rule, upstream)
                if decision == RUN and self.dag.tasks[task_id].mapping is not None and ti["map_index"] < 0:
                    self._expand(self.dag.tasks[task_id], ti)  # localrun.mapping, as the scheduler
                elif decision == RUN:
                    self._run_try(self.dag.tasks[task_id], map_index=ti["map_index"])
                else:
                    note = f"trigger rule {self.dag.tasks[task_id].trigger_rule}: upstream {', '.join(sorted(set(upstream)))}"
                    self.store.update_ti(ti["id"], state=decision, note=note)
                    self.progress.update(name, decision, ti["try_number"], None, note)
                return True
            if state in WAITS_FOR_TIME:
                due = ti["next_retry_at"] or 0.0
                if due <= time.time():
                    # A reschedule runs the same try again (same id and try number), as Airflow does.
                    self._run_try(
                        self.dag.tasks[task_id],
                        same_try=state == "up_for_reschedule",
                        map_index=ti["map_index"],
                    )
                    return True
                retry_times.append(due)
            if state == "deferred":  # bundle-run's triggerer (localrun/triggers.py) waits for it
                if self._poll_trigger(task_id, ti):
                    return True
                retry_times.append(time.time() + 0.2)
        if retry_times:
            if self.nonblocking:  # a triggered run: its parent's loop ticks it again soon
                return True
            self._wait_until(min(retry_times))
            return True
        return False

    def _wait_until(self, when: float) -> None:
        while time.time() < when:
            self._tick()
            time.sleep(min(0.1, max(0.0, when - time.time())))

    # -- one try --------------------------------------------------------------------------------------
    def _run_try(self, task: TaskSpec, same_try: bool = False, map_index: int = -1) -> None:
        current_ti = self._ti(task.task_id, map_index)
        name = instance_name(task.task_id, map_index)
        if same_try:
            self.store.requeue(current_ti["id"])
            ti = self.store.ti_by_id(current_ti["id"]) or current_ti
        else:
            ti = self.store.start_next_try(current_ti["id"])
        try_number = ti["try_number"]
        self.progress.update(name, "running", try_number, None, None)
        worker = self._worker()
        message: dict[str, Any] = {
            "op": "run",
            "ti": {
                "id": ti["id"],
                "task_id": task.task_id,
                "dag_id": self.dag.dag_id,
                "run_id": self.run_id,
                "try_number": try_number,
                "dag_version_id": self.dag_version_id,
                "map_index": map_index,
                "queue": task.queue,
            },
            # Airflow's log_filename_template, map_index= only for a mapped task instance
            "log_path": f"dag_id={self.dag.dag_id}/run_id={self.run_id}/task_id={task.task_id}/"
            + (f"map_index={map_index}/" if map_index >= 0 else "")
            + f"attempt={try_number}.log",
            "bundle_name": LOCAL_BUNDLE_NAME,
            "dag_rel_path": self.dag.relative_fileloc or Path(self.dag.fileloc).name or "dag.py",
        }
        started = time.monotonic()
        self._current = (task.task_id, try_number, message["log_path"], started, map_index)
        try:
            result = worker.call(
                message,
                timeout=self.settings.task_timeout,
                on_tick=self._tick,
                what=f"task {name}",
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
        label = self.store.label(self.dag.dag_id, self.run_id, task.task_id, map_index)
        if label is not None:
            self.progress.label(name, label)
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
                map_index,
                label,
            )
        )
        if state == "up_for_retry":
            wait = (
                task.retry_wait(try_number, current.get("retry_delay_override"))
                * self.settings.retry_delay_scale
            )
            when = time.time() + wait
            self.store.update_ti(ti["id"], next_retry_at=when)
            self.progress.retry_at(name, when)
        elif state == "up_for_reschedule":  # the sensor's reschedule_date, as the scheduler waits for it
            when = reschedule_time(self.store, ti["id"])
            self.store.update_ti(ti["id"], next_retry_at=when)
            self.progress.retry_at(name, when)
        self.progress.update(name, state, try_number, duration, note)

    def _expand(self, task: TaskSpec, ti: TiState) -> None:
        """Expand a mapped task whose unmapped instance may run (``TaskMap.expand_mapped_task``):
        upstream_failed without a length, skipped for zero, else map indexes 0..n-1."""
        assert task.mapping is not None
        length, missing = expansion_length(task.mapping, self.store, self.dag.dag_id, self.run_id)
        if length is None or length < 1:
            decision = "upstream_failed" if length is None else "skipped"
            note = (
                not_expanded_note(task.task_id, self.run_id, missing)
                if length is None
                else zero_length_note(length)
            )
            self.store.update_ti(ti["id"], state=decision, note=note)
            self.progress.update(task.task_id, decision, ti["try_number"], None, note)
            return
        self.store.update_ti(ti["id"], map_index=0)
        for map_index in range(1, length):
            self.store.create_task_instance(
                dag_id=self.dag.dag_id,
                run_id=self.run_id,
                task_id=task.task_id,
                map_index=map_index,
                max_tries=task.retries,
                queue=task.queue,
                state=None,
            )
        self.progress.expanded(task.task_id, [instance_name(task.task_id, i) for i in range(length)])

    def _reconcile(self, ti_id: str, result: dict[str, Any], timed_out: bool) -> tuple[str, str | None]:
        """The try's final state: the API's record, corrected where the supervisor could not report."""
        ti = self.store.ti_by_id(ti_id) or {}
        reported, local = ti.get("state"), result.get("final_state")
        note = ti.get("note")
        retry_or_fail = "up_for_retry" if ti.get("try_number", 1) <= ti.get("max_tries", 0) else "failed"
        if result.get("exception"):
            state = retry_or_fail
            note = f"the supervisor could not run the task: {result['exception']}"
        elif reported in TERMINAL_STATES or reported in WAITS_FOR_TIME or reported == "deferred":
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
            first = self.nonblocking and not self.tries  # a triggered run's own worker
            lost = f"for {self.dag.dag_id} {self.run_id}" if first else "the previous one was lost"
            self.progress.status(f"starting a new worker ({lost})")
            self.worker = self.new_worker()
            self.worker.start(self.settings.worker_start_timeout, on_tick=self.progress.tick)
            self.progress.status(None)
        return self.worker

    # -- ending ---------------------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ctrl-C: stop the current try and mark what did not end, here and in the triggered runs."""
        if self._children is not None:
            self._children.interrupt()
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        if self._current is not None:
            task_id, try_number, log_path, started, map_index = self._current
            folder = self.settings.log_folder
            log = _read_text(str(folder / log_path)) if folder else ""
            ti = self._ti(task_id, map_index)
            self.store.put_log(ti, log)
            note = "interrupted (Ctrl-C or SIGTERM)"
            elapsed = time.monotonic() - started
            self.tries.append(
                TryRecord(task_id, try_number, "failed", elapsed, note, log, map_index=map_index)
            )
        for task_id, ti in self._instances():
            if ti["state"] not in TERMINAL_STATES:
                state = "failed" if ti["state"] in ("running", "queued") else ti["state"]
                self.store.update_ti(ti["id"], state=state, note="interrupted (Ctrl-C or SIGTERM)")
                if state == "failed":
                    name = instance_name(task_id, ti["map_index"])
                    self.progress.update(name, "failed", ti["try_number"], None, "interrupted")

    def _finish_run(self) -> str:
        by_task = self._instances_by_task()
        states = {t: [ti["state"] for ti in by_task.get(t, ())] for t in self.selection}
        leaves = self.dag.leaves(self.selection)
        if any(s in ("failed", "upstream_failed") for t in leaves for s in states[t]) or any(
            s not in TERMINAL_STATES for each in states.values() for s in each
        ):
            state = "failed"
        else:
            state = "success"
        self.store.update_dag_run(self.dag.dag_id, self.run_id, state=state, end_date=iso(utcnow()))
        return state

    def _ti(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        ti = self.store.ti(self.dag.dag_id, self.run_id, task_id, map_index)
        assert ti is not None, (task_id, map_index)
        return ti

    def _poll_trigger(self, task_id: str, ti: TiState) -> bool:
        """Start a deferred task instance's trigger, or act on its event: resume the same try with
        the new ``next_method`` / ``next_kwargs`` (as the scheduler does after the triggerer), or
        end it in the trigger's state. True when something was done."""
        from .triggers import Triggerer

        if self._triggerer is None:
            self._triggerer = Triggerer(self.settings.trigger_env, dag_runs=self._dag_state_watch)
        name = instance_name(task_id, ti["map_index"])
        deferral = self.api.deferrals.pop(ti["id"], None) if self.api is not None else None
        if deferral is not None:
            self._triggerer.start(ti["id"], deferral)
            self.progress.status(f"{name}: deferred to {deferral['classpath'].rsplit('.', 1)[-1]}")
            return False
        fired = self._triggerer.poll(ti["id"])
        if fired is None:
            return False
        self.progress.status(None)
        if fired.state is not None:  # end_from_trigger: the triggerer finished the task itself
            note = f"ended by its trigger ({fired.description})"
            self.store.update_ti(ti["id"], state=fired.state, note=note, end_date=iso(utcnow()))
            self.progress.update(name, fired.state, ti["try_number"], None, note)
            return True
        self.api.resumes[ti["id"]] = {"next_method": fired.next_method, "next_kwargs": fired.next_kwargs}
        self._run_try(self.dag.tasks[task_id], same_try=True, map_index=ti["map_index"])
        return True

    def spawn_triggered(self, dag: DagSpec, run_id: str) -> DagRunner:
        """A runner for a DAG run a task of this run triggered (the API created the run), with its own
        worker (this one's may be busy polling for that very run), its tasks shown as extra rows."""
        from .childruns import ChildProgress

        run = self.store.get_dag_run(dag.dag_id, run_id) or {}
        child = DagRunner(
            dag,
            dag.topological_order(),
            self.store,
            self.new_worker,
            None,
            ChildProgress(self.progress, dag.dag_id),
            replace(self.settings, conf=run.get("conf") or {}, run_id=run_id),
            self.version_id_of(dag.dag_id),
        )
        child.api = self.api
        child.bundle_dags = self.bundle_dags
        child.version_id_of = self.version_id_of
        child.nonblocking = True
        return child

    def _dag_state_watch(self, kwargs: dict[str, Any]) -> dict[str, Any] | str | None:
        """For the triggerer's ``DagStateTrigger``: the watched runs' states once all are in the
        trigger's states, an error when they cannot get there here, else None."""
        from .childruns import TriggeredRuns

        if self._children is None:
            self._children = TriggeredRuns(self)
        self._children.adopt()
        return self._children.dag_state_watch(kwargs)

    def _instances_by_task(self) -> dict[str, list[TiState]]:
        """This run's task instances (``Store.ti_states``), by task id, each group in map-index order."""
        by_task: dict[str, list[TiState]] = {}
        for ti in self.store.ti_states(self.dag.dag_id, self.run_id):
            by_task.setdefault(ti["task_id"], []).append(ti)
        for tis in by_task.values():
            if len(tis) > 1:
                tis.sort(key=lambda ti: ti["map_index"])
        return by_task

    def _instances(self, by_task: dict[str, list[TiState]] | None = None) -> list[tuple[str, TiState]]:
        """Every selected task instance, in task order then map-index order."""
        if by_task is None:
            by_task = self._instances_by_task()
        return [(task_id, ti) for task_id in self.selection for ti in by_task.get(task_id, ())]


def reschedule_time(store: Store, ti_id: str) -> float:
    """When a rescheduled task runs again: its latest reschedule row's ``reschedule_date``."""
    rows = store.reschedules(ti_id)
    when = parse_iso(rows[-1]["reschedule_date"]) if rows else None
    return when.timestamp() if when is not None else time.time()


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
