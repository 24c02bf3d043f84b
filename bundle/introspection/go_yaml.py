"""YAML exactly as Go's ``gopkg.in/yaml.v3`` ``Marshal`` writes the manifest.

Go structs keep their field order (plain ``dict`` here); Go maps (``GoMap``) are written in yaml.v3's
own key order, which is not byte order: runs of digits compare by value and letters sort before
other characters. A string is written plain unless it would read back as something else (a number,
bool, null, timestamp, YAML 1.1 bool or sexagesimal), then double-quoted; strings the emitter cannot
write plain (document markers, a lone ``-``) are single-quoted. The rules were checked against
yaml.v3 v3.0.1 itself (``tests/gohost/yamlprobe``); they cover every string a manifest can hold,
not arbitrary YAML.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
import unicodedata
from typing import Any

INDENT = 4
MAX_SIMPLE_KEY_BYTES = 128


class GoMap(dict):
    """A mapping yaml.v3 would sort (a Go ``map``), as opposed to a struct."""


def encode(value: dict[str, Any]) -> bytes:
    lines: list[str] = []
    _mapping(value, 0, lines)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _mapping(value: dict[str, Any], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    keys = sorted(value, key=functools.cmp_to_key(_key_cmp)) if isinstance(value, GoMap) else list(value)
    for key in keys:
        item = value[key]
        nested: list[str] = []
        if isinstance(item, dict) and item:
            _mapping(item, indent + INDENT, nested)
        elif isinstance(item, list) and item:
            nested = [f"{pad}{' ' * INDENT}- {scalar(element)}" for element in item]
        if len(key.encode("utf-8")) > MAX_SIMPLE_KEY_BYTES:
            # libyaml writes long keys as complex keys: "? key", then ":" + the value inline
            lines.append(f"{pad}? {scalar(key)}")
            if nested and isinstance(item, dict):
                lines.append(f"{pad}:   {nested[0].lstrip(' ')}")
                lines.extend(nested[1:])
            elif nested:
                lines.append(f"{pad}:")
                lines.extend(nested)
            else:
                lines.append(f"{pad}: {_empty_or_scalar(item)}")
        elif nested:
            lines.append(f"{pad}{scalar(key)}:")
            lines.extend(nested)
        else:
            lines.append(f"{pad}{scalar(key)}: {_empty_or_scalar(item)}")


def _empty_or_scalar(item: Any) -> str:
    if isinstance(item, dict):
        return "{}"
    if isinstance(item, list):
        return "[]"
    if item is None:
        return "null"
    return scalar(item)


# -- scalar style ----------------------------------------------------------------------------
def scalar(text: str) -> str:
    if not (_resolves_to_str(text) and not _is_base60_float(text) and not _is_old_bool(text)):
        return json.dumps(text, ensure_ascii=False)  # yaml.v3 asks for double quotes
    if _emitter_allows_plain(text):
        return text
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text, ensure_ascii=False)


_OLD_BOOLS = frozenset("y Y yes Yes YES on On ON n N no No NO off Off OFF".split())
_RESOLVE_MAP = frozenset(
    "true True TRUE false False FALSE ~ null Null NULL .nan .NaN .NAN .inf .Inf .INF +.inf +.Inf +.INF "
    "-.inf -.Inf -.INF <<".split()
) | {""}
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_DECIMAL_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_GO_SPECIAL_FLOAT = re.compile(r"^[-+]?(inf|infinity|nan)$", re.IGNORECASE)
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})([Tt ])(\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d+)?(Z|[-+]\d{2}:\d{2})?$"
)


def _is_old_bool(text: str) -> bool:
    return text in _OLD_BOOLS


def _is_base60_float(text: str) -> bool:
    return bool(text) and (text[0] in "+-" or text[0].isdigit()) and ":" in text and bool(_BASE60.match(text))


def _resolves_to_str(text: str) -> bool:
    """yaml.v3's ``resolve("", text)`` returning ``!!str``."""
    if text in _RESOLVE_MAP:
        return False
    first = text[0]
    if first in "yYnNtTfFoO~":
        return True
    if first == ".":
        return not _go_parse_float(text)
    if not (first in "+-" or "0" <= first <= "9"):
        return True
    if _is_timestamp(text):
        return False
    plain = text.replace("_", "")
    if _go_parse_int(plain) or (_YAML_STYLE_FLOAT.match(plain) and _go_parse_float(plain)):
        return False
    for prefix, base in (("0b", 2), ("-0b", 2), ("0o", 8), ("-0o", 8)):
        if plain.startswith(prefix) and _digits_in_base(plain[len(prefix) :], base):
            return False
    return True


def _go_parse_float(text: str) -> bool:
    """Whether Go's ``strconv.ParseFloat`` accepts ``text`` (decimal and special forms)."""
    return bool(_GO_DECIMAL_FLOAT.match(text) or _GO_SPECIAL_FLOAT.match(text))


def _go_parse_int(text: str) -> bool:
    """Whether Go's ``strconv.ParseInt(text, 0, 64)`` or ``ParseUint`` accepts ``text``."""
    body = text[1:] if text[:1] in "+-" else text
    if not body:
        return False
    lowered = body.lower()
    if lowered.startswith(("0x", "0b", "0o")):
        digits, base = body[2:], {"x": 16, "b": 2, "o": 8}[lowered[1]]
    elif body.startswith("0") and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if not _digits_in_base(digits, base):
        return False
    value = int(digits, base)
    limit = 1 << 63 if text[:1] == "-" else (1 << 64) - 1
    return value <= limit


def _digits_in_base(digits: str, base: int) -> bool:
    if not digits or not digits.isascii():
        return False
    try:
        int(digits, base)
    except ValueError:
        return False
    return "_" not in digits and digits[0] not in "+-"


def _is_timestamp(text: str) -> bool:
    """yaml.v3 tries Go time layouts only for values starting with four digits and a dash."""
    match = _DATE.match(text) or _DATETIME.match(text)
    if not match:
        return False
    year, month, day = (int(g) for g in match.groups()[:3])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return False
    if match.re is _DATETIME:
        hour, minute, second = (int(g) for g in match.groups()[4:7])
        return hour < 24 and minute < 60 and second < 60
    return True


def _emitter_allows_plain(text: str) -> bool:
    """The parts of libyaml's scalar analysis that a manifest string can trigger."""
    if text == "-" or text[:3] in ("---", "..."):
        return False
    if text[0] in "#,[]{}&*!|>'\"%@`?:" or (text[0] == "-" and len(text) > 1 and text[1] in " \t"):
        return False
    if text[0] in " \t" or text[-1] in " \t" or ": " in text or " #" in text or text.endswith(":"):
        return False
    return all((ch.isprintable() and unicodedata.category(ch) != "Zs") or ch == " " for ch in text)


# -- map key order ---------------------------------------------------------------------------
def _key_cmp(a: str, b: str) -> int:
    if _key_less(a, b):
        return -1
    if _key_less(b, a):
        return 1
    return 0


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"  # Go's unicode.IsDigit


def _key_less(a: str, b: str) -> bool:
    """yaml.v3's ``keyList.Less`` for string keys (digit values computed as Go does: rune - '0')."""
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = _is_digit(ca)
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and _is_digit(a[ai]):
            an = an * 10 + ord(a[ai]) - 48
            ai += 1
        bi = i
        while bi < len(b) and _is_digit(b[bi]):
            bn = bn * 10 + ord(b[bi]) - 48
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)
