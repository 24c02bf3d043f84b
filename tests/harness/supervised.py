"""Run a runtime command under the REAL released Airflow supervisor and report what the peer saw.

Each run happens in a fresh Python process (``tests/harness/_child.py``) because the supervisor keeps
global state (structlog configuration, config read at import, a cached coordinator manager, signal
handlers) and because a supervisor crash must be observed, not take pytest down with it.

* :func:`run_task` - task execution: ``supervise_task`` → a ``SubprocessCoordinator`` →
  ``_PopenActivitySubprocess.start(..., subprocess_schema_version="2026-06-16")`` → ``wait()``, with the real
  ``airflow.sdk.api.client.Client`` talking to a :class:`FakeExecutionAPI` over ``httpx.MockTransport``.
* :func:`parse_dag_file` - Dag parsing: apache-airflow-core's ``DagFileProcessorProcess`` driven over the
  coordinator TCP transport.
"""

from __future__ import annotations

import json
import os
import shutil
import signal as _signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.execution_api import Call, FakeExecutionAPI

__all__ = ["HarnessTimeout", "ParseRun", "TaskRun", "parse_dag_file", "run_task"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_VERSION = "2026-06-16"
_ERROR_LEVELS = {"error", "critical", "exception", "fatal"}
# Inherited variables that would make a run depend on the developer's environment.
_STRIPPED_ENV_PREFIXES = ("AIRFLOW__", "AIRFLOW_VAR_", "AIRFLOW_CONN_")
_STRIPPED_ENV_NAMES = {"AIRFLOW_HOME", "AIRFLOW_CONFIG", "_AIRFLOW_PROCESS_CONTEXT"}


class HarnessTimeout(AssertionError):
    """The supervised run did not finish within ``timeout``; everything was killed. ``.run`` has the partial run."""

    def __init__(self, message: str, run: TaskRun | ParseRun):
        super().__init__(message)
        self.run = run


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _RunBase:
    exit_code: int | None
    """Exit code of the runtime as the supervisor saw it (negative = killed by that signal); None if unknown."""
    log_records: list[dict[str, Any]]
    """The task log (parse: the processor log) exactly as the supervisor wrote it for the UI, one dict per line."""
    supervisor_errors: list[dict[str, Any]]
    """Records at error level or above in the supervisor's OWN log (e.g. 'Unable to decode message')."""
    supervisor_log: list[dict[str, Any]]
    """The supervisor's own log, all records (JSON lines as configured by ``configure_logging``)."""
    api: FakeExecutionAPI
    """The fake Execution API after the run (state + every recorded call, accumulated across runs)."""
    calls: list[Call]
    """Only the Execution API calls made during this run."""
    duration: float
    runtime_pid: int | None
    supervisor_pid: int
    supervisor_exit_code: int | None
    """Exit status of the supervisor process: 0 ok, 3 = the supervisor raised, negative = killed by signal."""
    supervisor_exception: str | None
    """Traceback if the supervisor code raised (e.g. the runtime never connected); None otherwise."""
    supervisor_stdout: str
    supervisor_stderr: str
    timed_out: bool
    workdir: Path | None

    # -- log helpers -----------------------------------------------------------------------------------
    def events(self, logger: str | None = None) -> list[str]:
        """The ``event`` text of every task-log record (optionally only those of one logger)."""
        return [
            str(r.get("event", "")) for r in self.log_records if logger is None or r.get("logger") == logger
        ]

    def find_logs(
        self, event: str | None = None, *, contains: str | None = None, **fields: Any
    ) -> list[dict]:
        """Task-log records whose event equals ``event`` / contains ``contains`` and whose fields match."""
        out = []
        for r in self.log_records:
            ev = str(r.get("event", ""))
            if event is not None and ev != event:
                continue
            if contains is not None and contains not in ev:
                continue
            if any(r.get(k) != v for k, v in fields.items()):
                continue
            out.append(r)
        return out

    def runtime_alive(self) -> bool:
        """Whether the runtime process still exists (zombies count as gone)."""
        return _pid_alive(self.runtime_pid)

    def describe(self, tail: int = 30) -> str:
        """A multi-line summary for assertion messages."""
        lines = [
            f"exit_code={self.exit_code} supervisor_exit_code={self.supervisor_exit_code} "
            f"timed_out={self.timed_out} duration={self.duration:.2f}s runtime_pid={self.runtime_pid}",
        ]
        if self.supervisor_exception:
            lines.append("supervisor exception:\n" + self.supervisor_exception)
        lines.append("task log (tail):")
        lines += [f"  {json.dumps(r, default=str)}" for r in self.log_records[-tail:]]
        lines.append("supervisor log (tail):")
        lines += [f"  {json.dumps(r, default=str)}" for r in self.supervisor_log[-tail:]]
        lines.append("api calls:")
        lines += [f"  {c!r}" for c in self.calls]
        if self.supervisor_stderr.strip():
            lines.append(
                "supervisor stderr (tail):\n" + "\n".join(self.supervisor_stderr.splitlines()[-tail:])
            )
        return "\n".join(lines)


@dataclass
class TaskRun(_RunBase):
    final_state: str | None = None
    """``ActivitySubprocess.final_state`` as computed by the supervisor (None if it never got there)."""
    ti_id: str = ""
    supervisor_killed: bool = False
    """True if the harness SIGKILLed the supervisor on request (``kill_supervisor_after``)."""
    runtime_exit_delay: float | None = None
    """After the supervisor died (killed/crashed): seconds until the runtime was gone; None if it was not."""
    runtime_survived_supervisor: bool | None = None
    """After the supervisor died: True if the runtime was still alive after ``runtime_exit_grace`` (the
    harness then killed it). None when the supervisor did not die early."""
    signal_sent_at: float | None = None
    """Seconds after the runtime was being monitored when the requested signal was delivered."""

    @property
    def state_updates(self) -> list[dict[str, Any]]:
        """Bodies of this run's ``PATCH /task-instances/{id}/state`` calls."""
        return [c.json for c in self.calls if c.method == "PATCH" and c.path.endswith("/state")]

    @property
    def server_state(self) -> str | None:
        """The TI state the fake Execution API ends up with."""
        ti = self.api.task_instances.get(self.ti_id)
        return ti["state"] if ti else None


@dataclass
class ParseRun(_RunBase):
    serialized_dags: list[dict[str, Any]] = field(default_factory=list)
    """The ``data`` of every LazyDeserializedDAG the runtime returned."""
    import_errors: dict[str, str] | None = None
    warnings: list[Any] | None = None
    errors: list[str] = field(default_factory=list)
    """Everything that went wrong, in words: no result, supervisor exceptions/errors, Dags that fail
    ``DagSerialization.validate_schema`` / ``from_dict``. Empty when the parse was clean."""
    loaded_dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For each Dag that loads with ``DagSerialization.from_dict``: task_ids, downstream, queues, timetable."""
    dag_load_errors: dict[str, str] = field(default_factory=dict)
    fileloc: str | None = None
    got_result: bool = False

    @property
    def dag_ids(self) -> list[str]:
        return [d.get("dag", {}).get("dag_id") for d in self.serialized_dags]


# ---------------------------------------------------------------------------------------------------------
# Process plumbing
# ---------------------------------------------------------------------------------------------------------
def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    except Exception:  # NoSuchProcess, AccessDenied...
        return False


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def _kill(pid: int | None, sig: int = _signal.SIGKILL) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = {"_raw": line}
        out.append(rec if isinstance(rec, dict) else {"_raw": rec})
    return out


def _child_env(workdir: Path, logging_level: str, namespace_levels: str, env: dict[str, str] | None):
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIPPED_ENV_PREFIXES) and k not in _STRIPPED_ENV_NAMES
    }
    base.pop("PYTHONSTARTUP", None)
    home = workdir / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    base.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(workdir / "logs"),
        AIRFLOW__LOGGING__LOGGING_LEVEL=logging_level,
        AIRFLOW__LOGGING__NAMESPACE_LEVELS=namespace_levels,
        # The supervisor's select() sleeps up to min_heartbeat_interval (default 5 s) once every socket hit
        # EOF but the exit status was not reaped yet; 1 s (the smallest, it is an int) keeps runs short.
        AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="1",
        PYTHONUNBUFFERED="1",
    )
    base.update(env or {})
    return base


_BOOTSTRAP = "import sys; sys.path.insert(0, {root!r}); from tests.harness._child import main; main()"


@dataclass
class _Outcome:
    returncode: int | None
    timed_out: bool
    killed_supervisor: bool
    runtime_pid: int | None
    signal_sent_at: float | None
    runtime_exit_delay: float | None
    runtime_survived: bool | None
    stdout: str
    stderr: str
    supervisor_pid: int
    duration: float


def _drive(
    cfg: dict[str, Any],
    workdir: Path,
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
    timeout: float,
    *,
    signal_after: tuple[int, float] | None = None,
    signal_to: str = "supervisor",
    kill_supervisor_after: float | None = None,
    trigger_on_log: str | None = None,
    runtime_exit_grace: float = 10.0,
) -> _Outcome:
    cfg_path = workdir / "config.json"
    cfg_path.write_text(json.dumps(cfg))
    out_path, err_path = workdir / "supervisor.stdout", workdir / "supervisor.stderr"
    pid_path = Path(cfg["pid_path"])
    task_log = Path(cfg["task_log_path"])

    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP.format(root=str(REPO_ROOT)), str(cfg_path)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,  # lets the harness kill the whole tree on timeout
        )
    deadline = start + timeout
    runtime_pid: int | None = None
    monitored_at: float | None = None
    trigger_at: float | None = None
    signal_sent_at: float | None = None
    killed = timed_out = False
    killed_at: float | None = None
    known_tree: set[int] = set()

    def trigger_ready() -> float | None:
        """Monotonic time from which the after-delays count, or None if not there yet."""
        if monitored_at is None:
            return None
        if trigger_on_log is None:
            return monitored_at
        for rec in _read_jsonl(task_log):
            if trigger_on_log in str(rec.get("event", "")):
                return time.monotonic()
        return None

    while child.poll() is None:
        now = time.monotonic()
        if now > deadline:
            timed_out = True
            break
        known_tree.update(_descendants(child.pid))
        if runtime_pid is None and pid_path.exists():
            try:
                runtime_pid = int(pid_path.read_text().strip())
                monitored_at = time.monotonic()
                known_tree.add(runtime_pid)
            except ValueError:
                pass
        if (signal_after or kill_supervisor_after is not None) and trigger_at is None:
            trigger_at = trigger_ready()
        if trigger_at is not None:
            if signal_after and signal_sent_at is None and now - trigger_at >= signal_after[1]:
                target = child.pid if signal_to == "supervisor" else runtime_pid
                _kill(target, signal_after[0])
                signal_sent_at = now - (monitored_at or now)
            if kill_supervisor_after is not None and not killed and now - trigger_at >= kill_supervisor_after:
                _kill(child.pid, _signal.SIGKILL)
                killed = True
                killed_at = time.monotonic()
        time.sleep(0.02)

    if timed_out:
        known_tree.update(_descendants(child.pid))
        try:
            os.killpg(child.pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in known_tree:
            _kill(pid)
        child.wait()

    if runtime_pid is None and pid_path.exists():
        try:
            runtime_pid = int(pid_path.read_text().strip())
        except ValueError:
            pass

    # If the supervisor is gone before the runtime (killed on request, or crashed), see whether the
    # runtime notices and exits by itself; kill it after the grace period so nothing leaks.
    runtime_exit_delay = None
    runtime_survived = None
    died_early = killed or (child.returncode not in (0, None) and not timed_out)
    if died_early and runtime_pid:
        t0 = killed_at or time.monotonic()  # crash: measured from when the harness saw it
        while _pid_alive(runtime_pid) and time.monotonic() - t0 < runtime_exit_grace:
            time.sleep(0.005)
        if _pid_alive(runtime_pid):
            runtime_survived = True
            _kill(runtime_pid)
        else:
            runtime_survived = False
            runtime_exit_delay = time.monotonic() - t0
    # Never leak: anything of the tree still alive now gets killed.
    for pid in known_tree:
        if _pid_alive(pid):
            _kill(pid)

    return _Outcome(
        returncode=child.returncode,
        timed_out=timed_out,
        killed_supervisor=killed,
        runtime_pid=runtime_pid,
        signal_sent_at=signal_sent_at,
        runtime_exit_delay=runtime_exit_delay,
        runtime_survived=runtime_survived,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        supervisor_pid=child.pid,
        duration=time.monotonic() - start,
    )


def _collect(cfg: dict[str, Any], api: FakeExecutionAPI) -> dict[str, Any]:
    """Read the child's result; fold the fake API's final state back into ``api`` (in place)."""
    result_path = Path(cfg["result_path"])
    result: dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {}
    snapshot = Path(cfg["snapshot_path"])
    if "api" in result:
        api.load_dict(result["api"])
    elif snapshot.exists():
        # The supervisor died before reporting: use the state the fake saved after its last answer.
        api.load_dict(json.loads(snapshot.read_text()))
    else:  # nothing happened on the API side; keep the state, start the records empty (merged later)
        api.calls, api.validation_errors, api.unhandled, api.harness_errors = [], [], [], []
    return result


def _logs(cfg: dict[str, Any], result: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    task_log = _read_jsonl(Path(cfg["task_log_path"]))
    sup_log = _read_jsonl(Path(cfg["supervisor_log_path"]))
    sup_errors = [r for r in sup_log if str(r.get("level", "")).lower() in _ERROR_LEVELS]
    if result.get("exception"):
        # An exception that escaped the supervisor is not in its log (the caller - celery, the
        # execute_workload CLI - would print it and die). Surface it here too, marked as synthetic.
        sup_errors.append(
            {
                "level": "critical",
                "event": f"supervisor raised {result.get('exception_type')}",
                "logger": "pybundle.harness",
                "exception": result["exception"],
            }
        )
    return task_log, sup_log, sup_errors


def _prepare_workdir(workdir: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="pybundle-harness-")), True
    p = Path(workdir)
    p.mkdir(parents=True, exist_ok=True)
    return p, False


def _base_cfg(workdir: Path, api: FakeExecutionAPI, command: list[str]) -> dict[str, Any]:
    return {
        "command": [os.fspath(c) for c in command],
        "schema_version": SCHEMA_VERSION,
        "api": api.to_dict() | {"calls": [], "validation_errors": [], "unhandled": [], "harness_errors": []},
        "calls_path": str(workdir / "calls.jsonl"),
        "snapshot_path": str(workdir / "api_state.json"),
        "supervisor_log_path": str(workdir / "supervisor.log"),
        "pid_path": str(workdir / "runtime.pid"),
        "result_path": str(workdir / "result.json"),
    }


def _merge_recorded(api: FakeExecutionAPI, prior: dict[str, Any]) -> None:
    """The child starts from a fake with empty records; put the earlier runs' records back in front."""
    api.calls = [Call.from_dict(c) for c in prior["calls"]] + api.calls
    api.validation_errors = prior["validation_errors"] + api.validation_errors
    api.unhandled = prior["unhandled"] + api.unhandled
    api.harness_errors = prior["harness_errors"] + api.harness_errors
    for i, c in enumerate(api.calls):
        c.seq = i


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------
def run_task(
    command: list[str],
    *,
    dag_id: str,
    task_id: str,
    run_id: str = "manual__2026-01-01",
    try_number: int = 1,
    map_index: int = -1,
    api: FakeExecutionAPI | None = None,
    env: dict[str, str] | None = None,
    logging_level: str = "INFO",
    namespace_levels: str = "",
    timeout: float = 60,
    queue: str = "pybundle",
    ti_id: str | None = None,
    dag_rel_path: str = "dags/pybundle_stub.py",
    bundle_name: str = "pybundle-test-bundle",
    bundle_version: str | None = None,
    startup_timeout: float = 10.0,
    schema_version: str | None = SCHEMA_VERSION,
    signal_after: tuple[int, float] | None = None,
    signal_to: str = "supervisor",
    kill_supervisor_after: float | None = None,
    trigger_on_log: str | None = None,
    runtime_exit_grace: float = 10.0,
    supervisor_log_level: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    raise_on_timeout: bool = True,
) -> TaskRun:
    """
    Run ``command`` as a coordinator runtime under the released supervisor, in a fresh Python process.

    The supervisor appends ``--comm=127.0.0.1:P --logs=127.0.0.1:Q`` to ``command`` itself.

    :param api: fake Execution API (state in, recorded calls + state out; updated in place). A fresh
        empty one if None. The TI being run is registered in it as ``queued`` before the run.
    :param env: extra environment for the supervisor, which the runtime inherits (like production).
        Inherited ``AIRFLOW__*`` / ``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` / ``AIRFLOW_HOME`` variables of
        the test process are dropped for hermeticity. Use it for e.g. ``AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL``.
    :param logging_level / namespace_levels: ``[logging]`` config of the supervisor; it passes both to the
        runtime as ``AIRFLOW__LOGGING__LOGGING_LEVEL`` / ``AIRFLOW__LOGGING__NAMESPACE_LEVELS``.
    :param timeout: hard limit for the whole run; on expiry the supervisor and runtime are SIGKILLed and
        :class:`HarnessTimeout` is raised (``raise_on_timeout=False``: returned with ``timed_out=True``).
    :param signal_after: ``(signum, seconds)``: deliver ``signum`` that many seconds after the supervisor
        started monitoring the runtime (or after ``trigger_on_log`` appeared in the task log).
    :param signal_to: ``"supervisor"`` (it forwards SIGTERM/SIGINT to the runtime, as in production) or
        ``"runtime"`` (straight to the runtime pid).
    :param kill_supervisor_after: SIGKILL the supervisor after that many seconds (same reference point);
        the report then says whether and how fast the runtime went away (``runtime_exit_delay``,
        ``runtime_survived_supervisor``; the runtime is SIGKILLed after ``runtime_exit_grace``).
    :param trigger_on_log: substring of a task-log ``event`` that starts the signal/kill clocks.
    :param schema_version: ``subprocess_schema_version`` given to the supervisor (None = no migration).
    :param workdir: keep all artefacts there (default: a temp dir, deleted unless the run timed out).
    """
    api = api if api is not None else FakeExecutionAPI()
    wd, temp = _prepare_workdir(workdir)
    ti_id = str(ti_id or uuid.uuid4())
    api.add_task_instance(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        state="queued",
        try_number=try_number,
        ti_id=ti_id,
    )
    prior = {
        "calls": [c.to_dict() for c in api.calls],
        "validation_errors": list(api.validation_errors),
        "unhandled": list(api.unhandled),
        "harness_errors": list(api.harness_errors),
    }
    task_log_rel = f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"
    cfg = _base_cfg(wd, api, command) | {
        "mode": "task",
        "schema_version": schema_version,
        "ti": {
            "id": ti_id,
            "task_id": task_id,
            "dag_id": dag_id,
            "run_id": run_id,
            "try_number": try_number,
            "dag_version_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"pybundle-harness/{dag_id}")),
            "map_index": map_index,
            "queue": queue,
        },
        "dag_rel_path": dag_rel_path,
        "bundle_name": bundle_name,
        "bundle_version": bundle_version,
        "startup_timeout": startup_timeout,
        "task_log_rel_path": task_log_rel,
        "task_log_path": str(wd / "logs" / task_log_rel),
        "supervisor_log_level": supervisor_log_level,
    }
    env_full = _child_env(wd, logging_level, namespace_levels, env)
    outcome = _drive(
        cfg,
        wd,
        env_full,
        cwd,
        timeout,
        signal_after=signal_after,
        signal_to=signal_to,
        kill_supervisor_after=kill_supervisor_after,
        trigger_on_log=trigger_on_log,
        runtime_exit_grace=runtime_exit_grace,
    )
    result = _collect(cfg, api)
    _merge_recorded(api, prior)
    calls = api.calls[len(prior["calls"]) :]
    task_log, sup_log, sup_errors = _logs(cfg, result)
    run = TaskRun(
        exit_code=result.get("exit_code"),
        final_state=result.get("final_state"),
        log_records=task_log,
        supervisor_errors=sup_errors,
        supervisor_log=sup_log,
        api=api,
        calls=calls,
        duration=outcome.duration,
        runtime_pid=result.get("runtime_pid") or outcome.runtime_pid,
        supervisor_pid=outcome.supervisor_pid,
        supervisor_exit_code=outcome.returncode,
        supervisor_exception=result.get("exception"),
        supervisor_stdout=outcome.stdout,
        supervisor_stderr=outcome.stderr,
        timed_out=outcome.timed_out,
        workdir=None if temp else wd,
        ti_id=ti_id,
        supervisor_killed=outcome.killed_supervisor,
        runtime_exit_delay=outcome.runtime_exit_delay,
        runtime_survived_supervisor=outcome.runtime_survived,
        signal_sent_at=outcome.signal_sent_at,
    )
    return _finish(run, wd, temp, timeout, raise_on_timeout, "run_task", command)


def parse_dag_file(
    command: list[str],
    *,
    timeout: float = 60,
    api: FakeExecutionAPI | None = None,
    env: dict[str, str] | None = None,
    logging_level: str = "INFO",
    namespace_levels: str = "",
    path: str | None = None,
    bundle_path: str | None = None,
    bundle_name: str = "pybundle-test-bundle",
    startup_timeout: float = 10.0,
    schema_version: str | None = SCHEMA_VERSION,
    supervisor_log_level: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    raise_on_timeout: bool = True,
) -> ParseRun:
    """
    Run ``command`` under apache-airflow-core's ``DagFileProcessorProcess`` over the coordinator transport.

    The runtime gets ``[0, DagFileParseRequest{file=path, bundle_path, bundle_name, callback_requests: []}, nil]``
    and must answer with a ``DagFileParsingResult`` request. ``path`` defaults to
    ``<bundle_path>/pybundle_dags.py`` and ``bundle_path`` to a directory in the work dir (neither needs to exist).
    """
    api = api if api is not None else FakeExecutionAPI()
    wd, temp = _prepare_workdir(workdir)
    bundle_dir = bundle_path or str(wd / "bundle")
    parse_path = path or os.path.join(bundle_dir, "pybundle_dags.py")
    prior = {
        "calls": [c.to_dict() for c in api.calls],
        "validation_errors": list(api.validation_errors),
        "unhandled": list(api.unhandled),
        "harness_errors": list(api.harness_errors),
    }
    cfg = _base_cfg(wd, api, command) | {
        "mode": "parse",
        "schema_version": schema_version,
        "parse_path": parse_path,
        "bundle_path": bundle_dir,
        "bundle_name": bundle_name,
        "dag_rel_path": os.path.relpath(parse_path, bundle_dir),
        "startup_timeout": startup_timeout,
        "parse_timeout": max(1.0, timeout - 5.0),
        "task_log_path": str(wd / "logs" / "dag_processor" / f"{bundle_name}.log"),
        "supervisor_log_level": supervisor_log_level,
    }
    env_full = _child_env(wd, logging_level, namespace_levels, env)
    outcome = _drive(cfg, wd, env_full, cwd, timeout)
    result = _collect(cfg, api)
    _merge_recorded(api, prior)
    calls = api.calls[len(prior["calls"]) :]
    task_log, sup_log, sup_errors = _logs(cfg, result)

    errors: list[str] = []
    if outcome.timed_out:
        errors.append(f"timed out after {timeout}s")
    if result.get("parse_timed_out"):
        errors.append("the runtime did not finish parsing in time (killed)")
    if result.get("exception"):
        errors.append("supervisor raised:\n" + result["exception"])
    if result and not result.get("got_parsing_result") and not result.get("exception"):
        errors.append("the runtime sent no DagFileParsingResult")
    if not result and not outcome.timed_out:
        errors.append(f"supervisor process died (status {outcome.returncode}) without a result")
    errors += [
        f"supervisor logged {r.get('level')}: {r.get('event')}"
        for r in sup_errors
        if r.get("logger") != "pybundle.harness"
    ]
    errors += [f"dag {k!r} does not load: {v}" for k, v in (result.get("dag_load_errors") or {}).items()]
    errors += result.get("errors", [])
    run = ParseRun(
        exit_code=result.get("exit_code"),
        log_records=task_log,
        supervisor_errors=sup_errors,
        supervisor_log=sup_log,
        api=api,
        calls=calls,
        duration=outcome.duration,
        runtime_pid=result.get("runtime_pid") or outcome.runtime_pid,
        supervisor_pid=outcome.supervisor_pid,
        supervisor_exit_code=outcome.returncode,
        supervisor_exception=result.get("exception"),
        supervisor_stdout=outcome.stdout,
        supervisor_stderr=outcome.stderr,
        timed_out=outcome.timed_out,
        workdir=None if temp else wd,
        serialized_dags=result.get("serialized_dags") or [],
        import_errors=result.get("import_errors"),
        warnings=result.get("warnings"),
        errors=errors,
        loaded_dags=result.get("loaded_dags") or {},
        dag_load_errors=result.get("dag_load_errors") or {},
        fileloc=result.get("fileloc"),
        got_result=bool(result.get("got_parsing_result")),
    )
    return _finish(run, wd, temp, timeout, raise_on_timeout, "parse_dag_file", command)


def _finish(run, wd: Path, temp: bool, timeout: float, raise_on_timeout: bool, what: str, command):
    if run.timed_out:
        if temp:
            run.workdir = wd  # keep the evidence
        msg = (
            f"{what}({command!r}) did not finish within {timeout}s; supervisor and runtime were killed. "
            f"Artefacts kept in {wd}.\n{run.describe()}"
        )
        if raise_on_timeout:
            raise HarnessTimeout(msg, run)
        return run
    if temp:
        shutil.rmtree(wd, ignore_errors=True)
    return run
