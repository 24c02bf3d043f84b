"""The Python-SDK twin of tests/e2e/bundles/assets.py, on an asset of its own."""

from __future__ import annotations

from airflow.sdk import DAG, Asset, task

ORDERS = Asset("e2e_py_orders", uri="s3://e2e-warehouse/py-orders/", group="sales", extra={"owner": "ops"})

with DAG("py_asset_producer_dag", schedule=None):

    @task(outlets=[ORDERS])
    def publish(**context) -> int:
        context["outlet_events"][ORDERS].extra["rows"] = 42
        context["outlet_events"][ORDERS].extra["producer_run"] = context["run_id"]
        return 42

    publish()

with DAG("py_asset_consumer_dag", schedule=ORDERS):

    @task(inlets=[ORDERS])
    def consume(**context) -> dict:
        triggering = context["triggering_asset_events"][ORDERS]
        history = context["inlet_events"][ORDERS]
        return {
            "triggering": [
                {"extra": e.extra, "source": [e.source_dag_id, e.source_task_id, e.source_run_id]}
                for e in triggering
            ],
            "latest_extra": history[-1].extra if len(history) else None,
            "run_type": context["dag_run"].run_type,
        }

    consume()
