"""Task logs as a person reads them: the supervisor's JSON lines, one readable line per record.

The supervisor writes each task's log exactly as the Airflow UI reads it (JSON lines: timestamp,
level, event, logger, extra fields, ``error_detail`` for exceptions), after its own secret
masking. Nothing is re-masked or filtered here: what is printed is what Airflow stored, so a
``***`` in the output is the supervisor's masking at work.
"""

from __future__ import annotations

import json
from typing import Any

_STANDARD_KEYS = ("timestamp", "level", "event", "logger", "error_detail")


def parse_log(text: str) -> list[dict[str, Any]]:
    """The records of a JSON-lines task log; a line that is not a JSON object becomes ``{"event": line}``."""
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = {"event": line}
        records.append(record if isinstance(record, dict) else {"event": line})
    return records


def format_record(record: dict[str, Any]) -> list[str]:
    """``HH:MM:SS.mmm LEVEL    logger: event key=value ...``, then the event's further lines and the
    exception's, indented, so every line of a record is visibly part of it."""
    stamp = str(record.get("timestamp") or "")
    time_part = stamp.split("T", 1)[1][:12] if "T" in stamp else stamp[:12]
    level = str(record.get("level") or "").upper()
    logger = record.get("logger")
    event = record.get("event", "")
    text = event if isinstance(event, str) else json.dumps(event, default=str)
    extras = [f"{k}={_short(v)}" for k, v in record.items() if k not in _STANDARD_KEYS]
    first, *more = text.split("\n")
    head = f"{time_part:<12} {level:<8} " + (f"{logger}: " if logger else "") + first
    lines = [head + (" " + " ".join(extras) if extras else "")]
    lines += [f"    {line}" if line else "" for line in more]  # a multi-line message stays in its record
    lines += [f"    {line}" if line else "" for line in _exception_lines(record.get("error_detail"))]
    return lines


def format_log(text: str) -> list[str]:
    """Every record of a task log, formatted."""
    out: list[str] = []
    for record in parse_log(text):
        out += format_record(record)
    return out


def last_error(text: str) -> str | None:
    """The last exception (``Type: message``) or error-level event in a task log, for a short note.

    Of a chain it is the outermost exception (``error_detail[0]``), the one the task raised and
    the last line Python prints, not the root cause the chain ends with."""
    for record in reversed(parse_log(text)):
        detail = record.get("error_detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return f"{detail[0].get('exc_type', 'Exception')}: {detail[0].get('exc_value', '')}"
        if str(record.get("level", "")).lower() in ("error", "critical", "exception"):
            return str(record.get("event", ""))
    return None


def _exception_lines(detail: Any) -> list[str]:
    """``error_detail`` as Python prints the exception: root cause first, chained exceptions after
    Python's separators, each frame's source line under it when the record carries one."""
    from bundle.core.tracebacks import format_stacks

    return format_stacks(detail)


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
