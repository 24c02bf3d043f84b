"""DAG and task attributes, with Airflow's names, types and defaults.

Every keyword a user passes to ``Bundle.dag(...)`` or ``@dag.task(...)`` is checked here, when the
bundle module is imported: an unknown name or a value of the wrong type is a ``RegistrationError``
that names the DAG/task and the attribute. Nothing is silently dropped, because an attribute that
never reaches serialization would make a DAG behave differently from what its author wrote.

Values are normalised (numbers of seconds become ``timedelta``, naive datetimes become UTC, tag
collections become sorted lists) so the serializer and the runtime see one representation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

from .errors import RegistrationError

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

    Normaliser = Callable[[Any], Any]

TRIGGER_RULES = frozenset(
    {
        "all_success",
        "all_failed",
        "all_done",
        "all_done_min_one_success",
        "all_done_setup_success",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_skipped",
        "always",
        "none_failed_min_one_success",
        "all_skipped",
    }
)
WEIGHT_RULES = frozenset({"downstream", "upstream", "absolute"})

# Airflow's cron presets, expanded the way the Python SDK expands them before serializing.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
# kept as written: the Python SDK serializes them verbatim
SCHEDULE_KEYWORDS = frozenset({"@once", "@continuous", "@annually"})
_CRON_RANGES = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a bool, got {type(value).__name__}")
    return value


def _int(minimum: int | None = None) -> Normaliser:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int, got {type(value).__name__}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        return value

    return check


def _optional(check: Normaliser) -> Normaliser:
    def optional(value: Any) -> Any:
        return None if value is None else check(value)

    return optional


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {type(value).__name__}")
    return value


def _non_empty_str(value: Any) -> str:
    if not _str(value):
        raise ValueError("must not be empty")
    return value


def _one_of(allowed: frozenset[str]) -> Normaliser:
    def check(value: Any) -> str:
        value = getattr(value, "value", value)  # accept Airflow's str enums too
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(sorted(allowed))}")
        return value

    return check


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a timedelta or a number of seconds, got {type(value).__name__}")
    return timedelta(seconds=value)


def _datetime(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    # Airflow reads a naive datetime in its default timezone, UTC unless configured otherwise.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _tags(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"expected a list of str, got {type(value).__name__}")
    for tag in value:
        if not isinstance(tag, str):
            raise TypeError(f"every tag must be a str, got {tag!r}")
        if len(tag) > 100:
            raise ValueError(f"tag {tag[:20]!r}... is longer than Airflow's 100 characters")
    return sorted(set(value))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return value


def _assets(value: Any) -> list[Any]:
    """A task's ``outlets`` / ``inlets`` (``bundle.Asset`` objects); only tasks with them load the
    asset module."""
    from .authoring.assets import normalise_assets

    return normalise_assets(value)


def normalise_schedule(value: Any) -> Any:
    """``None``, ``@once``, ``@continuous``, a cron preset or expression, a ``timedelta``, or assets
    (an ``Asset``, ``a & b`` / ``a | b``, a list: ``bundle.core.authoring.assets``)."""
    if value is None or isinstance(value, timedelta):
        if isinstance(value, timedelta) and value <= timedelta(0):
            raise ValueError("a timedelta schedule must be positive")
        return value
    if not isinstance(value, str):
        from .authoring.assets import normalise_asset_schedule  # only asset-scheduled DAGs load it

        return normalise_asset_schedule(value)
    if value in SCHEDULE_KEYWORDS:
        return value
    if value.startswith("@"):
        if value not in CRON_PRESETS:
            known = ", ".join(sorted([*SCHEDULE_KEYWORDS, *CRON_PRESETS]))
            raise ValueError(f"unknown schedule preset {value!r}; known presets: {known}")
        return CRON_PRESETS[value]
    fields = value.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"{value!r} is not a cron expression (5 or 6 space-separated fields)")
    for field, (name, low, high) in zip(fields, _CRON_RANGES, strict=False):
        for number in re.findall(r"\d+", field.split("/")[0]):
            if not low <= int(number) <= high:
                raise ValueError(f"{value!r}: {name} {number} is outside {low}-{high}")
    return " ".join(fields)


# The five task callback kinds, defined only here (``bundle.core.callbacks`` and ``execution`` use this):
# a callable or a list of them; run by the runtime (``bundle.core.callbacks``), never by Airflow.
CALLBACK_OPTIONS = (
    "on_execute_callback",
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
)


def _callbacks(value: Any) -> tuple[Any, ...]:
    if value is None or value == []:
        return ()
    from .callbacks import normalise_callbacks  # only bundles with callbacks load it

    return normalise_callbacks(value)


TASK_OPTIONS: dict[str, Normaliser] = {
    "queue": _non_empty_str,
    "pool": _non_empty_str,
    "pool_slots": _int(1),
    "retries": _int(0),
    "retry_delay": _duration,
    "max_retry_delay": _optional(_duration),
    "retry_exponential_backoff": _number,
    "priority_weight": _int(),
    "weight_rule": _one_of(WEIGHT_RULES),
    "trigger_rule": _one_of(TRIGGER_RULES),
    "owner": _non_empty_str,
    "execution_timeout": _optional(_duration),
    "executor": _optional(_str),
    "depends_on_past": _bool,
    "ignore_first_depends_on_past": _bool,
    "wait_for_past_depends_before_skipping": _bool,
    "wait_for_downstream": _bool,
    "do_xcom_push": _bool,
    "multiple_outputs": _bool,
    "doc_md": _optional(_str),
    "task_display_name": _optional(_str),
    "start_date": _optional(_datetime),
    "end_date": _optional(_datetime),
    "max_active_tis_per_dag": _optional(_int(1)),
    "max_active_tis_per_dagrun": _optional(_int(1)),
    "map_index_template": _optional(_str),
    "outlets": _assets,
    "inlets": _assets,
    **dict.fromkeys(CALLBACK_OPTIONS, _callbacks),
}


def _sensor_seconds(value: Any) -> Any:
    """A sensor duration in ``default_args``: checked, kept as given (core serializes it so)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise TypeError(f"expected a timedelta or a non-negative number of seconds, got {value!r}")
    return value


# ``BaseSensorOperator``'s arguments, accepted in DAG and task-group ``default_args`` as Airflow's
# ``apply_defaults`` accepts them: they reach sensors only (``authoring.sensors`` merges them under the
# decorator's); every other task ignores them, as an operator ignores default_args outside its signature.
SENSOR_DEFAULT_ARGS: dict[str, Normaliser] = {
    "poke_interval": _sensor_seconds,
    "timeout": _optional(_sensor_seconds),
    "max_wait": _optional(_sensor_seconds),
    "mode": _one_of(frozenset({"poke", "reschedule"})),
    "soft_fail": _bool,
    "exponential_backoff": _bool,
    "silent_fail": _bool,
    "never_fail": _bool,
}
DEFAULT_ARGS_OPTIONS: dict[str, Normaliser] = {**TASK_OPTIONS, **SENSOR_DEFAULT_ARGS}


def _dag_callback(value: Any) -> tuple[Any, ...] | None:
    """A DAG-level callback (a callable or a list): run by the bundle when the generated DAG file's
    callable starts it from Airflow's DAG processor (``bundle.core.dag_callbacks``)."""
    if value is None or value == []:
        return None
    return _callbacks(value)


DAG_OPTIONS: dict[str, Normaliser] = {
    "schedule": normalise_schedule,
    "start_date": _optional(_datetime),
    "end_date": _optional(_datetime),
    "catchup": _bool,
    "tags": _tags,
    "description": _optional(_str),
    "doc_md": _optional(_str),
    "dag_display_name": _optional(_str),
    "max_active_runs": _int(1),
    "max_active_tasks": _int(1),
    "max_consecutive_failed_dag_runs": _int(0),
    "dagrun_timeout": _optional(_duration),
    "fail_fast": _bool,
    "is_paused_upon_creation": _optional(_bool),
    "render_template_as_native_obj": _bool,
    "disable_bundle_versioning": _bool,
    "default_args": lambda value: value,  # checked per key (DEFAULT_ARGS_OPTIONS) by normalise_options
    "on_success_callback": lambda value: _dag_callback(value),
    "on_failure_callback": lambda value: _dag_callback(value),
}


def normalise_options(
    kind: str, owner: str, given: Mapping[str, Any], table: Mapping[str, Normaliser]
) -> dict[str, Any]:
    """Check ``given`` against ``table``; ``kind``/``owner`` name the DAG or task in the error."""
    result: dict[str, Any] = {}
    for name, value in given.items():
        check = table.get(name)
        if check is None:
            known = ", ".join(sorted(table))
            raise RegistrationError(
                f"{kind} {owner!r}: unknown attribute {name!r}; Airflow's names are: {known}"
            )
        try:
            result[name] = check(value)
        except (TypeError, ValueError) as exc:
            raise RegistrationError(f"{kind} {owner!r}: invalid {name}: {exc}") from None
    if "default_args" in result:
        args = result["default_args"]
        if not isinstance(args, Mapping):
            raise RegistrationError(f"{kind} {owner!r}: invalid default_args: expected a dict")
        result["default_args"] = normalise_options(kind, f"{owner}.default_args", args, DEFAULT_ARGS_OPTIONS)
    return result
