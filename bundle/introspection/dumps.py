"""The documents of ``--bundle-metadata``, ``--dump-bundle-spec`` and ``--airflow-metadata``.

Shapes and key order are the Go SDK's (struct field order; dag ids as map keys); ``render`` picks
the encoder. ``--bundle-metadata`` only asks for the bundle's name and version, so a bundle whose
DAG registration is broken can still say who it is, as ``GetBundleVersion`` promises.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..core.provider import BundleProvider, registry_of
from . import go_json

SDK_LANGUAGE = "python"
SPEC_FORMAT_VERSION = "1.0"
MANIFEST_VERSION = "1.0"
SUPERVISOR_SCHEMA_VERSION = "2026-06-16"


def bundle_metadata(provider: BundleProvider) -> dict[str, Any]:
    info = provider.get_bundle_version()
    return {"name": info.name, "version": info.version}


def _dags(provider: BundleProvider) -> dict[str, Any]:
    # sorted by byte order for JSON (Go's encoding/json); go_yaml re-sorts GoMap keys its own way
    from .go_yaml import GoMap

    return GoMap((dag_id, {"tasks": tasks}) for dag_id, tasks in registry_of(provider).task_ids().items())


def bundle_spec(provider: BundleProvider) -> dict[str, Any]:
    return {
        "format_version": SPEC_FORMAT_VERSION,
        "sdk": {"language": SDK_LANGUAGE, "version": __version__},
        "dags": _dags(provider),
    }


def airflow_metadata(provider: BundleProvider) -> dict[str, Any]:
    return {
        "airflow_bundle_metadata_version": MANIFEST_VERSION,
        "sdk": {
            "language": SDK_LANGUAGE,
            "version": __version__,
            "supervisor_schema_version": SUPERVISOR_SCHEMA_VERSION,
        },
        "dags": _dags(provider),
    }


def render(provider: BundleProvider, *, metadata: bool, spec: bool, fmt: str | None) -> bytes:
    """The bytes of the dump selected by the flags (first match wins, as in the matrix)."""
    if metadata:
        return go_json.encode(bundle_metadata(provider))
    if spec:
        return go_json.encode(bundle_spec(provider))
    if fmt == "json":
        return go_json.encode(airflow_metadata(provider))
    from . import go_yaml

    return go_yaml.encode(airflow_metadata(provider))
