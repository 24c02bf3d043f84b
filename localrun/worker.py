"""The worker process: Airflow's released supervisor, one DAG parse or task try at a time.

Started by ``workerproc.py`` as ``python -c "...main()" FD CONFIG_JSON`` in its own session, with
the environment already set (``AIRFLOW_HOME``, log folder, log level, heartbeat interval): the
supervisor reads its configuration at import and keeps process-wide state (structlog, a cached
coordinator manager, signal handlers while it waits), so it lives here and not in the CLI
process, which keeps its own output, signals and state clean and can kill a wedged supervisor.

Every Execution API request the supervisor makes goes through the real
``airflow.sdk.api.client.Client`` to an ``httpx.MockTransport`` whose handler forwards it over the
channel to the parent's embedded API and waits for the answer. Messages:

* worker → parent: ``ready`` / ``fatal``; ``api`` (a request); ``parsed``; ``ran``.
* parent → worker: ``api_reply``; ``parse``; ``run``; ``exit``.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from .channel import Channel, ChannelClosed

BASE_URL = "http://bundle-run.invalid"
COORDINATOR = "bundle-run"
_ERROR_LEVELS = {"error", "critical", "exception", "fatal"}
_EAGER_IMPORTS = (
    "airflow.dag_processing.processor",
    "airflow.sdk.execution_time.supervisor",
    "httpx",
    "localrun.coordinators",
)


class Worker:
    """The worker's state between commands: the channel, its configuration, the queues routed so far."""

    def __init__(self, channel: Channel, config: dict[str, Any]) -> None:
        self.channel = channel
        self.config = config
        self.workdir = Path(config["workdir"])
        self.supervisor_log = self.workdir / "supervisor.log"
        self._queues: set[str] = set()
        self._relay_lock = threading.Lock()  # one request on the channel at a time, whatever the thread

    # -- transport ------------------------------------------------------------------------------------
    def relay(self, request: Any) -> Any:
        """``httpx.MockTransport`` handler: forward the request to the parent's API, return its answer."""
        import httpx

        with self._relay_lock:
            self.channel.send(
                {
                    "op": "api",
                    "method": request.method,
                    "path": request.url.path,
                    "query": list(request.url.params.multi_items()),
                    "body": request.content.decode("utf-8", "replace") if request.content else None,
                }
            )
            reply = self.channel.recv()
        if reply is None or reply.get("op") != "api_reply":
            raise RuntimeError(f"bundle-run: unexpected answer to an API request: {reply!r}")
        if reply.get("error"):
            # Not a 5xx: the client would retry those for minutes. An exception fails the call now.
            raise RuntimeError(f"bundle-run's embedded Execution API failed: {reply['error']}")
        headers = dict(reply.get("headers") or {})
        if reply.get("body_json") is None:
            return httpx.Response(reply["status"], headers=headers)
        headers.setdefault("content-type", "application/json")
        return httpx.Response(reply["status"], headers=headers, content=reply["body_json"].encode())

    def client(self) -> Any:
        """The released ``Client``, talking to the parent's API through :meth:`relay`."""
        import httpx
        from airflow.sdk.api.client import Client

        return Client(base_url=BASE_URL, token="bundle-run", transport=httpx.MockTransport(self.relay))

    # -- commands -------------------------------------------------------------------------------------
    def serve(self) -> None:
        """Run commands until ``exit``; every command is answered, errors included."""
        while True:
            message = self.channel.recv()
            if message is None:
                continue
            op = message.get("op")
            if op == "exit":
                return
            if op == "parse":
                self.channel.send({"op": "parsed", **self.parse(message)})
            elif op == "run":
                self.channel.send({"op": "ran", **self.run(message)})

    def parse(self, message: dict[str, Any]) -> dict[str, Any]:
        """Parse the bundle's DAGs the way Airflow's DAG processor would, over the coordinator protocol."""
        started = time.monotonic()
        mark = _size(self.supervisor_log)
        try:
            result = _parse(self, message)
        except BaseException as exc:  # reported, never raised: the parent decides what it means
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        result["supervisor_errors"] = _error_records(self.supervisor_log, mark)
        result["duration"] = time.monotonic() - started
        return result

    def run(self, message: dict[str, Any]) -> dict[str, Any]:
        """One task try through ``supervise_task``; returns what the supervisor concluded."""
        from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance
        from airflow.sdk.execution_time.supervisor import supervise_task

        from .coordinators import LAST_RESULT

        ti_fields = message["ti"]
        self._route(ti_fields["queue"])
        mark = _size(self.supervisor_log)
        result: dict[str, Any] = {"exit_code": None, "final_state": None, "exception": None}
        log_rel = message["log_path"]
        started = time.monotonic()
        try:
            LAST_RESULT.clear()
            result["return_code"] = supervise_task(
                ti=TaskInstance(**ti_fields),
                # annotated with core's BundleInfo (a TYPE_CHECKING import there); the SDK's
                # model has the same fields and keeps core's executors out of the worker
                bundle_info=BundleInfo(name=message["bundle_name"], version=None),  # type: ignore[arg-type]
                dag_rel_path=message["dag_rel_path"],
                token="",
                client=self.client(),
                log_path=log_rel,
                subprocess_logs_to_stdout=False,
            )
            result.update(LAST_RESULT)
        except BaseException as exc:
            result["exception"] = f"{type(exc).__name__}: {exc}"
            result["traceback"] = traceback.format_exc()
        result["duration"] = time.monotonic() - started
        result["log_file"] = str(Path(self.config["log_folder"]) / log_rel)
        result["supervisor_errors"] = _error_records(self.supervisor_log, mark)
        return result

    def _route(self, queue: str) -> None:
        """Point ``queue`` at this run's coordinator (``[sdk] coordinators`` / ``queue_to_coordinator``)."""
        if queue in self._queues:
            return
        from airflow.sdk.configuration import conf
        from airflow.sdk.execution_time.coordinator import reset_coordinator_manager

        self._queues.add(queue)
        kind = self.config["kind"]
        if kind == "packed":
            spec = {
                "classpath": "localrun.coordinators.PackedBundleCoordinator",
                "kwargs": {
                    "executables_root": [self.config["executables_root"]],
                    "task_startup_timeout": self.config["startup_timeout"],
                },
            }
        else:
            spec = {
                "classpath": "localrun.coordinators.SourceBundleCoordinator",
                "kwargs": {
                    "command": self.config["command"],
                    "schema_version": self.config["schema_version"],
                    "task_startup_timeout": self.config["startup_timeout"],
                },
            }
        conf.set("sdk", "coordinators", json.dumps({COORDINATOR: spec}))
        conf.set("sdk", "queue_to_coordinator", json.dumps(dict.fromkeys(sorted(self._queues), COORDINATOR)))
        reset_coordinator_manager()


def _parse(worker: Worker, message: dict[str, Any]) -> dict[str, Any]:
    import signal

    import structlog
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.sdk.configuration import conf
    from airflow.sdk.coordinators._subprocess import PopenTracker, _accept_connections, _start_server
    from airflow.sdk.log import logging_processors

    comm_server, logs_server = _start_server(), _start_server()
    stdout_r, stdout_w = socket.socketpair()
    stderr_r, stderr_w = socket.socketpair()
    env = {
        **os.environ,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": conf.get("logging", "logging_level", fallback="INFO"),
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": conf.get("logging", "namespace_levels", fallback=""),
    }
    command = [
        *worker.config["command"],
        "--comm={}:{}".format(*comm_server.getsockname()),
        "--logs={}:{}".format(*logs_server.getsockname()),
    ]
    proc = subprocess.Popen(command, stdout=stdout_w.fileno(), stderr=stderr_w.fileno(), env=env)
    stdout_w.close()
    stderr_w.close()
    try:
        sockets, drained = _accept_connections(
            {"comm": comm_server, "logs": logs_server},
            {"stdout": stdout_r, "stderr": stderr_r},
            proc,
            max_wait=worker.config["startup_timeout"],
        )
    except BaseException:
        _stop(proc)
        raise
    finally:
        comm_server.close()
        logs_server.close()

    log_path = worker.workdir / "dag_processor.log"
    handle = log_path.open("ab")
    logger = structlog.wrap_logger(
        structlog.BytesLogger(handle),
        processors=logging_processors(json_output=True),
        logger_name="processor",
    ).bind()
    processor = DagFileProcessorProcess(
        id=uuid.uuid4(),
        pid=proc.pid,
        process=PopenTracker(proc),
        stdin=sockets[comm_server],
        process_log=logger,
        logger_filehandle=handle,
        client=worker.client(),
        bundle_name=message["bundle_name"],
        dag_file_rel_path=message["rel_path"],
        subprocess_schema_version=worker.config["schema_version"],
    )
    processor._register_pipe_readers(
        stdout_r, stderr_r, sockets[comm_server], sockets[logs_server], data=drained
    )
    processor._on_child_started(
        callbacks=[],
        path=message["fileloc"],
        bundle_path=Path(message["bundle_path"]),
        bundle_name=message["bundle_name"],
    )
    deadline = time.monotonic() + float(message["timeout"])
    timed_out = False
    while not processor.is_ready:
        if time.monotonic() > deadline:
            timed_out = True
            processor.kill(signal.SIGKILL)
            break
        processor._service_subprocess(0.5)
    exit_code = processor._exit_code
    try:
        processor.close()
    except Exception:
        pass
    out: dict[str, Any] = {"exit_code": exit_code, "timed_out": timed_out, "log_file": str(log_path)}
    result = processor.parsing_result
    if result is None:
        out["error"] = "the bundle sent no DagFileParsingResult" + (" (timed out)" if timed_out else "")
        return out
    out["import_errors"] = result.import_errors or {}
    out["dags"] = [summarise_dag(lazy.data, message.get("conf")) for lazy in result.serialized_dags]
    return out


def summarise_dag(data: dict[str, Any], conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``bundle-run`` needs of one serialized DAG, read through core's ``DagSerialization``.

    ``conf_error`` is what core says of ``conf`` (``--conf``) before it creates a run: the DAG's
    params deep-merged with it and validated (``SerializedDAG.create_dagrun``), the check that makes
    Airflow's trigger endpoint answer 400 without creating the run; None when it is valid."""
    from airflow.serialization.serialized_objects import DagSerialization

    from .mapping import summarise_mapping

    name = str((data.get("dag") or {}).get("dag_id", "?"))
    summary: dict[str, Any] = {"dag_id": name, "schema_error": None, "load_error": None, "tasks": []}
    try:
        DagSerialization.validate_schema(data)
    except Exception as exc:
        summary["schema_error"] = f"{type(exc).__name__}: {exc}"
    try:
        dag = DagSerialization.from_dict(data)
    except Exception as exc:
        summary["load_error"] = f"{type(exc).__name__}: {exc}"
        return summary
    fileloc = dag.fileloc  # type: ignore[attr-defined]  # set by deserialization, not declared
    summary.update(fileloc=fileloc, relative_fileloc=getattr(dag, "relative_fileloc", None))
    summary["conf_error"] = None
    try:
        dag.params.deep_merge(conf or {}).validate()
    except Exception as exc:  # ParamValidationError, ValueError: what the trigger endpoint reports
        summary["conf_error"] = str(exc)
    for task in dag.tasks:
        max_delay = task.max_retry_delay
        summary["tasks"].append(
            {
                "task_id": task.task_id,
                "upstream": sorted(task.upstream_task_ids),
                "downstream": sorted(task.downstream_task_ids),
                "retries": task.retries,
                "retry_delay": task.retry_delay.total_seconds(),
                "retry_exponential_backoff": float(task.retry_exponential_backoff or 0),
                "max_retry_delay": _seconds(max_delay),
                "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
                "queue": task.queue,
                "mapping": summarise_mapping(task),
            }
        )
    return summary


def _seconds(delay: timedelta | float | None) -> float | None:
    """A task's ``max_retry_delay`` in seconds; core types it a timedelta or a number of seconds."""
    if not delay:
        return None
    return delay.total_seconds() if isinstance(delay, timedelta) else float(delay)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _error_records(path: Path, offset: int) -> list[dict[str, Any]]:
    """Error-level records the supervisor wrote to its own log since ``offset``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and str(record.get("level", "")).lower() in _ERROR_LEVELS:
            out.append(record)
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``FD CONFIG_JSON``. Exits when told to or when the parent goes away."""
    args = sys.argv[1:] if argv is None else argv
    channel = Channel(socket.socket(fileno=int(args[0])))
    config = json.loads(args[1])
    status = 0
    try:
        try:
            from airflow.sdk.log import configure_logging

            # The supervisor's own log (not the task logs) goes to a file as JSON lines, as a
            # production worker's does; the errors in it are reported with each try.
            configure_logging(output=open(Path(config["workdir"]) / "supervisor.log", "ab"), json_output=True)
            # Imported now rather than on the first task: import errors surface here, once.
            for name in _EAGER_IMPORTS:
                importlib.import_module(name)
        except BaseException as exc:
            channel.send(
                {"op": "fatal", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            )
            status = 3
            return
        channel.send({"op": "ready", "pid": os.getpid()})
        Worker(channel, config).serve()
    except ChannelClosed:
        status = 4
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
