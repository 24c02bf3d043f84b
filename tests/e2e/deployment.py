"""A real apache-airflow 3.3.2 deployment in a temp dir, started the way docs/deploy.md says.

One object owns everything of one deployment: its AIRFLOW_HOME, DAGs folder, executables_root, the
services (api-server, scheduler, dag-processor, triggerer) and the REST client. Tests add bundles to
it (:meth:`Deployment.add_bundle`) and drive runs through the REST API only, like a user would.

Every shell command here is one docs/deploy.md shows (section named in the comment beside it): keep
the two in step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.config import Ports, deployment_settings, merge_into_cfg
from tests.e2e.rest import AirflowRest, TaskInstance, TaskLog, poll_until
from tests.e2e.services import ServiceSet

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE_DIR = ROOT / "examples" / "bundle"

# Bounds (2-core machine, everything else of the suite may run beside us).
SERVICES_READY_TIMEOUT = 300.0  # hang bounds, not speeds: a failed service or an import error fails at once
DAG_PARSED_TIMEOUT = 180.0
STOP_GRACE = 15.0


def airflow_bin() -> Path:
    """The ``airflow`` CLI of the venv running the tests; a missing Airflow is a failure, not a skip."""
    path = BIN / "airflow"
    if not path.exists():
        raise RuntimeError(
            f"{path} not found: tests/e2e needs apache-airflow==3.3.2 (pip install -e '.[dev]')"
        )
    return path


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the services bind 127.0.0.1 only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without any AIRFLOW_* setting (the test session sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # docs/performance.md: it slows every task start
    env["AIRFLOW_HOME"] = str(home)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass(frozen=True)
class DeployedBundle:
    name: str
    executable: Path
    dag_file: Path
    dag_ids: tuple[str, ...]


class Deployment:
    """Owns one running deployment; create it with :meth:`start`, end it with :meth:`stop`."""

    # What ``/api/v2/monitor/health`` must report healthy before the deployment is ready.
    health_components: tuple[str, ...] = ("metadatabase", "scheduler", "triggerer", "dag_processor")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "airflow-home"
        self.dags_folder = root / "dags"
        self.executables_root = root / "executable-bundles"
        self.packed = root / "packed"  # bundle-pack output, outside executables_root
        self.staging = root / "staging"  # same filesystem as executables_root: atomic rename
        self.ports = Ports(api=free_port(), worker_logs=free_port(), trigger_logs=free_port())
        self.base_url = f"http://127.0.0.1:{self.ports.api}/"
        self.services = ServiceSet(log_dir=root / "service-logs", env=_clean_env(self.home), cwd=root)
        self.rest = AirflowRest(self.base_url)
        self.bundles: dict[str, DeployedBundle] = {}

    # --- life cycle ----------------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path) -> Deployment:
        """Configure, migrate, import the example's variables/connections, start, wait until ready.

        On any failure the services started so far are stopped before the error propagates.
        """
        deployment = cls(root)
        try:
            deployment._configure()
            deployment._start_services()
            # The imports run while the services boot (15-30 s): tasks need them, start-up does not.
            deployment._import_variables_and_connections()
            deployment.wait_ready()
        except BaseException as exc:
            leftovers = deployment.stop()
            if leftovers:
                raise RuntimeError(f"start-up failed and left processes running: {leftovers}") from exc
            raise
        return deployment

    def _configure(self) -> None:
        airflow = str(airflow_bin())
        for path in (self.home, self.dags_folder, self.executables_root, self.packed, self.staging):
            path.mkdir(parents=True, exist_ok=True)
        # deploy.md "Configure Airflow": any command writes the default airflow.cfg; merge into it.
        self.services.run("airflow-version", [airflow, "version"], timeout=120)
        settings = self._settings()
        merge_into_cfg(self.home / "airflow.cfg", settings)
        # deploy.md "Database, variables, connections".
        self.services.run("db-migrate", [airflow, "db", "migrate"], timeout=180)
        if settings["database"]["sql_alchemy_conn"].startswith("sqlite:"):
            _sqlite_wal(self.home / "airflow.db")

    def _settings(self) -> dict[str, dict[str, str]]:
        """The airflow.cfg options of this deployment (a scale-out deployment adds its own)."""
        return deployment_settings(
            home=self.home,
            dags_folder=self.dags_folder,
            executables_root=self.executables_root,
            ports=self.ports,
        )

    def _import_variables_and_connections(self) -> None:
        # deploy.md "Database, variables, connections": the example's files, as they are.
        airflow = str(airflow_bin())
        local = EXAMPLE_DIR / "local"
        self.services.run_many(
            {
                "variables-import": [airflow, "variables", "import", str(local / "variables.yaml")],
                "connections-import": [airflow, "connections", "import", str(local / "connections.yaml")],
            },
            timeout=120,
        )

    def _start_services(self) -> None:
        airflow = str(airflow_bin())
        # deploy.md "Start the services": the two log servers would bind every interface.
        self.services.start(
            "api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.ports.api)]
        )
        self.services.start("scheduler", [airflow, "scheduler", "--skip-serve-logs"])
        self.services.start("dag-processor", [airflow, "dag-processor"])
        self.services.start("triggerer", [airflow, "triggerer", "--skip-serve-logs"])

    def wait_ready(self, timeout: float = SERVICES_READY_TIMEOUT) -> dict[str, Any]:
        """Until ``/api/v2/monitor/health`` reports every component healthy; fail fast if one died."""

        def probe() -> dict[str, Any] | None:
            self._check_alive()
            try:
                health = self.rest.health()
            except Exception:  # not listening yet
                return None
            components = self.health_components
            ok = all((health.get(c) or {}).get("status") == "healthy" for c in components)
            return health if ok else None

        return poll_until(probe, timeout, 1.0, lambda: f"not healthy\n{self.log_tails()}")

    def _check_alive(self) -> None:
        self.services.remember()
        dead = self.services.dead_services()
        if dead:
            names = ", ".join(f"{s.name} (exit {s.popen.returncode})" for s in dead)
            raise RuntimeError(f"service(s) exited: {names}\n{self.log_tails()}")

    def stop(self) -> list[str]:
        """Stop every process this deployment started; the descriptions of any that survived."""
        self.rest.close()
        return self.services.stop(grace=STOP_GRACE)

    def service_log(self, name: str) -> str:
        """The whole log of one service (e.g. "scheduler": with LocalExecutor, the workers' output)."""
        service = next(s for s in self.services.services if s.name == name)
        return service.log_path.read_text(errors="replace")

    def log_tails(self, lines: int = 40) -> str:
        parts = [f"----- {s.name} ({s.log_path}) -----\n{s.tail(lines)}" for s in self.services.services]
        return "\n".join(parts)

    # --- bundles and DAGs ----------------------------------------------------------------------------

    def pack(self, target: Path, name: str) -> Path:
        """``bundle-pack TARGET --format executable --output packed/NAME``, then ``bundle-pack verify``.

        deploy.md "Pack": verify checks the file like the coordinator will (trailer, hashes,
        manifest) and runs it once, so a broken artifact fails here, not in a task.
        """
        out = self.packed / name
        _run([str(BIN / "bundle-pack"), str(target), "--format", "executable", "--output", str(out)])
        _run([str(BIN / "bundle-pack"), "verify", str(out)])
        return out

    def generate_dag_file(self, target: Path, name: str) -> Path:
        """``bundle-pack dag-file TARGET --output packed/NAME.py`` (deploy.md "Generate the DAG file")."""
        out = self.packed / f"{name}.py"
        _run([str(BIN / "bundle-pack"), "dag-file", str(target), "--output", str(out)])
        return out

    def install_executable(self, packed: Path, name: str) -> Path:
        """Put a packed bundle into executables_root under *name*, atomically.

        deploy.md "Install both files" and "Upgrading a bundle".

        The coordinator scans executables_root at every task start and takes the first executable
        file listing the dag id, so a half-copied file must never be visible there: copy to a staging
        dir on the same filesystem, set the exec bit, then rename over the old file.
        """
        staged = self.staging / name
        shutil.copyfile(packed, staged)
        staged.chmod(staged.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        dest = self.executables_root / name
        os.replace(staged, dest)
        return dest

    def install_dag_file(self, dag_file: Path, name: str | None = None) -> Path:
        """Copy a DAG file into the DAGs folder by rename, so the DAG processor never reads half a file."""
        dest = self.dags_folder / (name or dag_file.name)
        staged = self.staging / dest.name
        shutil.copyfile(dag_file, staged)
        os.replace(staged, dest)
        return dest

    def add_bundle(
        self,
        target: Path,
        *,
        name: str,
        dag_ids: Iterable[str],
        dag_file: Path | None = None,
        timeout: float = DAG_PARSED_TIMEOUT,
    ) -> DeployedBundle:
        """Pack *target*, install it and its DAG file, wait until every dag id is parsed, unpause them.

        *dag_file* is the ``@task.stub`` DAG file Airflow parses; without one it is generated from
        *target* with ``bundle-pack dag-file`` (the normal case: hand-written files drift).
        """
        executable = self.install_executable(self.pack(target, name), name)
        source = dag_file if dag_file is not None else self.generate_dag_file(target, name)
        installed = self.add_dag(
            source, dag_ids, name=f"{name}.py" if dag_file is None else None, timeout=timeout
        )
        bundle = DeployedBundle(name, executable, installed, tuple(dag_ids))
        self.bundles[name] = bundle
        return bundle

    def add_dag(
        self,
        dag_file: Path,
        dag_ids: Iterable[str],
        *,
        name: str | None = None,
        timeout: float = DAG_PARSED_TIMEOUT,
    ) -> Path:
        """Install a DAG file in the DAGs folder, wait until each dag id is parsed, unpause them."""
        installed = self.install_dag_file(dag_file, name)
        for dag_id in dag_ids:
            self.wait_dag(dag_id, installed, timeout)
            self.rest.unpause(dag_id)
        return installed

    def remove_executable(self, name: str) -> None:
        (self.executables_root / name).unlink()

    def wait_dag(self, dag_id: str, dag_file: Path, timeout: float = DAG_PARSED_TIMEOUT) -> dict[str, Any]:
        """Until the DAG is visible via REST; an import error of *dag_file* fails at once.

        Presence only: after *replacing* a DAG file of an existing DAG this returns at once (wait for
        the new DAG version yourself if a test changes a DAG's shape).
        """

        def probe() -> dict[str, Any] | None:
            self._check_alive()
            dag = self.rest.dag(dag_id)
            if dag is not None:
                return dag
            errors = [e for e in self.rest.import_errors() if Path(e["filename"]).name == dag_file.name]
            if errors:
                raise RuntimeError(f"{dag_file} does not import:\n{errors[0]['stack_trace']}")
            return None

        return poll_until(probe, timeout, 1.0, lambda: f"DAG {dag_id} not parsed\n{self.log_tails()}")

    # --- runs (REST) -----------------------------------------------------------------------------

    def trigger_run(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        return self.rest.trigger_run(dag_id, conf)

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        try:
            return self.rest.wait_run(dag_id, run_id, timeout)
        finally:
            self.services.remember()

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, TaskInstance]:
        """task_id -> task instance, for unmapped tasks (use ``rest.task_instances`` for mapped ones)."""
        return {tid: ti for (tid, idx), ti in self.rest.task_instances(dag_id, run_id).items() if idx == -1}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
        return self.rest.xcom(dag_id, run_id, task_id, key, map_index)

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> TaskLog:
        return self.rest.task_log(dag_id, run_id, task_id, try_number, map_index)


def _sqlite_wal(db: Path) -> None:
    """Switch the SQLite database to WAL (persistent): readers stop blocking the one writer.

    Four services and the task workers write to one SQLite file; in the default rollback journal a
    long read makes writers hit SQLite's 5 s busy timeout (the API answers 500 "Database error").
    A test-deployment measure only: production uses PostgreSQL (docs/deploy.md).
    """
    with contextlib.closing(sqlite3.connect(db)) as conn:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"{db}: journal_mode is {mode}, not wal")


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
