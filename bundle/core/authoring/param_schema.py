"""The JSON-schema subset pybundle's params support, validated as Airflow validates them.

Airflow validates a param with ``jsonschema.validate(value, schema, format_checker=...)``
(draft 2020-12) and reports the best error's message. ``jsonschema`` is heavy for a task's start, so
this module implements the subset ``Param`` accepts, with jsonschema's semantics (``integer``
accepts ``2.0``, ``true`` is no number, ``enum``/``const`` tell ``1`` from ``true``) and its
message texts; ``tests/test_params.py`` checks both against jsonschema itself. It is imported only
when a DAG has params.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Callable, Mapping
    from typing import Any

JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
# Keywords that only describe (for the UI's trigger form), never reject a value.
ANNOTATIONS = frozenset({"title", "examples", "values_display", "section", "description_md"})
VALIDATING: tuple[str, ...] = ("type", "enum", "const", "minimum", "maximum", "exclusiveMinimum")
VALIDATING += ("exclusiveMaximum", "minLength", "maxLength")
SUPPORTED = frozenset(VALIDATING) | ANNOTATIONS


def is_type(value: Any, name: str) -> bool:
    """jsonschema's draft 2020-12 type checker."""
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return name == "number" and isinstance(value, (int, float))


def equal(one: Any, two: Any) -> bool:
    """jsonschema's ``equal``: JSON equality, where ``True`` is not ``1``."""
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return one == two


def _number(value: Any) -> bool:
    return is_type(value, "number")


def _type(value: Any, types: Any) -> str | None:
    types = types if isinstance(types, list) else [types]
    if any(is_type(value, name) for name in types):
        return None
    return f"{value!r} is not of type {', '.join(repr(name) for name in types)}"


def _enum(value: Any, options: list[Any]) -> str | None:
    return None if any(equal(option, value) for option in options) else f"{value!r} is not one of {options!r}"


def _const(value: Any, const: Any) -> str | None:
    return None if equal(value, const) else f"{const!r} was expected"


def _minimum(value: Any, bound: Any) -> str | None:
    if _number(value) and value < bound:
        return f"{value!r} is less than the minimum of {bound!r}"
    return None


def _maximum(value: Any, bound: Any) -> str | None:
    if _number(value) and value > bound:
        return f"{value!r} is greater than the maximum of {bound!r}"
    return None


def _exclusive_minimum(value: Any, bound: Any) -> str | None:
    if _number(value) and value <= bound:
        return f"{value!r} is less than or equal to the minimum of {bound!r}"
    return None


def _exclusive_maximum(value: Any, bound: Any) -> str | None:
    if _number(value) and value >= bound:
        return f"{value!r} is greater than or equal to the maximum of {bound!r}"
    return None


def _min_length(value: Any, bound: int) -> str | None:
    if isinstance(value, str) and len(value) < bound:
        return f"{value!r} {'should be non-empty' if bound == 1 else 'is too short'}"
    return None


def _max_length(value: Any, bound: int) -> str | None:
    if isinstance(value, str) and len(value) > bound:
        return f"{value!r} {'is expected to be empty' if bound == 0 else 'is too long'}"
    return None


_CHECKS: dict[str, Callable[[Any, Any], str | None]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "exclusiveMaximum": _exclusive_maximum,
    "minLength": _min_length,
    "maxLength": _max_length,
}


def validate(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The message of the first keyword ``value`` fails (in the schema's order, as jsonschema's
    ``best_match`` picks among a flat schema's errors), or None when it is valid."""
    for keyword, argument in schema.items():
        check = _CHECKS.get(keyword)
        if check is not None:
            problem = check(value, argument)
            if problem is not None:
                return problem
    return None


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not one this module validates faithfully (unsupported or malformed
    keyword), or None."""
    for keyword, argument in schema.items():
        if keyword not in SUPPORTED:
            return f"uses the JSON-schema keyword {keyword!r}, which pybundle does not support yet"
        if keyword == "type":
            names = argument if isinstance(argument, list) else [argument]
            if not names or any(name not in JSON_TYPES for name in names):
                return f"has type {argument!r}; JSON-schema types are {', '.join(JSON_TYPES)}"
        elif keyword == "enum" and not isinstance(argument, list):
            return f"has enum {argument!r}, which is not a list"
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _number(argument):
                return f"has {keyword} {argument!r}, which is not a number"
        elif keyword in ("minLength", "maxLength"):
            if not isinstance(argument, int) or isinstance(argument, bool) or argument < 0:
                return f"has {keyword} {argument!r}, which is not a non-negative integer"
    return None
