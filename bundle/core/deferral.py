"""Deferral: a task hands its wait to a trigger on Airflow's triggerer and is resumed later.

Airflow's shape (``BaseOperator.defer`` / ``resume_execution``, task-sdk 1.3.2): ``ctx.defer(...)``
raises ``TaskDeferred`` out of the task; the runtime turns it into one ``DeferTask`` message and
the process exits with the task instance ``deferred``. The triggerer imports the trigger class by
classpath **in its own environment** and builds it from the stored kwargs (JSON, then serde
decoding), so kwargs are encoded here the way Airflow's serde encodes them (datetimes and
timedeltas as serde envelopes, everything else plain JSON). When the trigger fires, the scheduler
starts the task again with the same try number and ``ti_context.next_method`` / ``next_kwargs``
(serde-encoded, the trigger's ``event`` added): the runtime then calls the resume function
registered under that name (``@task.resume``) instead of the task function. ``__fail__`` is the
server's "the trigger timed out / failed" and fails the task like ``TaskDeferralTimeout`` /
``TaskDeferralError`` (ordinary failures: retried when the run has a retry left, as in Airflow).

Loaded only by tasks that defer or resume (and by bundles that register resume functions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from .injection import InjectionPlan, plan_injection
from .records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .authoring.task import Task
    from .client import MessageClient
    from .context import Context
    from .execution import TaskOutcome

FAIL_METHOD = "__fail__"  # Airflow's TRIGGER_FAIL_REPR
TRIGGER_TIMEOUT_REASON = "Trigger timeout"  # Airflow's TriggerFailureReason.TRIGGER_TIMEOUT
# serde's reserved keys: a dict holding one would be decoded as an envelope by the triggerer.
_CLASSNAME, _VERSION, _DATA, _SCHEMA_ID = "__classname__", "__version__", "__data__", "__id__"
_UTC_TZ = {
    _CLASSNAME: "builtins.tuple",
    _VERSION: 1,
    _DATA: ["UTC", "pendulum.tz.timezone.FixedTimezone", 1, True],
}
MAX_DEPTH = 100  # nesting accepted; serde itself stops at the recursion limit


class TaskDeferred(BaseException):
    """Raised by ``ctx.defer()``: the task asks to wait for ``trigger`` (Airflow's ``TaskDeferred``).

    A ``BaseException``, as in Airflow, so a task's ``except Exception`` does not swallow it."""

    suspends_task = True  # what ``execution.execute_task`` looks for
    builtin = False  # resumed by pybundle's own method (``ctx.trigger_dag_run``), not the task's

    def __init__(
        self,
        classpath: str,
        trigger_kwargs: dict[str, Any],
        method_name: str | None,
        next_kwargs: dict[str, Any],
        timeout: float | None,
    ) -> None:
        super().__init__(f"deferred to {classpath}")
        self.classpath = classpath
        self.trigger_kwargs = trigger_kwargs
        self.method_name = method_name
        self.next_kwargs = next_kwargs
        self.timeout = timeout


class TaskDeferralError(Exception):
    """The trigger failed (``next_method="__fail__"``); Airflow's ``TaskDeferralError``."""


class TaskDeferralTimeout(Exception):
    """The trigger's ``timeout`` passed before it fired; Airflow's ``TaskDeferralTimeout``."""


class ResumeMethod(Record):
    name: str
    fn: Callable[..., Any]
    plan: InjectionPlan


# -- authoring ------------------------------------------------------------------------------------------
def register_resume(task: Task, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """Register ``fn`` as a resume function of ``task`` under ``name`` (default: its ``__name__``)."""
    from .errors import RegistrationError

    if not callable(fn):
        raise RegistrationError(
            f"task {task.task_id!r} in dag {task.dag.dag_id!r}: resume target {fn!r} is not callable"
        )
    name = name or getattr(fn, "__name__", None)
    where = f"resume function {name!r} of task {task.task_id!r} in dag {task.dag.dag_id!r}"
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        raise RegistrationError(f"{where}: the name must be an identifier not starting with '__'")
    methods = task.__dict__.setdefault("resume_methods", {})
    if name in methods:
        raise RegistrationError(f"{where} is already registered")
    methods[name] = ResumeMethod(name, fn, plan_injection(fn, where))
    return fn


def resume_decorator(task: Task, target: Any) -> Any:
    """``@task.resume`` and ``@task.resume("name")``."""
    if isinstance(target, str) or target is None:
        return lambda fn: register_resume(task, fn, target)
    return register_resume(task, target)


# -- ctx.defer ------------------------------------------------------------------------------------------
def defer(
    trigger: Any, method_name: str | None, kwargs: Mapping[str, Any] | None, timeout: Any
) -> TaskDeferred:
    """Check and encode a deferral; the caller raises the result. Bad input raises here, at the
    ``ctx.defer`` call, naming the offending key."""
    serialize = getattr(trigger, "serialize", None)
    if serialize is None:
        raise TypeError(
            f"ctx.defer(trigger=...) needs a bundle.triggers trigger (Trigger, DateTimeTrigger, "
            f"TimeDeltaTrigger, FileTrigger, ...), got {type(trigger).__name__}"
        )
    classpath, trigger_kwargs = serialize()
    if method_name is not None and (not isinstance(method_name, str) or not method_name):
        raise TypeError(f"ctx.defer(method_name=...) must be a resume function's name, got {method_name!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"ctx.defer(kwargs=...) must be a dict, got {type(kwargs).__name__}")
    return TaskDeferred(
        classpath,
        encode_kwargs(trigger_kwargs, f"trigger kwargs of {classpath}"),
        method_name,
        encode_kwargs(kwargs or {}, "ctx.defer kwargs"),
        _seconds(timeout),
    )


def _seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise TypeError(
            f"ctx.defer(timeout=...) must be a timedelta or seconds, got {type(timeout).__name__}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"ctx.defer(timeout=...) must be positive, got {timeout!r}")
    return seconds


# -- serde encoding (what the triggerer and the task runner decode) -------------------------------------
def encode_kwargs(kwargs: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``kwargs`` as Airflow's ``serde.serialize`` writes them; ``TypeError`` names the bad key."""
    return {_key(key, what, ""): encode(value, f"{what}: key {key!r}", 1) for key, value in kwargs.items()}


def _key(key: Any, what: str, path: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what}: key {path}{key!r} is not a string")
    if key in (_CLASSNAME, _SCHEMA_ID):
        raise TypeError(f"{what}: key {path}{key!r} is reserved by Airflow's serde")
    return key


def encode(value: Any, where: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where}: {value!r} is not JSON")
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise TypeError(f"{where}: a naive datetime ({value.isoformat()}); give it a timezone")
        return {
            _CLASSNAME: "datetime.datetime",
            _VERSION: 2,
            _DATA: {"timestamp": value.timestamp(), "tz": dict(_UTC_TZ)},
        }
    if isinstance(value, timedelta):
        return {_CLASSNAME: "datetime.timedelta", _VERSION: 2, _DATA: value.total_seconds()}
    if isinstance(value, list):
        return [encode(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, (tuple, set, frozenset)):
        kind = "set" if isinstance(value, set) else "frozenset" if isinstance(value, frozenset) else "tuple"
        items = [encode(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        return {_CLASSNAME: f"builtins.{kind}", _VERSION: 1, _DATA: items}
    if isinstance(value, Mapping):
        return {_key(k, where, ""): encode(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be sent to the triggerer "
        "(plain JSON, datetime, timedelta, tuple or set only)"
    )


def decode(value: Any, depth: int = 0) -> Any:
    """Airflow's ``serde.deserialize`` for what a trigger event and stored kwargs hold: builtins,
    datetimes (pendulum's too, as aware ``datetime``), timedeltas, dates, tuples and sets, plus the
    legacy ``{"__type", "__var"}`` form. An envelope of another class is left as it is (a dict)."""
    if depth > 200:
        return value
    if isinstance(value, list):
        return [decode(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    classname = value.get(_CLASSNAME)
    if isinstance(classname, str) and _DATA in value:
        return _decode_envelope(classname, value, depth)
    if "__type" in value and "__var" in value and len(value) == 2:
        return _decode_legacy(value, depth)
    return {k: decode(v, depth + 1) for k, v in value.items()}


def _decode_envelope(classname: str, value: dict[str, Any], depth: int) -> Any:
    data = value[_DATA]
    if classname in ("builtins.tuple", "builtins.set", "builtins.frozenset", "builtins.list"):
        items = [decode(item, depth + 1) for item in data]
        return {"builtins.tuple": tuple, "builtins.set": set, "builtins.frozenset": frozenset}.get(
            classname, list
        )(items)
    if classname == "builtins.dict":
        return {k: decode(v, depth + 1) for k, v in data.items()}
    if classname in ("datetime.datetime", "pendulum.datetime.DateTime"):
        if isinstance(data, dict):
            tz = _decode_tz(data.get("tz"))
            return datetime.fromtimestamp(float(data["timestamp"]), tz=tz or timezone.utc)
        if isinstance(data, (int, float)):
            return datetime.fromtimestamp(float(data), tz=timezone.utc)
        return datetime.fromisoformat(str(data))
    if classname in ("datetime.date", "pendulum.date.Date"):
        from datetime import date

        return date.fromisoformat(str(data))
    if classname == "datetime.timedelta":
        return timedelta(seconds=float(data))
    return value  # a class pybundle does not rebuild: the envelope, untouched


def _decode_tz(tz: Any) -> Any:
    if isinstance(tz, dict):
        tz = decode(tz)
    if not tz:
        return None
    name = tz[0] if isinstance(tz, (list, tuple)) else tz
    if name in ("UTC", "Z", 0, ""):
        return timezone.utc
    if isinstance(name, (int, float)):
        return timezone(timedelta(seconds=name))
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(str(name))
    except Exception:
        return timezone.utc


def _decode_legacy(value: dict[str, Any], depth: int) -> Any:
    kind, var = value["__type"], value["__var"]
    if kind == "datetime":
        return datetime.fromtimestamp(float(var), tz=timezone.utc)
    if kind == "timedelta":
        return timedelta(seconds=float(var))
    if kind == "tuple":
        return tuple(decode(item, depth + 1) for item in var)
    if kind == "set":
        return {decode(item, depth + 1) for item in var}
    if kind == "dict":
        return {k: decode(v, depth + 1) for k, v in var.items()}
    return value


# -- the runtime's side ---------------------------------------------------------------------------------
def defer_body(deferred: TaskDeferred, method_name: str) -> dict[str, Any]:
    """The ``DeferTask`` message (``trigger_kwargs`` / ``next_kwargs`` always objects: core's
    ``TIDeferredStatePayload`` refuses ``null`` with 422; ``queue`` is Airflow's default ``None``:
    only ``[triggerer] queues_enabled`` would set it)."""
    return {
        "type": "DeferTask",
        "state": "deferred",
        "classpath": deferred.classpath,
        "trigger_kwargs": deferred.trigger_kwargs,
        "trigger_timeout": deferred.timeout,
        "queue": None,
        "next_method": method_name,
        "next_kwargs": deferred.next_kwargs,
        "rendered_map_index": None,
    }


def resolve_method(task: Task, deferred: TaskDeferred) -> str:
    """The resume function's name a deferral names, checked against ``task``'s registrations;
    ``ValueError`` (failing the task) when it names none."""
    methods = getattr(task, "resume_methods", None) or {}
    where = f"task {task.task_id!r} in dag {task.dag.dag_id!r}"
    if deferred.method_name is None:
        if len(methods) == 1:
            return next(iter(methods))
        if not methods:
            raise ValueError(
                f"{where} deferred, but it has no resume function: register one with @{task.fn.__name__}.resume"
            )
        raise ValueError(
            f"{where} has several resume functions ({', '.join(sorted(methods))}): name one in ctx.defer(method_name=...)"
        )
    if deferred.builtin:  # ctx.trigger_dag_run's own execute_complete
        if deferred.method_name in methods:
            raise ValueError(
                f"{where}: ctx.trigger_dag_run(deferrable=True) resumes with "
                f"{deferred.method_name!r}, which the task registers for itself; rename that function"
            )
        return deferred.method_name
    if deferred.method_name not in methods:
        known = ", ".join(sorted(methods)) or "none"
        raise ValueError(
            f"{where}: ctx.defer(method_name={deferred.method_name!r}) names no resume function "
            f"of the task (registered: {known}); register it with @{task.fn.__name__}.resume"
        )
    return deferred.method_name


BUILTIN_METHODS: dict[str, Callable[..., Any]] = {}
"""Resume functions the runtime provides (``execute_complete`` of ``ctx.trigger_dag_run``)."""


def resume(
    task: Task,
    context: Context,
    client: MessageClient,
    next_method: str,
    next_kwargs: Any,
    call: Callable[..., Any],
) -> Any:
    """Run the resume function ``next_method`` names with the decoded ``next_kwargs``; ``call``
    runs a prepared function under the task's ``execution_timeout`` (``execution.call_bounded``)."""
    from .runtime_log import runtime_log

    kwargs = decode(next_kwargs or {})
    if not isinstance(kwargs, dict):
        raise TypeError(f"next_kwargs decoded to a {type(kwargs).__name__}, not a dict")
    if next_method == FAIL_METHOD:
        traceback = kwargs.get("traceback")
        if traceback:
            lines = traceback if isinstance(traceback, list) else [str(traceback)]
            runtime_log().error("Trigger failed:\n%s", "\n".join(str(line).rstrip("\n") for line in lines))
        error = str(kwargs.get("error") or "Unknown")
        raise (TaskDeferralTimeout if error == TRIGGER_TIMEOUT_REASON else TaskDeferralError)(error)
    runtime_log().info("Resuming task %s with %s after deferral", task.task_id, next_method)
    methods = getattr(task, "resume_methods", None) or {}
    method = methods.get(next_method)
    if method is None:
        if next_method == "execute_complete":
            from . import trigger_dagrun  # noqa: F401  (registers its execute_complete)
        builtin = BUILTIN_METHODS.get(next_method)
        if builtin is None:
            known = ", ".join(sorted(methods)) or "none"
            raise ValueError(
                f"task {task.task_id!r} in dag {task.dag.dag_id!r} was resumed with next_method "
                f"{next_method!r}, which names no resume function of it (registered: {known})"
            )
        return builtin(task, context, client, **kwargs)
    args, injected = method.plan.arguments(context, client, lambda: _logger(method.fn))
    accepted = {p.name for p in method.plan.free}
    takes_any = _takes_var_keyword(method.fn)
    for key, value in kwargs.items():
        if key in injected:
            continue
        if key not in accepted and not takes_any:
            raise TypeError(
                f"resume function {next_method!r} of task {task.task_id!r} does not take the "
                f"keyword {key!r} (next_kwargs: {', '.join(sorted(kwargs))}); add the parameter or **kwargs"
            )
        injected[key] = value
    missing = [p.name for p in method.plan.free if not p.has_default and p.name not in injected]
    if missing:
        raise TypeError(
            f"resume function {next_method!r} of task {task.task_id!r}: no value for "
            f"{', '.join(missing)} (next_kwargs: {', '.join(sorted(kwargs)) or 'none'})"
        )
    return call(method.fn, args, injected, method.plan.is_async)


def _takes_var_keyword(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)
    return bool(code is not None and code.co_flags & 0x08)


def _logger(fn: Callable[..., Any]) -> Any:
    import logging

    return logging.getLogger(getattr(fn, "__module__", None) or "task")


def resume_task(
    task: Task, context: Context, client: MessageClient, resume_with: tuple[str, Any], watchdog: Any
) -> Any:
    """``execute_task``'s call for a resumed task: the resume function, under the task's
    ``execution_timeout`` as a fresh run of the task function would be (Airflow's Python runner
    also starts the limit over for ``resume_execution``)."""
    from .execution import call_bounded

    next_method, next_kwargs = resume_with

    def call(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], is_async: bool) -> Any:
        return call_bounded(task, fn, args, kwargs, is_async=is_async, watchdog=watchdog)

    return resume(task, context, client, next_method, next_kwargs, call)


def suspended_outcome(exc: BaseException, task: Task, context: Context, client: MessageClient) -> TaskOutcome:
    """The outcome of ``ctx.defer`` (``deferred``, with the ``DeferTask`` body) or of
    ``ctx.trigger_dag_run`` (``bundle.core.trigger_dagrun``, which may itself defer)."""
    from .execution import DEFERRED, TaskOutcome, failure_outcome
    from .runtime_log import runtime_log

    log = runtime_log()
    try:
        if isinstance(exc, TaskDeferred):
            deferred = exc
        else:
            from .trigger_dagrun import handle

            try:
                return handle(exc, task, context, client)  # type: ignore[arg-type]
            except TaskDeferred as again:  # a deferrable wait for the triggered run
                deferred = again
        method_name = resolve_method(task, deferred)
    except Exception as error:
        outcome = failure_outcome(context, error)
        log.error("Task failed with exception", exc_info=error)
        return outcome
    log.info("Pausing task as DEFERRED (trigger %s, resume with %s)", deferred.classpath, method_name)
    return TaskOutcome(DEFERRED, defer=defer_body(deferred, method_name))
