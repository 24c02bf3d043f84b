"""Parameter injection by type annotation.

A task function declares what it needs by annotating parameters with ``Context``, ``Client`` (or a
narrower protocol ``Client`` implements, such as ``VariableClient``) or ``logging.Logger``; order and
names are free. The plan is computed once, when the function is registered, so a signature that can
never be satisfied fails at import time with the function and parameter named, not at run time on a
worker.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from .client import Client
from .context import Context
from .errors import RegistrationError

CONTEXT, CLIENT, LOGGER = "context", "client", "logger"
_NOT_CLIENT_BASES = (object, typing.Protocol, typing.Generic)
POSITIONAL_ONLY, POSITIONAL, KEYWORD_ONLY, VARIADIC = (
    "positional-only",
    "positional",
    "keyword-only",
    "variadic",
)
_CO_VARARGS, _CO_VARKEYWORDS, _CO_COROUTINE = 0x04, 0x08, 0x80


class Injection(NamedTuple):
    name: str
    source: str  # CONTEXT, CLIENT or LOGGER
    positional: bool


class InjectionPlan(NamedTuple):
    injections: tuple[Injection, ...]
    is_async: bool

    def arguments(
        self, context: Context, client: Client, logger: logging.Logger
    ) -> tuple[list[Any], dict[str, Any]]:
        values = {CONTEXT: context, CLIENT: client, LOGGER: logger}
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for injection in self.injections:
            if injection.positional:
                args.append(values[injection.source])
            else:
                kwargs[injection.name] = values[injection.source]
        return args, kwargs


class _Param(NamedTuple):
    name: str
    kind: str
    has_default: bool


def _source_of(annotation: Any) -> str | None:
    if annotation is Context or (isinstance(annotation, type) and issubclass(annotation, Context)):
        return CONTEXT
    if isinstance(annotation, type) and issubclass(annotation, logging.Logger):
        return LOGGER
    if (
        isinstance(annotation, type)
        and annotation not in _NOT_CLIENT_BASES
        and issubclass(Client, annotation)
    ):
        return CLIENT
    return None


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    seen = set()
    while hasattr(fn, "__wrapped__") and id(fn) not in seen:
        seen.add(id(fn))
        fn = fn.__wrapped__  # type: ignore[attr-defined]
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
    kinds = {
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
        hints = typing.get_type_hints(target)
    except Exception as exc:  # unresolvable forward references, typos in annotations
        raise RegistrationError(f"{where}: cannot resolve the annotations of {_name(fn)}: {exc}") from None

    injections: list[Injection] = []
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
        if not param.has_default:
            raise RegistrationError(
                f"{where}: parameter {param.name!r} of {_name(fn)} is neither injectable "
                "(annotate it as Context, Client or logging.Logger) nor has a default value"
            )
        skipped_positional_only = skipped_positional_only or param.kind == POSITIONAL_ONLY
    return InjectionPlan(tuple(injections), is_async)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
