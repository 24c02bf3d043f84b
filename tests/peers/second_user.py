"""Another local user, for the tests that a private file, directory or socket stays private.

The suite runs as root, which may become any uid: a forked child drops to ``NOBODY`` (or any uid)
and tries one thing; its exit status says whether the kernel let it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

NOBODY = 65534


def as_user(uid: int, action: Callable[[], object]) -> int:
    """Run ``action`` in a child that is ``uid``; 0 if it succeeded, else the errno it failed with."""
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, only an exit status
        code = 99
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            action()
            code = 0
        except OSError as exc:
            code = exc.errno or 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
