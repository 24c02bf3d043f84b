"""Figure 9: what one task costs where users pay it, a real LocalExecutor deployment.

The e2e harness's ``Deployment`` (tests/e2e/deployment.py: Airflow 3.3.2 api-server, scheduler,
dag-processor, triggerer, configured as docs/deploy.md says) runs a no-op pybundle task
(``bench/cost_bundle.py``, packed, through the ``ExecutableCoordinator``) and the same no-op as a
Python ``@task`` (``bench/cost_dag.py``), one DAG run at a time, alternating. Per task:

* **queued → success**: the task instance's ``queued_when`` to its ``end_date`` (REST API), split at
  ``start_date`` (the ``/run`` call);
* **worker CPU**: the CPU time the LocalExecutor worker processes (the supervisor, Airflow's, runs
  in them) used for the task, their own and that of the task process they forked (Python) or spawned
  (the bundle runtime) and reaped: ``/proc`` counters before the run and once the worker is idle
  again. The task process's share alone is reported too (pybundle's share, for the bundle);
* **peak RSS**, in separate runs (the sampling costs CPU): ``VmHWM`` of the task process, sampled
  every ~2 ms while it lives (a lower bound by the growth of its last ~2 ms), and the worker's
  ``VmRSS`` beside it. The bundle's tree is the supervisor plus the runtime; the Python task process
  is a fork of the supervisor, so its RSS already counts the supervisor's pages it shares.

The deployment takes ~1 min to start and each run ~2 s, so this figure runs only in a full
``python -m bench`` or with ``--only 9``, never in ``--quick`` (the test suite's smoke run). It takes
``/tmp/pybundle-e2e.lock`` first: one deployment at a time on the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOCK_PATH = "/tmp/pybundle-e2e.lock"
BUNDLE_DAG = "bench_cost_bundle"
PYTHON_DAG = "bench_cost_python"
WORKER_TITLE = "airflow worker -- LocalExecutor"
RUN_TIMEOUT = 120.0
IDLE_TIMEOUT = 30.0
SAMPLE_SECONDS = 0.002
KEEP_ENV = "PYBUNDLE_BENCH_KEEP_DEPLOYMENT"  # keep the deployment dir (service and task logs)


@dataclass
class TaskCost:
    """One task's figures: seconds, CPU seconds, KiB."""

    queued_to_start: float
    start_to_end: float
    worker_cpu: float
    task_process_cpu: float

    @property
    def queued_to_end(self) -> float:
        return self.queued_to_start + self.start_to_end


@dataclass
class Memory:
    task_process_hwm_kib: int = 0
    worker_rss_kib: int = 0
    processes: int = 0
    tree_pss_kib: int = 0  # supervisor + task process, shared pages counted once between them


@dataclass
class Kind:
    name: str
    dag_id: str
    costs: list[TaskCost] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(c, attr) for c in self.costs)


def parse_time(value: str | None) -> datetime:
    """An API timestamp (``2026-12-02T00:30:00.123456Z``), timezone-aware."""
    if not value:
        raise ValueError("the task instance has no such timestamp")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cpu_seconds(proc: Any) -> tuple[float, float]:
    """(own + reaped children's CPU, reaped children's CPU) of a psutil process, 0 if it is gone."""
    import psutil

    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0, 0.0
    children = t.children_user + t.children_system
    return t.user + t.system + children, children


def proc_pss_kib(pid: int) -> int:
    """``Pss`` of ``/proc/PID/smaps_rollup``: RSS with each shared page split among its sharers
    (a forked task process and its supervisor share most pages); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of ``/proc/PID/status`` (``VmHWM``, ``VmRSS``); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@contextlib.contextmanager
def e2e_lock() -> Iterator[None]:
    """The machine-wide lock the e2e deployments share (tests/e2e and this figure)."""
    with open(LOCK_PATH, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"figure 9: waiting for {LOCK_PATH} (another deployment runs)", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Bench:
    """Drives one deployment: triggers runs, reads the workers' counters."""

    def __init__(self, deployment: Any):
        import psutil

        self.deployment = deployment
        scheduler = next(s for s in deployment.services.services if s.name == "scheduler")
        self.scheduler = psutil.Process(scheduler.pid)

    def workers(self) -> list[Any]:
        """The scheduler's LocalExecutor worker processes (their title says so)."""
        import psutil

        found = []
        for proc in self.scheduler.children(recursive=True):
            try:
                if " ".join(proc.cmdline()).startswith(WORKER_TITLE):
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    def wait_idle(self) -> list[Any]:
        """Until every worker is back at ``<idle>`` with no child: its task is reaped and counted."""
        import psutil

        deadline = time.monotonic() + IDLE_TIMEOUT
        while time.monotonic() < deadline:
            workers = self.workers()
            try:
                if all("<idle>" in " ".join(w.cmdline()) and not w.children() for w in workers):
                    return workers
            except psutil.Error:
                pass
            time.sleep(0.02)
        raise TimeoutError("the LocalExecutor workers did not return to <idle>")

    def run_once(self, kind: Kind, sample_memory: bool = False) -> TaskCost:
        before = {w.pid: cpu_seconds(w) for w in self.wait_idle()}
        memory = Memory()
        stop = threading.Event()
        sampler = None
        if sample_memory:
            sampler = threading.Thread(target=self._sample, args=(memory, stop), daemon=True)
            sampler.start()
        run_id = self.deployment.trigger_run(kind.dag_id)
        try:
            state = self.deployment.rest.wait_run(kind.dag_id, run_id, RUN_TIMEOUT, poll=0.1)
        finally:
            stop.set()
            if sampler is not None:
                sampler.join()
        if state != "success":
            raise RuntimeError(f"{kind.dag_id} run {run_id} ended {state}")
        after = {w.pid: cpu_seconds(w) for w in self.wait_idle()}
        ti = self.deployment.task_instances(kind.dag_id, run_id)["noop"]
        queued, start, end = (parse_time(t) for t in (ti.queued_when, ti.start_date, ti.end_date))
        worker_cpu = sum(total - before.get(pid, (0.0, 0.0))[0] for pid, (total, _) in after.items())
        task_cpu = sum(child - before.get(pid, (0.0, 0.0))[1] for pid, (_, child) in after.items())
        cost = TaskCost((start - queued).total_seconds(), (end - start).total_seconds(), worker_cpu, task_cpu)
        if sample_memory:
            kind.memory.append(memory)
        return cost

    def _sample(self, memory: Memory, stop: threading.Event) -> None:
        """Every ~2 ms: the workers' children's ``VmHWM`` and the busy worker's ``VmRSS``."""
        import psutil

        workers = self.workers()
        seen: set[int] = set()
        while not stop.is_set():
            for worker in workers:
                try:
                    children = worker.children()
                except psutil.Error:
                    continue
                for child in children:
                    hwm = proc_status_kib(child.pid, "VmHWM")
                    if hwm:
                        seen.add(child.pid)
                        memory.task_process_hwm_kib = max(memory.task_process_hwm_kib, hwm)
                        memory.worker_rss_kib = max(
                            memory.worker_rss_kib, proc_status_kib(worker.pid, "VmRSS")
                        )
                        pss = proc_pss_kib(child.pid)
                        if pss:
                            memory.tree_pss_kib = max(memory.tree_pss_kib, pss + proc_pss_kib(worker.pid))
            time.sleep(SAMPLE_SECONDS)
        memory.processes = len(seen)


def connection_check_cost(calls: int = 10) -> dict[str, float]:
    """What the released ``ExecutableCoordinator`` spends per accepted connection checking that it
    comes from the child's process tree (``_connection_owned_by_process_tree``: psutil's
    ``net_connections``, which reads the whole of ``/proc/net/tcp`` and ``/proc/net/tcp6``), measured
    here against a child that really connected. It runs twice per bundle task (comm and logs); a
    Python task, forked with a socket pair, never pays it. Median wall and mean CPU, ms."""
    import socket
    import subprocess

    from airflow.sdk.coordinators import _subprocess as coordinator

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import socket,time;s=socket.create_connection(('127.0.0.1',{port}));time.sleep(60)",
            ]
        )
        try:
            conn, _ = server.accept()
            with conn:
                peer = coordinator._socket_address(conn.getpeername())
                local = coordinator._socket_address(conn.getsockname())
                walls, cpus = [], []
                for _ in range(calls):
                    cpu, wall = os.times(), time.perf_counter()
                    if not coordinator._connection_owned_by_process_tree(peer, local, child):
                        raise RuntimeError("the coordinator's check did not find the child's connection")
                    walls.append(time.perf_counter() - wall)
                    after = os.times()
                    cpus.append(after.user + after.system - cpu.user - cpu.system)
        finally:
            child.kill()
            child.wait()
    return {
        "connection_check_wall_ms": round(statistics.median(walls) * 1000, 1),
        "connection_check_cpu_ms": round(statistics.fmean(cpus) * 1000, 1),
    }


def deployment_cost(runs: int, memory_runs: int) -> list[Any]:
    """Figure 9's rows: ``runs`` tasks of each kind alternated (after 3 warm-ups each), then
    ``memory_runs`` each with the RSS sampler."""
    from tests.e2e.deployment import Deployment

    from .figures import Row

    bundle = Kind("pybundle no-op task (packed, ExecutableCoordinator)", BUNDLE_DAG)
    python = Kind("Python @task no-op", PYTHON_DAG)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # a SIGTERM still stops the deployment
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with e2e_lock():
        root = Path(tempfile.mkdtemp(prefix="pybundle-bench9-"))
        deployment = Deployment.start(root)
        try:
            deployment.add_bundle(HERE / "cost_bundle.py", name="bench_cost", dag_ids=[BUNDLE_DAG])
            deployment.add_dag(HERE / "cost_dag.py", [PYTHON_DAG])
            bench = Bench(deployment)
            for _ in range(3):  # the first bundle run extracts its runtime; both warm the page cache
                for kind in (bundle, python):
                    bench.run_once(kind)
            for i in range(runs):
                # alternate which goes first, so neither always runs right after the other
                for kind in (bundle, python) if i % 2 == 0 else (python, bundle):
                    kind.costs.append(bench.run_once(kind))
            for _ in range(memory_runs):
                for kind in (bundle, python):
                    bench.run_once(kind, sample_memory=True)
            checks = connection_check_cost()  # same machine, same minutes, same TCP table
        finally:
            leftovers = deployment.stop()
            if os.environ.get(KEEP_ENV):
                print(f"figure 9: deployment kept in {root}", file=sys.stderr)
            else:
                shutil.rmtree(root, ignore_errors=True)
        if leftovers:
            raise RuntimeError(f"figure 9's deployment left processes running: {leftovers}")
    return rows(bundle, python, Row, checks)


def rows(bundle: Kind, python: Kind, Row: Any, checks: dict[str, float] | None = None) -> list[Any]:
    """The report rows of figure 9 from the measured kinds (pure: unit-tested). ``checks`` (the
    coordinator's connection check, Airflow's share of a bundle task) goes into the CPU row."""
    out = []

    def ratio_row(label: str, attr: str, unit: str, scale: float, target: str | None) -> None:
        ours, theirs = bundle.median(attr), python.median(attr)
        out.append(
            Row(
                f"9 task cost: {label}",
                bundle.name,
                ours * scale,
                unit,
                python.name,
                theirs * scale,
                ours / theirs if theirs else None,
                target,
                {
                    "runs": len(bundle.costs),
                    "p10_p90": [
                        round(q * scale, 1) for q in _deciles([getattr(c, attr) for c in bundle.costs])
                    ],
                    "baseline_p10_p90": [
                        round(q * scale, 1) for q in _deciles([getattr(c, attr) for c in python.costs])
                    ],
                },
            )
        )

    ratio_row("queued to success", "queued_to_end", "ms", 1000.0, "<= 1.0")
    ratio_row("queued to start (/run)", "queued_to_start", "ms", 1000.0, None)
    ratio_row("start (/run) to success", "start_to_end", "ms", 1000.0, None)
    ratio_row("worker CPU", "worker_cpu", "ms", 1000.0, "<= 1.0")
    if checks:
        out[-1].extra = {**(out[-1].extra or {}), **checks, "connection_checks_per_task": 2}
    ratio_row("task process CPU", "task_process_cpu", "ms", 1000.0, None)
    if bundle.memory and python.memory:
        ours_child = max(m.task_process_hwm_kib for m in bundle.memory)
        ours_worker = max(m.worker_rss_kib for m in bundle.memory)
        theirs_child = max(m.task_process_hwm_kib for m in python.memory)
        theirs_worker = max(m.worker_rss_kib for m in python.memory)
        extra = {
            "runs": len(bundle.memory),
            "runtime_hwm_mib": round(ours_child / 1024, 1),
            "supervisor_rss_mib": round(ours_worker / 1024, 1),
            "python_task_process_hwm_mib": round(theirs_child / 1024, 1),
            "python_supervisor_rss_mib": round(theirs_worker / 1024, 1),
            "task_processes_seen": [
                sum(m.processes for m in bundle.memory),
                sum(m.processes for m in python.memory),
            ],
        }
        out.append(
            Row(
                "9 task cost: peak RSS",
                "supervisor + pybundle runtime",
                (ours_worker + ours_child) / 1024,
                "MiB",
                "Python task process (a fork of the supervisor)",
                theirs_child / 1024,
                (ours_worker + ours_child) / theirs_child if theirs_child else None,
                "<= 1.0",
                extra,
            )
        )
        out.append(
            Row(
                "9 task cost: peak PSS, supervisor + task process",
                "supervisor + pybundle runtime",
                max(m.tree_pss_kib for m in bundle.memory) / 1024,
                "MiB",
                "supervisor + Python task process",
                max(m.tree_pss_kib for m in python.memory) / 1024,
                max(m.tree_pss_kib for m in bundle.memory)
                / max(1, max(m.tree_pss_kib for m in python.memory)),
                None,
            )
        )
        out.append(
            Row(
                "9 task cost: peak RSS, task process alone",
                "pybundle runtime",
                ours_child / 1024,
                "MiB",
                "Python task process",
                theirs_child / 1024,
                ours_child / theirs_child if theirs_child else None,
                None,
            )
        )
    return out


def _deciles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]] if values else [0.0, 0.0]
    q = statistics.quantiles(values, n=10)
    return [q[0], q[-1]]


if __name__ == "__main__":  # python -m bench.deployment_cost [RUNS] [MEMORY_RUNS]
    import json

    from .figures import Row as _Row  # noqa: F401  (same import path as the suite)

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for row in deployment_cost(n, m):
        print(json.dumps(vars(row)))
