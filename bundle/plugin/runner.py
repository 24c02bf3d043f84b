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
  the task supervisor.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..core.client import MessageClient
from ..core.context import Context, DagRunInfo, TaskInstanceInfo
from ..core.execution import FAILED, RUNTIME_LOGGER, SUCCESS, UP_FOR_RETRY, TaskOutcome, execute_task
from ..core.messages import TASK_ACCESS
from ..core.registry import Registry
from .api import ApiError, ExecutionApiClient
from .hclog import HclogWriter
from .settings import Settings
from .tasklog import TaskLogging
from .transport import ExecutionApiTransport

HEARTBEAT_INTERVAL_SECONDS = 5.0
HEARTBEAT_INTERVAL_ENV = "PYBUNDLE_HEARTBEAT_INTERVAL_SECONDS"  # tests shorten it

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
    )
    return Context(ti=ti, dag_run=run, should_retry=bool(run_context.get("should_retry")))


def state_payload(outcome: TaskOutcome, end_date: datetime) -> dict[str, Any]:
    """The ``PATCH /state`` body for an outcome (TISuccess/TIRetry/TITerminalStatePayload)."""
    end = end_date.isoformat()
    if outcome.state == SUCCESS:
        return {"state": SUCCESS, "end_date": end, "task_outlets": [], "outlet_events": []}
    if outcome.state == UP_FOR_RETRY:
        payload: dict[str, Any] = {"state": UP_FOR_RETRY, "end_date": end}
        if outcome.reason:
            payload["retry_reason"] = outcome.reason[:500]
        return payload
    return {"state": outcome.state, "end_date": end}


def _heartbeat_interval() -> float:
    raw = os.environ.get(HEARTBEAT_INTERVAL_ENV)
    try:
        return max(0.05, float(raw)) if raw else HEARTBEAT_INTERVAL_SECONDS
    except ValueError:
        return HEARTBEAT_INTERVAL_SECONDS


class _Heartbeat:
    """Beats until stopped; a 404/409 answer means Airflow no longer wants the task: cancel it."""

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
        self._thread = threading.Thread(target=self._run, name="pybundle-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = _heartbeat_interval()
        body = {"hostname": self._hostname, "pid": os.getpid()}
        while not self._stop.wait(interval):
            try:
                self._api.request("PUT", f"task-instances/{self._ti_id}/heartbeat", json_body=body)
            except ApiError as exc:
                if exc.status in (404, 409):
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
                self._log.log("info", "heartbeating", error=str(exc))


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

    def run(self, workload: Workload, cancel: threading.Event | None = None) -> str:
        """Run the workload; return the state reported to Airflow, raise ``RunnerError`` otherwise."""
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
            logging_setup = TaskLogging(self.settings, workload.log_path, self.log)
        except OSError as exc:
            # Go also reported the task failed here, but on a task instance that never entered
            # running, which the Execution API refuses (409); the host marks the edge job failed.
            self.log.log("error", "Could not create logger", error=str(exc), **fields)
            raise RunnerError(f"could not create the task log: {exc}") from exc
        with logging_setup:
            return self._run_logged(api, workload, cancel, fields)

    def _run_logged(
        self,
        api: ExecutionApiClient,
        workload: Workload,
        cancel: threading.Event | None,
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
            return self._report(api, workload, TaskOutcome(FAILED, reason="task not registered"))

        context = build_context(workload, run_context, self.hostname)
        if cancel is not None:
            context.cancelled = cancel  # the gRPC call ending cancels the task, as Go's ctx did
            if cancel.is_set():
                task_log.warning("The host cancelled the call before the task started")
        client = MessageClient(ExecutionApiTransport(api, str(workload.ti_id)), context.ti, TASK_ACCESS)
        with _Heartbeat(api, str(workload.ti_id), self.hostname, context, self.log) as heartbeat:
            outcome = execute_task(self.registry, context, client)
        if heartbeat.refused and outcome.state != FAILED:
            outcome = TaskOutcome(
                FAILED, outcome.return_value, outcome.error, "heartbeat refused by the server"
            )
        if outcome.state == SUCCESS:
            task_log.info("Task succeeded")
        self.log.log("info", "Task finished", state=outcome.state, reason=outcome.reason or "", **fields)
        return self._report(api, workload, outcome)

    def _report(self, api: ExecutionApiClient, workload: Workload, outcome: TaskOutcome) -> str:
        body = state_payload(outcome, datetime.now(timezone.utc))
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
