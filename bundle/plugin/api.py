"""A minimal Airflow Execution API client on the standard library.

go-plugin mode talks to the Execution API itself (there is no supervisor in between), with the
workload's token. Only ``http.client`` is used so the mode adds no runtime dependency beyond grpc.
Requests carry what the task SDK's own client sends: ``Authorization: Bearer``, the
``Airflow-API-Version`` the Execution API negotiates on, and a UUIDv7 ``Correlation-Id`` that ties
server logs to this process. A ``Refreshed-API-Token`` answer replaces the token, as the task SDK
does, so long tasks keep a valid JWT.

Connections are HTTP/1.1 keep-alive, pooled per server for the whole process (``httppool``): an
``Execute``'s calls and the next ``Execute``'s reuse them. A reused connection that the server
closed is detected before use; if the close races the request, the request is sent again at once
on a new connection only when that is safe (it never got out whole, or the method is idempotent),
otherwise the failure counts as an attempt like any connection error.

Every request is bounded in time, whatever the server does: each attempt gets ``timeout`` seconds
per socket operation (connect, each send and receive: the progress bound, like httpx's) and
``ATTEMPT_FACTOR`` times that in total (one deadline thread per process shuts the socket down, so a
server that trickles one byte at a time cannot hold a task forever); connection errors, timeouts and 5xx answers are
retried ``RETRIES`` times in all with the ``RETRY_WAIT_SECONDS`` backoff. With the defaults a request
gives up after at most 3 x 30 s + 2.5 s = 92.5 s (a server that accepts and never answers: 3 x 10 s
+ 2.5 s = 32.5 s; one that answers 500 or refuses connections: 2.5 s plus three round trips).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .._version import __version__
from .httppool import deadlines, pool_for

# The version apache-airflow-task-sdk 1.3.2 sends (airflow.sdk.api.datamodels._generated.API_VERSION).
API_VERSION = "2026-06-30"
DEFAULT_TIMEOUT_SECONDS = 10.0  # per socket operation (the task SDK's httpx client uses 5 s)
TIMEOUT_ENV = "PYBUNDLE_API_TIMEOUT_SECONDS"  # overrides the default (tests shorten it)
ATTEMPT_FACTOR = 3  # an attempt may take this many timeouts in total, however the bytes trickle
RETRIES = 3  # attempts for connection errors, timeouts and 5xx answers
RETRY_WAIT_SECONDS = (0.5, 2.0)


def default_timeout() -> float:
    """``$PYBUNDLE_API_TIMEOUT_SECONDS`` when it is a positive number, else the default."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_SECONDS)
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS
    return value if value > 0 else DEFAULT_TIMEOUT_SECONDS


class ApiError(Exception):
    """The Execution API answered with an error status (or could not be reached: ``status`` None)."""

    def __init__(self, method: str, path: str, status: int | None, detail: Any, message: str):
        super().__init__(f"{method} {path}: {message}" + (f" (HTTP {status})" if status else ""))
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        self.message = message


@dataclass
class Response:
    """One answer; headers are lower-cased (``content-range`` carries the XCom count)."""

    status: int
    headers: Mapping[str, str]
    body: Any  # decoded JSON, or None for an empty body


def uuid7() -> uuid.UUID:
    """A time-ordered UUIDv7 (RFC 9562), what the SDK clients use for correlation ids."""
    millis = time.time_ns() // 1_000_000
    rand = random.getrandbits(74)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 62) << 64  # 12 bits rand_a
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def path_segment(value: Any) -> str:
    """One URL path segment, every reserved character escaped (``/`` included)."""
    return quote(str(value), safe="")


def query_value(value: Any) -> str:
    """A query-string value as httpx renders it (the Execution API parses bools as ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def encode_query(params: Mapping[str, Any] | None) -> str:
    """httpx-style query: lists repeat the key, ``None`` is left out, bools are lowercase."""
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            pairs.extend((key, query_value(v)) for v in value)
        else:
            pairs.append((key, query_value(value)))
    return urlencode(pairs)


def json_default(value: Any) -> Any:
    """Request bodies carry datetimes (``end_date``...) and UUIDs; render them as the SDK does."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server under a request safe to resend."""


# Methods a server may see twice with the effect of once (RFC 9110 9.2.2): only these are resent
# when a reused connection dies after the whole request went out and before any answer came.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _stale(exc: BaseException, sent: bool, method: str) -> bool:
    """Whether a failure on a reused connection is the server's keep-alive close, safe to retry."""
    if isinstance(exc, TimeoutError):  # a live peer that is slow, not a closed one
        return False
    if not sent:  # the request did not get out whole: a server never processes a partial one
        return isinstance(exc, OSError)
    # No byte of a status line (RemoteDisconnected is a ConnectionResetError) or a reset.
    return isinstance(exc, ConnectionResetError) and method in IDEMPOTENT_METHODS


class ExecutionApiClient:
    """Thread-safe: each request takes a connection of its own from the process's keep-alive pool
    (``httppool``), so the heartbeat thread and the task share the client, and successive
    ``Execute``s to the same server share connections."""

    def __init__(self, base_url: str, token: str, *, timeout: float | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"execution API URL {base_url!r} is not an http(s) URL")
        self.base_url = base_url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._timeout = default_timeout() if timeout is None else timeout
        self._token = token
        self._lock = threading.Lock()
        self._pool = pool_for(parts.scheme, parts.hostname, parts.port)

    @property
    def token(self) -> str:
        """The current token (a ``Refreshed-API-Token`` answer replaces it)."""
        with self._lock:
            return self._token

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        has_body: bool = False,
        attempts: int = RETRIES,
        timeout: float | None = None,
    ) -> Response:
        """Send one request (``path`` relative to the base URL); raise ``ApiError`` on errors.

        ``has_body`` sends ``json_body`` even when it is ``None`` (a JSON ``null``); ``attempts`` and
        ``timeout`` override the retry count and the per-operation timeout for this request (a
        plugin that is shutting down has no time for retries)."""
        query = encode_query(params)
        target = f"{self._base_path}/{path.lstrip('/')}" + (f"?{query}" if query else "")
        payload = (
            json.dumps(json_body, default=json_default, allow_nan=False).encode("utf-8")
            if has_body or json_body is not None
            else None
        )
        last: ApiError | None = None
        for attempt in range(max(1, attempts)):
            if attempt:
                time.sleep(RETRY_WAIT_SECONDS[min(attempt - 1, len(RETRY_WAIT_SECONDS) - 1)])
            try:
                return self._once(
                    method, path, target, payload, self._timeout if timeout is None else timeout
                )
            except ApiError as exc:
                if exc.status is not None and exc.status < 500:
                    raise
                last = exc
        assert last is not None
        raise last

    def _once(self, method: str, path: str, target: str, payload: bytes | None, timeout: float) -> Response:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Airflow-API-Version": API_VERSION,
            "Correlation-Id": str(uuid7()),
            "Accept": "application/json",
            "User-Agent": f"pybundle/{__version__} (go-plugin mode; pid {os.getpid()})",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn, reused = self._pool.acquire(timeout)
        try:
            status, response_headers, data = self._exchange(
                conn, reused, method, path, target, payload, headers, timeout
            )
        except _StaleConnection:
            # The server closed the idle connection as this request went out: it was never
            # processed (or may be repeated: idempotent), so it goes again at once on a new one.
            conn = self._pool.new(timeout)
            status, response_headers, data = self._exchange(
                conn, False, method, path, target, payload, headers, timeout
            )
        refreshed = response_headers.get("refreshed-api-token")
        if refreshed:
            with self._lock:
                self._token = refreshed
        body: Any = None
        if data:
            try:
                body = json.loads(data)
            except ValueError:
                body = data.decode("utf-8", "replace")
        if not 200 <= status < 300:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise ApiError(method, path, status, detail, _error_message(detail))
        return Response(status, response_headers, body)

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        reused: bool,
        method: str,
        path: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request and its whole answer on ``conn``, within ``ATTEMPT_FACTOR`` x ``timeout``.

        The connection goes back to the pool only when the answer was read in full in time.
        Raises ``_StaleConnection`` when a reused connection turned out closed by the server and
        the request can safely be sent again: it failed while being sent (a partial request is
        never processed), or no byte of an answer came and the method is idempotent."""
        limit = timeout * ATTEMPT_FACTOR

        def expire() -> None:  # wakes a receive blocked on a server that keeps the socket busy
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        deadline = deadlines.arm(limit, expire)
        sent = False
        try:
            conn.request(method, target, body=payload, headers=headers)
            sent = True
            raw = conn.getresponse()
            data = raw.read()
            status = raw.status
            response_headers = {k.lower(): v for k, v in raw.getheaders()}
        except (OSError, http.client.HTTPException, ValueError) as exc:
            expired = deadlines.disarm(deadline)
            conn.close()
            if expired:
                raise ApiError(method, path, None, None, f"no complete answer within {limit:g} s") from exc
            if reused and _stale(exc, sent, method):
                raise _StaleConnection from exc
            raise ApiError(method, path, None, None, f"{type(exc).__name__}: {exc}") from exc
        if deadlines.disarm(deadline):  # cut just as the answer completed: the socket is shut down
            conn.close()
        else:
            self._pool.release(conn)
        return status, response_headers, data


def _error_message(detail: Any) -> str:
    """The task SDK's wording for an error body, so logs read the same in every mode."""
    if isinstance(detail, list):
        return "Remote server returned validation error"
    if isinstance(detail, dict):
        return "Server returned error"
    if isinstance(detail, str) and detail:
        return detail
    return "Un-parseable error"
