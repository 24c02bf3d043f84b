"""Sensors (``@dag.sensor``): a task whose function is a poke, repeated until it says done.

The options are Airflow's ``BaseSensorOperator``'s (task-sdk 1.3.2, ``airflow/sdk/bases/sensor.py``),
with its names, defaults and checks, so that a bundle sensor and its Python twin ``@task.sensor``
behave the same under the same scheduler:

* ``poke_interval`` (60 s), ``timeout`` (``None``: Airflow's ``[sensors] default_timeout``, 7 days
  unless a deployment changes it; the bundle cannot read the deployment's configuration, so it uses
  that default), ``max_wait`` (``None``): a ``timedelta`` or a non-negative number of seconds;
* ``mode``: ``"poke"`` (the task sleeps between pokes, holding its worker slot) or ``"reschedule"``
  (it ends ``up_for_reschedule`` after each unsuccessful poke and the scheduler runs it again);
* ``soft_fail`` (a timeout or a ``FailTask``/``TaskTimeout`` out of the poke skips the task),
  ``never_fail`` (any error of the poke skips it; exclusive with ``soft_fail``), ``silent_fail`` (an
  ordinary exception of the poke is logged and counts as "not done yet"), ``exponential_backoff``.

As in Airflow, where ``apply_defaults`` fills an operator's arguments from ``default_args``, they
may also come from the DAG's or a task group's ``default_args`` (``@dag.sensor``'s own win): there
they reach sensors only, every other task ignores them (``options.SENSOR_DEFAULT_ARGS``), and the
DAG's ``default_args`` serialize them as given, as core does. Registration only attaches a :class:`SensorSpec` (``Task.sensor``); the
poke loop lives in :mod:`bundle.core.sensing`, imported only when a sensor runs.
"""

from __future__ import annotations

from datetime import timedelta

from ..errors import FailTask, RegistrationError

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Mapping
    from typing import Any

    from .task import Task

POKE, RESCHEDULE = "poke", "reschedule"
VALID_MODES = (POKE, RESCHEDULE)
DEFAULT_POKE_INTERVAL = 60.0
DEFAULT_TIMEOUT = 7 * 24 * 3600.0  # Airflow's [sensors] default_timeout
# Airflow's BaseSensorOperator keyword arguments and their defaults (timeout None: the config's).
SENSOR_DEFAULTS: dict[str, Any] = {
    "poke_interval": DEFAULT_POKE_INTERVAL,
    "timeout": None,
    "soft_fail": False,
    "mode": POKE,
    "exponential_backoff": False,
    "max_wait": None,
    "silent_fail": False,
    "never_fail": False,
}
SENSOR_OPTIONS = frozenset(SENSOR_DEFAULTS)


class PokeReturnValue:
    """What a poke may return instead of a bool (Airflow's ``PokeReturnValue``): ``is_done`` says
    whether to stop poking; ``xcom_value``, when done, is pushed as the ``return_value`` XCom.

    (A poke that returns a plain truthy value pushes nothing, as in Airflow.)"""

    __slots__ = ("is_done", "xcom_value")

    def __init__(self, is_done: bool, xcom_value: Any = None) -> None:
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self) -> bool:
        return bool(self.is_done)

    def __repr__(self) -> str:
        return f"PokeReturnValue(is_done={self.is_done!r}, xcom_value={self.xcom_value!r})"


class SensorTimeout(FailTask):
    """The sensor's ``timeout`` elapsed before a poke said done (Airflow's ``AirflowSensorTimeout``).

    A ``FailTask``: the task fails without using a retry, as in Airflow (or is skipped with
    ``soft_fail``). A poke may raise it too."""


class SensorSpec:
    """A sensor's options once checked: seconds as floats, ``max_wait`` ``None`` or seconds."""

    __slots__ = (
        "exponential_backoff",
        "max_wait",
        "mode",
        "never_fail",
        "poke_interval",
        "silent_fail",
        "soft_fail",
        "timeout",
    )

    def __init__(
        self,
        *,
        poke_interval: float,
        timeout: float,
        mode: str,
        soft_fail: bool,
        exponential_backoff: bool,
        max_wait: float | None,
        silent_fail: bool,
        never_fail: bool,
    ) -> None:
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.mode = mode
        self.soft_fail = soft_fail
        self.exponential_backoff = exponential_backoff
        self.max_wait = max_wait
        self.silent_fail = silent_fail
        self.never_fail = never_fail

    @property
    def reschedule(self) -> bool:
        """Airflow's ``BaseSensorOperator.reschedule``, which core serializes for every sensor."""
        return self.mode == RESCHEDULE

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(self.__slots__))
        return f"SensorSpec({fields})"


def sensor_spec(owner: str, given: Mapping[str, Any]) -> SensorSpec:
    """Check a sensor's options the way ``BaseSensorOperator.__init__`` does; ``given`` are the
    decorator's keywords, ``owner`` (``dag.task``) names the task in the ``RegistrationError``."""
    values = {**SENSOR_DEFAULTS, **given}
    where = f"sensor {owner!r}"
    for name in ("soft_fail", "exponential_backoff", "silent_fail", "never_fail"):
        if not isinstance(values[name], bool):
            raise RegistrationError(f"{where}: {name} must be a bool, got {values[name]!r}")
    if values["soft_fail"] and values["never_fail"]:
        raise RegistrationError(
            f"{where}: soft_fail and never_fail are mutually exclusive, you can not provide both."
        )
    mode = values["mode"]
    if mode not in VALID_MODES:
        raise RegistrationError(f"{where}: the mode must be one of {list(VALID_MODES)}; received {mode!r}.")
    timeout = DEFAULT_TIMEOUT if values["timeout"] is None else _seconds(where, "timeout", values["timeout"])
    max_wait = None if values["max_wait"] is None else _seconds(where, "max_wait", values["max_wait"])
    return SensorSpec(
        poke_interval=_seconds(where, "poke_interval", values["poke_interval"]),
        timeout=timeout,
        mode=mode,
        soft_fail=values["soft_fail"],
        exponential_backoff=values["exponential_backoff"],
        max_wait=max_wait or None,  # Airflow tests ``if self.max_wait``: zero means no cap
        silent_fail=values["silent_fail"],
        never_fail=values["never_fail"],
    )


def _seconds(where: str, name: str, value: Any) -> float:
    """``_coerce_poke_interval`` / ``_coerce_timeout`` / ``_coerce_max_wait``: a timedelta or a
    non-negative number of seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise RegistrationError(
        f"{where}: {name} must be a timedelta or a non-negative number of seconds, got {value!r}"
    )


def attach_sensor(task: Task, given: Mapping[str, Any]) -> None:
    """Make ``task`` a sensor with the options ``given`` to ``@dag.sensor`` over its task group's
    ``default_args`` over the DAG's (Airflow's ``get_merged_defaults``, which ``apply_defaults``
    feeds to ``BaseSensorOperator.__init__``)."""
    group_args = task.group.default_args if task.group is not None else {}
    merged = {**task.dag.options.get("default_args", {}), **group_args}
    defaults = {name: merged[name] for name in SENSOR_OPTIONS if name in merged}
    task.sensor = sensor_spec(f"{task.dag.dag_id}.{task.task_id}", {**defaults, **given})
