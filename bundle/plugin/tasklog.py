"""Where a task's log records go in go-plugin mode.

The Edge Worker serves ``<base_log_folder>/<log_path>`` to the Airflow UI, and nothing else carries
task output (``Execute`` returns no logs), so records are written there as the JSON lines Airflow's
log reader expects (``timestamp``, lowercase ``level``, ``event``, ``logger`` and extras; the same
encoder as the coordinator's log socket), masked by the process-wide masker. Without a
``log_path`` (or with ``logging.task.stdout_only``) the Go plugin logged the task to its own stderr
logger, so records then become hclog lines; ``logging.task.to_stdout`` tees to both, as Go did.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..core.log_records import LevelPolicy, encode_event, record_to_event
from .hclog import HclogHandler, HclogWriter
from .settings import Settings

# The plugin's own plumbing logs to stderr only, never into a task's log.
_PRIVATE_PREFIXES = ("bundle.plugin", "grpc")


class _TaskFilter(logging.Filter):
    def __init__(self, policy: LevelPolicy):
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        """Task records at the configured levels; never the plugin's own plumbing."""
        if record.name.startswith(_PRIVATE_PREFIXES):
            return False
        return self.policy.allows(record)


class TaskFileHandler(logging.Handler):
    """Appends one JSON line per record; never raises into task code."""

    def __init__(self, path: Path):
        super().__init__(logging.NOTSET)
        self.path = path
        self._file = open(path, "wb", buffering=0)
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = encode_event(record_to_event(record))
            with self._write_lock:
                self._file.write(line)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self._write_lock:
            if not self._file.closed:
                self._file.close()
        super().close()


class TaskLogging:
    """Installs the task's handlers on the root logger for the duration of one task."""

    def __init__(self, settings: Settings, log_path: str | None, stderr: HclogWriter):
        self.handlers: list[logging.Handler] = []
        self.file: Path | None = None
        policy = LevelPolicy.from_env()
        if log_path is not None and not settings.task_stdout_only:
            self.file = Path(settings.base_log_folder or ".") / log_path
            self.file.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            self.handlers.append(TaskFileHandler(self.file))
        if self.file is None or settings.task_to_stdout:
            self.handlers.append(HclogHandler(stderr))
        for handler in self.handlers:
            handler.addFilter(_TaskFilter(policy))
        self._level = policy.lowest
        self._previous_level: int | None = None

    def __enter__(self) -> TaskLogging:
        root = logging.getLogger()
        self._previous_level = root.level
        root.setLevel(min(self._level, root.level) if root.level else self._level)
        for handler in self.handlers:
            root.addHandler(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        if self._previous_level is not None:
            root.setLevel(self._previous_level)
