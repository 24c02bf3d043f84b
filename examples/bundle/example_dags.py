"""An ETL bundle written with pybundle: the tasks of ``simple_dag`` run as Python functions.

Run it directly (``python example_dags.py --dump-bundle-spec``), through ``python -m bundle --bundle
examples/bundle/example_dags.py``, or pack it with ``bundle-pack``. ``dags/simple_dag.py`` is the
Python DAG file Airflow reads, generated from this file (``bundle-pack dag-file``): never edit it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from bundle import Bundle, Client, Context, SkipTask, VariableClient, serve

# Airflow routes every task of this bundle to its coordinator by this queue
# (see airflow.cfg.example: [sdk] queue_to_coordinator).
bundle = Bundle("example_dags", version="1.0.0", queue="python-bundle")

etl = bundle.dag(
    "simple_dag",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["example", "etl"],
    description="Extract orders, transform them with a threshold, load them into the warehouse.",
)

log = logging.getLogger(__name__)


@etl.task
def extract(ctx: Context, client: Client, logger: logging.Logger) -> dict:
    """Read the source connection and return the extracted rows (pushed as the return_value XCom)."""
    source = client.get_connection("orders_db")
    logger.info("Extracting orders from %s:%s for run %s", source.host, source.port, ctx.ti.run_id)
    logger.debug("Connecting as %s with password %s", source.login, source.password)  # masked by Airflow
    rows = [{"order_id": i, "amount": amount} for i, amount in enumerate((12.5, 7.0, 31.25, 3.5), start=1)]
    return {"source": source.host, "rows": rows}


@etl.task(task_id="transform", retries=2)
def transform_rows(ctx: Context, client: Client, logger: logging.Logger) -> dict:
    """Keep the rows above a threshold variable; settings come from a JSON variable."""
    threshold = float(client.get_variable("min_amount", default="5"))
    settings = client.get_variable("transform_settings", default={"currency": "EUR"}, deserialize_json=True)
    extracted = client.get_xcom("extract")
    kept = [row for row in extracted["rows"] if row["amount"] >= threshold]
    logger.info(
        "Kept %d of %d rows (threshold %s %s)",
        len(kept),
        len(extracted["rows"]),
        threshold,
        settings["currency"],
    )
    if len(kept) < len(extracted["rows"]):
        logger.warning("Dropped %d rows below the threshold", len(extracted["rows"]) - len(kept))
    return {"currency": settings["currency"], "rows": kept, "total": sum(row["amount"] for row in kept)}


@etl.task(retries=1, retry_delay=timedelta(seconds=5))
def load(ctx: Context, client: Client) -> None:
    """Fails on its first try (the warehouse is "warming up") and succeeds on the retry."""
    if ctx.ti.try_number == 1:
        raise ConnectionError("warehouse is not accepting connections yet; Airflow will retry")
    token = client.get_variable("warehouse_api_token")  # a sensitive name: masked in the task log
    summary = client.get_xcom("transform")
    log.info(
        "Loading %d rows (total %.2f %s) with token %s",
        len(summary["rows"]),
        summary["total"],
        summary["currency"],
        token,
    )
    client.push_xcom("loaded_rows", len(summary["rows"]))


@etl.task
def notify(client: VariableClient) -> None:
    """Skipped unless a notification channel is configured."""
    channel = client.get_variable("notify_channel", default=None)
    if channel is None:
        raise SkipTask("no notify_channel variable: nothing to notify")
    log.info("Would notify %s", channel)


@bundle.task_handler("simple_dag", "audit")
def audit(ctx: Context, client: Client) -> dict:
    """Logs a summary table of the run (with tabulate, a dependency packed into the bundle)."""
    import tabulate  # imported where it is used: tasks that do not need it never pay for it

    loaded = client.get_xcom("load", key="loaded_rows", default=0)
    table = tabulate.tabulate([[ctx.ti.run_id, loaded]], headers=["run", "loaded rows"])
    log.info("Audit (tabulate %s from %s):\n%s", tabulate.__version__, tabulate.__file__, table)
    return {"run_id": ctx.ti.run_id, "loaded_rows": loaded}


extract >> transform_rows >> load >> [notify, audit]

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
