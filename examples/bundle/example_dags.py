"""An ETL bundle written with pybundle: the tasks of ``simple_dag`` run as Python functions.

Run it directly (``python example_dags.py --dump-bundle-spec``), through ``python -m bundle --bundle
examples/bundle/example_dags.py``, or pack it with ``bundle-pack``. ``dags/simple_dag.py`` is the
Python DAG file Airflow reads, generated from this file (``bundle-pack dag-file``): never edit it.

The DAG, as the ``with etl:`` block at the end wires it (TaskFlow data passing)::

    extract >> transform.filter_rows >> transform.summarise >> route
    transform.filter_rows >> check_order                  # mapped: one instance per kept row
    route >> [load, report_empty] >> audit >> notify      # route follows one of the two
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


# A task group: its tasks get the ids "transform.filter_rows" and "transform.summarise", and the
# group's default_args (retries=2).
with etl.task_group("transform", tooltip="Filter the rows, then total them", default_args={"retries": 2}):

    @etl.task
    def filter_rows(extracted: dict, client: VariableClient, logger: logging.Logger) -> list:
        """Keep the rows at or above the min_amount variable."""
        threshold = float(client.get_variable("min_amount", default="5"))
        kept = [row for row in extracted["rows"] if row["amount"] >= threshold]
        logger.info("Kept %d of %d rows (threshold %s)", len(kept), len(extracted["rows"]), threshold)
        if len(kept) < len(extracted["rows"]):
            logger.warning("Dropped %d rows below the threshold", len(extracted["rows"]) - len(kept))
        return kept

    @etl.task
    def summarise(rows: list, client: VariableClient) -> dict:
        """Total the rows in the currency of the transform_settings JSON variable."""
        settings = client.get_variable(
            "transform_settings", default={"currency": "EUR"}, deserialize_json=True
        )
        return {"currency": settings["currency"], "rows": rows, "total": sum(row["amount"] for row in rows)}


# Dynamic task mapping: one task instance per kept row, labelled "order 1", "order 2", ... in the UI.
@etl.task(map_index_template="order {row[order_id]}")
def check_order(row: dict, logger: logging.Logger) -> float:
    """Check one kept row (a mapped task: one instance per row); its amount is its XCom."""
    if row["amount"] <= 0:
        raise ValueError(f"order {row['order_id']} has a non-positive amount {row['amount']}")
    logger.info("Order %s checked: %.2f", row["order_id"], row["amount"])
    return row["amount"]


@etl.branch
def route(summary: dict) -> str:
    """Follow load when rows are left, else report_empty; the other one is skipped."""
    return "load" if summary["rows"] else "report_empty"


@etl.task(retries=1, retry_delay=timedelta(seconds=5))
def load(summary: dict, ctx: Context, client: Client) -> int:
    """Fails on its first try (the warehouse is "warming up") and succeeds on the retry."""
    if ctx.ti.try_number == 1:
        raise ConnectionError("warehouse is not accepting connections yet; Airflow will retry")
    token = client.get_variable("warehouse_api_token")  # a sensitive name: masked in the task log
    log.info(
        "Loading %d rows (total %.2f %s) with token %s",
        len(summary["rows"]),
        summary["total"],
        summary["currency"],
        token,
    )
    return len(summary["rows"])


@etl.task
def report_empty(logger: logging.Logger) -> None:
    """Runs instead of load when no row reached the threshold."""
    logger.warning("No order reached min_amount: nothing to load")


# Explicit dag and task ids, for a task a Python DAG declares with @task.stub. It joins the two
# branches: none_failed_min_one_success runs it after load or after report_empty (the default,
# all_success, would skip it along with the branch not taken).
@bundle.task_handler("simple_dag", "audit", trigger_rule="none_failed_min_one_success")
def audit(loaded: int | None, ctx: Context) -> dict:
    """Logs a summary table of the run (with tabulate, a dependency packed into the bundle)."""
    import tabulate  # imported where it is used: tasks that do not need it never pay for it

    loaded = loaded or 0  # None: load was skipped by the branch
    table = tabulate.tabulate([[ctx.ti.run_id, loaded]], headers=["run", "loaded rows"])
    log.info("Audit (tabulate %s from %s):\n%s", tabulate.__version__, tabulate.__file__, table)
    return {"run_id": ctx.ti.run_id, "loaded_rows": loaded}


@etl.task
def notify(report: dict, client: VariableClient) -> None:
    """Skipped unless a notification channel is configured."""
    channel = client.get_variable("notify_channel", default=None)
    if channel is None:
        raise SkipTask("no notify_channel variable: nothing to notify")
    log.info("Would notify %s: %d rows loaded", channel, report["loaded_rows"])


# TaskFlow data passing: each call binds an upstream's output (its return_value XCom) to a
# parameter and adds the dependency; >> adds the ones no data flows along.
with etl:
    kept = filter_rows(extract())
    check_order.expand(row=kept)  # no row kept: zero instances, the task is skipped
    summary = summarise(kept)
    loaded = load(summary)
    report = audit(loaded)
    route(summary) >> [loaded, report_empty()] >> report
    notify(report)

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
