"""Data-aware scheduling with bundle tasks, in a real deployment, beside the Python-SDK twin.

tests/e2e/bundles/assets.py: ``publish`` (a pybundle task with an outlet) sets an extra on its asset
event; Airflow creates the event from its ``SucceedTask`` and starts ``asset_consumer_dag`` (a
pybundle DAG scheduled on the asset), whose ``consume`` returns the triggering event's extra and
source, and the asset's latest event (read through ``GetAssetEventByAsset``). The Python twin
(tests/e2e/dags/python_assets.py) does the same on an asset of its own; both consumers must return
the same, bar the ids.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment
from tests.e2e.rest import poll_until

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 120.0  # producer run, then the scheduler's asset check, then the consumer run
PAIRS = {"bundle": ("asset_producer_dag", "asset_consumer_dag"), "python": ("py_asset_producer_dag", "py_asset_consumer_dag")}  # fmt: skip


def _consumer_run(deployment: Deployment, dag_id: str, timeout: float) -> dict[str, Any]:
    """The consumer's first run once it has finished (the asset event creates it)."""

    def probe() -> dict[str, Any] | None:
        runs = deployment.rest._json("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
        done = [run for run in runs if run["state"] in ("success", "failed")]
        return done[0] if done else None

    return poll_until(probe, timeout, 1.0, lambda: f"{dag_id} never ran\n{deployment.log_tails()}")


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment) -> dict[str, dict[str, Any]]:
    began = time.monotonic()
    airflow_deployment.add_bundle(HERE / "bundles" / "assets.py", name="assets", dag_ids=PAIRS["bundle"])
    airflow_deployment.add_dag(HERE / "dags" / "python_assets.py", PAIRS["python"])
    producer_runs = {kind: airflow_deployment.trigger_run(pair[0]) for kind, pair in PAIRS.items()}
    result = {}
    for kind, (producer, consumer) in PAIRS.items():
        run_id = producer_runs[kind]
        producer_state = airflow_deployment.wait_run(producer, run_id, RUN_TIMEOUT)
        events = airflow_deployment.rest._json(
            "GET", "/api/v2/assets/events", params={"source_dag_id": producer, "source_run_id": run_id}
        )["asset_events"]
        consumed = _consumer_run(airflow_deployment, consumer, RUN_TIMEOUT)
        result[kind] = {
            "producer_run": run_id,
            "producer_state": producer_state,
            "events": events,
            "consumer_run": consumed,
            "consumer_xcom": airflow_deployment.xcom(consumer, consumed["dag_run_id"], "consume"),
        }
    print(f"assets: deployed and ran in {time.monotonic() - began:.1f} s")  # -s
    return result


def test_the_bundle_producer_emits_the_event_with_its_extra(outcomes: dict[str, dict[str, Any]]) -> None:
    ours = outcomes["bundle"]
    assert ours["producer_state"] == "success"
    assert [(e["asset_id"] is not None, e["extra"], e["source_task_id"]) for e in ours["events"]] == [
        (True, {"rows": 42, "producer_run": ours["producer_run"]}, "publish")
    ]


def test_the_event_triggers_the_bundle_consumer_which_reads_its_extra(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    ours = outcomes["bundle"]
    assert ours["consumer_run"]["state"] == "success"
    assert ours["consumer_run"]["run_type"] == "asset_triggered"
    extra = {"rows": 42, "producer_run": ours["producer_run"]}
    assert ours["consumer_xcom"] == {
        "triggering": [{"extra": extra, "source": ["asset_producer_dag", "publish", ours["producer_run"]]}],
        "latest_extra": extra,
        "run_type": "asset_triggered",
    }


def test_bundle_and_python_pairs_end_alike(outcomes: dict[str, dict[str, Any]]) -> None:
    def neutral(outcome: dict[str, Any]) -> Any:
        xcom = dict(outcome["consumer_xcom"])
        xcom["triggering"] = [
            {"extra": {**t["extra"], "producer_run": "R"}, "source": [t["source"][1]]}
            for t in xcom["triggering"]
        ]
        xcom["latest_extra"] = {**xcom["latest_extra"], "producer_run": "R"}
        events = [(e["extra"] | {"producer_run": "R"}, e["source_task_id"]) for e in outcome["events"]]
        return outcome["producer_state"], outcome["consumer_run"]["state"], events, xcom

    assert neutral(outcomes["bundle"]) == neutral(outcomes["python"])
