"""The deployment itself: every component healthy, and nothing listening beyond 127.0.0.1."""

from __future__ import annotations

import contextlib
import ipaddress

import psutil

from tests.e2e.deployment import Deployment


def test_every_component_reports_healthy(airflow_deployment: Deployment) -> None:
    health = airflow_deployment.rest.health()
    statuses = {name: (health.get(name) or {}).get("status") for name in health}
    assert statuses == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }


def test_only_loopback_listeners_and_no_log_servers(airflow_deployment: Deployment) -> None:
    listeners: dict[tuple[str, int], str] = {}
    for proc in airflow_deployment.services.processes():
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listeners[(conn.laddr.ip, conn.laddr.port)] = " ".join(proc.cmdline())[:80]
    assert ("127.0.0.1", airflow_deployment.ports.api) in listeners, listeners
    assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listeners), listeners
    ports = {port for _, port in listeners}
    # --skip-serve-logs: no worker / triggerer log server, not on the defaults nor on ours.
    assert not ports & {
        8793,
        8794,
        airflow_deployment.ports.worker_logs,
        airflow_deployment.ports.trigger_logs,
    }
