"""Parameter injection by type annotation.

A task function declares what it needs by annotating parameters with ``Context``, ``Client`` (or a
narrower protocol ``Client`` implements, such as ``VariableClient``) or ``logging.Logger``; order and
names are free. The plan is computed once, when the function is registered, so a signature that can
never be satisfied fails at import time with the function and parameter named, not at run time on a
worker.
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import Client
from .context import Context
from .errors import RegistrationError

CONTEXT, CLIENT, LOGGER = "context", "client", "logger"
_NOT_CLIENT_BASES = (object, typing.Protocol, typing.Generic)


@dataclass(frozen=True)
class Injection:
    name: str
    source: str  # CONTEXT, CLIENT or LOGGER
    positional: bool


@dataclass(frozen=True)
class InjectionPlan:
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


def plan_injection(fn: Callable[..., Any], where: str) -> InjectionPlan:
    """Build the injection plan for ``fn``; ``where`` names the task in error messages."""
    target = inspect.unwrap(fn)
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError) as exc:
        raise RegistrationError(f"{where}: cannot read the signature of {fn!r}: {exc}") from None
    try:
        hints = typing.get_type_hints(target)
    except Exception as exc:  # unresolvable forward references, typos in annotations
        raise RegistrationError(f"{where}: cannot resolve the annotations of {_name(fn)}: {exc}") from None

    injections: list[Injection] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        source = _source_of(hints.get(param.name))
        if source is not None:
            if param.kind is param.POSITIONAL_ONLY and any(not i.positional for i in injections):
                raise RegistrationError(f"{where}: positional-only parameter {param.name!r} follows keywords")
            injections.append(Injection(param.name, source, param.kind is param.POSITIONAL_ONLY))
            continue
        if param.default is param.empty:
            raise RegistrationError(
                f"{where}: parameter {param.name!r} of {_name(fn)} is neither injectable "
                "(annotate it as Context, Client or logging.Logger) nor has a default value"
            )
        if param.kind is param.POSITIONAL_ONLY:
            # a later injected positional-only parameter would have to be passed after this one
            later = list(signature.parameters.values())
            idx = later.index(param)
            if any(p.kind is p.POSITIONAL_ONLY and _source_of(hints.get(p.name)) for p in later[idx + 1 :]):
                raise RegistrationError(
                    f"{where}: injected positional-only parameters of {_name(fn)} must come first"
                )
    return InjectionPlan(tuple(injections), inspect.iscoroutinefunction(target))


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
