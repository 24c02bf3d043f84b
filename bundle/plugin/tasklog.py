"""Where a task's log records go in go-plugin mode.

The Edge Worker serves ``<base_log_folder>/<log_path>`` to the Airflow UI, and nothing else carries
task output (``Execute`` returns no logs), so records are written there as the JSON lines Airflow's
log reader expects (``timestamp``, lowercase ``level``, ``event``, ``logger`` and extras; the same
encoder as the coordinator's log socket), masked by the process-wide masker. Without a
``log_path`` (or with ``logging.task.stdout_only``) the Go plugin logged the task to its own stderr
logger, so records then become hclog lines; ``logging.task.to_stdout`` tees to both, as Go did.

Several ``Execute`` calls may run at once in one plugin process (the Edge Worker starts one process
per workload, but nothing in the protocol forbids more), so records are routed, not broadcast: one
router on the root logger sends each record to the task whose thread emitted it (a context
variable set while the task runs; the heartbeat thread runs in a copy of the task's context). A
record from a thread the runtime did not start for a task (a pool the task code created) belongs to
the only running task; while several run it cannot be attributed and goes to the plugin's stderr
log instead of into another task's file.
"""

from __future__ import annotations

import contextvars
import logging
import os
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


class LogPathError(ValueError):
    """A ``log_path`` the plugin refuses to write to (``Execute`` answers INVALID_ARGUMENT)."""


def task_log_file(base_log_folder: str, log_path: str) -> Path:
    """``<base_log_folder>/<log_path>`` with symlinks resolved, or ``LogPathError``.

    The host sends ``log_path`` and the plugin opens the file for writing, truncating it, as its own
    user: anything that reaches outside the folder (an absolute path, ``..``, a symlink inside the
    folder that points out of it) would let whoever can call ``Execute`` replace any file that user
    can write, so it is refused before anything is created. Go's ``path.Join`` kept an absolute
    ``log_path`` inside the folder; refusing it is stricter and no Airflow host sends one."""
    if not log_path:
        raise LogPathError("log_path is empty")
    if "\x00" in log_path:
        raise LogPathError("log_path contains a NUL character")
    if os.path.isabs(log_path):
        raise LogPathError(f"log_path {log_path!r} is absolute; it must be relative to the base log folder")
    base = os.path.realpath(base_log_folder or ".")
    target = os.path.realpath(os.path.join(base, log_path))
    if os.path.commonpath([base, target]) != base or target == base:
        raise LogPathError(f"log_path {log_path!r} leaves the base log folder")
    return Path(target)


# O_NOFOLLOW: the last component was resolved by task_log_file; a symlink planted there since is
# refused (ELOOP) instead of followed out of the folder.
_OPEN_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


class TaskFileHandler(logging.Handler):
    """Appends one JSON line per record; never raises into task code."""

    def __init__(self, path: Path):
        super().__init__(logging.NOTSET)
        self.path = path
        self._file = os.fdopen(os.open(path, _OPEN_FLAGS, 0o666), "wb", buffering=0)
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = encode_event(record_to_event(record))
            with self._write_lock:
                if not self._file.closed:  # a straggler (a late heartbeat thread) after the task
                    self._file.write(line)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self._write_lock:
            if not self._file.closed:
                self._file.close()
        super().close()


_current_task: contextvars.ContextVar[TaskLogging | None] = contextvars.ContextVar(
    "pybundle_task_logging", default=None
)


class _Router(logging.Handler):
    """The single root handler while any task runs: each record goes to the task it belongs to."""

    def __init__(self, stderr: HclogWriter):
        super().__init__(logging.NOTSET)
        self.active: list[TaskLogging] = []
        self.saved_level = logging.NOTSET
        self.unattributed = HclogHandler(stderr, task_records=True)

    def emit(self, record: logging.LogRecord) -> None:
        owner = _current_task.get()
        active = self.active  # replaced, never mutated, under _ROUTER_LOCK: safe to read here
        if owner is None or owner not in active:
            owner = active[0] if len(active) == 1 else None
        if owner is not None:
            owner.dispatch(record)
        elif not record.name.startswith(_PRIVATE_PREFIXES):
            self.unattributed.handle(record)


_ROUTER_LOCK = threading.Lock()
_router: _Router | None = None


class TaskLogging:
    """Routes one task's records to its handlers for the duration of the task."""

    def __init__(self, settings: Settings, log_file: Path | None, stderr: HclogWriter):
        """``log_file`` comes from :func:`task_log_file` (already checked), ``None`` without a log_path."""
        self.handlers: list[logging.Handler] = []
        self.file: Path | None = None
        self._stderr = stderr
        policy = LevelPolicy.from_env()
        if log_file is not None and not settings.task_stdout_only:
            self.file = log_file
            self.file.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            self.handlers.append(TaskFileHandler(self.file))
        if self.file is None or settings.task_to_stdout:
            self.handlers.append(HclogHandler(stderr, task_records=True))
        for handler in self.handlers:
            handler.addFilter(_TaskFilter(policy))
        self._level = policy.lowest
        self._token: contextvars.Token[TaskLogging | None] | None = None

    def dispatch(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            handler.handle(record)

    def close(self) -> None:
        """Close the handlers of a TaskLogging that was never entered."""
        for handler in self.handlers:
            handler.close()

    def __enter__(self) -> TaskLogging:
        global _router
        root = logging.getLogger()
        with _ROUTER_LOCK:
            if _router is None:
                _router = _Router(self._stderr)
                _router.saved_level = root.level
                root.addHandler(_router)
            _router.active = [*_router.active, self]
            _set_root_level(root, _router)
        self._token = _current_task.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        global _router
        if self._token is not None:
            _current_task.reset(self._token)
            self._token = None
        root = logging.getLogger()
        with _ROUTER_LOCK:
            if _router is not None:
                _router.active = [task for task in _router.active if task is not self]
                if _router.active:
                    _set_root_level(root, _router)
                else:
                    root.removeHandler(_router)
                    root.setLevel(_router.saved_level)
                    _router = None
        for handler in self.handlers:
            handler.close()


def _set_root_level(root: logging.Logger, router: _Router) -> None:
    """The lowest level any running task wants (and no higher than the level before any task)."""
    levels = [task._level for task in router.active]
    if router.saved_level:
        levels.append(router.saved_level)
    root.setLevel(min(levels))
