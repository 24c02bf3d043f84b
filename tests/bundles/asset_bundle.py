"""Assets end to end: a producer task that emits an event with extras, a consumer DAG scheduled on
the asset whose task reads the triggering event, and a task that reads its inlet's events."""

from __future__ import annotations

from bundle import Asset, Bundle, Client, Context

ORDERS = Asset("pybundle_orders", uri="s3://warehouse/orders/", group="sales", extra={"owner": "ops"})
REPORT = Asset("pybundle_report")

bundle = Bundle("asset_bundle", version="1.0.0", queue="pybundle")
producer = bundle.dag("asset_producer", schedule=None, tags=["assets"])
consumer = bundle.dag("asset_consumer", schedule=ORDERS, tags=["assets"])
either = bundle.dag("asset_either", schedule=ORDERS | REPORT, default_args={"inlets": [ORDERS]})


@producer.task(outlets=[ORDERS, REPORT])
def publish(ctx: Context) -> int:
    """Publish the orders and tell consumers how many rows there are."""
    ctx.outlet_events[ORDERS].extra["rows"] = 42
    ctx.outlet_events[ORDERS].extra["run"] = ctx.run_id
    return 42


@consumer.task(inlets=[ORDERS])
def consume(ctx: Context) -> dict:
    """Read the event that triggered this run and return its extra."""
    events = ctx.triggering_asset_events[ORDERS]
    latest = events[-1] if events else None
    return {
        "triggered_by": len(events),
        "extra": latest.extra if latest else None,
        "source": [latest.source_dag_id, latest.source_task_id] if latest else None,
    }


@either.task
def history(ctx: Context, client: Client) -> dict:
    """Read the inlet's events (default_args inlets) through GetAssetEventByAsset."""
    events = ctx.inlet_events[ORDERS]
    newest = client.get_asset_events(name=ORDERS.name, uri=ORDERS.uri, ascending=False, limit=1)
    return {"count": len(events), "extras": [e.extra for e in events], "newest": newest[0].extra}
