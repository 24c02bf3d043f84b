"""``multiple_outputs`` inferred from a task function's return annotation, as Airflow's ``@task`` does.

Task-sdk 1.3.2's decorator (``_infer_multiple_outputs`` in ``airflow/sdk/bases/decorator.py``) makes
a task whose ``multiple_outputs`` is not given explicitly a multiple-outputs task when its return
annotation, resolved with ``get_type_hints`` against the function's globals, is a ``Mapping``
subclass or a generic alias of one: ``dict``, ``dict[str, int]``, ``Mapping[str, Any]``,
``collections.OrderedDict``, a ``TypedDict``, ``Annotated[dict, ...]``, and their string forms under
``from __future__ import annotations``. ``Any``, ``None``, ``dict | None``, ``Optional[dict]``, no
annotation, and a name that cannot be resolved (``NameError``: a ``TYPE_CHECKING``-only import) or
evaluated (``TypeError``) infer ``False``. An explicit ``multiple_outputs`` (``False`` included) is
used as given and the annotation is not read. Any other error resolving the annotation (a syntax
error in its string, ``AttributeError`` of a dotted name) fails the Python DAG's import in Airflow;
here it is a ``RegistrationError`` naming the task.

Annotations are resolved without importing ``typing`` (which would cost every task process
milliseconds at start-up) where that gives ``get_type_hints``' answer, which is almost always; the
rest (nested string annotations, ``ForwardRef`` objects, errors to report) go through
``typing.get_type_hints`` as Airflow's decorator calls it. tests/test_multiple_outputs.py holds the
result to Airflow's own function on a table and on random annotations.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from ..errors import RegistrationError

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Callable
    from typing import Any

_UNRESOLVED = object()


def infer_multiple_outputs(fn: Callable[..., Any], owner: str) -> bool:
    """Whether Airflow's ``@task`` would make ``fn`` a ``multiple_outputs`` task; ``owner``
    (``task 'x' in dag 'y'``) names it in the ``RegistrationError`` for an annotation Airflow
    could not import."""
    annotations = getattr(fn, "__annotations__", None) if hasattr(fn, "__code__") else None
    if not isinstance(annotations, dict) or "return" not in annotations:
        return False  # no return annotation (or a partial / callable object: nothing to read)
    annotation = annotations["return"]
    fn_globals: dict[str, Any] = getattr(fn, "__globals__", {})
    resolved = _resolve_simply(annotation, fn_globals)
    if resolved is _UNRESOLVED:
        resolved = _resolve_like_airflow(annotation, fn_globals, owner)
    origin = getattr(resolved, "__origin__", resolved)
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _resolve_simply(annotation: Any, fn_globals: dict[str, Any]) -> Any:
    """The annotation as ``get_type_hints`` would resolve it, as far as its ``__origin__`` goes
    (``None`` standing for "infers False"), without ``typing``; ``_UNRESOLVED`` where only
    ``get_type_hints`` can say (a string that evaluates to another string, a ``ForwardRef``).

    A string is evaluated in the function's globals as ``get_type_hints`` evaluates it (``NameError``
    or ``TypeError``: False, as Airflow catches them; other errors are left to the exact path, which
    reports them). An evaluated annotation keeps its origin through ``get_type_hints``, which only
    resolves the forward references among its arguments and strips ``Annotated`` (done here too)."""
    if isinstance(annotation, str):
        if annotation.isidentifier():  # the common case, without eval: one name
            namespace = fn_globals.get("__builtins__", builtins)
            builtin_names = namespace if isinstance(namespace, dict) else vars(namespace)
            value = fn_globals.get(annotation, builtin_names.get(annotation, _UNRESOLVED))
            if value is _UNRESOLVED:
                return None  # get_type_hints raises NameError: Airflow infers False
        else:
            try:
                value = eval(annotation, fn_globals)  # what ForwardRef._evaluate does
            except (NameError, TypeError):
                return None
            except Exception:
                return _UNRESOLVED
        annotation = value
        if isinstance(annotation, str):
            return _UNRESOLVED  # a string in the string: get_type_hints evaluates it again
    kind = type(annotation).__name__
    if kind == "ForwardRef" or _has_forward_refs(annotation):
        return _UNRESOLVED  # get_type_hints evaluates them, and may fail on them
    if kind == "_AnnotatedAlias":  # get_type_hints strips Annotated[X, ...] to X (flat already)
        return annotation.__origin__
    return annotation


def _has_forward_refs(annotation: Any, depth: int = 0) -> bool:
    """Whether a generic's arguments, at any depth, hold a string or a ``ForwardRef``."""
    args = getattr(annotation, "__args__", None)
    if not isinstance(args, tuple) or depth > 20:
        return False
    return any(
        isinstance(arg, str) or type(arg).__name__ == "ForwardRef" or _has_forward_refs(arg, depth + 1)
        for arg in args
    )


def _resolve_like_airflow(annotation: Any, fn_globals: dict[str, Any], owner: str) -> Any:
    """``get_type_hints`` of a function annotated with only this return annotation, resolved in
    the function's globals, as Airflow's decorator calls it; ``NameError``/``TypeError`` -> ``None``."""
    import typing

    def fake() -> None: ...

    fake.__annotations__ = {"return": annotation}
    try:
        return typing.get_type_hints(fake, fn_globals).get("return", typing.Any)
    except (NameError, TypeError):
        return None
    except Exception as exc:  # Airflow's import of the Python DAG fails on it
        raise RegistrationError(
            f"{owner}: cannot resolve the return annotation {annotation!r} to infer multiple_outputs "
            f"(as Airflow's @task does): {type(exc).__name__}: {exc}; fix the annotation or pass "
            "multiple_outputs explicitly"
        ) from None
