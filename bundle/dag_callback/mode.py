"""DAG-callback mode: run one DAG's ``on_success_callback`` / ``on_failure_callback`` and exit.

Entered when ``PYBUNDLE_DAG_CALLBACK`` is set and no flag is given: the callable the generated DAG
file passes to ``DAG(...)`` (``packer/dagfile_callbacks.py``) starts the bundle executable that way
from inside Airflow's DAG processor. The variable holds one JSON document::

    {"dag_id": "etl", "callback": "on_failure_callback", "run_id": "...", "reason": "task_failure",
     "dag_run": {"logical_date": "...", "run_type": "manual", "state": "failed", "conf": {}, ...},
     "ti": {"task_id": "load", "try_number": 1, "map_index": -1}}

Every log record goes to stdout as one JSON line (``{"level", "logger", "event"}``, masked), which
the DAG file's callable re-logs into the DAG processor's log. Exit codes: 0 when the callbacks ran
(whatever they did: their failures are logged), 1 when the request or the bundle is unusable.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from ..core.provider import BundleProvider, registry_of

ENV = "PYBUNDLE_DAG_CALLBACK"
EXIT_OK, EXIT_ERROR = 0, 1


class _JsonLines(logging.Handler):
    """One JSON line per record on stdout, secrets masked (the runtime's masker)."""

    def emit(self, record: logging.LogRecord) -> None:
        from ..core.masking import masker

        try:
            event = record.getMessage()
            if record.exc_info:
                event = f"{event}\n{logging.Formatter().formatException(record.exc_info)}"
            line = {"level": record.levelname.lower(), "logger": record.name, "event": masker.redact(event)}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        except Exception:  # logging must never take the callback down
            self.handleError(record)


def run(provider: BundleProvider) -> int:
    raw = os.environ.pop(ENV, "")  # children of the callbacks must not re-enter this mode
    root = logging.getLogger()
    root.handlers[:] = [_JsonLines()]
    root.setLevel(logging.INFO)
    log = logging.getLogger("bundle.runtime")
    try:
        request = json.loads(raw)
        dag_id, kind = request["dag_id"], request["callback"]
    except (ValueError, TypeError, KeyError) as exc:
        log.error("%s is not a DAG-callback request (%s: %s)", ENV, type(exc).__name__, exc)
        return EXIT_ERROR
    from ..core.dag_callbacks import (
        DAG_CALLBACK_KINDS,
        context_from_request,
        environment_client,
        run_dag_callbacks,
    )

    if kind not in DAG_CALLBACK_KINDS:
        log.error("unknown DAG callback %r; known: %s", kind, ", ".join(DAG_CALLBACK_KINDS))
        return EXIT_ERROR
    try:
        registry = registry_of(provider)
    except Exception as exc:
        log.error("the bundle's DAGs do not register: %s: %s", type(exc).__name__, exc)
        return EXIT_ERROR
    dag = registry.dags.get(dag_id)
    if dag is None:
        log.error("the bundle has no dag %r (its dags: %s)", dag_id, ", ".join(registry.dags) or "none")
        return EXIT_ERROR
    context = context_from_request(request)
    ran = run_dag_callbacks(dag, kind, context, environment_client(context.ti))
    if not ran:
        log.warning("dag %r has no %s in this bundle", dag_id, kind)
    return EXIT_OK
