"""What counts as a JSON value where a DAG definition holds data (bound literals, param defaults):
it must travel in XComs, DagSerialization and the generated DAG file unchanged."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any


def is_json(value: Any) -> bool:
    """``None``, bools, ints, finite floats, strs, and lists / str-keyed dicts of those."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_json(item) for key, item in value.items())
    return False
