"""A one-task bundle whose task returns the bundle version it runs from (upgrade tests).

tests/e2e/test_bundle_versions.py packs it twice, with VERSION rewritten to "2.0.0" for the second.
"""

from __future__ import annotations

from bundle import Bundle, Context, serve

VERSION = "1.0.0"

bundle = Bundle("versioned", version=VERSION, queue="python-bundle")
dag = bundle.dag("versioned_dag", schedule=None)


@dag.task
def report(ctx: Context) -> dict:
    return {"bundle_version": VERSION, "try_number": ctx.ti.try_number}


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
