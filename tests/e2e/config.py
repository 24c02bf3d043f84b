"""The airflow.cfg of the e2e deployment: what docs/deploy.md tells a platform engineer to set.

Keep this and ``docs/deploy.md`` ("Configure Airflow") in step: every option here is one the guide
lists, with the same reason. The options are *merged* into the airflow.cfg Airflow generates (its
``[sdk]`` section already exists: appending a second one makes every Airflow command fail with
``configparser.DuplicateSectionError``).
"""

from __future__ import annotations

import configparser
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

# The coordinator key of airflow.cfg.example; the queue the example bundle declares.
COORDINATOR = "pybundle"
BUNDLE_QUEUE = "python-bundle"


@dataclass(frozen=True)
class Ports:
    """The only TCP port the deployment listens on, and the log-server ports it must never open."""

    api: int
    worker_logs: int
    trigger_logs: int


def deployment_settings(
    *, home: Path, dags_folder: Path, executables_root: Path, ports: Ports
) -> dict[str, dict[str, str]]:
    """Section -> option -> value for a one-machine LocalExecutor deployment on 127.0.0.1."""
    base_url = f"http://127.0.0.1:{ports.api}/"
    coordinators = {
        COORDINATOR: {
            "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
            "kwargs": {"executables_root": [str(executables_root)], "task_startup_timeout": 10.0},
        }
    }
    return {
        "core": {
            "executor": "LocalExecutor",
            "dags_folder": str(dags_folder),
            "load_examples": "False",
            "fernet_key": Fernet.generate_key().decode(),
            # SimpleAuthManager (the default): every caller is an admin, GET /auth/token needs no
            # credentials. A test deployment only; see docs/deploy.md for a real one.
            "simple_auth_manager_all_admins": "True",
        },
        "database": {"sql_alchemy_conn": f"sqlite:///{home / 'airflow.db'}"},
        "api": {
            "host": "127.0.0.1",
            "port": str(ports.api),
            # The executor derives the Execution API URL the workers call from it.
            "base_url": base_url,
            "workers": "1",
        },
        # One secret for every component: otherwise each process invents its own and the API server
        # rejects the tokens the scheduler's workers present.
        "api_auth": {"jwt_secret": secrets.token_urlsafe(32)},
        # The services run with --skip-serve-logs; should one start a log server anyway, it gets a
        # free port instead of 8793/8794 (it would bind every interface).
        "logging": {
            "worker_log_server_port": str(ports.worker_logs),
            "trigger_log_server_port": str(ports.trigger_logs),
            # The example's debug record (the masked password) is dropped without it.
            "namespace_levels": "example_dags=DEBUG",
        },
        "scheduler": {"enable_health_check": "False"},
        # New DAG files are listed every 2 s instead of every 5 min: tests add DAGs at run time.
        "dag_processor": {"refresh_interval": "2", "parsing_processes": "1"},
        "sdk": {
            "coordinators": json.dumps(coordinators),
            "queue_to_coordinator": json.dumps({BUNDLE_QUEUE: COORDINATOR}),
        },
    }


def merge_into_cfg(cfg_path: Path, settings: Mapping[str, Mapping[str, str]]) -> None:
    """Set each option in its existing section (adding sections that are missing), keep the rest.

    ``interpolation=None`` keeps Airflow's ``%``-formatted values (log formats) byte for byte.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # option names as written
    parser.read(cfg_path)
    for section, options in settings.items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in options.items():
            parser.set(section, key, value)
    with open(cfg_path, "w") as handle:
        parser.write(handle)
