"""Is the supervisor ``bundle-run`` drives installed? Checked before anything else is started.

apache-airflow-task-sdk is an optional extra of pybundle (bundle programs never need it), so a
user who installed plain ``pybundle`` must get the exact install command, not an ImportError from
a child process.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata

from .errors import MissingAirflowError

DISTRIBUTION = "apache-airflow-task-sdk"
TESTED_VERSION = "1.3.2"
INSTALL_HINT = "pip install 'pybundle[airflow]'"
# Top-level packages the worker needs. Only top-level names are looked up: finding
# ``airflow.sdk.…`` would import ``airflow/__init__.py``, which takes seconds and touches AIRFLOW_HOME.
_REQUIRED_MODULES = ("airflow", "httpx", "psutil")


def installed_version() -> str | None:
    """The installed apache-airflow-task-sdk version, or None when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def check_airflow() -> str | None:
    """Raise :class:`MissingAirflowError` unless the supervisor is importable; return a warning or None.

    Only distribution metadata and top-level module specs are looked up (nothing is imported), so
    this costs milliseconds; the worker does the real, slow import and reports a broken install
    the same way.
    """
    version = installed_version()
    missing = [name for name in _REQUIRED_MODULES if not _spec_exists(name)]
    if version is None or missing:
        what = (
            f"{DISTRIBUTION} is not installed" if version is None else f"cannot import {', '.join(missing)}"
        )
        raise MissingAirflowError(
            f"bundle-run runs tasks under Airflow's task supervisor, but {what}. "
            f"Install it with: {INSTALL_HINT}"
        )
    if version != TESTED_VERSION:
        return (
            f"bundle-run is built for {DISTRIBUTION}=={TESTED_VERSION}; found {version}. "
            f"If the run misbehaves, install the tested version: {INSTALL_HINT}"
        )
    return None


def _spec_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False
