"""Local secret redaction for log records.

The supervisor redacts values registered with ``MaskSecret`` in the task log, but records can take
other paths: the stderr fallback when the log socket drops, the go-plugin task log file that this
process writes itself, and ``bundle.testing``. One process-wide masker covers all of them.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

REDACTED = "***"

# Airflow's default ``[core] sensitive_var_conn_names`` vocabulary.
SENSITIVE_NAME_PARTS = (
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "secret",
    "token",
    "keyfile_dict",
    "service_account",
)
# Airflow does not mask very short values: masking "a" would destroy every log line.
_MIN_SECRET_LENGTH = 3


@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    """Cached: it is asked for every variable read, and tasks read the same few keys again and again."""
    lowered = name.lower()
    return any(part in lowered for part in SENSITIVE_NAME_PARTS)


class SecretsMasker:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        """Register a secret; dicts and lists register every string they contain."""
        found: list[str] = []
        _collect_strings(value, found)
        with self._lock:
            new = {s for s in found if len(s) >= _MIN_SECRET_LENGTH} - self._secrets
            if new:
                self._secrets |= new
                ordered = sorted(self._secrets, key=len, reverse=True)  # longest first wins overlaps
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, value: Any, *, keys: bool = False) -> Any:
        """Return ``value`` with every registered secret replaced by ``***`` (recursively).

        ``keys=True`` masks mapping keys too: a log record's extra field names are user data
        (``extra={secret: ...}``), and the supervisor masks values only."""
        pattern = self._pattern
        if pattern is None:
            return value
        return _redact(value, pattern, 0, keys)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None


def _collect_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_strings(item, out)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect_strings(item, out)


def _redact(value: Any, pattern: re.Pattern[str], depth: int, keys: bool = False) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if depth > 20:
        return value
    if isinstance(value, Mapping):
        return {
            pattern.sub(REDACTED, k) if keys and isinstance(k, str) else k: _redact(
                v, pattern, depth + 1, keys
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, pattern, depth + 1, keys) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, pattern, depth + 1, keys) for v in value)
    return value


masker = SecretsMasker()
