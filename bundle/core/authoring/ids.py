"""The ids Airflow accepts for DAGs, tasks and queues, checked when they are registered."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import RegistrationError

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

MAX_ID_LENGTH = 250
ID_PATTERN = re.compile(r"^[\w.-]+$")


def validate_id(kind: str, value: Any) -> str:
    """Airflow's ``validate_key``: a non-empty str of at most 250 letters, digits, ``_``, ``.``, ``-``."""
    if not isinstance(value, str):
        raise RegistrationError(f"{kind} id must be a str, got {type(value).__name__} {value!r}")
    if not value:
        raise RegistrationError(f"{kind} id must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise RegistrationError(
            f"{kind} id {value[:40]!r}... is {len(value)} characters; Airflow allows {MAX_ID_LENGTH}"
        )
    if not ID_PATTERN.match(value):
        raise RegistrationError(f"{kind} id {value!r} may contain only letters, digits, '_', '.' and '-'")
    return value


def task_id_of(fn: Callable[..., Any]) -> str:
    """The task id a function registers under when none is given: its name, as Airflow's ``@task``."""
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not ID_PATTERN.match(name):
        raise RegistrationError(
            f"cannot derive a task id from {fn!r}; name it explicitly (task_id=... or add_task_with_name)"
        )
    return name
