"""Keep stdout clean for the documents and handshake lines peers parse.

A dump (``--bundle-metadata``, ``--dump-bundle-spec``, ``--airflow-metadata``) and the go-plugin
handshake must be the only bytes on stdout, but a bundle module may ``print`` while it is imported.
When stdout must stay clean, file descriptor 1 is pointed at stderr before the bundle's code runs
and the real stdout is kept aside for the one document written through ``write_stdout``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

_DUMP_FLAGS = ("--bundle-metadata", "--dump-bundle-spec", "--airflow-metadata")
_MODE_FLAGS = (*_DUMP_FLAGS, "--comm", "--logs")
COOKIE_KEY = "AIRFLOW_BUNDLE_MAGIC_COOKIE"

_saved_fd: int | None = None


def needs_clean_stdout(argv: Sequence[str]) -> bool:
    """True for the dump flags, and for go-plugin mode (cookie set, no mode flag)."""
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if flags.intersection(_DUMP_FLAGS):
        return True
    return COOKIE_KEY in os.environ and not flags.intersection(_MODE_FLAGS)


def protect_stdout() -> None:
    """Redirect fd 1 to stderr, keeping the real stdout for ``write_stdout`` (idempotent).

    fd 1 is redirected *before* Python's stdout buffer is flushed: when stdout is a pipe (as for a
    packer or a plugin host), whatever the program printed before this point is still buffered and
    lands on stderr too. Only output that was already flushed (``python -u``, more than a buffer
    full) cannot be taken back."""
    global _saved_fd
    if _saved_fd is not None:
        return
    try:
        _saved_fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no stdout at all: nothing to protect
        _saved_fd = None
        return
    try:
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):
        pass


def write_stdout(data: bytes) -> None:
    """Write ``data`` to the real stdout, whether or not it was protected."""
    if _saved_fd is None:
        sys.stdout.flush()
        fd = 1
    else:
        fd = _saved_fd
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
