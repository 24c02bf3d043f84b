"""Parameter injection by type annotation.

A task function declares what it needs by annotating parameters with ``Context``, ``Client`` (or a
narrower protocol ``Client`` implements, such as ``VariableClient``) or ``logging.Logger``; order and
names are free. The plan is computed once, when the function is registered. Every other parameter is
a *free* one (``InjectionPlan.free``): it needs a default or an upstream output bound to it
(``bundle.core.authoring.binding``); which of them are left unsatisfied is only known when the DAG is
complete, so that check lives in ``Dag.check_complete``, not here.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

from .client import Client
from .context import Context
from .errors import RegistrationError
from .records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    import logging
    from typing import Any

CONTEXT, CLIENT, LOGGER = "context", "client", "logger"
POSITIONAL_ONLY, POSITIONAL, KEYWORD_ONLY, VARIADIC = (
    "positional-only",
    "positional",
    "keyword-only",
    "variadic",
)
_CO_VARARGS, _CO_VARKEYWORDS, _CO_COROUTINE = 0x04, 0x08, 0x80


class Injection(Record):
    name: str
    source: str  # CONTEXT, CLIENT or LOGGER
    positional: bool


class FreeParameter(Record):
    """A parameter no annotation injects: bound to an upstream output, a literal, or defaulted."""

    name: str
    kind: str  # POSITIONAL_ONLY, POSITIONAL or KEYWORD_ONLY
    has_default: bool
    annotation: Any = None


class InjectionPlan(Record):
    injections: tuple[Injection, ...]
    is_async: bool
    free: tuple[FreeParameter, ...] = ()

    def arguments(
        self, context: Context, client: Client, logger: Callable[[], logging.Logger]
    ) -> tuple[list[Any], dict[str, Any]]:
        """The injected values; ``logger`` is called only when a parameter asks for one."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for injection in self.injections:
            source = injection.source
            value = context if source == CONTEXT else client if source == CLIENT else logger()
            if injection.positional:
                args.append(value)
            else:
                kwargs[injection.name] = value
        return args, kwargs


class _Param(Record):
    name: str
    kind: str
    has_default: bool


def _source_of(annotation: Any) -> str | None:
    if annotation is Context or (isinstance(annotation, type) and issubclass(annotation, Context)):
        return CONTEXT
    # A parameter annotated logging.Logger means its module imported logging: no need to here.
    logging = sys.modules.get("logging")
    if logging is not None and isinstance(annotation, type) and issubclass(annotation, logging.Logger):
        return LOGGER
    if isinstance(annotation, type) and annotation is not object and issubclass(Client, annotation):
        return CLIENT
    return None


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    seen = set()
    while hasattr(fn, "__wrapped__") and id(fn) not in seen:
        seen.add(id(fn))
        fn = fn.__wrapped__
    return fn


def _parameters(target: Callable[..., Any], where: str) -> tuple[list[_Param], bool]:
    """Parameters and async-ness, read from the code object for plain functions: ``inspect`` costs
    ~10 ms to import, paid by every coordinator start; other callables fall back to it."""
    if isinstance(target, types.FunctionType):
        code = target.__code__
        positional = code.co_varnames[: code.co_argcount]
        keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        first_default = len(positional) - len(target.__defaults__ or ())
        kwdefaults = target.__kwdefaults__ or {}
        params = [
            _Param(name, POSITIONAL_ONLY if i < code.co_posonlyargcount else POSITIONAL, i >= first_default)
            for i, name in enumerate(positional)
        ]
        params += [_Param(name, KEYWORD_ONLY, name in kwdefaults) for name in keyword_only]
        return params, bool(code.co_flags & _CO_COROUTINE)
    import inspect

    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError) as exc:
        raise RegistrationError(f"{where}: cannot read the signature of {target!r}: {exc}") from None
    kinds: dict[object, str] = {
        inspect.Parameter.POSITIONAL_ONLY: POSITIONAL_ONLY,
        inspect.Parameter.KEYWORD_ONLY: KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD: POSITIONAL,
    }
    params = [
        _Param(p.name, kinds.get(p.kind, VARIADIC), p.default is not p.empty)
        for p in signature.parameters.values()
    ]
    return [p for p in params if p.kind != VARIADIC], inspect.iscoroutinefunction(target)


def plan_injection(fn: Callable[..., Any], where: str) -> InjectionPlan:
    """Build the injection plan for ``fn``; ``where`` names the task in error messages."""
    target = _unwrap(fn)
    params, is_async = _parameters(target, where)
    try:
        hints = _type_hints(target, [param.name for param in params])
    except Exception as exc:  # unresolvable forward references, typos in annotations
        raise RegistrationError(f"{where}: cannot resolve the annotations of {_name(fn)}: {exc}") from None

    injections: list[Injection] = []
    free: list[FreeParameter] = []
    skipped_positional_only = False
    for param in params:
        source = _source_of(hints.get(param.name))
        if source is not None:
            if param.kind == POSITIONAL_ONLY and skipped_positional_only:
                raise RegistrationError(
                    f"{where}: injected positional-only parameters of {_name(fn)} must come first"
                )
            injections.append(Injection(param.name, source, param.kind == POSITIONAL_ONLY))
            continue
        free.append(FreeParameter(param.name, param.kind, param.has_default, hints.get(param.name)))
        skipped_positional_only = skipped_positional_only or param.kind == POSITIONAL_ONLY
    return InjectionPlan(tuple(injections), is_async, tuple(free))


def _type_hints(target: Callable[..., Any], names: list[str]) -> dict[str, Any]:
    """The parameters' annotations, evaluated as ``typing.get_type_hints`` would (string
    annotations in the function's globals, ``Annotated`` unwrapped), without importing ``typing``
    for plain functions: every coordinator start registers the bundle's tasks."""
    if not isinstance(target, types.FunctionType):
        import typing

        return typing.get_type_hints(target)
    annotations = target.__annotations__
    hints = {}
    for name in names:
        annotation: Any = annotations.get(name)
        if isinstance(annotation, str):
            annotation = eval(annotation, target.__globals__)  # the bundle module's own annotation
        while hasattr(annotation, "__metadata__") and hasattr(annotation, "__origin__"):
            annotation = annotation.__origin__  # Annotated[X, ...] -> X
        hints[name] = annotation
    return hints


def function_name(fn: Callable[..., Any]) -> str:
    """How error messages name a task function."""
    return _name(_unwrap(fn))


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
