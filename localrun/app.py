"""``bundle-run`` from validated options to an exit status: the steps, in order.

1. Check that apache-airflow-task-sdk is installed (exit 3 with the install command if not).
2. Read ``--vars`` / ``--conns``, open ``--state``, classify the target and run its
   ``--dump-bundle-spec``: every input error surfaces here, in about a second (exit 2 or 4).
3. Start the worker (the slow supervisor import) and parse the bundle's DAGs over the
   coordinator protocol, for the edges, retries and trigger rules.
4. Run the DAG (``runner.py``), then print the report (``report.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from .api import ExecutionAPI
from .dagmodel import DagSpec, dag_from_summary
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TASKS_FAILED,
    BundleError,
    InternalError,
    MissingAirflowError,
    UsageError,
)
from .inputs import EnvSecrets, load_connections, load_variables
from .progress import make_progress, use_color
from .report import json_report, write_report
from .requirements import INSTALL_HINT, check_airflow
from .rules import SUPPORTED
from .runner import (
    LOCAL_BUNDLE_NAME,
    DagRunner,
    RunSettings,
    exit_state_ok,
    new_dag_version_id,
)
from .runtypes import ProgressView, RunResult
from .store import Store
from .target import BundleTarget, dump_spec, resolve_target, source_schema_version
from .workerproc import WorkerLost, WorkerProcess

_KEPT_AIRFLOW_ENV = {"AIRFLOW__LOGGING__NAMESPACE_LEVELS"}
_DROPPED_ENV = {"AIRFLOW_HOME", "AIRFLOW_CONFIG", "_AIRFLOW_PROCESS_CONTEXT"}
WORKER_START_TIMEOUT = 300.0
"""Importing apache-airflow-task-sdk takes seconds; on a loaded CI machine, much longer."""
PARSE_TIMEOUT = 120.0


@dataclass
class Options:
    """Everything the command line decides, validated by click; defaults match the CLI's."""

    target: str
    dag_id: str | None = None
    task_ids: list[str] = field(default_factory=list)
    vars_file: str | None = None
    conns_file: str | None = None
    state_file: str | None = None
    retry_delay_scale: float = 1.0
    task_timeout: float = 600.0
    startup_timeout: float = 10.0
    log_level: str = "INFO"
    run_id: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    show_logs: bool = True
    json_report: str | None = None
    keep_workdir: bool = False


def run(options: Options, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Do everything; return the exit status. Raises :class:`~localrun.errors.BundleRunError` subclasses."""
    out = out or sys.stdout
    err = err or sys.stderr
    if warning := check_airflow():
        err.write(f"warning: {warning}\n")

    if options.json_report:
        _check_report_path(options.json_report)
    variables = load_variables(options.vars_file) if options.vars_file else {}
    connections = load_connections(options.conns_file) if options.conns_file else {}
    env_secrets = EnvSecrets.from_environ()
    for problem in env_secrets.problems():
        err.write(f"warning: {problem}\n")
    target = resolve_target(options.target)
    spec = dump_spec(target)
    dag_id = _choose_dag(spec, options.dag_id, target)
    unknown = [t for t in options.task_ids if t not in spec[dag_id]]
    if unknown:
        raise UsageError(
            f"DAG {dag_id!r} has no task {', '.join(map(repr, unknown))}; its tasks: {', '.join(spec[dag_id])}"
        )
    if not target.packed:
        target = replace(target, schema_version=source_schema_version(target))
    elif dag_id not in (target.manifest.get("dags") or {}):
        raise BundleError(
            f"the manifest in {target.given} does not list DAG {dag_id!r}, so ExecutableCoordinator would not "
            "pick this file for it; pack the bundle again"
        )

    store = Store(options.state_file)
    workdir = Path(tempfile.mkdtemp(prefix="bundle-run-"))
    workers: list[WorkerProcess] = []
    try:
        if options.run_id and store.get_dag_run(dag_id, options.run_id) is not None:
            raise UsageError(f"--state {options.state_file} already has run {options.run_id!r} of {dag_id!r}")
        for key, value in variables.items():
            store.set_variable(key, value)
        for fields in connections.values():
            store.put_connection(fields)
        api = ExecutionAPI(store, env_secrets, bundle_name=LOCAL_BUNDLE_NAME)
        progress = make_progress(err)
        progress.title = target.given
        config = _worker_config(target, workdir, options)
        env = worker_env(workdir, options.log_level)

        def new_worker() -> WorkerProcess:
            """A fresh worker (the first, or a replacement for a lost one); all are stopped at the end."""
            workers.append(WorkerProcess(api, config, env, workdir))
            return workers[-1]

        others: dict[str, DagSpec] = {}
        dag = _start_and_parse(
            new_worker(), target, dag_id, spec[dag_id], progress, err, options.conf, others
        )
        runner = DagRunner(
            dag,
            dag.with_upstream(options.task_ids) if options.task_ids else dag.topological_order(),
            store,
            new_worker,
            workers[0],
            progress,
            RunSettings(
                retry_delay_scale=options.retry_delay_scale,
                task_timeout=options.task_timeout,
                conf=options.conf,
                run_id=options.run_id,
                log_folder=Path(config["log_folder"]),
                trigger_env=env,
            ),
            new_dag_version_id(dag_id, target.fileloc),
        )
        runner.api = api  # deferrals: the runner hands the recorded triggers to its triggerer
        # TriggerDagRun of a DAG of this bundle: bundle-run runs that run too (childruns.py)
        api.dag_ids = set(spec)
        runner.bundle_dags = {**others, dag_id: dag}
        runner.version_id_of = lambda other: new_dag_version_id(other, target.fileloc)
        result = runner.execute()
        return _write_outputs(result, store, api, target, options, out)
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    finally:
        for worker in workers:
            worker.stop()
        store.close()
        if options.keep_workdir:
            err.write(f"work directory kept: {workdir}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _start_and_parse(
    worker: WorkerProcess,
    target: BundleTarget,
    dag_id: str,
    spec_tasks: list[str],
    progress: ProgressView,
    err: TextIO,
    conf: dict[str, Any] | None = None,
    others: dict[str, DagSpec] | None = None,
) -> DagSpec:
    """Start the first worker and read the DAG's shape; map worker failures to their exit statuses."""
    try:
        progress.status("starting Airflow's task supervisor (importing apache-airflow-task-sdk)")
        worker.start(WORKER_START_TIMEOUT, on_tick=progress.tick)
        progress.status("parsing the bundle's DAGs over the coordinator protocol")
        dag = _parse(worker, target, dag_id, spec_tasks, progress, err, conf, others)
        progress.status(None)
        return dag
    except WorkerLost as exc:
        if exc.import_failed:
            raise MissingAirflowError(f"{exc}. Install a working supervisor with: {INSTALL_HINT}") from None
        raise InternalError(str(exc)) from None


def _write_outputs(
    result: RunResult, store: Store, api: ExecutionAPI, target: BundleTarget, options: Options, out: TextIO
) -> int:
    """Print the report (and write the JSON one); return the exit status the run deserves."""
    if result.interrupted:
        code = EXIT_INTERRUPTED
    else:
        code = EXIT_OK if exit_state_ok(result.final_states(store)) else EXIT_TASKS_FAILED
    problems = list(api.problems)
    write_report(
        out,
        result,
        store,
        target=target.describe(),
        problems=problems,
        show_logs=options.show_logs,
        color=use_color(out),
        exit_code=code,
    )
    out.flush()
    if options.json_report:
        report = json_report(result, store, target=target.describe(), problems=problems, exit_code=code)
        try:
            Path(options.json_report).write_text(
                json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
            )
        except OSError as exc:
            raise UsageError(
                f"cannot write --json-report {options.json_report}: {exc.strerror or exc}"
            ) from None
    return code


def _check_report_path(path: str) -> None:
    """Refuse a --json-report that cannot be written before anything runs, not after the run."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--json-report {path} is a directory: give a file path")
    if not target.parent.is_dir():
        raise UsageError(f"--json-report {path}: directory {target.parent} does not exist")


def _choose_dag(spec: dict[str, list[str]], dag_id: str | None, target: BundleTarget) -> str:
    if dag_id is not None:
        if dag_id not in spec:
            raise UsageError(f"{target.given} has no DAG {dag_id!r}; its DAGs: {', '.join(spec)}")
        return dag_id
    if len(spec) == 1:
        return next(iter(spec))
    raise UsageError(f"{target.given} has {len(spec)} DAGs ({', '.join(spec)}): choose one with --dag")


def _parse(
    worker: WorkerProcess,
    target: BundleTarget,
    dag_id: str,
    spec_tasks: list[str],
    progress: ProgressView,
    err: TextIO,
    conf: dict[str, Any] | None = None,
    others: dict[str, DagSpec] | None = None,
) -> DagSpec:
    """Parse the bundle; the chosen DAG's shape (and, into ``others``, the other DAGs that load)."""
    fileloc = Path(target.fileloc)
    reply = worker.call(
        {
            "op": "parse",
            "fileloc": str(fileloc),
            "bundle_path": str(fileloc.parent),
            "rel_path": fileloc.name,
            "bundle_name": LOCAL_BUNDLE_NAME,
            "timeout": PARSE_TIMEOUT,
            "conf": conf or {},  # validated against the DAG's params by core, as a trigger is
        },
        timeout=PARSE_TIMEOUT + 30,
        on_tick=progress.tick,
        what="parsing the bundle",
    )
    if reply.get("error"):
        raise BundleError(
            f"parsing {target.given} over the coordinator protocol failed: {reply['error']}",
            detail=_tail(reply.get("log_file")) or reply.get("traceback"),
        )
    if reply.get("import_errors"):
        detail = "\n".join(f"{k}:\n{v}" for k, v in reply["import_errors"].items())
        raise BundleError(f"{target.given} reported import errors while parsing", detail=detail)
    summaries = {d["dag_id"]: d for d in reply.get("dags", [])}
    if others is not None:  # the DAGs a task may trigger: run by bundle-run too (childruns.py)
        for other_id, other in summaries.items():
            if other_id != dag_id and not other.get("load_error"):
                try:
                    others[other_id] = dag_from_summary(other)
                    others[other_id].topological_order()
                except (ValueError, KeyError):
                    others.pop(other_id, None)
    summary = summaries.get(dag_id)
    if summary is None:
        raise BundleError(
            f"{target.given} lists DAG {dag_id!r} in --dump-bundle-spec but did not serialize it when parsed"
        )
    if summary.get("load_error"):
        raise BundleError(f"Airflow cannot load the serialized DAG {dag_id!r}: {summary['load_error']}")
    if summary.get("conf_error"):
        # Airflow's trigger endpoint answers 400 with this message and creates no run: nor do we.
        first, _, rest = summary["conf_error"].partition("\n")
        raise UsageError(
            f"--conf is not valid for the params of DAG {dag_id!r}: {first}", detail=rest.strip()
        )
    if summary.get("schema_error"):
        err.write(
            f"warning: Airflow's schema rejects the serialized DAG {dag_id!r}: {summary['schema_error']}\n"
        )
    dag = dag_from_summary(summary)
    if set(dag.tasks) != set(spec_tasks):
        err.write(
            f"warning: --dump-bundle-spec lists tasks {spec_tasks} but parsing gave {list(dag.tasks)}; "
            "running the parsed ones\n"
        )
    unsupported = {t.task_id: t.trigger_rule for t in dag.tasks.values() if t.trigger_rule not in SUPPORTED}
    if unsupported:
        raise BundleError(
            "bundle-run does not support trigger rule(s) "
            + ", ".join(f"{rule!r} (task {task})" for task, rule in unsupported.items())
            + f"; supported: {', '.join(sorted(SUPPORTED))}"
        )
    try:
        dag.topological_order()
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    return dag


def _worker_config(target: BundleTarget, workdir: Path, options: Options) -> dict[str, Any]:
    log_folder = workdir / "logs"
    log_folder.mkdir()
    config: dict[str, Any] = {
        "workdir": str(workdir),
        "log_folder": str(log_folder),
        "kind": target.kind,
        "command": target.command,
        "schema_version": target.schema_version,
        "startup_timeout": options.startup_timeout,
    }
    if target.packed:
        assert target.path is not None
        # ExecutableCoordinator scans a directory tree: give it one holding only this bundle.
        root = workdir / "executables"
        root.mkdir()
        (root / target.path.name).symlink_to(target.path)
        config["executables_root"] = str(root)
    return config


def worker_env(workdir: Path, log_level: str) -> dict[str, str]:
    """The worker's environment: the caller's, minus its Airflow configuration, plus a private home.

    Inherited ``AIRFLOW__*`` settings (other than namespace log levels), ``AIRFLOW_HOME`` and
    ``AIRFLOW_CONFIG`` are dropped so a developer's real Airflow setup cannot change a local run;
    ``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` stay (the bundle reads them, as on a worker). The
    heartbeat interval is 1 s (the default 5 s also delays noticing a finished task).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _DROPPED_ENV and (not k.startswith("AIRFLOW__") or k in _KEPT_AIRFLOW_ENV)
    }
    home = workdir / "airflow_home"
    home.mkdir(exist_ok=True)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(workdir / "logs"),
        AIRFLOW__LOGGING__LOGGING_LEVEL=log_level.upper(),
        AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _tail(path: str | None, lines: int = 20) -> str | None:
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return None
    return "\n".join(text[-lines:]) or None
