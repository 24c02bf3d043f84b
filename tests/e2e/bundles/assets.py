"""Assets across DAGs (tests/e2e/test_assets.py): ``asset_producer_dag``'s ``publish`` emits an event
of ``e2e_orders`` with an extra; ``asset_consumer_dag`` is scheduled on that asset, and its ``consume``
reads the triggering event's extra and the asset's events (its inlet) and returns them.

tests/e2e/dags/python_assets.py is the same pair written with Airflow's Python SDK, on an asset of
its own (so neither producer triggers the other's consumer).
"""

from __future__ import annotations

from bundle import Asset, Bundle, Context, serve

ORDERS = Asset("e2e_orders", uri="s3://e2e-warehouse/orders/", group="sales", extra={"owner": "ops"})

bundle = Bundle("assets", version="1.0.0", queue="python-bundle")
producer = bundle.dag("asset_producer_dag", schedule=None)
consumer = bundle.dag("asset_consumer_dag", schedule=ORDERS)


@producer.task(outlets=[ORDERS])
def publish(ctx: Context) -> int:
    """Publish the orders and tell consumers how many rows there are."""
    ctx.outlet_events[ORDERS].extra["rows"] = 42
    ctx.outlet_events[ORDERS].extra["producer_run"] = ctx.run_id
    return 42


@consumer.task(inlets=[ORDERS])
def consume(ctx: Context) -> dict:
    """Read the event that triggered this run, and the asset's latest event."""
    triggering = ctx.triggering_asset_events[ORDERS]
    history = ctx.inlet_events[ORDERS]
    return {
        "triggering": [
            {"extra": e.extra, "source": [e.source_dag_id, e.source_task_id, e.source_run_id]}
            for e in triggering
        ],
        "latest_extra": history[-1].extra if len(history) else None,
        "run_type": ctx.dag_run.run_type,
    }


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
