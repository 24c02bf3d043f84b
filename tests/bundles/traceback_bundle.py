"""Tasks that fail the ways a task log's traceback must show well (tests/test_task_tracebacks.py).

``key_error`` raises through a helper (two user frames, the raising statement in the helper);
``chained`` raises ``RuntimeError`` from a ``KeyError`` (``raise ... from``); ``during_handling``
raises while handling a ``KeyError`` (implicit context); ``succeeds`` reports which formatting
modules a task that neither fails nor logs has loaded. The tests compare what each mode writes
with what ``traceback.format_exception`` says for the same exception raised in the test process.
"""

from __future__ import annotations

import sys

from bundle import Bundle, serve

bundle = Bundle("traceback_tests", version="1", queue="pybundle")
dag = bundle.dag("tb_dag")


def lookup(table: dict[str, int], key: str) -> int:
    return table[key]  # the raising statement of every task below


@dag.task
def key_error() -> None:
    lookup({"present": 1}, "missing")


@dag.task
def chained() -> None:
    try:
        lookup({}, "orders_db")
    except KeyError as exc:
        raise RuntimeError("no connection configured for orders_db") from exc


@dag.task
def during_handling() -> None:
    try:
        lookup({}, "first")
    except KeyError:
        lookup({}, "second")


@dag.task
def succeeds() -> list[str]:
    """What traceback formatting needs, loaded in a task that neither fails nor logs: nothing."""
    return sorted(m for m in FORMATTING_MODULES if m in sys.modules)


FORMATTING_MODULES = ("traceback", "linecache", "tokenize", "bundle.core.tracebacks", "logging")

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
