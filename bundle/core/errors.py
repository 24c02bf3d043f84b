"""Exceptions a bundle author raises or catches.

Outcome exceptions mirror Airflow's (``AirflowFailException`` / ``AirflowSkipException``) so a
Python Airflow user can guess their meaning; lookup errors are ``LookupError`` subclasses so a plain
``except LookupError`` keeps working.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any


class RegistrationError(ValueError):
    """A DAG or task definition Airflow would reject; raised while the bundle module is imported."""


class FailTask(Exception):
    """Fail the task immediately, without using a remaining retry."""


class SkipTask(Exception):
    """Mark the task as skipped."""


class TaskTimeout(BaseException):
    """The task ran longer than its ``execution_timeout`` (Airflow's ``AirflowTaskTimeout``).

    A ``BaseException``, as in Airflow, so a task's own ``except Exception`` cannot swallow it; the
    task then ends ``up_for_retry`` when the run has a retry left, else ``failed``. ``timeout`` is the
    limit that was exceeded."""

    def __init__(self, message: str, timeout: Any = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class TaskCancelled(Exception):
    """Raised by ``Context.raise_if_cancelled()`` once the runtime was asked to stop the task."""


class VariableNotFound(LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"variable {key!r} not found")
        self.key = key


class ConnectionNotFound(LookupError):
    def __init__(self, conn_id: str) -> None:
        super().__init__(f"connection {conn_id!r} not found")
        self.conn_id = conn_id


class NotFound(LookupError):
    """Any other resource the Airflow API reports as missing (asset, dag run, task state, ...)."""

    def __init__(self, error: str, detail: Any) -> None:
        super().__init__(f"{error}: {detail!r}")
        self.error = error
        self.detail = detail


class AirflowApiError(RuntimeError):
    """The supervisor or the Execution API answered a request with an error.

    ``error`` is Airflow's ``ErrorType`` value (``API_SERVER_ERROR``, ``PERMISSION_DENIED``, ...)
    and ``detail`` its detail mapping, kept verbatim so nothing the peer said is lost.
    """

    def __init__(self, request_type: str, error: str, detail: Any) -> None:
        super().__init__(f"{request_type} failed: {error}: {detail!r}")
        self.request_type = request_type
        self.error = error
        self.detail = detail


class InvalidRequest(ValueError):
    """A request the peer would silently drop (and so hang the task); refused before sending."""


class RequestNotAllowed(PermissionError):
    """A request outside the access levels of the current workload (a write from a callback, a
    task-lifecycle request while parsing DAGs), refused before it reaches the supervisor.

    ``request_type`` is the ``ToSupervisor`` type, ``group`` its access level (``"write"``, ...),
    ``workload`` who tried (``"task"``, ``"callback"``, ``"DAG parse"``): docs/access-levels.md."""

    def __init__(
        self,
        message: str,
        *,
        request_type: str | None = None,
        group: str | None = None,
        workload: str | None = None,
    ) -> None:
        super().__init__(message)
        self.request_type = request_type
        self.group = group
        self.workload = workload
