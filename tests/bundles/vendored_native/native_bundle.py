"""A bundle whose dependencies are native-extension wheels: PyYAML (its C extension ``yaml._yaml``)
and msgpack (which then replaces the runtime's embedded pure-Python fallback).

Declared in ``requirements.lock`` next to it (found by the packer's upward search). The task reports
which copies it sees, as its return_value XCom, so tests can tell the vendored copies from anything
the worker's own Python has installed.
"""

from __future__ import annotations

import sys

import yaml  # imported at load time: the packer sees it and checks it is declared

from bundle import Bundle

bundle = Bundle("vendored_native", version="1.0.0", queue="vendored-queue")
dag = bundle.dag("native_dag")


@dag.task
def versions() -> dict:
    """What the task imports, and from where."""
    import msgpack

    return {
        "yaml": yaml.__version__,
        "yaml_file": yaml.__file__,
        "libyaml": bool(yaml.__with_libyaml__),
        "cloader": yaml.CSafeLoader.__module__ if hasattr(yaml, "CSafeLoader") else None,
        "msgpack": ".".join(map(str, msgpack.version)),
        "msgpack_packer": msgpack.Packer.__module__,
        "msgpack_file": msgpack.__file__,
        "executable": sys.executable,
        "no_site": bool(sys.flags.no_site),
        "path": sys.path,
    }
