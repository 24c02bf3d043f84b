"""Variables and connections for a local run: ``--vars`` / ``--conns`` files and the environment.

Files are YAML or JSON (chosen by extension; YAML is a superset, so ``.yaml``/``.yml``/anything else
is read as YAML) holding one mapping:

* variables: ``key: value``. A string is stored as-is; any other value (number, list, mapping) is
  stored as its JSON text, so ``client.get_variable(key, deserialize_json=True)`` gets it back.
* connections: ``conn_id: URI`` (the ``AIRFLOW_CONN_*`` format) or ``conn_id: {conn_type, host,
  schema, login, password, port, extra, description}`` (``extra`` a mapping or a JSON string).

``AIRFLOW_VAR_<KEY>`` / ``AIRFLOW_CONN_<ID>`` are not copied into the state: like Airflow's
environment secrets backend they are consulted first on every lookup (see ``api.py``), and the
bundle process inherits them too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bundle.core.connection import Connection

from .errors import UsageError

CONNECTION_FIELDS = ("conn_type", "host", "schema", "login", "password", "port", "extra", "description")
VAR_ENV_PREFIX = "AIRFLOW_VAR_"
CONN_ENV_PREFIX = "AIRFLOW_CONN_"


@dataclass
class EnvSecrets:
    """``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` captured when ``bundle-run`` started."""

    variables: dict[str, str] = field(default_factory=dict)
    """Upper-cased key suffix → value."""
    connections: dict[str, str] = field(default_factory=dict)
    """Upper-cased conn id suffix → URI or JSON text."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> EnvSecrets:
        """Capture the secrets of ``environ`` (default: this process's environment) once, at start."""
        env = os.environ if environ is None else environ
        return cls(
            variables={k[len(VAR_ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(VAR_ENV_PREFIX)},
            connections={
                k[len(CONN_ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(CONN_ENV_PREFIX)
            },
        )

    def variable(self, key: str) -> str | None:
        """The environment's value for ``key`` (Airflow upper-cases the key), or None."""
        return self.variables.get(key.upper())

    def connection(self, conn_id: str) -> dict[str, Any] | None:
        """The environment's connection ``conn_id`` as Execution API fields, or None (absent/unparsable)."""
        value = self.connections.get(conn_id.upper())
        if value is None:
            return None
        try:
            return connection_fields(Connection.from_env_value(conn_id, value))
        except (ValueError, TypeError):
            return None

    def problems(self) -> list[str]:
        """One line per ``AIRFLOW_CONN_*`` that does not parse (it will look like a missing connection)."""
        out = []
        for suffix, value in sorted(self.connections.items()):
            try:
                Connection.from_env_value(suffix.lower(), value)
            except (ValueError, TypeError) as exc:
                out.append(
                    f"{CONN_ENV_PREFIX}{suffix} is neither a connection URI nor a JSON object: "
                    f"{_without_prefix(exc, suffix.lower())}"
                )
        return out


def _without_prefix(exc: Exception, conn_id: str) -> str:
    """``Connection``'s parse error without its ``connection 'id': `` prefix (the caller names it)."""
    text = str(exc)
    prefix = f"connection {conn_id!r}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def connection_fields(conn: Connection) -> dict[str, Any]:
    """A connection as the Execution API's ``ConnectionResponse`` fields."""
    return {
        "conn_id": conn.conn_id,
        "conn_type": conn.conn_type or "generic",
        "host": conn.host,
        "schema": conn.schema,
        "login": conn.login,
        "password": conn.password,
        "port": conn.port,
        "extra": conn.extra,
        "description": conn.description,
    }


def load_variables(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """Read a variables file; raises :class:`UsageError` with the file name and what is wrong."""
    data = _load_mapping(path, "variables")
    out: dict[str, str | None] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"variables file {path}: keys must be non-empty strings, got {key!r}")
        out[key] = value if value is None or isinstance(value, str) else json.dumps(value)
        _refuse_lone_surrogates(f"variables file {path}, variable {key!r}", key, value)
    return out


def load_connections(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a connections file into Execution API connection fields, keyed by conn id."""
    data = _load_mapping(path, "connections")
    out: dict[str, dict[str, Any]] = {}
    for conn_id, value in data.items():
        if not isinstance(conn_id, str) or not conn_id:
            raise UsageError(
                f"connections file {path}: connection ids must be non-empty strings, got {conn_id!r}"
            )
        _refuse_lone_surrogates(f"connections file {path}, connection {conn_id!r}", conn_id, value)
        out[conn_id] = connection_fields(_parse_connection(path, conn_id, value))
    return out


def _refuse_lone_surrogates(where: str, *values: Any) -> None:
    """A ``\\udcXX`` escape in a JSON or YAML file decodes to a lone surrogate, which SQLite and the
    Execution API (UTF-8) cannot carry: say so here, not with a traceback later. The message never
    quotes the value (it may be a password)."""
    try:
        json.dumps(values, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        raise UsageError(
            f"{where}: holds a lone surrogate (U+{code:04X}), which is not valid Unicode text"
        ) from None
    except (TypeError, ValueError):  # not JSON-shaped (e.g. a YAML date): the parser below says what
        pass


def _parse_connection(path: str | os.PathLike[str], conn_id: str, value: Any) -> Connection:
    where = f"connections file {path}, connection {conn_id!r}"
    if isinstance(value, str):
        try:
            return Connection.from_uri(conn_id, value)
        except ValueError as exc:  # names what is wrong, never the URI (its password)
            raise UsageError(f"{where}: {_without_prefix(exc, conn_id)}") from None
    if not isinstance(value, Mapping):
        raise UsageError(f"{where}: expected a URI string or a mapping of {', '.join(CONNECTION_FIELDS)}")
    unknown = sorted(set(value) - set(CONNECTION_FIELDS) - {"conn_id"})
    if unknown:
        raise UsageError(
            f"{where}: unknown field(s) {', '.join(map(str, unknown))}; allowed: {', '.join(CONNECTION_FIELDS)}"
        )
    if value.get("port") is not None and not _is_port(value["port"]):
        raise UsageError(f"{where}: port must be an integer, got {value['port']!r}")
    extra = value.get("extra")
    if extra is not None and not isinstance(extra, (str, Mapping)):
        raise UsageError(f"{where}: extra must be a mapping or a JSON string")
    if isinstance(extra, Mapping):
        value = {**value, "extra": dict(extra)}
    return Connection.from_mapping(conn_id, dict(value))


def _is_port(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.isdigit()


def _load_mapping(path: str | os.PathLike[str], what: str) -> dict[Any, Any]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} file {path} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} file {path} is not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{what} file {path} must hold a mapping at the top level, got {type(data).__name__}"
        )
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return problem
