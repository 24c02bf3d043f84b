"""Coordinator mode: one task (or one DAG parse) driven by Airflow's task supervisor.

Entered with ``--comm=HOST:PORT --logs=HOST:PORT``. Start-up cost is per task, so this package
imports only the standard library, msgpack and the core; never grpc, protobuf or YAML.
"""

from __future__ import annotations

from ..core.provider import BundleProvider


def run(provider: BundleProvider, comm: str, logs: str) -> int:
    from .runtime import run_coordinator

    return run_coordinator(provider, comm, logs)
