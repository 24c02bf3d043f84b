"""A bundle whose tasks read what earlier runs left in ``bundle-run --state`` (tests/test_bundle_run_state.py)."""

from __future__ import annotations

from bundle import Bundle, Client, Context, serve

bundle = Bundle("bundle_run_state", version="1", queue="bundle-run-tests")
dag = bundle.dag("stateful")


@dag.task
def count(client: Client) -> int:
    """Count the runs in a variable: each run sees the value the previous run wrote."""
    runs = int(client.get_variable("runs_counted", default="0")) + 1
    client.set_variable("runs_counted", str(runs))
    return runs


@dag.task
def look_back(client: Client, ctx: Context) -> dict:
    """Read the run history and the previous run's XCom through the Execution API."""
    previous = client.get_previous_dag_run(ctx.dag_run.logical_date)
    return {
        "dag_runs": client.get_dr_count(),
        "previous_run_id": previous["run_id"] if previous else None,
        "previous_count": client.get_xcom("count", run_id=previous["run_id"]) if previous else None,
        "count": client.get_xcom("count"),
        "greeting": client.get_variable("greeting", default=None),
    }


count >> look_back

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
