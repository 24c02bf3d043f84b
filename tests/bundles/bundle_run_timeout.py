"""A bundle for ``bundle-run`` and ``execution_timeout`` (tests/test_timeouts.py): ``times_out``
sleeps past its 2 s limit on every try, so its one retry times out too and it ends failed."""

from __future__ import annotations

import time
from datetime import timedelta

from bundle import Bundle, serve

bundle = Bundle("bundle_run_timeout", version="1", queue="bundle-run-tests")
dag = bundle.dag("timeout_dag")


@dag.task(execution_timeout=timedelta(seconds=2), retries=1, retry_delay=timedelta(seconds=30))
def times_out() -> None:
    time.sleep(60)


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
