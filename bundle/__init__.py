"""pybundle: write Airflow language-SDK bundles in Python.

``serve(bundle)`` makes a Python program behave like a Go SDK bundle binary: metadata and spec
dumps, coordinator mode under Airflow's task supervisor, and go-plugin mode for the Go Edge Worker.
"""

from __future__ import annotations

import sys as _sys

from . import _stdout

if _stdout.needs_clean_stdout(_sys.argv[1:]):
    # A dump or the go-plugin handshake is coming: keep the bundle's own prints off stdout.
    _stdout.protect_stdout()

from ._version import __version__
from .core.authoring.binding import XComArg, XComNotFound
from .core.client import Client, ConnectionClient, VariableClient, XComClient
from .core.context import BundleInfo, Context, DagRunInfo, TaskInstanceInfo
from .core.errors import (
    AirflowApiError,
    ConnectionNotFound,
    FailTask,
    InvalidRequest,
    NotFound,
    RegistrationError,
    RequestNotAllowed,
    SkipTask,
    TaskCancelled,
    TaskTimeout,
    VariableNotFound,
)
from .core.provider import Bundle, BundleProvider
from .core.registry import Dag, Registry, Task
from .serve import serve

TYPE_CHECKING = False
if TYPE_CHECKING:
    # What ``__getattr__`` serves lazily, as type checkers and IDEs should see it (tests pin the
    # two lists together); at run time these modules load on first access only.
    from .core.asset_events import AssetEvent
    from .core.authoring.assets import Asset, AssetAll, AssetAny
    from .core.authoring.params import Param, ParamValidationError
    from .core.authoring.sensors import PokeReturnValue, SensorTimeout
    from .core.connection import Connection
del TYPE_CHECKING  # not part of the package's surface


def __getattr__(name: str) -> object:
    # ``Connection`` is only needed by bundles that use connections: loaded on first access.
    if name == "Connection":
        from .core.connection import Connection

        return Connection
    # ``Param`` likewise, for DAGs with params (its validator stays unloaded for the others).
    if name in ("Param", "ParamValidationError"):
        from .core.authoring import params

        return getattr(params, name)
    # ``Asset`` and its expressions likewise, for DAGs and tasks that use assets.
    if name in ("Asset", "AssetAll", "AssetAny"):
        from .core.authoring import assets

        return getattr(assets, name)
    if name == "AssetEvent":
        from .core import asset_events

        return asset_events.AssetEvent
    # ``PokeReturnValue`` / ``SensorTimeout`` likewise, for bundles with sensors.
    if name in ("PokeReturnValue", "SensorTimeout"):
        from .core.authoring import sensors

        return getattr(sensors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AirflowApiError",
    "Asset",
    "AssetAll",
    "AssetAny",
    "AssetEvent",
    "Bundle",
    "BundleInfo",
    "BundleProvider",
    "Client",
    "Connection",
    "ConnectionClient",
    "ConnectionNotFound",
    "Context",
    "Dag",
    "DagRunInfo",
    "FailTask",
    "InvalidRequest",
    "NotFound",
    "Param",
    "ParamValidationError",
    "PokeReturnValue",
    "RegistrationError",
    "Registry",
    "RequestNotAllowed",
    "SensorTimeout",
    "SkipTask",
    "Task",
    "TaskCancelled",
    "TaskInstanceInfo",
    "TaskTimeout",
    "VariableClient",
    "VariableNotFound",
    "XComArg",
    "XComClient",
    "XComNotFound",
    "__version__",
    "serve",
]
