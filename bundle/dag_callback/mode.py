"""DAG-callback mode: run one DAG's ``on_success_callback`` / ``on_failure_callback`` and exit.

Entered when ``PYBUNDLE_DAG_CALLBACK`` is set and no flag is given: the callable the generated DAG
file passes to ``DAG(...)`` (``packer/dagfile_callbacks.py``) starts the bundle executable that way
from inside Airflow's DAG processor. The variable holds one JSON document::

    {"dag_id": "etl", "callback": "on_failure_callback", "run_id": "...", "reason": "task_failure",
     "dag_run": {"logical_date": "...", "run_type": "manual", "state": "failed", "conf": {}, ...},
     "ti": {"task_id": "load", "try_number": 1, "map_index": -1}}

Every log record goes to stdout as one JSON line (``{"level", "logger", "event"}``, masked), which
the DAG file's callable re-logs into the DAG processor's log; so does every line written to fds 1
and 2 (``print()``, stderr, C code, the callbacks' own children): logger ``stdout`` / ``stderr``,
masked when read. Nothing reaches the real stdout any other way. Exit codes: 0 when the callbacks ran
(whatever they did: their failures are logged), 1 when the request or the bundle is unusable.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from ..core.provider import BundleProvider, registry_of

ENV = "PYBUNDLE_DAG_CALLBACK"
EXIT_OK, EXIT_ERROR = 0, 1


class _Output:
    """The real stdout, kept aside: the one place JSON lines go, a whole line per write."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def line(self, level: str, logger: str, event: str) -> None:
        from ..core.masking import masker

        data = (json.dumps({"level": level, "logger": logger, "event": masker.redact(event)}) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]


class _JsonLines(logging.Handler):
    """One JSON line per record on the real stdout, secrets masked (the runtime's masker)."""

    def __init__(self, output: _Output) -> None:
        super().__init__()
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = record.getMessage()
            if record.exc_info:
                event = f"{event}\n{logging.Formatter().formatException(record.exc_info)}"
            self.output.line(record.levelname.lower(), record.name, event)
        except Exception:  # logging must never take the callback down
            self.handleError(record)


class _Captured:
    """What a callback (or the bundle's import) writes to fds 1 and 2, print() and C code alike,
    turned into masked JSON lines (logger ``stdout`` / ``stderr``) by a reader thread per stream.

    The DAG file's callable re-logs every line it reads verbatim, so nothing may reach the real
    stdout unmasked; and a secret is usually read (and so registered with the masker) just before
    it is printed, so each line is masked when it is read, not when it is written."""

    def __init__(self, output: _Output) -> None:
        self.output = output
        self.readers: list[threading.Thread] = []

    def start(self) -> None:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            thread = threading.Thread(target=self._pump, args=(read_end, name), daemon=True)
            thread.start()
            self.readers.append(thread)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            except (AttributeError, OSError, ValueError):
                pass

    def _pump(self, fd: int, name: str) -> None:
        level = "info" if name == "stdout" else "warning"
        with os.fdopen(fd, "rb") as stream:
            for raw in stream:
                try:
                    self.output.line(level, name, raw.decode("utf-8", "replace").rstrip("\r\n"))
                except OSError:
                    return

    def stop(self, timeout: float = 2.0) -> None:
        """Flush, end the pipes (fds 1 and 2 point at /dev/null afterwards), let the readers finish."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
        deadline = time.monotonic() + timeout
        for thread in self.readers:  # a callback's own child may still hold a write end
            thread.join(max(0.0, deadline - time.monotonic()))


def run(provider: BundleProvider) -> int:
    raw = os.environ.pop(ENV, "")  # children of the callbacks must not re-enter this mode
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    output = _Output(os.dup(1))
    captured = _Captured(output)
    captured.start()
    root = logging.getLogger()
    root.handlers[:] = [_JsonLines(output)]
    root.setLevel(logging.INFO)
    try:
        return _run(provider, raw)
    finally:
        captured.stop()


def _run(provider: BundleProvider, raw: str) -> int:
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
