"""A bundle for ``bundle-run``'s failure paths (tests/test_bundle_run_failures.py).

``failing_dag``: ``explode`` fails on every try (1 retry), so ``after_explode`` becomes
upstream_failed while ``cleanup`` (trigger rule all_done) still runs; ``maybe`` skips, and the skip
propagates to ``after_maybe`` (all_success). ``slow_dag``: ``hang`` never finishes on its own.
``crash_dag``: ``kill_supervisor`` kills the process supervising it (bundle-run's worker).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import timedelta

from bundle import Bundle, Context, SkipTask, serve

bundle = Bundle("bundle_run_failing", version="1", queue="bundle-run-tests")
failing = bundle.dag("failing_dag")
slow = bundle.dag("slow_dag")
crash = bundle.dag("crash_dag")
log = logging.getLogger("failing_bundle")


@failing.task
def prepare() -> str:
    return "prepared"


@failing.task(retries=1, retry_delay=timedelta(seconds=30))
def explode(ctx: Context) -> None:
    raise RuntimeError(f"boom on try {ctx.ti.try_number}")


@failing.task
def after_explode() -> None:
    log.info("never runs: explode failed")


@failing.task(trigger_rule="all_done")
def cleanup() -> str:
    return "cleaned up"


@failing.task
def maybe() -> None:
    raise SkipTask("nothing to do today")


@failing.task
def after_maybe() -> None:
    log.info("never runs: maybe skipped")


prepare >> explode >> [after_explode, cleanup]
prepare >> maybe >> after_maybe


@slow.task
def hang() -> None:
    log.info("hanging")
    time.sleep(120)


@crash.task
def kill_supervisor() -> None:
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(30)


@crash.task(trigger_rule="all_done")
def after_crash() -> str:
    return "ran under a new worker"


kill_supervisor >> after_crash


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
