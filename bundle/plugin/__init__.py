"""go-plugin mode: the bundle as a HashiCorp go-plugin gRPC server for the Go Edge Worker.

This module stays import-light: the cookie check runs before grpc is imported, so a human running
the bundle by hand gets go-plugin's diagnostic at once.
"""

from __future__ import annotations

import os
import sys

from .._stdout import COOKIE_KEY
from ..core.provider import BundleProvider

COOKIE_VALUE = "23C6AB18-91F9-4760-B3E8-328EF3C861AB"

NOT_A_PLUGIN_MESSAGE = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)


def run(provider: BundleProvider) -> int:
    """Check the cookie like go-plugin's ``Serve`` (a human running the bundle by hand gets the same
    diagnostic a Go plugin prints), then import grpc and serve; returns the exit code."""
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.stderr.write(NOT_A_PLUGIN_MESSAGE)
        return 1
    # Task callbacks run in processes forked from this one (bundle.core.confinement). gRPC's own
    # fork handling would restart its event engine in each child, where the descriptors it polls
    # are gone: the child aborted (measured with grpcio 1.85). Off before grpc is imported; the
    # children never use gRPC.
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "0"
    # Callbacks are forked from a process that never holds a task's token: forked now, before
    # grpc (and its threads) exist and before any Execute (bundle.core.zygote).
    from .. import _stdout
    from ..core import zygote

    _stdout.protect_stdout()  # the zygote must not hold the handshake's stdout
    zygote.start(provider)
    try:
        from .server import serve_plugin
    except Exception as exc:  # missing packages, or versions older than the generated stubs need
        sys.stderr.write(
            f"error: go-plugin mode needs grpcio>=1.85.1, grpcio-health-checking>=1.85.1 and protobuf>=7.35.1 "
            f"({type(exc).__name__}: {exc}); install them into the interpreter that runs this bundle "
            f"({sys.executable}): {sys.executable} -m pip install 'pybundle[plugin]' (or those three packages)\n"
        )
        return 1
    return serve_plugin(provider)
