"""``python -m bundle --bundle TARGET [MODE FLAGS]``: serve any bundle without a main block.

``TARGET`` is ``path/to/file.py[:attr]`` or ``package.module[:attr]`` (attr defaults to ``bundle``);
``BUNDLE_TARGET`` in the environment is the alternative to ``--bundle``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import _stdout
from .serve import EXIT_USAGE, serve
from .target import TargetError, load_target


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    target = os.environ.get("BUNDLE_TARGET")
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--bundle":
            if i + 1 >= len(args):
                sys.stderr.write("error: flag needs an argument: --bundle\n")
                return EXIT_USAGE
            target = args[i + 1]
            i += 2
            continue
        if arg.startswith("--bundle="):
            target = arg.partition("=")[2]
        else:
            rest.append(arg)
        i += 1
    if rest in (["-h"], ["--help"]) and not target:
        sys.stderr.write(
            "usage: python -m bundle --bundle path/to/file.py[:attr]|package.module[:attr] [MODE]\n"
        )
        return 0
    if not target:
        sys.stderr.write(
            "error: no bundle target: pass --bundle path/to/file.py[:attr] or package.module[:attr], "
            "or set BUNDLE_TARGET\n"
        )
        return EXIT_USAGE
    if _stdout.needs_clean_stdout(rest):
        _stdout.protect_stdout()  # before the bundle's module can print
    try:
        provider = load_target(target)
    except TargetError as exc:
        sys.stderr.write(f"error: cannot load bundle target {target!r}: {exc}\n")
        return EXIT_USAGE
    return serve(provider, rest, prog=f"python -m bundle --bundle {target}")


if __name__ == "__main__":
    raise SystemExit(main())
