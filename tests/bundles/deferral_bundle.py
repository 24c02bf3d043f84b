"""Tasks that defer to triggers and trigger other DAG runs (tests/test_deferral.py)."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from bundle import Bundle, Context, serve
from bundle.triggers import DateTimeTrigger, FileTrigger, TimeDeltaTrigger, Trigger

bundle = Bundle("deferral_tests", version="1", queue="pybundle")
dag = bundle.dag("deferral_dag")
MOMENT = datetime(2030, 1, 1, tzinfo=timezone.utc)
WHEN = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@dag.task(retries=1)
def waits(ctx: Context) -> None:
    ctx.defer(
        trigger=DateTimeTrigger(MOMENT),
        method_name="done",
        kwargs={"n": 3, "when": WHEN, "span": timedelta(seconds=30), "pair": (1, "a"), "nested": {"k": [1]}},
        timeout=timedelta(seconds=90),
    )


@waits.resume
def done(
    ctx: Context, event: datetime, n: int, when: datetime, span: timedelta, pair: tuple, nested: dict
) -> dict:
    return {
        "event": event.isoformat(),
        "n": n,
        "when": when.isoformat(),
        "span": span.total_seconds(),
        "pair": list(pair),
        "pair_is_tuple": isinstance(pair, tuple),
        "nested": nested,
        "try": ctx.ti.try_number,
        "loaded": sorted(m for m in ("bundle.core.deferral", "bundle.triggers") if m in sys.modules),
    }


@dag.task
def defers_twice(ctx: Context) -> None:
    ctx.defer(trigger=TimeDeltaTrigger(timedelta(seconds=5)), method_name="first", kwargs={"step": 1})


@defers_twice.resume
def first(ctx: Context, event: object, step: int) -> None:
    ctx.defer(
        trigger=FileTrigger("/tmp/pybundle-never", poke_interval=1),
        method_name="second",
        kwargs={"step": step + 1},
    )


@defers_twice.resume("second")
def second_step(event: object, step: int) -> int:
    return step * 10


@dag.task
def bad_trigger_kwargs(ctx: Context) -> None:
    ctx.defer(trigger=Trigger("my_company.triggers.Queue", queue="q", client=object()), method_name="after")


@bad_trigger_kwargs.resume
def after(event: object) -> None: ...


@dag.task
def bad_next_kwargs(ctx: Context) -> None:
    ctx.defer(trigger=Trigger("my_company.triggers.Queue"), kwargs={"blob": b"bytes"})


@bad_next_kwargs.resume
def after_blob(event: object) -> None: ...


@dag.task
def unknown_method(ctx: Context) -> None:
    ctx.defer(trigger=Trigger("my_company.triggers.Queue"), method_name="nope")


@dag.task
def plain() -> dict:
    return {
        "loaded": sorted(
            m for m in ("bundle.core.deferral", "bundle.core.trigger_dagrun") if m in sys.modules
        )
    }


@dag.task
def triggers_and_polls(ctx: Context) -> None:
    ctx.trigger_dag_run(
        "other_dag",
        trigger_run_id="polled",
        conf={"x": 1},
        wait_for_completion=True,
        poke_interval=0.2,
        allowed_states=["queued"],
    )


@dag.task(retries=1)
def triggers_and_fails(ctx: Context) -> None:
    ctx.trigger_dag_run(
        "other_dag",
        trigger_run_id="polled_fail",
        wait_for_completion=True,
        poke_interval=0.2,
        failed_states=["queued"],
    )


@dag.task
def triggers_deferrable(ctx: Context) -> None:
    ctx.trigger_dag_run(
        "other_dag", trigger_run_id="deferred_run", wait_for_completion=True, deferrable=True, poke_interval=3
    )


@dag.task
def triggers_existing_skips(ctx: Context) -> None:
    ctx.trigger_dag_run("other_dag", trigger_run_id="exists", skip_when_already_exists=True)


@dag.task(retries=1)
def triggers_existing_fails(ctx: Context) -> None:
    ctx.trigger_dag_run("other_dag", trigger_run_id="exists")


@dag.task
def triggers_fire_and_forget(ctx: Context) -> None:
    ctx.trigger_dag_run("other_dag", logical_date=None)


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
