"""PostgreSQL and Redis for the scale-out deployments, started from Debian's packages on 127.0.0.1.

CeleryExecutor needs a real database (Celery with SQLite is not supported) and a broker. Both run as
services of the deployment's ``ServiceSet``, so its teardown stops them with everything else; their
data lives in the deployment's temp dir. PostgreSQL refuses to run as root: when the suite runs as
root (CI) the cluster belongs to Debian's ``postgres`` user and is started through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.deployment import free_port
from tests.e2e.services import ServiceSet

PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT = 60.0


def missing_packages() -> list[str]:
    """The Debian packages `.ci/run` must install for these deployments (empty when all are here)."""
    missing = []
    if not (PG_BIN / "postgres").exists():
        missing.append("postgresql")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


@dataclass(frozen=True)
class Backends:
    """Where the deployment's database and broker listen."""

    postgres_port: int
    redis_port: int

    def sql_alchemy_conn(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.postgres_port}/{database}"

    def celery_result_backend(self, database: str) -> str:
        return f"db+postgresql+psycopg2://postgres@127.0.0.1:{self.postgres_port}/{database}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def start_backends(services: ServiceSet, root: Path, databases: list[str]) -> Backends:
    """Start PostgreSQL (trust auth, 127.0.0.1 only, one database per name) and Redis (no
    persistence, 127.0.0.1 only), wait until both answer; their logs go beside the services'."""
    missing = missing_packages()
    if missing:
        raise RuntimeError(
            f"the scale-out tests need Debian packages {missing}: apt-get install {' '.join(missing)}"
        )
    backends = Backends(postgres_port=free_port(), redis_port=free_port())
    data = root / "postgres"
    data.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
        # the cluster's owner must reach its data dir through the deployment's private temp dir
        root.chmod(0o755)
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    services.start(
        "postgres",
        _as_postgres(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(backends.postgres_port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
            ]
        ),
    )
    services.start(
        "redis",
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(backends.redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
    )
    _wait_port(services, backends.redis_port, "redis")
    _wait_postgres(services, backends.postgres_port)
    for database in databases:
        subprocess.run(
            [
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(backends.postgres_port),
                "-U",
                "postgres",
                database,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return backends


def _wait_port(services: ServiceSet, port: int, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        _check(services, name)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:.0f} s")


def _wait_postgres(services: ServiceSet, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        _check(services, "postgres")
        ready = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, timeout=10
        )
        if ready.returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError(
        f"postgres did not accept connections on 127.0.0.1:{port} within {READY_TIMEOUT:.0f} s"
    )


def _check(services: ServiceSet, name: str) -> None:
    service = next(s for s in services.services if s.name == name)
    if not service.alive():
        raise RuntimeError(f"{name} exited {service.popen.returncode}:\n{service.tail()}")
