"""pybundle on CeleryExecutor: two workers, routing by queue, a load of 20 runs, and faults.

The deployment (tests/scaleout/deployment.py) runs PostgreSQL, Redis, api-server, scheduler,
dag-processor and two ``airflow celery worker``s: ``python-worker`` consumes ``default``,
``bundle-worker`` consumes only ``python-bundle`` and is the only process with the ``[sdk]``
coordinator settings. Every task instance records the worker that ran it (``hostname``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.deployment import ROOT, Deployment
from tests.e2e.rest import TaskInstance, poll_until
from tests.scaleout.deployment import BUNDLE_WORKER, PYTHON_WORKER, CeleryDeployment
from tests.scaleout.measure import format_summary, latency_summary

HERE = Path(__file__).resolve().parent
EXAMPLE = ROOT / "examples" / "bundle"
WIDTH = 5
LOAD_RUNS = 20
RUN_TIMEOUT = 240.0
LOAD_TIMEOUT = 600.0


@pytest.fixture(scope="module")
def fanout(celery_deployment: CeleryDeployment) -> CeleryDeployment:
    """The mixed fan-out DAG deployed: its bundle half packed and installed, its hand-written file."""
    deployment = celery_deployment
    deployment.install_executable(deployment.pack(HERE / "bundles" / "fanout.py", "fanout"), "fanout")
    deployment.add_dag(HERE / "dags" / "fanout.py", ["fanout"])
    return deployment


def _ran_on(tis: dict[str, TaskInstance]) -> dict[str, str | None]:
    return {task_id: ti.hostname for task_id, ti in tis.items()}


def test_example_runs_every_task_on_the_bundle_worker(celery_deployment: CeleryDeployment) -> None:
    deployment = celery_deployment
    deployment.add_bundle(
        EXAMPLE / "example_dags.py",
        name="example_dags",
        dag_ids=["simple_dag"],
        dag_file=EXAMPLE / "dags" / "simple_dag.py",
    )
    run_id = deployment.trigger_run("simple_dag")
    state = deployment.wait_run("simple_dag", run_id, RUN_TIMEOUT)
    tis = deployment.task_instances("simple_dag", run_id)
    assert state == "success", {t: (ti.state, ti.try_number) for t, ti in tis.items()}
    ran = {t: ti for t, ti in tis.items() if ti.state != "skipped"}
    assert ran and all(ti.state == "success" for ti in ran.values())
    assert set(_ran_on(ran).values()) == {BUNDLE_WORKER}, _ran_on(ran)
    assert deployment.xcom("simple_dag", run_id, "extract")["source"] == "orders.db.internal"


def test_fanout_runs_each_kind_on_its_own_worker(fanout: CeleryDeployment) -> None:
    run_id = fanout.trigger_run("fanout")
    assert fanout.wait_run("fanout", run_id, RUN_TIMEOUT) == "success"
    tis = fanout.task_instances("fanout", run_id)
    assert sorted(tis) == sorted(
        [f"bundle_{i}" for i in range(WIDTH)] + [f"python_{i}" for i in range(WIDTH)]
    )
    for task_id, ti in tis.items():
        kind, index = task_id.split("_")
        assert (ti.state, ti.try_number) == ("success", 1), task_id
        assert ti.hostname == (BUNDLE_WORKER if kind == "bundle" else PYTHON_WORKER), (task_id, ti.hostname)
        assert ti.queue == ("python-bundle" if kind == "bundle" else "default")
        assert fanout.xcom("fanout", run_id, task_id) == {"index": int(index), "run_id": run_id, "try": 1}


def test_load_of_20_runs_loses_nothing_and_runs_nothing_twice(fanout: CeleryDeployment) -> None:
    started = time.monotonic()
    run_ids = [fanout.trigger_run("fanout") for _ in range(LOAD_RUNS)]
    states = {run_id: fanout.wait_run("fanout", run_id, LOAD_TIMEOUT) for run_id in run_ids}
    total = time.monotonic() - started
    assert set(states.values()) == {"success"}, states
    by_kind: dict[str, list[TaskInstance]] = {"bundle": [], "python": []}
    for run_id in run_ids:
        tis = fanout.task_instances("fanout", run_id)
        assert len(tis) == 2 * WIDTH
        for task_id, ti in tis.items():
            kind, index = task_id.split("_")
            # try 1 everywhere: nothing ran twice; the XCom names this run and index: nothing swapped
            assert (ti.state, ti.try_number) == ("success", 1), (run_id, task_id)
            assert fanout.xcom("fanout", run_id, task_id) == {"index": int(index), "run_id": run_id, "try": 1}
            assert ti.hostname == (BUNDLE_WORKER if kind == "bundle" else PYTHON_WORKER)
            by_kind[kind].append(ti)
    print(f"\nload: {LOAD_RUNS} runs x {2 * WIDTH} tasks in {total:.1f} s")
    for kind, tis in by_kind.items():
        summary = latency_summary(tis)
        print(format_summary(kind, summary))
        assert summary["count"] == LOAD_RUNS * WIDTH


# --- faults ------------------------------------------------------------------------------------------


def _wait_running(deployment: Deployment, run_id: str, task_id: str, timeout: float = 120.0) -> TaskInstance:
    def probe() -> TaskInstance | None:
        ti = deployment.task_instances("fanout", run_id)[task_id]
        return ti if ti.state == "running" else None

    return poll_until(probe, timeout, 0.3, lambda: f"{task_id} of {run_id} never ran")


def _task_processes(deployment: Deployment, needle: str) -> list[psutil.Process]:
    found = []
    for proc in deployment.services.processes():
        try:
            if needle in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _final(deployment: Deployment, run_id: str) -> dict[str, tuple[str | None, int]]:
    deployment.wait_run("fanout", run_id, RUN_TIMEOUT)
    return {t: (ti.state, ti.try_number) for t, ti in deployment.task_instances("fanout", run_id).items()}


def test_sigkill_of_a_bundle_runtime_mid_task_is_retried_like_a_python_task(fanout: CeleryDeployment) -> None:
    """The runtime process (the bundle executable) and the Python task process, each SIGKILLed
    while its task sleeps: the supervisor reports the try failed and the retry succeeds."""
    run_id = fanout.trigger_run("fanout", conf={"sleep": 30, "sleepers": ["bundle_0", "python_0"]})
    python_ti = _wait_running(fanout, run_id, "python_0")
    _wait_running(fanout, run_id, "bundle_0")

    def only_bundle_0_left() -> list[psutil.Process] | None:
        tis = fanout.task_instances("fanout", run_id)
        others_done = all(tis[f"bundle_{i}"].state == "success" for i in range(1, WIDTH))
        runtimes = _task_processes(fanout, str(fanout.executables_root / "fanout"))
        return runtimes if others_done and len(runtimes) == 1 else None

    bundle = poll_until(only_bundle_0_left, 60, 0.2, lambda: "bundle_0's runtime not found alone")
    python = poll_until(
        lambda: _task_processes(fanout, f"airflow worker -- {python_ti.id}") or None,
        30,
        0.2,
        lambda: "no python task process found",
    )
    for proc in bundle + python:
        os.kill(proc.pid, signal.SIGKILL)
    final = _final(fanout, run_id)
    print(f"\nSIGKILL of the task process (killed {[p.pid for p in bundle + python]}): {final}")
    assert final["bundle_0"] == final["python_0"] == ("success", 2), final


def test_api_server_restart_mid_run_is_survived_like_a_python_task(fanout: CeleryDeployment) -> None:
    """The api-server stops (SIGTERM) and comes back on the same port while a bundle task and a
    Python task each sleep 20 s: their supervisors retry the Execution API and both finish try 1.

    A task whose *start* falls into the outage (the supervisor's ``/run`` call, retried for about
    5 s) fails that try before any task code runs, whatever its kind (the released supervisor's
    rule), and its retry succeeds: every task still ends in success.

    On a loaded machine the restart itself can take long enough (13 s seen) for a running task's
    supervisor to give up too; the released supervisor decides that for both kinds alike, so the
    assertion is that the bundle task needs no more tries than the Python task beside it."""
    run_id = fanout.trigger_run("fanout", conf={"sleep": 20, "sleepers": ["bundle_0", "python_0"]})
    _wait_running(fanout, run_id, "bundle_0")
    _wait_running(fanout, run_id, "python_0")
    fanout.kill_service("api-server", signal.SIGTERM)
    down = time.monotonic()
    fanout.start_api_server()
    fanout.wait_ready()
    print(f"\napi-server down and back in {time.monotonic() - down:.1f} s")
    final = _final(fanout, run_id)
    print(f"api-server restart: {final}")
    assert {state for state, _ in final.values()} == {"success"}, final
    assert final["bundle_0"][1] <= final["python_0"][1], final


def test_sigkill_of_the_bundle_worker_mid_task_retries_like_a_python_task(fanout: CeleryDeployment) -> None:
    """Both workers' whole process trees SIGKILLed (a crashed machine) while a bundle task and a
    Python task sleep, then started again: the heartbeats stop, the scheduler fails each try after
    ``task_instance_heartbeat_timeout`` and the retry succeeds on the restarted worker.

    The workers die only once the sleepers are the run's last tasks: a task still queued in a
    worker's prefetch when it dies waits for the broker's redelivery or the scheduler's
    ``task_queued_timeout`` (minutes), whatever its kind; that is Celery's behaviour, not this test's."""
    sleepers = ("bundle_0", "python_0")
    run_id = fanout.trigger_run("fanout", conf={"sleep": 45, "sleepers": list(sleepers)})

    def only_the_sleepers_running() -> dict[str, TaskInstance] | None:
        tis = fanout.task_instances("fanout", run_id)
        others_done = all(ti.state == "success" for task_id, ti in tis.items() if task_id not in sleepers)
        return tis if others_done and all(tis[t].state == "running" for t in sleepers) else None

    poll_until(only_the_sleepers_running, 40, 0.3, lambda: f"{sleepers} never the only tasks running")
    fanout.kill_service(BUNDLE_WORKER)
    fanout.kill_service(PYTHON_WORKER)
    fanout.start_workers()
    final = _final(fanout, run_id)
    print(f"\nworker SIGKILL: {final}")
    assert final["bundle_0"] == final["python_0"] == ("success", 2), final
    tis = fanout.task_instances("fanout", run_id)
    assert tis["bundle_0"].hostname == BUNDLE_WORKER and tis["python_0"].hostname == PYTHON_WORKER
