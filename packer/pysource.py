"""Python source for plain values, written the way ``ruff format`` would write it.

The DAG-file generator (:mod:`packer.dagfile`) emits code that a team commits and that ``ruff
format --check`` must leave alone, whatever line length the team configures. So every call or
collection that does not fit on one line is exploded one item per line with a trailing comma
(ruff's "magic trailing comma" keeps such a layout at any line length), and what fits stays on one
line without one. Strings use double quotes unless that needs more escapes than single quotes, as
ruff prefers.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

LINE_LENGTH = 88  # ruff's default; the exploded layout is stable at any longer limit too
INDENT = "    "


def width(text: str) -> int:
    """How wide ``ruff format`` counts ``text`` (Unicode display width, as its line-length check
    does): East Asian wide and full-width letters 2 columns, combining marks and Hangul medial /
    final jamo none, everything else 1. Unprintable characters never reach here: they are escaped."""
    total = 0
    for char in text:
        if char.isascii():
            total += 1
        elif unicodedata.category(char) in ("Mn", "Me", "Cf") or 0x1160 <= ord(char) <= 0x11FF:
            continue
        elif 0xD7B0 <= ord(char) <= 0xD7FF:
            continue
        else:
            total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


class Code(str):
    """Source text that is inserted as it is (an expression already rendered)."""


def string(value: str) -> str:
    """A str literal as ruff writes it: double quotes unless the text has more ``"`` than ``'``."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    return quote + escaped(value, quote) + quote


def escaped(value: str, quote: str) -> str:
    """``value`` as the inside of a literal delimited by ``quote``: backslashes, that quote and
    unprintable characters escaped, everything else (non-ASCII letters too) as it is."""
    out = []
    for char in value:
        if char == "\\" or char == quote:
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])  # \n, \t, \x00, \u2028 ...
    return "".join(out)


def number(value: int | float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written as a Python literal")
    return repr(value)


_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60))


def duration(value: timedelta) -> str:
    """``timedelta(minutes=5)`` rather than ``timedelta(seconds=300)`` where it is exact."""
    seconds = value.total_seconds()
    if seconds == int(seconds) and seconds:
        for unit, size in _UNITS:
            if seconds % size == 0:
                return f"timedelta({unit}={int(seconds) // size})"
        return f"timedelta(seconds={int(seconds)})"
    return f"timedelta(seconds={number(seconds)})"


def moment(value: datetime, tz_source: str) -> str:
    """``datetime(2026, 1, 1, tzinfo=...)``; ``tz_source`` is the tzinfo expression to write."""
    parts = [value.year, value.month, value.day]
    tail = [value.hour, value.minute, value.second, value.microsecond]
    while tail and tail[-1] == 0:
        tail.pop()
    numbers = ", ".join(str(part) for part in (*parts, *tail))
    return f"datetime({numbers}, tzinfo={tz_source})"


def literal(value: Any, indent: int = 0, prefix: int = 0) -> str:
    """Any JSON-like value (with datetimes in UTC, timedeltas, tuples and sets) as source.

    ``indent`` is the nesting level of the line it starts on, ``prefix`` the width of what precedes
    it there (``key=``), so a collection is exploded exactly when ruff would explode it."""
    if isinstance(value, Code):
        return str(value)
    render_source = getattr(value, "render_source", None)
    if render_source is not None:  # an expression that lays itself out (packer.dagfile_assets)
        return render_source(indent, prefix)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return number(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, datetime):
        if value.utcoffset() != timedelta(0):
            raise ValueError(f"{value!r}: only UTC datetimes are written here")
        return moment(value.astimezone(timezone.utc), "timezone.utc")
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            head = f"{string(str(key))}: "
            items.append(head + literal(item, indent + 1, width(head)))
        return bracketed("{", items, "}", indent, prefix)
    if isinstance(value, (set, frozenset)):
        if not value:
            return "set()"
        return bracketed("{", [literal(item, indent + 1) for item in sorted(value)], "}", indent, prefix)
    if isinstance(value, tuple):
        items = [literal(item, indent + 1) for item in value]
        if len(items) == 1:
            return f"({items[0]},)"
        return bracketed("(", items, ")", indent, prefix)
    if isinstance(value, Sequence):
        return bracketed("[", [literal(item, indent + 1) for item in value], "]", indent, prefix)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a Python literal")


def bracketed(opening: str, items: Sequence[str], closing: str, indent: int, prefix_width: int = 0) -> str:
    """``opening items closing`` on one line when it fits and no item spans lines, else exploded.

    ``prefix_width`` is how much of the line precedes ``opening`` beyond the indentation."""
    flat = opening + ", ".join(items) + closing
    columns = len(INDENT) * indent + prefix_width + width(flat) + 1  # + the comma or colon that may follow
    if "\n" not in flat and columns <= LINE_LENGTH:
        return flat
    inner = INDENT * (indent + 1)
    lines = "".join(f"{inner}{item},\n" for item in items)
    return f"{opening}\n{lines}{INDENT * indent}{closing}"


def call(name: str, kwargs: Sequence[tuple[str, str]], indent: int, *, explode: bool = False) -> str:
    """``name(k=v, ...)`` from rendered values; ``explode`` forces one keyword per line."""
    items = [f"{key}={value}" for key, value in kwargs]
    if explode and items:
        inner = INDENT * (indent + 1)
        return f"{name}(\n" + "".join(f"{inner}{item},\n" for item in items) + f"{INDENT * indent})"
    return name + bracketed("(", items, ")", indent, prefix_width=len(name))


_NOT_ASCII_NAME = re.compile(r"[^0-9A-Za-z_]")
# Every name Python resolves without an import: a module-level binding of one of these would shadow
# it for the file's own code (``type(...)`` in a helper, ``max(...)`` in the DAG-callback helper).
BUILTIN_NAMES = frozenset(dir(builtins))


def identifier(text: str, taken: set[str]) -> str:
    """A Python name for ``text`` (a task or group id) that is not in ``taken``; adds it.

    The name is ASCII only, because Python NFKC-normalises the names it parses (``ﬁle`` is declared
    as ``file``, ``Ⅷ`` as ``VIII``): a non-ASCII name could silently become another task's. It never
    starts with ``_`` (the file's own helpers, and dunders such as ``__builtins__``, are spelled so)
    and is never a keyword or a builtin, so a task id cannot shadow anything the file uses. Where
    the name differs from the id, the stub is given the id as a ``task_id=`` string."""
    name = _NOT_ASCII_NAME.sub("_", text)
    if not name or not name[0].isalpha():  # a digit, an underscore, or nothing left
        name = "t_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in BUILTIN_NAMES:
        name += "_"
    candidate, counter = name, 2
    while candidate in taken:
        candidate, counter = f"{name}_{counter}", counter + 1
    taken.add(candidate)
    return candidate


def is_parameter_name(text: object) -> bool:
    """Whether ``text`` can be written as a parameter / keyword name and still be read back as
    itself: an identifier that is not a keyword and that Python's NFKC normalisation leaves alone."""
    return (
        isinstance(text, str)
        and text.isidentifier()
        and not keyword.iskeyword(text)
        and unicodedata.normalize("NFKC", text) == text
    )
