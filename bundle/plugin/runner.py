"""Run one ``ExecuteTaskWorkload`` against the Execution API, as the Go plugin's worker did.

Flow: ``PATCH /task-instances/{id}/run`` → heartbeat ``PUT .../heartbeat`` every 5 s on a thread →
run the task through ``bundle.core.execution.execute_task`` with a ``MessageClient`` whose transport
is the Execution API → ``PATCH .../state`` with the outcome. The task's outcome travels to Airflow,
not to the host: a failing task still makes ``Execute`` succeed, and only infrastructure failures
(the API refusing ``/run`` or ``/state``, no API URL) raise ``RunnerError`` for a gRPC error.

Deliberate differences from the Go runner, both so the real Execution API accepts what we send:

* an unknown task is reported ``failed`` *after* ``/run`` (Go patched ``/state`` on a queued task
  instance, which the API answers 409);
* the outcome uses the Python SDK's states (``up_for_retry`` when the run context allows a retry,
  ``skipped`` for ``SkipTask``) instead of Go's success/failed only, so retries work as they do under
  the task supervisor;
* like the Python SDK, the ``TIRunContext``'s ``xcom_keys_to_clear`` are deleted before the task
  runs, and ``execution_timeout`` is enforced. Executes run on gRPC threads, where no signal can
  interrupt a task, so a task with a limit runs on a thread of its own and is given up at the
  deadline (``bundle.core.timeouts``): it is reported ``up_for_retry`` / ``failed`` at once, and its
  thread, which Python cannot stop, is abandoned and may run on in the background.
"""

from __future__ import annotations

import contextvars
import getpass
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..core.client import MessageClient
from ..core.context import Context, DagRunInfo, TaskInstanceInfo
from ..core.errors import TaskTimeout
from ..core.execution import (
    FAILED,
    REMOVED,
    SKIPPED,
    SUCCESS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    TaskOutcome,
    execute_task,
    run_finalizers,
)
from ..core.messages import TASK_ACCESS
from ..core.registry import Registry
from ..core.runtime_log import RUNTIME_LOGGER
from .api import ApiError, ExecutionApiClient
from .hclog import HclogWriter
from .httppool import deadlines
from .settings import Settings
from .tasklog import LogPathError, TaskLogging, task_log_file
from .transport import ExecutionApiTransport

HEARTBEAT_INTERVAL_SECONDS = 5.0
HEARTBEAT_INTERVAL_ENV = "PYBUNDLE_HEARTBEAT_INTERVAL_SECONDS"  # tests shorten it
# The released supervisor's rules ([workers] max_failed_heartbeats = 3; NOT_FOUND, CONFLICT, GONE).
MAX_FAILED_HEARTBEATS = 3
REFUSED_HEARTBEAT = (404, 409, 410)
# Each beat is one attempt (the next beat is the retry), so "3 failures" alone would be 15 s of API
# outage; a task is given up only once Airflow has also not heard from it for this long, well
# before the scheduler's zombie timeout (300 s by default) could start a second copy elsewhere.
HEARTBEAT_GIVE_UP_SECONDS = 120.0
HEARTBEAT_GIVE_UP_ENV = "PYBUNDLE_HEARTBEAT_GIVE_UP_SECONDS"  # tests shorten it
HEARTBEAT_JOIN_SECONDS = 1.0  # a beat stuck on a hanging API must not delay the final state
REPORT_SLACK_SECONDS = 0.1  # abort_all waits at most report_timeout + this for the final reports

task_log = logging.getLogger(RUNTIME_LOGGER)


class RunnerError(Exception):
    """An infrastructure failure: ``Execute`` answers it with gRPC status ``code`` (a name)."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Workload:
    """The parts of ``bundle.v1.ExecuteTaskWorkload`` the runner uses (``None`` = field absent)."""

    token: str
    ti_id: uuid.UUID
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int | None
    hostname: str | None
    bundle_name: str
    bundle_version: str | None
    log_path: str | None


_HEX = set("0123456789abcdefABCDEF")


def parse_go_uuid(text: str) -> uuid.UUID:
    """``github.com/google/uuid.Parse`` (v1.6.0): same accepted forms, same error texts."""
    raw = text.encode("utf-8", "surrogateescape")
    size = len(raw)
    if size == 36:
        body = raw
    elif size == 36 + 9:
        if raw[:9].lower() != b"urn:uuid:":
            raise ValueError(f"invalid urn prefix: {_go_quote(raw[:9])}")
        body = raw[9:]
    elif size == 36 + 2:
        body = raw[1:]
    elif size == 32:
        if not all(chr(b) in _HEX for b in raw):
            raise ValueError("invalid UUID format")
        return uuid.UUID(hex=raw.decode("ascii"))
    else:
        raise ValueError(f"invalid UUID length: {size}")
    if body[8:9] != b"-" or body[13:14] != b"-" or body[18:19] != b"-" or body[23:24] != b"-":
        raise ValueError("invalid UUID format")
    digits = body[:8] + body[9:13] + body[14:18] + body[19:23] + body[24:36]
    if not all(chr(b) in _HEX for b in digits):
        raise ValueError("invalid UUID format")
    return uuid.UUID(hex=digits.decode("ascii"))


def _go_quote(raw: bytes) -> str:
    """Go's ``%q`` for a byte string (printable ASCII kept, the rest escaped)."""
    out = ['"']
    for b in raw:
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(
                {
                    0x07: "\\a",
                    0x08: "\\b",
                    0x0C: "\\f",
                    0x0A: "\\n",
                    0x0D: "\\r",
                    0x09: "\\t",
                    0x0B: "\\v",
                }.get(b, f"\\x{b:02x}")
            )
    out.append('"')
    return "".join(out)


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def build_context(workload: Workload, run_context: dict[str, Any], hostname: str) -> Context:
    """The task's ``Context`` from the workload and the ``TIRunContext`` that ``/run`` answered."""
    dag_run = run_context.get("dag_run") or {}
    ti = TaskInstanceInfo(
        dag_id=workload.dag_id,
        run_id=workload.run_id,
        task_id=workload.task_id,
        try_number=workload.try_number,
        map_index=-1 if workload.map_index is None else workload.map_index,
        id=str(workload.ti_id),
        max_tries=int(run_context.get("max_tries") or 0),
        hostname=hostname,
    )
    run = DagRunInfo(
        dag_id=dag_run.get("dag_id", workload.dag_id),
        run_id=dag_run.get("run_id", workload.run_id),
        logical_date=_parse_datetime(dag_run.get("logical_date")),
        data_interval_start=_parse_datetime(dag_run.get("data_interval_start")),
        data_interval_end=_parse_datetime(dag_run.get("data_interval_end")),
        run_after=_parse_datetime(dag_run.get("run_after")),
        start_date=_parse_datetime(dag_run.get("start_date")),
        run_type=dag_run.get("run_type"),
        conf=dag_run.get("conf") or {},
        consumed_asset_events=dag_run.get("consumed_asset_events") or (),
    )
    context = Context(ti=ti, dag_run=run, should_retry=bool(run_context.get("should_retry")))
    context.task_reschedule_count = int(run_context.get("task_reschedule_count") or 0)
    return context


# The PATCH /state payloads with a rendered_map_index field (TISuccess/TIRetry/TITerminalStatePayload).
_LABELLED_STATES = frozenset({SUCCESS, UP_FOR_RETRY, FAILED, SKIPPED, REMOVED})


def state_payload(outcome: TaskOutcome, end_date: datetime) -> dict[str, Any]:
    """The ``PATCH /state`` body for an outcome (TISuccess/TIRetry/TITerminalStatePayload)."""
    end = end_date.isoformat()
    if outcome.state == SUCCESS:
        # TISuccessStatePayload carries the outlets and the extras the task set, as SucceedTask does
        assets = outcome.assets or {"task_outlets": [], "outlet_events": []}
        return {"state": SUCCESS, "end_date": end, **assets}
    if outcome.state == UP_FOR_RETRY:
        payload: dict[str, Any] = {"state": UP_FOR_RETRY, "end_date": end}
        if outcome.reason:
            payload["retry_reason"] = outcome.reason[:500]
        return payload
    if outcome.state == UP_FOR_RESCHEDULE and outcome.reschedule_date is not None:
        # TIRescheduleStatePayload: a reschedule-mode sensor not done yet (bundle.core.sensing)
        return {
            "state": UP_FOR_RESCHEDULE,
            "reschedule_date": outcome.reschedule_date.isoformat(),
            "end_date": end,
        }
    if outcome.state == "deferred" and outcome.defer is not None:
        # TIDeferredStatePayload: the DeferTask body without its message type (bundle.core.deferral)
        return {k: v for k, v in outcome.defer.items() if k != "type"}
    return {"state": outcome.state, "end_date": end}


def _seconds_from_env(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    try:
        return max(minimum, float(raw)) if raw else default
    except ValueError:
        return default


def _heartbeat_interval() -> float:
    return _seconds_from_env(HEARTBEAT_INTERVAL_ENV, HEARTBEAT_INTERVAL_SECONDS, 0.05)


class _Heartbeat:
    """Beats until stopped, with the released supervisor's rules: a 404, 409 or 410 answer means
    Airflow no longer wants the task; failures in a row (at least ``MAX_FAILED_HEARTBEATS``, over
    at least ``HEARTBEAT_GIVE_UP_SECONDS``) mean Airflow can no longer see it and will declare it a
    zombie, and may start a retry elsewhere. Either way the task is cancelled and reported
    ``failed``.

    The thread runs in a copy of the task's context, so its records land in that task's log."""

    def __init__(
        self, api: ExecutionApiClient, ti_id: str, hostname: str, context: Context, log: HclogWriter
    ):
        self._api = api
        self._ti_id = ti_id
        self._hostname = hostname
        self._context = context
        self._log = log
        self._stop = threading.Event()
        self.refused = False
        self.gave_up = False
        self.failures = 0
        task_context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=task_context.run, args=(self._run,), name="pybundle-heartbeat", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        # Most tasks end within one interval: no thread for them. The process's deadline thread
        # starts this one when the first beat is due (a thread per Execute cost ~0.2 ms).
        self._due = deadlines.arm(_heartbeat_interval(), self._thread.start)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if deadlines.disarm(self._due):  # started: let a beat in flight end
            self._thread.join(timeout=HEARTBEAT_JOIN_SECONDS)

    def _run(self) -> None:
        interval = _heartbeat_interval()
        give_up = _seconds_from_env(HEARTBEAT_GIVE_UP_ENV, HEARTBEAT_GIVE_UP_SECONDS, 0.0)
        body = {"hostname": self._hostname, "pid": os.getpid()}
        last_success = time.monotonic()
        wait = 0.0  # the thread starts when the first beat is due
        while not self._stop.wait(wait):
            wait = interval
            try:
                self._api.request(
                    "PUT", f"task-instances/{self._ti_id}/heartbeat", json_body=body, attempts=1
                )
            except ApiError as exc:
                if self._stop.is_set():  # the task ended while this beat was out: nothing to say
                    return
                if exc.status in REFUSED_HEARTBEAT:
                    self.refused = True
                    self._log.log(
                        "error",
                        "Server indicated the task shouldn't be running anymore",
                        status_code=exc.status,
                        details=exc.detail,
                    )
                    task_log.error(
                        "Server indicated the task shouldn't be running anymore. Terminating workload",
                        extra={"status_code": exc.status, "details": exc.detail},
                    )
                    self._context.cancelled.set()
                    return
                self.failures += 1
                self._log.log(
                    "warn",
                    "Failed to send heartbeat. Will be retried",
                    failed_heartbeats=self.failures,
                    max_retries=MAX_FAILED_HEARTBEATS,
                    error=str(exc),
                )
                silent = time.monotonic() - last_success
                if self.failures >= MAX_FAILED_HEARTBEATS and silent >= give_up:
                    self.gave_up = True
                    task_log.error(
                        "Too many failed heartbeats; terminating workload",
                        extra={
                            "failed_heartbeats": self.failures,
                            "seconds_without_heartbeat": round(silent, 1),
                            "error": str(exc),
                        },
                    )
                    self._context.cancelled.set()
                    return
            else:
                self.failures = 0
                last_success = time.monotonic()


class _ActiveRun:
    """A workload in flight, so that a stopping plugin can cancel it and report it once."""

    def __init__(self, api: ExecutionApiClient, workload: Workload, cancel: threading.Event):
        self.api = api
        self.workload = workload
        self.cancel = cancel
        self.done = threading.Event()
        self.task_context: contextvars.Context | None = None
        self._reported = False
        self._lock = threading.Lock()

    def claim_report(self) -> bool:
        """True for the first caller only: the final state is sent once per workload."""
        with self._lock:
            if self._reported:
                return False
            self._reported = True
            return True


class TaskRunner:
    """Runs workloads for one bundle registry; ``cancel`` is set when the gRPC call is cancelled."""

    def __init__(self, registry: Registry, settings: Settings, log: HclogWriter):
        self.registry = registry
        self.settings = settings
        self.log = log
        self.hostname = socket.gethostname()
        try:
            self.unixname = getpass.getuser()
        except Exception:  # no passwd entry (containers): Airflow needs a string, not a crash
            self.unixname = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
        self._active: set[_ActiveRun] = set()
        self._active_lock = threading.Lock()
        self._closing = False

    def run(self, workload: Workload, cancel: threading.Event | None = None) -> str:
        """Run the workload; return the state reported to Airflow, raise ``RunnerError`` otherwise."""
        log_file = None
        if workload.log_path is not None:  # checked first: nothing may be created for a bad one
            try:
                log_file = task_log_file(self.settings.base_log_folder, workload.log_path)
            except LogPathError as exc:
                raise RunnerError(str(exc), code="INVALID_ARGUMENT") from None
        if not self.settings.execution_api_url:
            raise RunnerError(
                "no Execution API URL: set AIRFLOW__EXECUTION_API_URL or execution-api-url in "
                "$AIRFLOW_HOME/go-sdk.yaml"
            )
        try:
            api = ExecutionApiClient(self.settings.execution_api_url, workload.token)
        except ValueError as exc:
            raise RunnerError(str(exc)) from exc
        fields = {"dag_id": workload.dag_id, "task_id": workload.task_id, "ti_id": str(workload.ti_id)}
        try:
            logging_setup = TaskLogging(self.settings, log_file, self.log)
        except OSError as exc:
            # Go also reported the task failed here, but on a task instance that never entered
            # running, which the Execution API refuses (409); the host marks the edge job failed.
            self.log.log("error", "Could not create logger", error=str(exc), **fields)
            raise RunnerError(f"could not create the task log: {exc}") from exc
        active = _ActiveRun(api, workload, cancel if cancel is not None else threading.Event())
        with self._active_lock:
            if self._closing:  # after abort_all's snapshot: it would be neither cancelled nor reported
                logging_setup.close()
                raise RunnerError("the plugin is shutting down", code="UNAVAILABLE")
            self._active.add(active)
        try:
            with logging_setup:
                active.task_context = contextvars.copy_context()
                return self._run_logged(api, workload, active, fields)
        finally:
            active.done.set()
            with self._active_lock:
                self._active.discard(active)

    def abort_all(self, reason: str, grace: float, report_timeout: float) -> int:
        """Stop every running workload within ``grace + report_timeout + REPORT_SLACK_SECONDS``.

        The plugin is going away (the host's Shutdown, SIGTERM, or the host died): each task is
        cancelled and given ``grace`` seconds to end, which reports its own state; a task still
        running then is reported ``failed`` here with a single short request, because the process
        exits next and a thread cannot be stopped. (Reported, the task instance is final at once
        and retried by Airflow's rules; unreported, it would stay ``running`` until the scheduler
        declares it a zombie, minutes later.) Returns how many were still running."""
        with self._active_lock:
            self._closing = True
            runs = list(self._active)
        for run in runs:
            run.cancel.set()
        deadline = time.monotonic() + grace
        for run in runs:
            run.done.wait(max(0.0, deadline - time.monotonic()))
        stuck = [run for run in runs if not run.done.is_set()]
        senders = [
            threading.Thread(
                target=self._report_stuck, args=(run, reason, grace, report_timeout), daemon=True
            )
            for run in stuck
        ]
        for sender in senders:
            sender.start()
        report_deadline = time.monotonic() + report_timeout + REPORT_SLACK_SECONDS
        for sender in senders:  # a report still in flight then dies with the process
            sender.join(max(0.0, report_deadline - time.monotonic()))
        return len(stuck)

    def _report_stuck(self, run: _ActiveRun, reason: str, grace: float, timeout: float) -> None:
        if not run.claim_report():  # the task is reporting its own state right now
            return
        message = (
            f"{reason}: the task did not stop within {grace:g} s of being cancelled; reporting it failed"
        )

        def report() -> None:
            task_log.error(message)
            body = state_payload(TaskOutcome(FAILED, reason=reason), datetime.now(timezone.utc))
            try:
                run.api.request(
                    "PATCH",
                    f"task-instances/{run.workload.ti_id}/state",
                    json_body=body,
                    attempts=1,
                    timeout=timeout,
                )
            except ApiError as exc:
                self.log.log(
                    "error", "Error reporting final state to server", error=str(exc), final_state=FAILED
                )
            else:
                self.log.log("warn", message, ti_id=str(run.workload.ti_id), task_id=run.workload.task_id)

        (run.task_context or contextvars.copy_context()).run(report)

    def _run_logged(
        self,
        api: ExecutionApiClient,
        workload: Workload,
        active: _ActiveRun,
        fields: dict[str, str],
    ) -> str:
        ti_path = f"task-instances/{workload.ti_id}"
        task = self.registry.lookup_task(workload.dag_id, workload.task_id)
        start = {
            "state": "running",
            "hostname": self.hostname,
            "unixname": self.unixname,
            "pid": os.getpid(),
            "start_date": datetime.now(timezone.utc).isoformat(),
        }
        try:
            run_context = api.request("PATCH", f"{ti_path}/run", json_body=start).body or {}
        except ApiError as exc:
            task_log.error(
                "Server reported error when attempting to start task",
                extra={"error": str(exc), "status_code": exc.status, "detail": exc.detail},
            )
            self.log.log("error", "Start context", error=str(exc), **fields)
            raise RunnerError(f"starting the task instance: {exc}") from exc
        self.log.log("info", "Start context", **fields)

        if task is None:
            task_log.error(
                "Task not registered", extra={"dag_id": workload.dag_id, "task_id": workload.task_id}
            )
            self.log.log("error", "Task not registered", **fields)
            return self._report(api, workload, TaskOutcome(FAILED, reason="task not registered"), active)

        context = build_context(workload, run_context, self.hostname)
        context.cancelled = active.cancel  # the gRPC call ending cancels the task, as Go's ctx did
        if active.cancel.is_set():
            task_log.warning("The host cancelled the call before the task started")
        client = MessageClient(ExecutionApiTransport(api, str(workload.ti_id)), context.ti, TASK_ACCESS)
        with _Heartbeat(api, str(workload.ti_id), self.hostname, context, self.log) as heartbeat:
            outcome = execute_task(
                self.registry,
                context,
                client,
                # What the supervisor hands Python's task runner in StartupDetails.ti_context:
                # the XComs of earlier tries, deleted (DELETE /xcoms/...) before the task runs.
                xcom_keys_to_clear=run_context.get("xcom_keys_to_clear") or (),
                # a task resumed after a deferral: the resume function named by next_method runs
                resume=(run_context["next_method"], run_context.get("next_kwargs"))
                if run_context.get("next_method")
                else None,
            )
        if context.map_label is not None and context.map_label.text:  # map_index_template's label
            outcome = outcome._replace(rendered_map_index=context.map_label.text)
        if isinstance(outcome.error, TaskTimeout):  # an abandoned thread may still look at the flag
            context.cancelled.set()
        if (heartbeat.refused or heartbeat.gave_up) and outcome.state != FAILED:
            why = "heartbeat refused by the server" if heartbeat.refused else "too many failed heartbeats"
            outcome = TaskOutcome(FAILED, outcome.return_value, outcome.error, why)
        if outcome.state == SUCCESS:
            task_log.info("Task succeeded")
        self.log.log("info", "Task finished", state=outcome.state, reason=outcome.reason or "", **fields)
        state = self._report(api, workload, outcome, active)
        run_finalizers(self.registry, context, client, outcome)  # on_*_callback, after the state, as Airflow
        return state

    def _report(
        self, api: ExecutionApiClient, workload: Workload, outcome: TaskOutcome, active: _ActiveRun
    ) -> str:
        body = state_payload(outcome, datetime.now(timezone.utc))
        if outcome.rendered_map_index and body["state"] in _LABELLED_STATES:
            # core stores the terminal payload's label over the one sent before: repeat it
            body["rendered_map_index"] = outcome.rendered_map_index
        if not active.claim_report():  # the stopping plugin reported it already
            return FAILED
        try:
            api.request("PATCH", f"task-instances/{workload.ti_id}/state", json_body=body)
        except ApiError as exc:
            task_log.error(
                "Error reporting final state to server",
                extra={"error": str(exc), "final_state": body["state"]},
            )
            self.log.log(
                "error", "Error reporting final state to server", error=str(exc), final_state=body["state"]
            )
            raise RunnerError(f"reporting state {body['state']}: {exc}") from exc
        return str(body["state"])
