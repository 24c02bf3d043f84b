"""Feed JSON log lines to the released supervisor's own log reader and task-log writer.

Usage: ``python -m tests.peers.supervisor_log_reader LINES_FILE TASK_LOG RESULT_JSON``. Each line of
LINES_FILE goes through ``process_log_messages_from_subprocess`` exactly as the supervisor feeds its
log socket, into the task-log logger ``supervise_task`` configures (``_configure_logging``). The
result lists every line that raised inside the peer (which would crash a real supervisor's ``wait()``).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile


def main(lines_file: str, task_log: str, result_file: str) -> None:
    if "AIRFLOW_HOME" not in os.environ:  # a throw-away one, removed when the peer exits
        home = tempfile.mkdtemp(prefix="pybundle-logreader-")
        atexit.register(shutil.rmtree, home, True)
        os.environ["AIRFLOW_HOME"] = home
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.supervisor import _configure_logging, process_log_messages_from_subprocess

    logger, handle = _configure_logging(task_log, Client(base_url=None, dry_run=True, token=""))
    crashes: list[dict[str, str]] = []

    def reader():
        gen = process_log_messages_from_subprocess((logger,))
        next(gen)
        return gen

    gen = reader()
    with open(lines_file, "rb") as lines:
        for line in lines:
            try:
                gen.send(line)
            except Exception as exc:
                crashes.append(
                    {"line": line.decode("utf-8", "replace")[:500], "error": f"{type(exc).__name__}: {exc}"}
                )
                gen = reader()
    handle.close()
    with open(result_file, "w") as out:
        json.dump({"crashes": crashes}, out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
