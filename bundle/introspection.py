"""The three dumps a packer runs: ``--bundle-metadata``, ``--dump-bundle-spec``, ``--airflow-metadata``.

The JSON is byte-identical to what a Go bundle prints (``json.MarshalIndent(v, "", "    ")`` plus a
newline: struct key order, sorted dag ids, tasks in registration order, Go's HTML-safe escaping);
the YAML follows yaml.v3's ``Marshal`` layout. None of the dumps starts a server or contacts anything.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._version import __version__
from .core.provider import BundleProvider, registry_of

SDK_LANGUAGE = "python"
SPEC_FORMAT_VERSION = "1.0"
MANIFEST_VERSION = "1.0"
SUPERVISOR_SCHEMA_VERSION = "2026-06-16"

_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_json(value: Any) -> bytes:
    """Encode like Go's ``json.MarshalIndent(value, "", "    ")`` followed by a newline."""
    text = json.dumps(value, indent=4, ensure_ascii=False).translate(_GO_ESCAPES)
    # Go writes invalid UTF-8 (in Python: lone surrogates) as the escape \ufffd.
    return (_SURROGATE.sub(r"\\ufffd", text) + "\n").encode("utf-8")


def bundle_metadata(provider: BundleProvider) -> dict[str, Any]:
    info = provider.get_bundle_version()
    return {"name": info.name, "version": info.version}


def bundle_spec(provider: BundleProvider) -> dict[str, Any]:
    dags = registry_of(provider).task_ids()
    return {
        "format_version": SPEC_FORMAT_VERSION,
        "sdk": {"language": SDK_LANGUAGE, "version": __version__},
        "dags": {dag_id: {"tasks": tasks} for dag_id, tasks in dags.items()},
    }


def airflow_metadata(provider: BundleProvider) -> dict[str, Any]:
    dags = registry_of(provider).task_ids()
    return {
        "airflow_bundle_metadata_version": MANIFEST_VERSION,
        "sdk": {
            "language": SDK_LANGUAGE,
            "version": __version__,
            "supervisor_schema_version": SUPERVISOR_SCHEMA_VERSION,
        },
        "dags": {dag_id: {"tasks": tasks} for dag_id, tasks in dags.items()},
    }


def yaml_v3(value: Any) -> bytes:
    """Render nested dicts/lists/strings the way Go's yaml.v3 ``Marshal`` does (4-space indent)."""
    lines: list[str] = []
    _yaml_node(value, 0, lines)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _yaml_node(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{yaml_scalar(key)}:")
                _yaml_node(item, indent + 4, lines)
            else:
                lines.append(f"{pad}{yaml_scalar(key)}: {_yaml_leaf(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                raise ValueError("nested collections inside lists are not used by the manifest")
            lines.append(f"{pad}- {_yaml_leaf(item)}")


def _yaml_leaf(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if value is None:
        return "null"
    return yaml_scalar(value)


_PLAIN_FIRST_FORBIDDEN = set("-?:,[]{}#&*!|>'\"%@`")


def yaml_scalar(text: str) -> str:
    """Plain when the string reads back as the same string, double-quoted otherwise."""
    import yaml  # the dump paths only; never on the coordinator path

    plain = (
        text != ""
        and text == text.strip()
        and text[0] not in _PLAIN_FIRST_FORBIDDEN
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
        and text.isprintable()
        and text not in ("---", "...")
        and yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"
    )
    return text if plain else json.dumps(text, ensure_ascii=False)
