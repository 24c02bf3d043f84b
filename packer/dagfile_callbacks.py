"""DAG-level callbacks in the generated DAG file: a callable that runs the bundle's callbacks.

Airflow 3.3.2's DAG processor runs a DAG's ``on_success_callback`` / ``on_failure_callback`` by
calling the callables of the imported Python DAG file (``_execute_dag_callbacks`` in
``airflow/dag_processing/processor.py``). For a bundle DAG that callable is written here, into the
file, in plain Python + Airflow (the DAG processor has no pybundle): it finds the bundle executable
for the DAG id the way the ``ExecutableCoordinator`` does (each ``[sdk] coordinators`` entry of that
class, its ``executables_root``, the coordinator's own ``_Bundle.find``), runs it with
``PYBUNDLE_DAG_CALLBACK`` set to a JSON request (``bundle.dag_callback.mode``), bounded in time, and
re-logs the bundle's output lines through ``logging`` (so they land in the DAG processor's log for
the file). A failure or a timeout is logged; nothing is raised into the DAG processor.

Written only into files with a DAG that has DAG-level callbacks.
"""

from __future__ import annotations

from .pysource import bracketed, string

CALLBACK_FLAGS = {
    "has_on_success_callback": "on_success_callback",
    "has_on_failure_callback": "on_failure_callback",
}
HELPER_NAME = "_bundle_dag_callback"

HELPER = [
    "",
    "def _bundle_dag_callback(dag_id, kind, count):",
    '    """A DAG callback that runs the bundle\'s ``kind`` callbacks (``count`` of them) in the bundle."""',
    "",
    "    def callback(context):",
    "        _run_bundle_dag_callback(dag_id, kind, count, context)",
    "",
    '    callback.__name__ = callback.__qualname__ = f"bundle_{kind}"',
    "    return callback",
    "",
    "",
    "def _bundle_executable(dag_id):",
    '    """The bundle executable for ``dag_id``, found as the ExecutableCoordinator finds it."""',
    "    from airflow.configuration import conf",
    "    from airflow.sdk._shared.module_loading import import_string",
    "    from airflow.sdk.coordinators.executable import ExecutableCoordinator",
    "    from airflow.sdk.coordinators.executable.coordinator import _Bundle",
    "",
    "    misses = []",
    '    for key, spec in conf.getjson("sdk", "coordinators", fallback={}).items():',
    '        cls = import_string(spec["classpath"])',
    "        if not (isinstance(cls, type) and issubclass(cls, ExecutableCoordinator)):",
    "            continue",
    '        coordinator = cls(**spec.get("kwargs", {}))',
    "        try:",
    "            return str(_Bundle.find(coordinator.executables_root, dag_id).path)",
    "        except FileNotFoundError as exc:",
    '            misses.append(f"{key}: {exc}")',
    "    raise FileNotFoundError(",
    '        "; ".join(misses) or "no ExecutableCoordinator in [sdk] coordinators",',
    "    )",
    "",
    "",
    "def _callback_request(dag_id, kind, context):",
    '    """What the bundle is told (bundle.dag_callback.mode): the run, the reason, the relevant ti."""',
    "",
    "    def plain(value):",
    '        value = getattr(value, "value", value)  # enums: their value',
    '        return value.isoformat() if hasattr(value, "isoformat") else value',
    "",
    '    run = context.get("dag_run")',
    '    ti = context.get("ti")',
    "    run_fields = (",
    '        "logical_date",',
    '        "data_interval_start",',
    '        "data_interval_end",',
    '        "run_after",',
    '        "start_date",',
    '        "end_date",',
    '        "run_type",',
    '        "state",',
    '        "conf",',
    "    )",
    '    ti_fields = ("task_id", "try_number", "map_index")',
    "    return {",
    '        "dag_id": dag_id,',
    '        "callback": kind,',
    '        "run_id": context.get("run_id"),',
    '        "reason": context.get("reason"),',
    '        "dag_run": {key: plain(getattr(run, key, None)) for key in run_fields if run},',
    '        "ti": {name: getattr(ti, name, None) for name in ti_fields if ti},',
    "    }",
    "",
    "",
    "def _run_bundle_dag_callback(dag_id, kind, count, context):",
    '    """Run the bundle in DAG-callback mode, bounded; re-log its lines; never raise."""',
    "    import json",
    "    import logging",
    "    import os",
    "    import signal",
    "    import subprocess",
    "",
    '    log = logging.getLogger("pybundle.dag_callback")',
    "    try:",
    '        per_callback = float(os.environ.get("PYBUNDLE_CALLBACK_TIMEOUT_SECONDS") or 10)',
    "    except ValueError:",
    "        per_callback = 10.0",
    "    # the bundle bounds each callback; 10 s to start",
    "    limit = max(per_callback, 0.1) * count + 10",
    "    try:",
    "        executable = _bundle_executable(dag_id)",
    "        request = json.dumps(_callback_request(dag_id, kind, context), default=str)",
    "        process = subprocess.Popen(",
    "            [executable],",
    '            env={**os.environ, "PYBUNDLE_DAG_CALLBACK": request},',
    "            stdin=subprocess.DEVNULL,",
    "            stdout=subprocess.PIPE,",
    "            stderr=subprocess.STDOUT,",
    "            start_new_session=True,",
    "        )",
    "    except Exception as exc:",
    "        log.error(",
    '            "Cannot run the bundle for dag %s %s: %s: %s",',
    "            dag_id,",
    "            kind,",
    "            type(exc).__name__,",
    "            exc,",
    "        )",
    "        return",
    "    try:",
    "        output, _ = process.communicate(timeout=limit)",
    "        timed_out = False",
    "    except subprocess.TimeoutExpired:",
    "        os.killpg(process.pid, signal.SIGKILL)",
    "        output, _ = process.communicate()",
    "        timed_out = True",
    '    for line in output.decode("utf-8", "replace").splitlines():',
    "        try:",
    "            record = json.loads(line)",
    '            level = getattr(logging, str(record["level"]).upper(), logging.INFO)',
    '            log.log(level, "%s: %s", record["logger"], record["event"])',
    "        except (ValueError, TypeError, KeyError):",
    '            log.info("%s", line)',
    "    if timed_out:",
    "        log.error(",
    '            "The bundle did not finish dag %s %s within %.1f s; killed it",',
    "            dag_id,",
    "            kind,",
    "            limit,",
    "        )",
    "    elif process.returncode != 0:",
    "        log.error(",
    '            "The bundle exited %s running dag %s %s",',
    "            process.returncode,",
    "            dag_id,",
    "            kind,",
    "        )",
    "",
    "",
]


def callback_kwarg(dag_id: str, flag: str, counts: dict[str, int]) -> tuple[str, str]:
    """``("on_failure_callback", '_bundle_dag_callback("etl", "on_failure_callback", 1)')``."""
    kind = CALLBACK_FLAGS[flag]
    count = max(int(counts.get(kind, 1)), 1)
    # A keyword of the exploded DAG(...) call: one indent, after "on_..._callback=".
    arguments = bracketed(
        "(", [string(dag_id), string(kind), str(count)], ")", 1, len(f"{kind}={HELPER_NAME}")
    )
    return kind, HELPER_NAME + arguments
