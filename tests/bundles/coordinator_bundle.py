"""A bundle whose tasks exercise every coordinator-mode behaviour the tests assert on."""

from __future__ import annotations

import logging
import time
import warnings

from bundle import (
    Bundle,
    Client,
    ConnectionNotFound,
    Context,
    FailTask,
    RequestNotAllowed,
    SkipTask,
    VariableNotFound,
    serve,
)

bundle = Bundle("coordinator_tests", version="7", queue="pybundle")
dag = bundle.dag("coord_dag", schedule="@daily")
module_log = logging.getLogger("tests.module")


@dag.task
def returns_value(ctx: Context) -> dict:
    return {"answer": 42, "try": ctx.ti.try_number, "run": ctx.dag_run.run_id, "map_index": ctx.ti.map_index}


@dag.task
def round_trips(client: Client, ctx: Context) -> dict:
    conn = client.get_connection("db")
    client.set_variable("written", "by the task", description="set from pybundle")
    client.delete_variable("doomed")
    client.push_xcom("side", {"nested": [1, 2.5, None, True]})
    return {
        "plain": client.get_variable("plain"),
        "json": client.get_variable("json_var", deserialize_json=True),
        "conn": [conn.conn_type, conn.host, conn.port, conn.login, conn.schema, conn.extra_dejson],
        "upstream": client.get_xcom("upstream"),
        "upstream_other_key": client.get_xcom("upstream", key="other"),
        "xcom_count": client.get_xcom_count("upstream"),
        "keys": client.get_variable_keys(prefix="pl"),
        "dag_run_state": client.get_dag_run_state(),
        "env_override": client.get_variable("overridden"),
    }


@dag.task
def not_found(client: Client) -> dict:
    found = {}
    try:
        client.get_variable("missing")
    except VariableNotFound as exc:
        found["variable"] = str(exc)
    try:
        client.get_connection("missing")
    except ConnectionNotFound as exc:
        found["connection"] = str(exc)
    found["xcom"] = client.get_xcom("nobody", default="fallback")
    found["variable_default"] = client.get_variable("missing", default="dflt")
    return found


@dag.task
def raises() -> None:
    def inner() -> None:
        raise ValueError("boom from inner")

    inner()


@dag.task
def fails_hard() -> None:
    raise FailTask("no point retrying")


@dag.task
def skips() -> None:
    raise SkipTask("nothing to do today")


@dag.task
def logs(client: Client, log: logging.Logger) -> None:
    token = client.get_variable("api_token")
    conn = client.get_connection("db")
    log.debug("debug from the injected logger")
    log.info("info with extra", extra={"rows": 3, "target": "collides", "level": 99, "timestamp": 12.5})
    module_log.debug("module debug (namespace level DEBUG)")
    logging.getLogger("noisy.lib").info("noisy info (namespace level ERROR)")
    warnings.warn("a warning through the warnings module", stacklevel=1)
    log.warning("token is %s and password is %s", token, conn.password)
    try:
        raise RuntimeError(f"failed using {conn.password}")
    except RuntimeError:
        log.exception("handled error")


@dag.task
def cooperative(ctx: Context, log: logging.Logger) -> None:
    log.info("waiting for cancellation")
    for _ in range(600):
        if ctx.wait_cancelled(0.05):
            log.info("cancelled, stopping")
            return
    raise AssertionError("never cancelled")


@dag.task
def stubborn(log: logging.Logger) -> None:
    log.info("sleeping and ignoring cancellation")
    time.sleep(60)


@dag.task
def slow(log: logging.Logger) -> None:
    log.info("slow task started")
    time.sleep(60)


@dag.task
def pushes_bytes() -> bytes:
    return b"not json"


@dag.task
def forbidden_write(client: Client) -> str:
    try:
        client.request({"type": "SetXCom", "key": "k", "value": 1})  # missing fields: refused locally
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "sent"


@dag.task
async def async_task(client: Client) -> str:
    import asyncio

    await asyncio.sleep(0.01)
    return client.get_variable("plain")


@dag.task
def everything_else(client: Client, ctx: Context) -> dict:
    """Every remaining request type, through the real supervisor."""
    from datetime import datetime, timezone

    client.set_task_state("cursor", {"offset": 10})
    cursor = client.get_task_state("cursor")
    client.delete_task_state("cursor")
    after_delete = client.get_task_state("cursor", default="gone")
    client.set_task_state("other", 1)
    client.clear_task_state()
    client.push_xcom("to_delete", 1)
    client.delete_xcom("to_delete")
    client.trigger_dag_run("downstream_dag", "triggered__1", conf={"from": ctx.ti.task_id})
    return {
        "cursor": cursor,
        "after_delete": after_delete,
        "after_clear": client.get_task_state("other", default=None),
        "dag_run": client.get_dag_run()["run_id"],
        "seq_item": client.get_xcom_sequence_item("mapped", 1),
        "seq_slice": client.get_xcom_sequence_slice("mapped", 0, 2),
        "task_states": client.get_task_states(run_ids=[ctx.ti.run_id], task_ids=["everything_else"]),
        "ti_count": client.get_ti_count(run_ids=[ctx.ti.run_id]),
        "dr_count": client.get_dr_count(),
        # datetimes are not JSON: XCom values must be, so keep only what the test checks
        "previous": (client.get_previous_dag_run(datetime(2030, 1, 1, tzinfo=timezone.utc)) or {}).get(
            "run_id"
        ),
        "prev_success": sorted(client.get_prev_successful_dag_run()),
        "asset_by_name": client.get_asset(name="orders")["uri"],
        "asset_by_uri": client.get_asset(uri="s3://bucket/orders")["name"],
        "deleted_xcom": client.get_xcom(ctx.ti.task_id, key="to_delete", default="deleted"),
    }


@dag.task
def heavy_modules() -> list:
    import sys

    heavy = ("grpc", "google.protobuf", "yaml", "airflow", "pydantic", "click", "asyncio")
    return sorted(name for name in sys.modules if name.split(".")[0] in heavy or name.startswith(heavy))


__all__ = ["RequestNotAllowed", "bundle"]

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
