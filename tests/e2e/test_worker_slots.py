"""Waiting does not hold a worker slot: a deferred task and a reschedule-mode sensor free their pool
slot, in the real deployment, for a bundle DAG as for its Python-SDK twin.

The shared deployment's executor settings cannot change per test, so the slot is an Airflow pool of
one slot (created through ``POST /api/v2/pools``; ``include_deferred`` False, Airflow 3.3.2's
default: the scheduler counts ``running`` and ``queued`` task instances against a pool, plus
``deferred`` ones only for a pool that includes them; ``up_for_reschedule`` never counts). Each pool
is shared by a task that waits (given the slot first by its priority) and a short task: the short
task starts after the waiter began waiting and ends before the waiter ends, which a held slot would
make impossible. tests/e2e/bundles/worker_slots.py has the bundle DAG, tests/e2e/dags/
python_worker_slots.py its twin (with pools of its own, so the two runs do not compete).

TaskReschedule rows (the sensor's pokes) are read from the deployment's database, read-only, as in
tests/e2e/test_sensors.py: the REST API has no endpoint for them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deployment import Deployment
from tests.e2e.rest import Progress

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = (
    180.0  # a stall bound (rest.Progress): a 25 s deferral and pokes 8 s apart change nothing for a while
)
DAGS = {"bundle": "worker_slots_dag", "python": "python_worker_slots_dag"}
POOLS = {
    "bundle": {"defer": "bundle_slots_defer", "reschedule": "bundle_slots_resched"},
    "python": {"defer": "python_slots_defer", "reschedule": "python_slots_resched"},
}
TASKS = ("waiter", "after_defer", "sensor", "after_poke")


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _reschedules(deployment: Deployment, dag_id: str, run_id: str) -> list[tuple[datetime, datetime]]:
    """The sensor's TaskReschedule rows: (poke start, poke end), in order."""
    uri = f"file:{deployment.home / 'airflow.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT tr.start_date, tr.end_date FROM task_reschedule tr JOIN task_instance ti "
            "ON tr.ti_id = ti.id WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = 'sensor' "
            "ORDER BY tr.id",
            (dag_id, run_id),
        ).fetchall()
    return [(_when(start), _when(end)) for start, end in rows]


def _pool(deployment: Deployment, name: str) -> dict[str, Any]:
    return deployment.rest._json("GET", f"/api/v2/pools/{name}")


def _watch(deployment: Deployment, runs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Poll both runs until they end: what was seen while the waiters waited."""
    seen = {
        kind: {"done_while_deferred": False, "done_while_rescheduled": False, "deferred_pool": None}
        for kind in runs
    }
    pending = set(runs)
    progress = Progress(RUN_TIMEOUT)
    while pending and not progress.expired():
        snapshot = []
        for kind in list(pending):
            tis = deployment.task_instances(DAGS[kind], runs[kind])
            states = {task_id: tis[task_id].state for task_id in TASKS if task_id in tis}
            snapshot.append((kind, sorted((t, ti.state or "", ti.try_number) for t, ti in tis.items())))
            if states.get("waiter") == "deferred":
                if states.get("after_defer") == "success":
                    seen[kind]["done_while_deferred"] = True
                if seen[kind]["deferred_pool"] is None:  # the pool's own count, mid-wait
                    seen[kind]["deferred_pool"] = _pool(deployment, POOLS[kind]["defer"])
            if states.get("sensor") == "up_for_reschedule" and states.get("after_poke") == "success":
                seen[kind]["done_while_rescheduled"] = True
            if deployment.rest.run_state(DAGS[kind], runs[kind]) in ("success", "failed"):
                pending.discard(kind)
        progress.saw(snapshot)
        time.sleep(0.5)
    assert not pending, f"runs still going, {progress.describe()}: {pending}\n{deployment.log_tails()}"
    return seen


@pytest.fixture(scope="module")
def outcomes(airflow_deployment: Deployment) -> dict[str, dict[str, Any]]:
    began = time.monotonic()
    for pools in POOLS.values():
        for name in pools.values():
            pool = airflow_deployment.rest.create_pool(name, 1)
            assert (pool["slots"], pool["include_deferred"]) == (1, False), pool
    deployed = airflow_deployment.add_bundle(
        HERE / "bundles" / "worker_slots.py", name="worker_slots", dag_ids=[DAGS["bundle"]]
    )
    airflow_deployment.add_dag(HERE / "dags" / "python_worker_slots.py", [DAGS["python"]])
    runs = {kind: airflow_deployment.trigger_run(dag_id) for kind, dag_id in DAGS.items()}
    seen = _watch(airflow_deployment, runs)
    result: dict[str, dict[str, Any]] = {}
    for kind, run_id in runs.items():
        dag_id = DAGS[kind]
        tis = airflow_deployment.task_instances(dag_id, run_id)
        result[kind] = {
            "state": airflow_deployment.rest.run_state(dag_id, run_id),
            "tis": tis,
            "deferred_at": _when(airflow_deployment.xcom(dag_id, run_id, "waiter")),
            "reschedules": _reschedules(airflow_deployment, dag_id, run_id),
            "pools": {
                task_id: airflow_deployment.rest._json("GET", f"/api/v2/dags/{dag_id}/tasks/{task_id}")[
                    "pool"
                ]
                for task_id in TASKS
            },
            **seen[kind],
        }
    result["bundle"]["dag_file"] = deployed.dag_file.read_text()
    print(f"worker slots: deployed and ran in {time.monotonic() - began:.1f} s; {result}")  # -s
    return result


@pytest.mark.parametrize("kind", ["bundle", "python"])
def test_a_deferred_task_frees_its_pool_slot(outcomes: dict[str, dict[str, Any]], kind: str) -> None:
    outcome = outcomes[kind]
    assert outcome["state"] == "success"
    waiter, other = outcome["tis"]["waiter"], outcome["tis"]["after_defer"]
    assert (waiter.state, waiter.try_number, other.state, other.try_number) == ("success", 1, "success", 1)
    # the other task of the one-slot pool ran between the waiter's defer and its end
    assert outcome["deferred_at"] < _when(other.start_date), outcome
    assert _when(other.end_date) < _when(waiter.end_date), outcome
    assert outcome["done_while_deferred"], outcome
    # seen mid-wait: the pool counts the waiter as deferred, and not in its occupied slots
    pool = outcome["deferred_pool"]
    assert pool is not None and pool["deferred_slots"] == 1, pool
    assert pool["occupied_slots"] == pool["running_slots"] + pool["queued_slots"] <= 1, pool


@pytest.mark.parametrize("kind", ["bundle", "python"])
def test_a_rescheduled_sensor_frees_its_pool_slot(outcomes: dict[str, dict[str, Any]], kind: str) -> None:
    outcome = outcomes[kind]
    sensor, other = outcome["tis"]["sensor"], outcome["tis"]["after_poke"]
    assert (sensor.state, sensor.try_number, other.state, other.try_number) == ("success", 1, "success", 1)
    pokes = outcome["reschedules"]
    assert len(pokes) == 2, pokes  # done on the third poke: rescheduled twice
    first_poke_start, _ = pokes[0]
    assert first_poke_start < _when(other.start_date), outcome
    assert _when(other.end_date) < _when(sensor.end_date), outcome
    assert outcome["done_while_rescheduled"], outcome


def test_the_pools_reach_the_scheduler_through_the_generated_dag_file(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    for kind, pools in POOLS.items():
        assert outcomes[kind]["pools"] == {
            "waiter": pools["defer"],
            "after_defer": pools["defer"],
            "sensor": pools["reschedule"],
            "after_poke": pools["reschedule"],
        }
    text = outcomes["bundle"]["dag_file"]
    assert text.count('pool="bundle_slots_defer"') == 2 and text.count('pool="bundle_slots_resched"') == 2, (
        text
    )


def test_bundle_and_python_end_alike(outcomes: dict[str, dict[str, Any]]) -> None:
    ours, python = outcomes["bundle"], outcomes["python"]
    view = {kind: {t: (ti.state, ti.try_number) for t, ti in outcomes[kind]["tis"].items()} for kind in DAGS}
    assert view["bundle"] == view["python"]
    assert len(ours["reschedules"]) == len(python["reschedules"])
