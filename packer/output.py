"""Where a pack writes, and writing it so that a failure never leaves a half-written bundle behind.

The artifact is written to a temporary file in the output directory (same filesystem, so the final
``rename`` is atomic), given its mode, synced, and renamed over the output path. A reader - say an
``ExecutableCoordinator`` scanning the directory - sees either the old file or the complete new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import PackError

TEMP_PREFIX = ".bundle-pack-"


def check_output(output: str, inputs: Iterable[tuple[str, Path]]) -> None:
    """Refuse a directory, and a path that is (after symlinks, or as a hard link) one of the inputs."""
    path = Path(output)
    if output.endswith(os.sep) or path.is_dir():
        raise PackError(f"output path {output} is a directory; pass --output with a file name")
    if not path.exists():
        return
    for kind, source in inputs:
        try:
            same = os.path.samefile(path, source)
        except OSError:
            continue
        if same:
            raise PackError(f"output path {output} is the same file as the {kind} {source}; pass --output")


def write_atomically(output: str, data: bytes, mode: int) -> None:
    """Write ``data`` to ``output`` with permission bits ``mode`` (creating missing directories)."""
    directory = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    except OSError as exc:
        raise PackError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, output)
    except OSError as exc:
        _remove(temporary)
        raise PackError(f"cannot write {output}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(temporary)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
