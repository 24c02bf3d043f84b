"""Airflow 3.3.2 on its distributed executors: CeleryExecutor and the Edge executor (edge3).

Both extend the LocalExecutor deployment of ``tests/e2e`` (same REST helpers, bundles, teardown)
with what docs/deploy.md "Scale out" tells a platform engineer to run: PostgreSQL and Redis
(``backends``), no task runs in the scheduler, and workers of their own. The ``[sdk]`` coordinator
settings are given **only to the worker that consumes the bundle's queue** (as environment variables),
so a bundle task that reached any other worker would fail, and every task instance records which
worker ran it: ``[core] hostname_callable`` reads the worker's name from ``PYBUNDLE_WORKER_NAME``
(on a real cluster each worker has a host name of its own; here they share one machine).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.config import BUNDLE_QUEUE
from tests.e2e.deployment import Deployment, airflow_bin
from tests.e2e.services import Service
from tests.scaleout.backends import Backends, start_backends

PYTHON_WORKER, BUNDLE_WORKER = "python-worker", "bundle-worker"
DEFAULT_QUEUE = "default"
WORKER_CONCURRENCY = "2"  # per worker; the machine has 2 cores
EDGE_EXECUTOR = "airflow.providers.edge3.executors.EdgeExecutor"

_HOSTNAME_MODULE = '''"""Test deployment only: each worker reports the name its environment gives it."""
import os
import socket


def hostname() -> str:
    return os.environ.get("PYBUNDLE_WORKER_NAME") or socket.getfqdn()
'''


class ScaleOutDeployment(Deployment):
    """Common part: PostgreSQL (and Redis) first, [sdk] settings kept out of airflow.cfg."""

    health_components = ("metadatabase", "scheduler", "dag_processor")
    database = "airflow"
    needs_broker = True

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.backends: Backends | None = None
        self.pythonpath = root / "pythonpath"

    def _configure(self) -> None:
        self.pythonpath.mkdir(parents=True, exist_ok=True)
        (self.pythonpath / "pybundle_worker_name.py").write_text(_HOSTNAME_MODULE)
        self.services.env = {**self.services.env, "PYTHONPATH": str(self.pythonpath)}
        self.backends = start_backends(self.services, self.root, [self.database])
        super()._configure()

    def _settings(self) -> dict[str, dict[str, str]]:
        assert self.backends is not None
        settings = super()._settings()
        self.sdk_settings = settings.pop("sdk")
        settings["core"]["hostname_callable"] = "pybundle_worker_name.hostname"
        # A worker that dies takes its tasks' heartbeats with it; the scheduler notices after this
        # many seconds (default 300) and fails or retries the task, as for any Python task.
        settings["scheduler"]["task_instance_heartbeat_timeout"] = "30"
        settings["scheduler"]["task_instance_heartbeat_timeout_detection_interval"] = "5"
        settings["database"] = {"sql_alchemy_conn": self.backends.sql_alchemy_conn(self.database)}
        return settings

    def kill_service(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Signal a service's whole process group (a crashed machine: the service and every task
        process below it) and wait until its leader has exited; it is then forgotten, so it can be
        started again under the same name."""
        service = self._service(name)
        os.killpg(service.pid, sig)
        service.popen.wait(timeout=timeout)
        self.services.services.remove(service)

    def _service(self, name: str) -> Service:
        return next(s for s in self.services.services if s.name == name)

    def bundle_worker_env(self) -> dict[str, str]:
        """The coordinator settings, for the worker of the bundle's queue only (deploy.md)."""
        return {
            "PYBUNDLE_WORKER_NAME": BUNDLE_WORKER,
            "AIRFLOW__SDK__COORDINATORS": self.sdk_settings["coordinators"],
            "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": self.sdk_settings["queue_to_coordinator"],
        }

    def _start_common(self) -> None:
        airflow = str(airflow_bin())
        self.start_api_server()
        self.services.start("scheduler", [airflow, "scheduler", "--skip-serve-logs"])
        self.services.start("dag-processor", [airflow, "dag-processor"])

    def start_api_server(self) -> None:
        airflow = str(airflow_bin())
        self.services.start(
            "api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.ports.api)]
        )


class CeleryDeployment(ScaleOutDeployment):
    """CeleryExecutor with two workers: one for the default queue, one for the bundle's queue."""

    def _settings(self) -> dict[str, dict[str, str]]:
        settings = super()._settings()
        assert self.backends is not None
        settings["core"]["executor"] = "CeleryExecutor"
        settings["celery"] = {
            "broker_url": self.backends.broker_url,
            "result_backend": self.backends.celery_result_backend(self.database),
            "worker_concurrency": WORKER_CONCURRENCY,
        }
        return settings

    def _start_services(self) -> None:
        self._start_common()
        self.start_workers()

    def start_workers(self) -> None:
        """(Re)start both workers; a fault test kills and restarts them."""
        airflow = str(airflow_bin())
        worker = [airflow, "celery", "worker", "--skip-serve-logs", "--concurrency", WORKER_CONCURRENCY]
        self.services.start(
            PYTHON_WORKER,
            [*worker, "--queues", DEFAULT_QUEUE, "--celery-hostname", f"{PYTHON_WORKER}@%h"],
            env={"PYBUNDLE_WORKER_NAME": PYTHON_WORKER},
        )
        self.services.start(
            BUNDLE_WORKER,
            [*worker, "--queues", BUNDLE_QUEUE, "--celery-hostname", f"{BUNDLE_WORKER}@%h"],
            env=self.bundle_worker_env(),
        )


class EdgeDeployment(ScaleOutDeployment):
    """The Edge executor (apache-airflow-providers-edge3): an ``airflow edge worker`` for the bundle's
    queue pulls its jobs from the api-server's edge API over HTTP, as a remote site would."""

    database = "airflow_edge"

    def _settings(self) -> dict[str, dict[str, str]]:
        settings = super()._settings()
        settings["core"]["executor"] = EDGE_EXECUTOR
        settings["edge"] = {
            "api_enabled": "True",
            "api_url": f"{self.base_url}edge_worker/v1/rpcapi",
            "job_poll_interval": "1",
            "heartbeat_interval": "5",
        }
        return settings

    def _start_services(self) -> None:
        self._start_common()
        airflow = str(airflow_bin())
        self.services.start(
            BUNDLE_WORKER,
            [airflow, "edge", "worker", "--queues", BUNDLE_QUEUE, "--concurrency", WORKER_CONCURRENCY],
            env=self.bundle_worker_env(),
        )
