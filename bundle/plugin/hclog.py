"""The plugin's own log: hclog-style JSON lines on the real stderr, which the go-plugin host re-logs.

The host parses every stderr line that is a JSON object as an hclog record and *panics* (killing the
whole Edge Worker) when ``@message``, ``@level`` or ``@timestamp`` is not a string, so this module is
the only writer of JSON to stderr and coerces those three keys to strings itself. Lines are kept well
under the host's 64 KiB line buffer, beyond which it splits a line and the JSON would be lost.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from datetime import datetime, timezone
from typing import Any

from ..core.masking import masker

MAX_MESSAGE_CHARS = 16 * 1024
_RESERVED = ("@level", "@message", "@timestamp", "@module")


def hclog_level(levelno: int) -> str:
    """hclog's level names; the host maps anything else to its default level."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def hclog_timestamp(when: float | None = None) -> str:
    """hclog's JSON layout ``2006-01-02T15:04:05.000000Z07:00``, always in UTC."""
    moment = datetime.now(timezone.utc) if when is None else datetime.fromtimestamp(when, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    return str(value)


def hclog_line(
    level: str, message: Any, fields: dict[str, Any] | None = None, when: float | None = None
) -> bytes:
    """One hclog JSON line; the three keys the host type-asserts are always strings."""
    text = masker.redact(str(message))
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... [truncated {len(text) - MAX_MESSAGE_CHARS} characters]"
    record: dict[str, Any] = {
        "@level": str(level),
        "@message": text,
        "@timestamp": hclog_timestamp(when),
    }
    for key, value in (fields or {}).items():
        name = f"extra_{key}" if key in _RESERVED else str(key)
        record[name] = masker.redact(_value(value))
    return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8", "replace")


class HclogWriter:
    """Writes hclog lines to one file descriptor (the real stderr), one whole line per write."""

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()

    def write_line(self, line: bytes) -> None:
        """Write whole lines under a lock: interleaved halves would not parse as JSON on the host."""
        with self._lock:
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError:
                pass  # the host went away; the parent-death watchdog ends the process

    def log(self, level: str, message: Any, **fields: Any) -> None:
        """Log one hclog record with key/value fields (the host shows them as ``key=value``)."""
        self.write_line(hclog_line(level, message, fields))


class HclogHandler(logging.Handler):
    """A ``logging`` handler that renders records as hclog lines through an ``HclogWriter``.

    ``task_records`` formats exceptions as a task log does (pybundle's frames left out, see
    ``bundle.core.tracebacks``): set for a task's records, not for the plugin's own, whose
    errors are pybundle's and need its frames."""

    def __init__(self, writer: HclogWriter, level: int = logging.NOTSET, *, task_records: bool = False):
        super().__init__(level)
        self.writer = writer
        self.task_records = task_records

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            fields.update(getattr(record, "hclog_fields", None) or {})
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = self._format_error(record.exc_info)
            self.writer.write_line(
                hclog_line(hclog_level(record.levelno), record.getMessage(), fields, record.created)
            )
        except Exception:
            self.handleError(record)

    def _format_error(self, exc_info: Any) -> str:
        if self.task_records:
            from ..core.tracebacks import format_exception

            return format_exception(exc_info[1])
        return "".join(traceback.format_exception(*exc_info)).rstrip()
