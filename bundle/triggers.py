"""Triggers a task can defer to with ``ctx.defer(trigger=...)``.

A trigger runs on Airflow's triggerer, which imports its class by classpath in **its own** Python
environment and builds it from the kwargs given here (``Trigger(classpath, **kwargs)``): any
trigger installed on the triggerer can be used, if the kwargs match its ``__init__``. The typed
helpers build the kwargs of apache-airflow-providers-standard's triggers exactly as their own
``serialize()`` does, so the triggerer sees what a Python operator would have stored.
Nothing here imports Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .core.deferral import TaskDeferralError, TaskDeferralTimeout, TaskDeferred

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DagStateTrigger",
    "DateTimeTrigger",
    "FileTrigger",
    "TaskDeferralError",
    "TaskDeferralTimeout",
    "TaskDeferred",
    "TimeDeltaTrigger",
    "Trigger",
]

_STANDARD = "airflow.providers.standard.triggers."


class Trigger:
    """Any trigger class, by its import path, with the keyword arguments of its ``__init__``.

    ``Trigger("my_company.triggers.QueueTrigger", queue="orders", poll_interval=10.0)``. Values
    must be plain JSON, aware ``datetime``, ``timedelta``, tuples or sets (encoded as Airflow's
    serde encodes them); anything else is refused when the task defers, naming the key."""

    __slots__ = ("classpath", "kwargs")

    def __init__(self, classpath: str, /, **kwargs: Any) -> None:
        if not isinstance(classpath, str) or "." not in classpath.strip(".") or " " in classpath:
            raise ValueError(f"a trigger classpath is 'package.module.ClassName', got {classpath!r}")
        self.classpath = classpath
        self.kwargs: dict[str, Any] = dict(kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """``(classpath, kwargs)``, Airflow's ``BaseTrigger.serialize`` shape."""
        return self.classpath, dict(self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}({self.classpath!r}{', ' if args else ''}{args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trigger) and other.serialize() == self.serialize()

    __hash__ = None  # type: ignore[assignment]


class DateTimeTrigger(Trigger):
    """Fires at ``moment`` (aware; stored in UTC) with the moment as the event; with
    ``end_from_trigger=True`` the triggerer marks the task successful itself, with no resume."""

    __slots__ = ()

    def __init__(self, moment: datetime, *, end_from_trigger: bool = False) -> None:
        if not isinstance(moment, datetime):
            raise TypeError(f"DateTimeTrigger needs a datetime, got {type(moment).__name__}")
        if moment.utcoffset() is None:
            raise ValueError(
                "DateTimeTrigger needs a timezone-aware datetime (naive ones are refused, as in Airflow)"
            )
        super().__init__(
            _STANDARD + "temporal.DateTimeTrigger",
            moment=moment.astimezone(timezone.utc),
            end_from_trigger=bool(end_from_trigger),
        )


class TimeDeltaTrigger(DateTimeTrigger):
    """Fires ``delta`` from now. Stored as a ``DateTimeTrigger`` at the absolute moment, as Airflow
    stores it (a delta kept as such would start over at every triggerer restart)."""

    __slots__ = ()

    def __init__(self, delta: timedelta, *, end_from_trigger: bool = False) -> None:
        if not isinstance(delta, timedelta):
            raise TypeError(f"TimeDeltaTrigger needs a timedelta, got {type(delta).__name__}")
        super().__init__(datetime.now(timezone.utc) + delta, end_from_trigger=end_from_trigger)


class FileTrigger(Trigger):
    """Fires (event ``True``) once ``filepath`` (a path or glob, on the triggerer's machine)
    exists, checking every ``poke_interval`` seconds."""

    __slots__ = ()

    def __init__(self, filepath: str, recursive: bool = False, poke_interval: float = 5.0) -> None:
        if not isinstance(filepath, str) or not filepath:
            raise ValueError(f"FileTrigger needs a file path, got {filepath!r}")
        super().__init__(
            _STANDARD + "file.FileTrigger",
            filepath=filepath,
            recursive=bool(recursive),
            poke_interval=float(poke_interval),
        )


class DagStateTrigger(Trigger):
    """Fires once every run in ``run_ids`` of ``dag_id`` is in one of ``states``; the event is
    ``(classpath, {..., run_id: state})``. What ``ctx.trigger_dag_run(deferrable=True)`` uses."""

    __slots__ = ()

    def __init__(
        self,
        dag_id: str,
        states: list[str],
        run_ids: list[str] | None = None,
        execution_dates: list[datetime] | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__(
            _STANDARD + "external_task.DagStateTrigger",
            dag_id=dag_id,
            states=[str(s) for s in states],
            poll_interval=float(poll_interval),
            run_ids=list(run_ids) if run_ids is not None else None,
            execution_dates=list(execution_dates) if execution_dates is not None else None,
        )
