"""The ``bundle-run`` command line.

::

    bundle-run TARGET_OR_PACKED_BUNDLE [--dag DAG_ID] [--task TASK_ID]... [--vars FILE] [--conns FILE]
               [--state FILE] [--retry-delay-scale X] [--task-timeout SECONDS] [--log-level LEVEL]
               [--run-id RUN_ID] [--conf JSON] [--no-task-logs] [--json-report FILE]

Errors are one ``error: <message>`` line on stderr (plus indented detail when there is some);
exit statuses are listed in ``--help`` and defined in :mod:`localrun.errors`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

import click

from .app import Options, run
from .errors import (
    EXIT_BUNDLE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_MISSING_AIRFLOW,
    EXIT_OK,
    EXIT_TASKS_FAILED,
    EXIT_USAGE,
    BundleRunError,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.~:+-]+$")

_EPILOG = f"""\b
TARGET_OR_PACKED_BUNDLE is a packed executable bundle (bundle-pack TARGET --format executable),
run with Airflow's ExecutableCoordinator, or what `python -m bundle --bundle` accepts
(path/to/file.py[:attr] or package.module[:attr]), run with a SubprocessCoordinator.

\b
Each task runs under apache-airflow-task-sdk's released supervisor against an embedded
Execution API (SQLite: in memory, or --state FILE); no Airflow server, database or scheduler.
Variables/connections come from --vars/--conns (YAML or JSON mappings) and AIRFLOW_VAR_* /
AIRFLOW_CONN_* (which win). Progress goes to stderr; task logs, XComs and the summary to stdout.

\b
Exit status:
  {EXIT_OK}    every task succeeded or was skipped
  {EXIT_TASKS_FAILED}    a task failed, is upstream_failed or was removed
  {EXIT_USAGE}    bad input: option, DAG/task id, variables/connections/state file
       or a --conf the DAG's params refuse (nothing runs, as with Airflow's trigger)
  {EXIT_MISSING_AIRFLOW}    apache-airflow-task-sdk is missing: pip install 'pybundle[airflow]'
  {EXIT_BUNDLE}    the bundle does not load, introspect or parse
  {EXIT_INTERNAL}    bundle-run itself failed (its worker process died)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C or SIGTERM)
"""


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pybundle")
    except metadata.PackageNotFoundError:
        return "unknown"


def _run_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Airflow's default [scheduler] allowed_run_id_pattern; a '/' would also break the API's paths.
    if value is not None and not RUN_ID_PATTERN.fullmatch(value):
        raise click.BadParameter(
            f"{value!r} does not match {RUN_ID_PATTERN.pattern} (Airflow's run id pattern)"
        )
    return value


def _conf(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    except RecursionError:
        raise click.BadParameter("not JSON: nested too deeply") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object")
    try:  # Airflow's API reads the run's conf as UTF-8 JSON: a lone surrogate would fail every task
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise click.BadParameter(
            f"holds a lone surrogate (U+{ord(exc.object[exc.start]):04X}), which is not valid Unicode text"
        ) from None
    return parsed


@click.command(
    "bundle-run",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("target", metavar="TARGET_OR_PACKED_BUNDLE")
@click.option(
    "--dag", "dag_id", metavar="DAG_ID", help="The DAG to run (needed when the bundle has several)."
)
@click.option(
    "--task",
    "task_ids",
    metavar="TASK_ID",
    multiple=True,
    help="Run only this task and the tasks it depends on (repeatable). Default: the whole DAG.",
)
@click.option(
    "--vars", "vars_file", metavar="FILE", help="Variables: a YAML or JSON mapping of key to value."
)
@click.option(
    "--conns",
    "conns_file",
    metavar="FILE",
    help="Connections: a YAML or JSON mapping of conn id to URI or fields.",
)
@click.option(
    "--state",
    "state_file",
    metavar="FILE",
    help="Keep the state (variables, connections, runs, XComs, logs) in this SQLite file across runs.",
)
@click.option(
    "--retry-delay-scale",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    metavar="X",
    help="Multiply every retry delay by X (0.1 makes a 5 s delay 0.5 s; 0 retries at once).",
)
@click.option(
    "--task-timeout",
    type=click.FloatRange(min=1.0),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop a task try that runs longer (SIGTERM, then SIGKILL); the try fails.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=lambda: os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO").upper(),
    show_default="INFO, or $AIRFLOW__LOGGING__LOGGING_LEVEL",
    help="[logging] logging_level given to the supervisor, which passes it to the bundle.",
)
@click.option("--run-id", metavar="RUN_ID", callback=_run_id, help="The DAG run id (default: manual__<now>).")
@click.option(
    "--conf",
    "conf",
    metavar="JSON",
    callback=_conf,
    help="The DAG run's conf, a JSON object: ctx.dag_run.conf, and it overrides the DAG's params in "
    "ctx.params. Validated against the params before anything runs.",
)
@click.option("--no-task-logs", is_flag=True, help="Do not print the task logs after the run.")
@click.option("--json-report", metavar="FILE", help="Also write the whole report as JSON to FILE.")
@click.option(
    "--keep-workdir", is_flag=True, hidden=True, help="Keep the temporary work directory (debugging)."
)
@click.version_option(_version(), prog_name="bundle-run", message="%(prog)s (pybundle) %(version)s")
def cli(
    target: str,
    dag_id: str | None,
    task_ids: tuple[str, ...],
    vars_file: str | None,
    conns_file: str | None,
    state_file: str | None,
    retry_delay_scale: float,
    task_timeout: float,
    log_level: str,
    run_id: str | None,
    conf: dict[str, Any],
    no_task_logs: bool,
    json_report: str | None,
    keep_workdir: bool,
) -> int:
    """Run a bundle's DAG on this machine, each task under Airflow's real task supervisor."""
    return run(
        Options(
            target=target,
            dag_id=dag_id,
            task_ids=list(task_ids),
            vars_file=vars_file,
            conns_file=conns_file,
            state_file=state_file,
            retry_delay_scale=retry_delay_scale,
            task_timeout=task_timeout,
            log_level=log_level.upper(),
            run_id=run_id,
            conf=conf,
            show_logs=not no_task_logs,
            json_report=json_report,
            keep_workdir=keep_workdir,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the command, map every failure to its exit status."""
    # SIGTERM (``timeout``, a CI runner) ends the run like Ctrl-C: tasks stopped, summary printed.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _main(argv: Sequence[str] | None) -> int:
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="bundle-run", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        _error(f"{exc.format_message()} (see 'bundle-run --help')")
        return EXIT_USAGE
    except click.Abort:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BundleRunError as exc:
        _error(str(exc), exc.detail)
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: still one line and a defined status, not a traceback
        _error(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        return EXIT_INTERNAL
    return result if isinstance(result, int) else EXIT_INTERNAL


def _error(message: str, detail: str | None = None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if detail:
        sys.stderr.write("".join(f"  {line}\n" for line in detail.rstrip().splitlines()))
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
