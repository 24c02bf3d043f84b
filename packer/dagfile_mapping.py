"""Mapped tasks in a generated DAG file: ``stub.partial(...).expand(...)`` / ``.expand_kwargs(...)``.

A bundle's mapped task is serialized as core serializes a ``MappedOperator``
(``bundle.introspection.mapping``): its attributes in ``partial_kwargs``, what it maps over in
``op_kwargs_expand_input``. The file declares the same ``@task.stub`` a plain task gets, and creates
it the way an author maps a TaskFlow task, over the same references:

    square_task = square.partial(limit=5).expand(x=numbers_task)
    pair_task = pair.expand_kwargs([{"a": "p"}, {"a": "q"}])

so core's own ``_expand`` builds the same ``DecoratedMappedOperator`` the bundle describes. A stub
keyword is written for every attribute ``partial_kwargs`` holds (only what was given is there; some,
like ``retry_delay``, count even at their default), except those the file's ``default_args``
already give it, which core merges in the same way. The stub's signature is what the file passes it:
the ``partial()`` names, then the expanded ones (``**kwargs`` when ``expand_kwargs`` maps over an
upstream's output, whose keys only run time knows). ``map_index_template`` is written as the bundle
gives it (a ``str.format`` the bundle's runtime renders; the scheduler renders nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .pysource import INDENT, LINE_LENGTH, Code, string, width

EXPAND_INPUT_ATTR = "op_kwargs_expand_input"
_MAPPED_MARKERS = frozenset(
    {"_is_mapped", "_expand_input_attr", "_disallow_kwargs_override", EXPAND_INPUT_ATTR}
)
_DURATIONS = frozenset({"retry_delay", "max_retry_delay", "execution_timeout"})
_RENAMES = {"task_display_name": "_task_display_name"}  # partial_kwargs' name -> a plain task's key
# Taken by core from the task's own arguments only, never from default_args (_TaskDecorator._expand).
OWN_ONLY = frozenset({"do_xcom_push"})
# Not serialized for a mapped task at all (core reads the decorator's own flag): not written.
UNSERIALIZED = frozenset({"multiple_outputs"})


@dataclass(frozen=True)
class Reference:
    """An upstream output in the serialization (``xcomref``)."""

    task_id: str
    key: str


@dataclass
class MappedStub:
    """A mapped task's serialization, read for the file: the plain-task view of its attributes
    (``plain``, what the stub renderer reads), the stub keywords given (``given``), and what it maps
    over (``kind``, ``expand``: decoded, references as :class:`Reference`)."""

    plain: dict[str, Any]
    given: frozenset[str]
    kind: str
    expand: Any

    def references(self) -> list[Reference]:
        """The upstream outputs it maps over (each adds an edge the file must not repeat)."""
        found: list[Reference] = []
        _collect(self.expand, found)
        return found

    def signature(self, bound: list[str]) -> list[str]:
        """The stub's parameters: the partial names, then those the expansion gives."""
        names = list(bound)
        if self.kind == "dict-of-lists":
            expanded: list[str] = list(self.expand)
        elif isinstance(self.expand, Reference):
            return [*names, "**kwargs"]
        else:
            expanded = [key for kwargs in self.expand for key in kwargs]
        for name in expanded:
            if name not in names:
                names.append(name)
        return names

    def call(
        self,
        target: str,
        function: str,
        bindings: list[list[Any]],
        level: int,
        value: Callable[[Any, int, int], str],
    ) -> str:
        """``target = function.partial(...).expand(...)`` laid out as ``ruff format`` leaves it:
        flat when it fits; else split at the last bracket whose opening line fits (the earlier ones
        flat), else at ``.partial(``; else the right-hand side in parentheses. An exploded bracket
        has one item a line and a trailing comma, so ruff keeps it at any longer line length.
        ``bindings`` are the ``partial()`` constants (``{"xcom": [task, key]}`` / ``{"literal": v}``),
        ``value(v, indent, prefix)`` renders a value (references already :class:`Code`)."""
        head = f"{target} = {function}"
        chain = self._chain(head, bindings, level, value)
        if chain is not None:
            return chain
        inner = self._chain(function, bindings, level + 1, value, last_resort=True)
        return f"{INDENT * level}{target} = (\n{inner}\n{INDENT * level})"

    def _chain(
        self,
        lead: str,
        bindings: list[list[Any]],
        level: int,
        value: Callable[[Any, int, int], str],
        last_resort: bool = False,
    ) -> str | None:
        """The chain at ``level`` (ruff's order of preference), or None when even the first opening
        bracket's line is too long: ruff then parenthesizes the right-hand side (``last_resort``:
        inside those parentheses, where it splits whatever it must)."""
        indent = INDENT * level

        def items_of(pairs: list[tuple[str | None, Any]]) -> list[str]:
            return [
                value(item, level + 1, 0)
                if name is None
                else f"{name}={value(item, level + 1, width(name) + 1)}"
                for name, item in pairs
            ]

        partial = items_of([(name, _bound_value(bound)) for name, bound in bindings])
        if self.kind == "dict-of-lists":
            method, expand = ".expand", items_of(list(self.expand.items()))
        else:
            method, expand = ".expand_kwargs", items_of([(None, self.expand)])
        partial_flat = f".partial({', '.join(partial)})" if partial else ""
        expand_flat = f"({', '.join(expand)})"
        flat = indent + lead + partial_flat + method + expand_flat
        if "\n" not in flat and width(flat) <= LINE_LENGTH:
            return flat
        opening = indent + lead + partial_flat + method + "("
        if "\n" not in opening and width(opening) <= LINE_LENGTH:
            return opening[:-1] + _exploded(expand, level)
        if partial and len(indent + lead + ".partial(") <= LINE_LENGTH:
            tail = ")" + method + expand_flat
            rest = (
                tail
                if "\n" not in tail and width(indent + tail) <= LINE_LENGTH
                else ")" + method + _exploded(expand, level)
            )
            return indent + lead + ".partial" + _exploded(partial, level)[:-1] + rest
        if not partial and last_resort:
            return indent + lead + method + _exploded(expand, level)
        return None


def _bound_value(bound: Mapping[str, Any]) -> Any:
    if "xcom" in bound:
        task_id, key = bound["xcom"]
        return Reference(str(task_id), str(key))
    return bound["literal"]


def _exploded(items: list[str], level: int) -> str:
    inner = INDENT * (level + 1)
    return "(\n" + "".join(f"{inner}{item},\n" for item in items) + INDENT * level + ")"


def read(task: Mapping[str, Any], refuse: Callable[[str, str], Exception]) -> MappedStub:
    """The :class:`MappedStub` of a mapped task's serialization; ``refuse(attribute, why)`` builds
    the error for what the file cannot write."""
    if task.get("_expand_input_attr") != EXPAND_INPUT_ATTR or not isinstance(
        task.get(EXPAND_INPUT_ATTR), Mapping
    ):
        raise refuse(
            "_expand_input_attr",
            f"is {task.get('_expand_input_attr')!r}; only @task-style mapping is written",
        )
    expand_input = task[EXPAND_INPUT_ATTR]
    kind = expand_input.get("type")
    if kind not in ("dict-of-lists", "list-of-dicts"):
        raise refuse(EXPAND_INPUT_ATTR, f"has the type {kind!r}")
    expand = decode(expand_input.get("value"), lambda why: refuse(EXPAND_INPUT_ATTR, why))
    if kind == "dict-of-lists" and not isinstance(expand, dict):
        raise refuse(EXPAND_INPUT_ATTR, "maps over no named arguments")
    if kind == "list-of-dicts" and not (
        isinstance(expand, Reference)
        or (isinstance(expand, list) and all(isinstance(i, dict) for i in expand))
    ):
        raise refuse(EXPAND_INPUT_ATTR, "is neither a list of dicts nor an upstream reference")
    if task.get("_disallow_kwargs_override") is not (kind == "list-of-dicts"):
        raise refuse(
            "_disallow_kwargs_override",
            f"is {task.get('_disallow_kwargs_override')!r}, not what expand gives",
        )
    plain = {
        key: value for key, value in task.items() if key not in _MAPPED_MARKERS and key != "partial_kwargs"
    }
    given = {key for key in ("start_date", "end_date") if key in task}  # only where they differ
    for key, value in (task.get("partial_kwargs") or {}).items():
        if key in ("op_kwargs", "op_args"):
            continue  # the call's arguments: the bindings and the expansion
        if key in _DURATIONS and isinstance(value, Mapping):
            if value.get("__type") != "timedelta":
                raise refuse(key, f"is {value!r}, not a duration")
            value = value["__var"]
        plain[_RENAMES.get(key, key)] = value
        given.add(key)
    return MappedStub(plain, frozenset(given), kind, expand)


def decode(value: Any, refuse: Callable[[str], Exception]) -> Any:
    """Airflow's generic encoding (dicts wrapped, ``xcomref``) back to values and references."""
    if isinstance(value, list):
        return [decode(item, refuse) for item in value]
    if not isinstance(value, Mapping):
        return value
    kind, data = value.get("__type"), value.get("__var")
    if kind == "dict" and isinstance(data, Mapping):
        return {key: decode(item, refuse) for key, item in data.items()}
    if kind == "xcomref" and isinstance(data, Mapping):
        return Reference(str(data["task_id"]), str(data["key"]))
    if kind == "tuple" and isinstance(data, list):
        return tuple(decode(item, refuse) for item in data)
    raise refuse(f"holds a {kind!r} value this bundle-pack cannot write")


def with_references(value: Any, reference: Callable[[Reference], str]) -> Any:
    """``value`` with each :class:`Reference` replaced by its source (``reference(ref)``)."""
    if isinstance(value, Reference):
        return Code(reference(value))
    if isinstance(value, dict):
        return {key: with_references(item, reference) for key, item in value.items()}
    if isinstance(value, list):
        return [with_references(item, reference) for item in value]
    if isinstance(value, tuple):
        return tuple(with_references(item, reference) for item in value)
    return value


def reference_source(ref: Reference, instances: Mapping[str, str]) -> str:
    """``numbers_task`` (its ``return_value``) or ``config_task["rows"]``."""
    instance = instances[ref.task_id]
    return instance if ref.key == "return_value" else f"{instance}[{string(ref.key)}]"


def _collect(value: Any, found: list[Reference]) -> None:
    if isinstance(value, Reference):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found)
