"""``LogChannel``: the ``logging.Handler`` that turns records into the supervisor's JSON lines.

Installed on the root logger as soon as anything imports ``logging`` (see ``log_hook``), so the
injected logger, plain ``logging.getLogger(__name__)`` and ``warnings`` all reach Airflow's task
log. ``emit`` only formats and hands the line to a ``LogPipe``; it never blocks or raises.
"""

from __future__ import annotations

import logging
import sys
import time

from ..core.log_records import LevelPolicy, encode_event, level_name, record_to_event
from ..core.masking import masker
from .log_pipe import LogPipe


class LogChannel(logging.Handler):
    def __init__(self, policy: LevelPolicy, pipe: LogPipe | None = None):
        super().__init__(logging.NOTSET)
        self.policy = policy
        self.pipe = pipe if pipe is not None else LogPipe()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self.policy.allows(record):
                return
            line = encode_event(record_to_event(record))
        except Exception as exc:  # a broken record must never break the task, nor vanish
            try:
                line = encode_event(_unformattable(record, exc))
            except Exception:
                self.handleError(record)
                return
        self.pipe.put(line)

    def flush(self) -> None:
        """``logging.shutdown`` calls this at exit: let queued lines reach the socket first."""
        self.pipe.flush()

    def handleError(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"pybundle: could not format a log record from {record.name!r}\n")
        except Exception:
            pass


def _unformattable(record: logging.LogRecord, exc: Exception) -> dict[str, object]:
    """A stand-in for a record whose message or fields cannot be turned into text.

    E.g. an argument whose ``__str__`` raises. The task log still shows that something was
    logged, where and at what level, instead of the record disappearing."""
    created, levelno, name = record.created, record.levelno, record.name
    try:
        reason = f"{type(exc).__name__}: {exc}"
    except Exception:
        reason = type(exc).__name__
    return {
        "timestamp": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(created if isinstance(created, (int, float)) else None)
        ),
        "level": level_name(levelno) if isinstance(levelno, int) else "error",
        "event": masker.redact(f"pybundle could not format a log record ({reason})"),
        "logger": name if isinstance(name, str) else "root",
        "extra_pathname": str(record.pathname),
        "extra_lineno": record.lineno if isinstance(record.lineno, int) else None,
    }


def install(channel: LogChannel) -> None:
    """Route every logger and ``warnings`` through ``channel``, filtered by its level policy."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(channel)
    root.setLevel(channel.policy.lowest)
    logging.captureWarnings(True)
