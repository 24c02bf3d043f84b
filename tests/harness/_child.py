"""The supervisor side of the harness: runs inside a fresh Python process started by ``supervised.py``.

Invoked as ``python -c "...; from tests.harness._child import main; main()" <config.json>``. The config names
the mode (``task`` or ``parse``), the runtime command, where to write things and the serialised
``FakeExecutionAPI``. Everything this process learns is written to files in the work directory as it
happens (so a test that kills this process still sees what happened up to then):

* ``calls.jsonl``     every Execution API request (written by the fake as it answers)
* ``supervisor.log``  the supervisor's own structlog output, JSON lines (configured like a worker does)
* ``runtime.pid``     pid of the runtime, written when the supervisor starts monitoring it
* ``result.json``     exit code, final state, exception, final fake API state (written at the end)
* task log            written by the supervisor's own ``_configure_logging`` (task mode) or a
                      Dag-processor style ``BytesLogger`` (parse mode)
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import attrs
from airflow.sdk.coordinators._subprocess import (
    PopenTracker,
    SubprocessCoordinator,
    _accept_connections,
    _PopenActivitySubprocess,
    _start_server,
)

from tests.harness.execution_api import FakeExecutionAPI

BASE_URL = "http://execution-api.test"
COORDINATOR_NAME = "pybundle-harness"

_STATE: dict[str, Any] = {"config": None, "result": {}}


def _write_json(path: str | os.PathLike[str], data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, default=str)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# Task execution: a SubprocessCoordinator whose command comes from the harness config
# ---------------------------------------------------------------------------------------------------------
@attrs.define(kw_only=True)
class _HarnessActivitySubprocess(_PopenActivitySubprocess):
    """The released ``_PopenActivitySubprocess`` + a pid file written once ``wait()`` is monitoring."""

    def _monitor_subprocess(self):
        # Called from ActivitySubprocess.wait() *after* it installed its SIGTERM/SIGINT forwarding
        # handlers, so a signal the test sends from now on is forwarded like in production.
        cfg = _STATE["config"]
        _STATE["result"]["runtime_pid"] = self.pid
        Path(cfg["pid_path"]).write_text(str(self.pid))
        return super()._monitor_subprocess()


@attrs.define(kw_only=True)
class HarnessCoordinator(SubprocessCoordinator):
    """Coordinator the harness maps its queue to via ``[sdk] coordinators`` / ``queue_to_coordinator``."""

    command: list[str]
    schema_version: str | None = "2026-06-16"

    def _build_execute_task_command(self, *, what):
        return list(self.command), self.schema_version

    def execute_task(
        self,
        *,
        what,
        dag_rel_path,
        bundle_info,
        client,
        logger=None,
        sentry_integration: str = "",
        subprocess_logs_to_stdout: bool,
        **kwargs,
    ):
        # Same sequence as SubprocessCoordinator.execute_task, with the pid-reporting subclass.
        command, schema_version = self._build_execute_task_command(what=what)
        process = _HarnessActivitySubprocess.start(
            what=what,
            dag_rel_path=dag_rel_path,
            bundle_info=bundle_info,
            client=client,
            logger=logger,
            subprocess_logs_to_stdout=subprocess_logs_to_stdout,
            sentry_integration=sentry_integration,
            command=command,
            subprocess_schema_version=schema_version,
            startup_timeout=self.task_startup_timeout,
        )
        _STATE["result"]["runtime_pid"] = process.pid
        exit_code = process.wait()
        result = self.ExecutionResult(exit_code, process.final_state)
        _STATE["result"].update(exit_code=exit_code, final_state=_state_str(process.final_state))
        return result


def _state_str(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def _make_client(api: FakeExecutionAPI):
    import httpx
    from airflow.sdk.api.client import Client

    return Client(base_url=BASE_URL, token="harness-token", transport=httpx.MockTransport(api))


def _configure_supervisor_logging(cfg: dict[str, Any]) -> None:
    """Configure the supervisor's own logging the way ``execute_workload`` does (JSON lines)."""
    from airflow.sdk.log import configure_logging

    out = open(cfg["supervisor_log_path"], "ab")
    kwargs: dict[str, Any] = {"output": out, "json_output": True}
    if cfg.get("supervisor_log_level"):
        kwargs["log_level"] = cfg["supervisor_log_level"]
    configure_logging(**kwargs)


def _run_task(cfg: dict[str, Any], api: FakeExecutionAPI) -> None:
    from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance
    from airflow.sdk.configuration import conf
    from airflow.sdk.execution_time.coordinator import reset_coordinator_manager
    from airflow.sdk.execution_time.supervisor import supervise_task

    # Route the harness queue to HarnessCoordinator. Set through conf (not env) so the runtime's
    # environment does not carry harness internals.
    coordinators = {
        COORDINATOR_NAME: {
            "classpath": f"{HarnessCoordinator.__module__}.{HarnessCoordinator.__qualname__}",
            "kwargs": {
                "command": cfg["command"],
                "schema_version": cfg["schema_version"],
                "task_startup_timeout": cfg["startup_timeout"],
            },
        }
    }
    conf.set("sdk", "coordinators", json.dumps(coordinators))
    conf.set("sdk", "queue_to_coordinator", json.dumps({cfg["ti"]["queue"]: COORDINATOR_NAME}))
    reset_coordinator_manager()

    t = cfg["ti"]
    ti = TaskInstance(
        id=t["id"],
        task_id=t["task_id"],
        dag_id=t["dag_id"],
        run_id=t["run_id"],
        try_number=t["try_number"],
        dag_version_id=t["dag_version_id"],
        map_index=t["map_index"],
        queue=t["queue"],
        context_carrier=t.get("context_carrier"),
    )
    client = _make_client(api)
    rc = supervise_task(
        ti=ti,
        bundle_info=BundleInfo(name=cfg["bundle_name"], version=cfg["bundle_version"]),
        dag_rel_path=cfg["dag_rel_path"],
        token="",
        client=client,
        log_path=cfg["task_log_rel_path"],
        subprocess_logs_to_stdout=False,
    )
    _STATE["result"]["supervise_task_return"] = rc


# ---------------------------------------------------------------------------------------------------------
# Dag parsing: core 3.3.2's DagFileProcessorProcess over the coordinator transport
# ---------------------------------------------------------------------------------------------------------
def _run_parse(cfg: dict[str, Any], api: FakeExecutionAPI) -> None:
    import signal
    import socket
    import subprocess
    import uuid

    import structlog
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.sdk.configuration import conf
    from airflow.sdk.log import logging_processors

    res = _STATE["result"]
    comm_server, logs_server = _start_server(), _start_server()
    stdout_r, stdout_w = socket.socketpair()
    stderr_r, stderr_w = socket.socketpair()
    env = {
        **os.environ,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": conf.get("logging", "logging_level", fallback="INFO"),
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": conf.get("logging", "namespace_levels", fallback=""),
    }
    proc = subprocess.Popen(
        [
            *cfg["command"],
            "--comm={0[0]}:{0[1]}".format(comm_server.getsockname()),
            "--logs={0[0]}:{0[1]}".format(logs_server.getsockname()),
        ],
        stdout=stdout_w.fileno(),
        stderr=stderr_w.fileno(),
        env=env,
    )
    stdout_w.close()
    stderr_w.close()
    res["runtime_pid"] = proc.pid
    Path(cfg["pid_path"]).write_text(str(proc.pid))
    try:
        socks, drained = _accept_connections(
            {"comm": comm_server, "logs": logs_server},
            {"stdout": stdout_r, "stderr": stderr_r},
            proc,
            max_wait=cfg["startup_timeout"],
        )
    except BaseException:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        comm_server.close()
        logs_server.close()

    # The processor log, built like DagFileProcessorManager._get_logger_for_dag_file does.
    log_path = Path(cfg["task_log_path"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    filehandle = log_path.open("ab")
    logger = structlog.wrap_logger(
        structlog.BytesLogger(filehandle),
        processors=logging_processors(json_output=True),
        logger_name="processor",
    ).bind()

    processor = DagFileProcessorProcess(
        id=uuid.uuid4(),
        pid=proc.pid,
        process=PopenTracker(proc),
        stdin=socks[comm_server],
        process_log=logger,
        logger_filehandle=filehandle,
        client=_make_client(api),
        bundle_name=cfg["bundle_name"],
        dag_file_rel_path=cfg["dag_rel_path"],
        subprocess_schema_version=cfg["schema_version"],
    )
    processor._register_pipe_readers(stdout_r, stderr_r, socks[comm_server], socks[logs_server], data=drained)
    processor._on_child_started(
        callbacks=[],
        path=cfg["parse_path"],
        bundle_path=Path(cfg["bundle_path"]),
        bundle_name=cfg["bundle_name"],
    )
    deadline = time.monotonic() + cfg["parse_timeout"]
    while not processor.is_ready:
        if time.monotonic() > deadline:
            res["parse_timed_out"] = True
            processor.kill(signal.SIGKILL)
            break
        processor._service_subprocess(1.0)
    res["exit_code"] = processor._exit_code
    try:
        processor.close()
    except Exception:
        res.setdefault("errors", []).append("processor.close(): " + traceback.format_exc())

    result = processor.parsing_result
    res["got_parsing_result"] = result is not None
    if result is None:
        return
    res["fileloc"] = result.fileloc
    res["import_errors"] = result.import_errors
    res["warnings"] = result.warnings
    res["serialized_dags"] = [lazy.data for lazy in result.serialized_dags]
    res["loaded_dags"], res["dag_load_errors"] = _load_dags(result.serialized_dags)


def _load_dags(lazies: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check each serialized Dag the way the scheduler side would read it; summarise what loaded."""
    from airflow.serialization.serialized_objects import DagSerialization

    loaded: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for i, lazy in enumerate(lazies):
        data = lazy.data
        name = str((data.get("dag") or {}).get("dag_id", f"#{i}")) if isinstance(data, dict) else f"#{i}"
        try:
            DagSerialization.validate_schema(data)
            dag = DagSerialization.from_dict(data)
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"
            continue
        loaded[dag.dag_id] = {
            "dag_id": dag.dag_id,
            "task_ids": [t.task_id for t in dag.tasks],
            "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
            "queues": {t.task_id: t.queue for t in dag.tasks},
            "timetable": type(dag.timetable).__module__ + "." + type(dag.timetable).__qualname__,
            "fileloc": dag.fileloc,
        }
    return loaded, errors


# ---------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "" in sys.path:  # ``python -c`` puts the cwd first; a real worker would not have it
        sys.path.remove("")
    cfg = json.loads(Path(argv[0]).read_text())
    _STATE["config"] = cfg
    res = _STATE["result"]
    res.update(exit_code=None, final_state=None, runtime_pid=None, exception=None, supervisor_pid=os.getpid())

    api = FakeExecutionAPI.from_dict(cfg["api"])
    api.call_log_path = cfg["calls_path"]
    api.snapshot_path = cfg["snapshot_path"]
    status = 0
    try:
        _configure_supervisor_logging(cfg)
        if cfg["mode"] == "task":
            _run_task(cfg, api)
        else:
            _run_parse(cfg, api)
    except BaseException as e:  # the peer blew up: report it, don't hide it
        res["exception"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        res["exception_type"] = type(e).__name__
        status = 3
    res["api"] = api.to_dict()
    _write_json(cfg["result_path"], res)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
