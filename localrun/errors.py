"""Exit codes and the errors that map to them.

Every way ``bundle-run`` can end has one documented exit code, so scripts and CI can tell "a task
failed" apart from "you called it wrong" and from "this machine lacks Airflow".
"""

from __future__ import annotations

EXIT_OK = 0
"""Every task of the run succeeded or was skipped."""
EXIT_TASKS_FAILED = 1
"""The run finished, but at least one task ended failed, upstream_failed or removed."""
EXIT_USAGE = 2
"""Bad input: unknown option, DAG or task id; unreadable or malformed variables/connections file."""
EXIT_MISSING_AIRFLOW = 3
"""apache-airflow-task-sdk (the supervisor ``bundle-run`` drives) is not importable."""
EXIT_BUNDLE = 4
"""The bundle itself could not be used: the target does not load, its spec dump or DAG parse failed."""
EXIT_INTERNAL = 5
"""``bundle-run`` could not do its job (the worker process died or never started)."""
EXIT_INTERRUPTED = 130
"""Interrupted with Ctrl-C (like a shell reports SIGINT)."""


class BundleRunError(Exception):
    """An error with a one-line message for the user and the exit code it ends the program with."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        """Extra lines (captured stderr, a traceback) printed under the message."""


class UsageError(BundleRunError):
    """The command line or an input file is wrong; nothing was run."""

    exit_code = EXIT_USAGE


class MissingAirflowError(BundleRunError):
    """The optional ``airflow`` extra is not installed (or does not import)."""

    exit_code = EXIT_MISSING_AIRFLOW


class BundleError(BundleRunError):
    """The bundle program cannot be used as it is: fix the bundle, not the command."""

    exit_code = EXIT_BUNDLE


class InternalError(BundleRunError):
    """``bundle-run``'s own machinery failed (its worker died or never started)."""

    exit_code = EXIT_INTERNAL
