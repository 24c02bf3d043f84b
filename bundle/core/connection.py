"""``Connection``: Airflow's connection fields, ``extra_dejson`` and ``get_uri()``.

Also parses the two forms Airflow accepts in ``AIRFLOW_CONN_<ID>`` (a URI or a JSON object), so a
connection defined in the environment works the same in every mode.
"""

from __future__ import annotations

import json

from .records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any


_ENCODE_HINT = (
    " (a ':', '/', '?', '#', '@' or '[' in the login or password must be percent-encoded, e.g. '/' as %2F)"
)


class Connection(Record):
    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None
    description: str | None = None

    def __repr__(self) -> str:  # never the password or the extra: reprs end up in logs
        return (
            f"Connection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r}, "
            f"schema={self.schema!r}, login={self.login!r}, port={self.port!r})"
        )

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """``extra`` decoded from JSON; ``{}`` when empty or not a JSON object."""
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def get_uri(self) -> str:
        """The connection as an Airflow connection URI (the ``AIRFLOW_CONN_*`` format)."""
        from urllib.parse import quote, urlencode

        scheme = (self.conn_type or "").replace("_", "-")
        netloc = ""
        if self.login is not None or self.password is not None:
            netloc = quote(self.login or "", safe="")
            if self.password is not None:
                netloc += ":" + quote(self.password, safe="")
            netloc += "@"
        netloc += quote(self.host or "", safe="")
        if self.port is not None:
            netloc += f":{self.port}"
        uri = f"{scheme}://{netloc}"
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        extra = self.extra_dejson
        if extra:
            if all(isinstance(v, str) for v in extra.values()):
                uri += "?" + urlencode(extra)
            else:
                uri += "?" + urlencode({"__extra__": json.dumps(extra)})
        return uri

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """Parse a connection URI. A malformed one raises :class:`ValueError` naming the connection
        and what is wrong, never the URI or a part of it: its userinfo holds the password, and the
        message ends up in warnings, errors and task logs before any mask knows the password."""
        from urllib.parse import parse_qsl, unquote, urlsplit

        try:
            parts = urlsplit(uri)
        except ValueError:  # e.g. an unbalanced '[' or a netloc that changes under NFKC
            raise ValueError(f"connection {conn_id!r}: the value is not a valid URI{_ENCODE_HINT}") from None
        if not parts.scheme:
            raise ValueError(
                f"connection {conn_id!r}: the value is not a connection URI (it needs a scheme, the "
                "connection type, as in 'postgres://login:password@host:5432/schema')"
            )
        try:
            port = parts.port
        except ValueError:  # Python's message quotes the "port": often the rest of a password
            raise ValueError(
                f"connection {conn_id!r}: the URI's port is not a number from 0 to 65535{_ENCODE_HINT}"
            ) from None
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        extra: str | None
        if "__extra__" in query:
            extra = query["__extra__"]
        else:
            extra = json.dumps(query) if query else None
        return cls(
            conn_id=conn_id,
            conn_type=parts.scheme.replace("-", "_"),
            host=unquote(parts.hostname) if parts.hostname else None,
            schema=unquote(parts.path.lstrip("/")) or None,
            login=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            port=port,
            extra=extra,
        )

    @classmethod
    def from_mapping(cls, conn_id: str, data: dict[str, Any]) -> Connection:
        """Build from Airflow's JSON shape; ``extra`` may be a JSON string or a dict."""
        extra = data.get("extra")
        if isinstance(extra, dict):
            extra = json.dumps(extra)
        port = data.get("port")
        try:
            port = int(port) if port not in (None, "") else None
        except (TypeError, ValueError):
            raise ValueError(f"connection {conn_id!r}: the port is not an integer") from None
        return cls(
            conn_id=data.get("conn_id") or conn_id,
            conn_type=data.get("conn_type"),
            host=data.get("host"),
            schema=data.get("schema"),
            login=data.get("login"),
            password=data.get("password"),
            port=port,
            extra=extra,
            description=data.get("description"),
        )

    @classmethod
    def from_env_value(cls, conn_id: str, value: str) -> Connection:
        """Parse an ``AIRFLOW_CONN_<ID>`` value: a JSON object or a URI."""
        text = value.strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:  # its msg and position only: never the document
                raise ValueError(
                    f"connection {conn_id!r}: the value is not valid JSON ({exc.msg}: line {exc.lineno}, "
                    f"column {exc.colno})"
                ) from None
            except RecursionError:
                raise ValueError(f"connection {conn_id!r}: the value is JSON nested too deeply") from None
            if not isinstance(data, dict):
                raise ValueError(f"connection {conn_id!r}: the value is not a JSON object")
            return cls.from_mapping(conn_id, data)
        return cls.from_uri(conn_id, text)
