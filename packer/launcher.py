"""Build the launcher region: a ``#!/bin/sh`` stub, the launcher code, and the embedded runtime ZIP.

Layout of the bytes this module produces (the "binary region" of an executable bundle, and the
executable entry of a ZIP bundle)::

    #!/bin/sh
    # <comment>
    exec <python> -I -S -c '<loader>' "$0" "$@"
    <text of packer/_launch.py>
    <the same, compiled: magic number + marshalled code (used when the magic matches)>
    <ZIP: pybundle-launch.json, lib/bundle/..., lib/msgpack/..., app/...>

Why not a zipapp: CPython only finds a zipapp's archive within the last 65,535 bytes of the file, so
an executable bundle with a larger source + manifest region appended would no longer start. The shell
execs before it reads past the third line; the loader reads the launcher code by the fixed offsets
written into it, and the launcher finds the ZIP through the trailer, so any amount of appended data
works. ``exec`` keeps the PID, and the interpreter is configurable (``--python``). ``-I -S`` isolates
the bundle from the worker's Python: no site-packages, no ``.pth`` files, no ``PYTHONPATH`` or other
``PYTHON*`` variables, no current directory on ``sys.path``; everything it imports is in its payload.
"""

from __future__ import annotations

import marshal
import shlex
from importlib.util import MAGIC_NUMBER
from pathlib import Path

from . import PackError

DEFAULT_PYTHON = "/usr/bin/env python3"
SHEBANG = b"#!/bin/sh\n"
COMMENT = b"# pybundle bundle: a Python launcher and an embedded runtime follow. Run this file; needs python3>=3.10.\n"
# The loader runs the launcher precompiled when the worker's Python reads this packer's bytecode
# (same magic number), else compiles its text: compiling ~450 lines costs every start ~5 ms.
_LOADER = (
    "import sys,marshal,_frozen_importlib_external as e;sys.path[:1]=[p for p in sys.path[:1] if p];"
    'f=open(sys.argv[1],"rb");f.seek({offset:#010x});c=f.read({size:#010x});m=f.read({compiled:#010x});f.close();'
    'exec(marshal.loads(m[4:]) if m[:4]==e.MAGIC_NUMBER else compile(c,sys.argv[1],"exec"))'
)
LAUNCHER_FILENAME = "<pybundle launcher>"


def launcher_code() -> bytes:
    """The launcher's Python text, as embedded (``packer/_launch.py``)."""
    return (Path(__file__).with_name("_launch.py")).read_bytes()


def compiled_launcher(code: bytes) -> bytes:
    """The launcher as this interpreter's bytecode: its 4-byte magic number, then the marshalled
    code object (deterministic for a given text and Python version, so packing stays reproducible)."""
    return MAGIC_NUMBER + marshal.dumps(compile(code, LAUNCHER_FILENAME, "exec"))


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


def stub(python: str, code_size: int, compiled_size: int) -> bytes:
    """The shell lines that exec ``python`` on the launcher code that follows them."""
    command = " ".join(shlex.quote(word) for word in interpreter_words(python))

    def render(offset: int) -> bytes:
        loader = _LOADER.format(offset=offset, size=code_size, compiled=compiled_size)
        return SHEBANG + COMMENT + f'exec {command} -I -S -c \'{loader}\' "$0" "$@"\n'.encode()

    draft = render(0)
    final = render(len(draft))  # the offsets are fixed-width, so the length does not change
    assert len(final) == len(draft)
    return final


def build_region(runtime_zip: bytes, python: str = DEFAULT_PYTHON) -> bytes:
    """The complete launcher region for an embedded runtime archive."""
    code = launcher_code()
    compiled = compiled_launcher(code)
    return stub(python, len(code), len(compiled)) + code + compiled + runtime_zip


def is_launcher(data: bytes) -> bool:
    """Whether ``data`` starts like a launcher this packer writes."""
    return data.startswith(SHEBANG + COMMENT)
