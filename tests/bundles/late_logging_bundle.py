"""A bundle that imports nothing but pybundle at module level: ``logging`` arrives only inside a task.

Used to check that the coordinator runtime starts without ``logging`` and still routes every record
to the task log once a task imports it."""

from __future__ import annotations

import sys

from bundle import Bundle, Client

bundle = Bundle("late_logging", version="1")
dag = bundle.dag("late_logging_dag")


@dag.task
def imports_logging_late(client: Client) -> dict:
    loaded_before = sorted(m for m in ("logging", "typing", "json") if m in sys.modules)
    import logging

    logging.getLogger("late.module").warning("logged after a late import of logging")
    return {"loaded_before_the_task_imported_logging": loaded_before}


@dag.task
def never_logs(client: Client) -> dict:
    return {"loaded": sorted(m for m in ("logging", "typing", "json") if m in sys.modules)}


if __name__ == "__main__":
    from bundle import serve

    raise SystemExit(serve(bundle))
