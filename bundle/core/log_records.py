"""Turn stdlib ``logging`` records into Airflow task-log JSON objects, and decide which to keep.

Shared by the coordinator's log socket and the go-plugin task log file, so both produce what the
released supervisor (and Airflow's log viewer) reads: ``event``, lowercase ``level``, RFC 3339
``timestamp``, ``logger``, flattened extra fields, and an ``exception`` in structlog's dict-traceback
shape (plus each frame's source ``line``, see ``tracebacks``). Keys the supervisor chokes on are
renamed, never emitted: ``msg`` and ``target`` collide with its logging call and crash it, as do
``self`` and ``method_name`` one call further down (structlog's bound logger); a non-string
``timestamp`` crashes its parser.

The supervisor does no level filtering, so the runtime applies ``AIRFLOW__LOGGING__LOGGING_LEVEL``
and ``AIRFLOW__LOGGING__NAMESPACE_LEVELS`` itself (longest dotted logger prefix wins, as in Go).
"""

from __future__ import annotations

import logging
import math
import os
import re
from datetime import datetime, timezone

from .masking import masker

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

# Keys the record carries itself, or that the supervisor/structlog treat specially.
_RESERVED = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "exception",
        "error_detail",
        "msg",
        "target",
        "exc_info",
        "stack_info",
        "positional_args",
        "_record",
        "_from_structlog",
        "logger_name",
        "self",
        "method_name",
    }
)
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
MAX_EVENT_CHARS = 64 * 1024

_LEVEL_NAMES = {
    "NOTSET": logging.NOTSET,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
}


def level_name(levelno: int) -> str:
    """The lowercase name the supervisor accepts; custom levels map to the standard one below them."""
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_to_event(record: logging.LogRecord) -> dict[str, Any]:
    """The JSON object for one record, masked; never raises for any record user code can make."""
    relayed = record.__dict__.get("_pybundle_relayed_event")
    if type(relayed) is dict:  # built by a confined callback's process (bundle.core.confinement)
        return _relayed(relayed, record)
    try:
        message = record.getMessage()
    except Exception as exc:  # bad %-args must not lose the record
        message = f"{record.msg!r} (formatting failed: {type(exc).__name__}: {exc}; args={record.args!r})"
    if not isinstance(message, str):
        message = str(message)
    if len(message) > MAX_EVENT_CHARS:
        message = message[:MAX_EVENT_CHARS] + f"... [truncated {len(message) - MAX_EVENT_CHARS} characters]"
    extras: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        name = f"extra_{key}" if key in _RESERVED else key
        extras[name] = _json_safe(value, 0)
    errors: dict[str, Any] = {}
    if record.exc_info and record.exc_info[1] is not None:
        errors["exception"] = exception_stacks(record.exc_info[1])
    elif record.exc_text:
        errors["extra_exc_text"] = record.exc_text
    if record.stack_info:
        errors["extra_stack_info"] = record.stack_info
    # ``timestamp`` and ``level`` are never masked: the supervisor parses them, and a secret that
    # happens to occur in them ("2026", "nfo") made the timestamp unparsable, which crashes it,
    # or the level unknown, which drops the record. Extra field names are masked too (user data).
    return {
        "timestamp": _timestamp(record.created),
        "level": level_name(record.levelno),
        **masker.redact({"event": message, "logger": record.name or "root"}),
        **masker.redact(extras, keys=True),
        **masker.redact(errors),
    }


def _relayed(event: dict[str, Any], record: logging.LogRecord) -> dict[str, Any]:
    """A confined callback's event (untrusted: its process is the callback's), made safe here:
    masked again (the child may not have known every secret), keys the supervisor chokes on
    renamed as ``record_to_event`` renames them, an ``exception`` kept only in the shape it reads,
    the timestamp and level only when well-formed."""
    stamp, level = event.get("timestamp"), event.get("level")
    safe: dict[str, Any] = {
        "event": str(event.get("event", "")),
        "logger": str(event.get("logger") or "root"),
    }
    for key, value in event.items():
        if not isinstance(key, str) or key in ("timestamp", "level", "event", "logger"):
            continue
        if key == "exception" and _is_stack_list(value):
            safe[key] = value
        elif key in _RESERVED or key.startswith("_"):
            safe[f"extra_{key.lstrip('_')}"] = _json_safe(value, 0)
        else:
            safe[key] = _json_safe(value, 0)
    return {
        "timestamp": stamp
        if isinstance(stamp, str) and _RELAYED_STAMP.match(stamp)
        else _timestamp(record.created),
        "level": level if level in _LOWER_LEVELS else level_name(record.levelno),
        **masker.redact(safe, keys=True),
    }


_RELAYED_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_LOWER_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


def _is_stack_list(value: Any) -> bool:
    """``exception_stacks``'s shape: a list of maps with string ``exc_type``/``exc_value`` and a
    list of frame maps."""
    return isinstance(value, list) and all(
        isinstance(stack, dict)
        and isinstance(stack.get("exc_type"), str)
        and isinstance(stack.get("exc_value"), str)
        and isinstance(stack.get("frames"), list)
        and all(isinstance(frame, dict) for frame in stack["frames"])
        for stack in value
    )


def encode_event(event: dict[str, Any]) -> bytes:
    """One JSON line; invalid UTF-8 is replaced rather than allowed to break the reader."""
    import json  # at the first record, not at every start (most tasks log little or nothing)

    text = json.dumps(event, ensure_ascii=False, default=str, allow_nan=False)
    return text.encode("utf-8", "replace") + b"\n"


def _json_safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 10 and isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    if depth < 10 and isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def exception_stacks(exc: BaseException) -> list[dict[str, Any]]:
    """structlog's dict-traceback shape with source lines, pybundle's frames left out (see
    ``tracebacks``). Imported here, on the failure path: a task that never fails never loads it."""
    from .tracebacks import exception_stacks as stacks

    return stacks(exc)


class LevelPolicy:
    """Which records to keep: a default level plus per-namespace overrides."""

    def __init__(self, default: int = logging.INFO, namespaces: dict[str, int] | None = None):
        self.default = default
        self.namespaces = dict(namespaces or {})
        self._cache: dict[str, int] = {}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LevelPolicy:
        env = os.environ if environ is None else environ
        default = parse_level(env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "")) or logging.INFO
        namespaces: dict[str, int] = {}
        for item in re.split(r"[\s,]+", env.get("AIRFLOW__LOGGING__NAMESPACE_LEVELS", "")):
            name, sep, level = item.partition("=")
            parsed = parse_level(level) if sep else None
            if name and parsed is not None:
                namespaces[name] = parsed
        return cls(default, namespaces)

    @property
    def lowest(self) -> int:
        return min([self.default, *self.namespaces.values()])

    def threshold(self, logger_name: str) -> int:
        cached = self._cache.get(logger_name)
        if cached is None:
            cached = self.default
            best = -1
            for name, level in self.namespaces.items():
                if (logger_name == name or logger_name.startswith(name + ".")) and len(name) > best:
                    cached, best = level, len(name)
            self._cache[logger_name] = cached
        return cached

    def allows(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.threshold(record.name)


def parse_level(text: str) -> int | None:
    value = _LEVEL_NAMES.get(text.strip().upper())
    if value is None or value == logging.NOTSET:
        return logging.DEBUG if value == logging.NOTSET else None
    return value
