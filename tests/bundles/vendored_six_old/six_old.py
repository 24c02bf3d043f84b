"""One of two bundles pinning different versions of one pure-Python package (six 1.16.0 here,
declared in a hashed ``requirements.lock``; the other bundle, ``six_new``, declares 1.17.0)."""

from __future__ import annotations

import six

from bundle import Bundle

bundle = Bundle("six_old", version="1.0.0", queue="vendored-queue")
dag = bundle.dag("six_old_dag")


@dag.task
def which() -> dict:
    """The six this bundle sees. With ``VENDORED_TEST_BARRIER`` set (the concurrency test), it first
    announces itself there and waits for the other bundle's task, so both provably run at once."""
    import os
    import time

    met = None
    barrier = os.environ.get("VENDORED_TEST_BARRIER")
    if barrier:
        open(os.path.join(barrier, "six_old"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(barrier, "six_new")) and time.monotonic() < deadline:
            time.sleep(0.05)
        met = os.path.exists(os.path.join(barrier, "six_new"))
    return {"six": six.__version__, "file": six.__file__, "met": met}
