"""Build the launcher region: a ``#!/bin/sh`` stub, the launcher code, and the embedded runtime ZIP.

Layout of the bytes this module produces (the "binary region" of an executable bundle, and the
executable entry of a ZIP bundle)::

    #!/bin/sh
    # <comment>
    exec <python> -c '<loader>' "$0" "$@"
    <text of packer/_launch.py>
    <ZIP: pybundle-launch.json, lib/bundle/..., lib/msgpack/..., app/...>

Why not a zipapp: CPython only finds a zipapp's archive within the last 65,535 bytes of the file, so
an executable bundle with a larger source + manifest region appended would no longer start. The shell
execs before it reads past the third line; the loader reads the launcher code by the fixed offsets
written into it, and the launcher finds the ZIP through the trailer, so any amount of appended data
works. ``exec`` keeps the PID, and the interpreter is configurable (``--python``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from . import PackError

DEFAULT_PYTHON = "/usr/bin/env python3"
SHEBANG = b"#!/bin/sh\n"
COMMENT = b"# pybundle bundle: a Python launcher and an embedded runtime follow. Run this file; needs python3>=3.10.\n"
_LOADER = (
    "import sys;sys.path[:1]=[p for p in sys.path[:1] if p];"
    'f=open(sys.argv[1],"rb");f.seek({offset:#010x});c=f.read({size:#010x});f.close();'
    'exec(compile(c,sys.argv[1],"exec"))'
)


def launcher_code() -> bytes:
    """The launcher's Python text, as embedded (``packer/_launch.py``)."""
    return (Path(__file__).with_name("_launch.py")).read_bytes()


def interpreter_words(python: str) -> list[str]:
    """Split ``--python`` like a shell would; refuse what cannot be a command line."""
    if "\n" in python or "\r" in python or "\0" in python:
        raise PackError("--python must be a single line")
    try:
        words = shlex.split(python)
    except ValueError as exc:
        raise PackError(f"--python {python!r} is not a valid command line: {exc}") from None
    if not words:
        raise PackError("--python must name an interpreter, e.g. '/usr/bin/env python3'")
    return words


def stub(python: str, code_size: int) -> bytes:
    """The shell lines that exec ``python`` on the launcher code that follows them."""
    command = " ".join(shlex.quote(word) for word in interpreter_words(python))

    def render(offset: int) -> bytes:
        loader = _LOADER.format(offset=offset, size=code_size)
        return SHEBANG + COMMENT + f'exec {command} -c \'{loader}\' "$0" "$@"\n'.encode()

    draft = render(0)
    final = render(len(draft))  # the offsets are fixed-width, so the length does not change
    assert len(final) == len(draft)
    return final


def build_region(runtime_zip: bytes, python: str = DEFAULT_PYTHON) -> bytes:
    """The complete launcher region for an embedded runtime archive."""
    code = launcher_code()
    return stub(python, len(code)) + code + runtime_zip


def is_launcher(data: bytes) -> bool:
    """Whether ``data`` starts like a launcher this packer writes."""
    return data.startswith(SHEBANG + COMMENT)
