"""JSON exactly as Go's ``json.MarshalIndent(v, "", "    ")`` plus the newline ``Serve`` appends."""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
# Go's default HTML-safe escaping, and the two line separators JavaScript chokes on.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def encode(value: Any) -> bytes:
    """Key order is the dict's (Go struct field order); callers sort map keys themselves."""
    text = json.dumps(value, indent=4, ensure_ascii=False).translate(_GO_ESCAPES)
    # Go writes invalid UTF-8 (in Python: lone surrogates) as the escape sequence for U+FFFD.
    return (_SURROGATE.sub(r"\\ufffd", text) + "\n").encode("utf-8")
