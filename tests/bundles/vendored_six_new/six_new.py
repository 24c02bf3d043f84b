"""The other of the two bundles pinning six: 1.17.0, declared in its ``pyproject.toml``."""

from __future__ import annotations

import six

from bundle import Bundle

bundle = Bundle("six_new", version="1.0.0", queue="vendored-queue")
dag = bundle.dag("six_new_dag")


@dag.task
def which() -> dict:
    """The six this bundle sees. With ``VENDORED_TEST_BARRIER`` set (the concurrency test), it first
    announces itself there and waits for the other bundle's task, so both provably run at once."""
    import os
    import time

    met = None
    barrier = os.environ.get("VENDORED_TEST_BARRIER")
    if barrier:
        open(os.path.join(barrier, "six_new"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(barrier, "six_old")) and time.monotonic() < deadline:
            time.sleep(0.05)
        met = os.path.exists(os.path.join(barrier, "six_old"))
    return {"six": six.__version__, "file": six.__file__, "met": met}
