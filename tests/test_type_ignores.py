"""Every ``# type: ignore`` in bundle/, packer/ and localrun/ names the error code it silences.

mypy runs over these packages in ``./scripts/test`` (``[tool.mypy]`` in pyproject.toml, with
``warn_unused_ignores``); a bare ignore would silence any error on its line, including new ones.
protoc's generated stubs (bundle/plugin/_generated) are not ours and are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bundle", "packer", "localrun")
GENERATED = ROOT / "bundle" / "plugin" / "_generated"
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)")
CODES = re.compile(r"\[[a-z][a-z0-9-]*(,\s*[a-z][a-z0-9-]*)*\]")


def ignores_without_a_code(text: str) -> list[int]:
    """The line numbers of ``type: ignore`` comments that name no error code."""
    return [
        number
        for number, line in enumerate(text.splitlines(), 1)
        for match in IGNORE.finditer(line)
        if not CODES.match(match.group("rest"))
    ]


def test_the_check_tells_a_coded_ignore_from_a_bare_one():
    assert ignores_without_a_code("x = f()  # type: ignore[arg-type]  # why") == []
    assert ignores_without_a_code("x = f()  # type: ignore[arg-type, union-attr]") == []
    assert ignores_without_a_code("x = f()  # type: ignore") == [1]
    assert ignores_without_a_code("ok = 1\nx = f()  #type:ignore  # why") == [2]
    assert ignores_without_a_code("x = f()  # type: ignore[]") == [1]


def test_every_type_ignore_names_its_error_code():
    bare = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if GENERATED in path.parents:
                continue
            bare += [f"{path.relative_to(ROOT)}:{n}" for n in ignores_without_a_code(path.read_text("utf-8"))]
    assert bare == [], "add the error code(s), e.g. # type: ignore[arg-type]"
