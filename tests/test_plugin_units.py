"""go-plugin mode, in-process units: config, UUID parsing, handshake, hclog, request translation."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bundle.core.errors import AirflowApiError
from bundle.core.masking import masker
from bundle.plugin.api import ApiError, Response, encode_query, uuid7
from bundle.plugin.hclog import hclog_level, hclog_line
from bundle.plugin.runner import parse_go_uuid, state_payload
from bundle.plugin.server import Listener, handshake_line, negotiate_version
from bundle.plugin.settings import env_key, load_settings, parse_bool, parse_simple_yaml
from bundle.plugin.transport import ExecutionApiTransport

U = "0194d2c4-7a1e-7cc2-9a4b-6d3f7f1e2a3b"


# -- settings ------------------------------------------------------------------------------------
def test_env_key_matches_viper() -> None:
    assert env_key("execution-api-url") == "AIRFLOW__EXECUTION_API_URL"
    assert env_key("logging.base_log_folder") == "AIRFLOW__LOGGING__BASE_LOG_FOLDER"
    assert env_key("logging.task.stdout_only") == "AIRFLOW__LOGGING__TASK__STDOUT_ONLY"


def test_settings_env_beats_yaml(tmp_path: Path) -> None:
    (tmp_path / "go-sdk.yaml").write_text(
        "execution-api-url: http://yaml:8080/execution/\nlogging:\n  base_log_folder: /yaml/logs\n"
        "  task:\n    to_stdout: 'true'\n"
    )
    settings = load_settings({"AIRFLOW_HOME": str(tmp_path)})
    assert settings.execution_api_url == "http://yaml:8080/execution/"
    assert settings.base_log_folder == "/yaml/logs"
    assert settings.task_to_stdout is True and settings.task_stdout_only is False
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__EXECUTION_API_URL": "http://env/",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": "/e",
    }
    settings = load_settings(env)
    assert (settings.execution_api_url, settings.base_log_folder) == ("http://env/", "/e")


def test_settings_defaults_without_any_config(tmp_path: Path) -> None:
    settings = load_settings({"AIRFLOW_HOME": str(tmp_path / "missing")})
    assert settings.execution_api_url is None and settings.base_log_folder == ""


def test_simple_yaml_reader() -> None:
    text = """
    # comment
    execution-api-url: "http://h:1/execution/"   # trailing comment
    Logging:
      base_log_folder: '/it''s/here'
      task:
        stdout_only: false
    bundles:
      folder: /b#not-a-comment
    """
    parsed = parse_simple_yaml("\n".join(line[4:] for line in text.splitlines()))
    assert parsed == {
        "execution-api-url": "http://h:1/execution/",
        "logging.base_log_folder": "/it's/here",
        "logging.task.stdout_only": "false",
        "bundles.folder": "/b#not-a-comment",
    }
    with pytest.raises(ValueError):
        parse_simple_yaml("key: [1, 2]\n")
    with pytest.raises(ValueError):
        parse_simple_yaml("- a list\n")


def test_rich_yaml_falls_back_to_pyyaml(tmp_path: Path) -> None:
    (tmp_path / "go-sdk.yaml").write_text(
        'logging: {base_log_folder: "/flow/style"}\nexecution-api-url: "http://x\\u0041/"\n'
    )
    settings = load_settings({"AIRFLOW_HOME": str(tmp_path)})
    assert settings.base_log_folder == "/flow/style"
    assert settings.execution_api_url == "http://xA/"


@pytest.mark.parametrize(
    ("text", "value"), [("1", True), ("TRUE", True), ("t", True), ("yes", False), (None, False)]
)
def test_parse_bool_is_strconv(text: str | None, value: bool) -> None:
    assert parse_bool(text) is value


# -- UUIDs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [U, U.upper(), f"urn:uuid:{U}", f"URN:UUID:{U}", f"{{{U}}}", f"x{U}y", U.replace("-", "")],
)
def test_go_uuid_accepts_what_google_uuid_accepts(text: str) -> None:
    assert parse_go_uuid(text) == uuid.UUID(U)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "invalid UUID length: 0"),
        ("abc", "invalid UUID length: 3"),
        (U + "0", "invalid UUID length: 37"),
        (U.replace("-", "_"), "invalid UUID format"),
        (U[:-1] + "g", "invalid UUID format"),
        ("g" + U.replace("-", "")[1:], "invalid UUID format"),
        (f"urn:uuix:{U}", 'invalid urn prefix: "urn:uuix:"'),
        ("é" * 18, "invalid UUID format"),  # 36 bytes: Go measures bytes, not characters
        ("é" * 5, "invalid UUID length: 10"),
    ],
)
def test_go_uuid_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_go_uuid(text)
    assert str(info.value) == error


def test_uuid7_layout() -> None:
    a, b = uuid7(), uuid7()
    assert a.version == 7 and a.variant == uuid.RFC_4122
    assert a != b and a.int >> 80 <= b.int >> 80


# -- handshake and versions ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offered", "chosen"), [(None, 1), ("", 1), ("1", 1), ("2,1", 1), ("2", 1), ("x, 1", 1)]
)
def test_negotiate_version(offered: str | None, chosen: int) -> None:
    assert negotiate_version(offered) == chosen


def test_handshake_line_forms() -> None:
    unix = Listener("unix", "/tmp/plugin123", "/tmp/plugin123")
    assert handshake_line(1, unix, environ={}) == "1|1|unix|/tmp/plugin123|grpc|\n"
    assert handshake_line(1, unix, "Q0VSVA", environ={"PLUGIN_MULTIPLEX_GRPC": "true"}) == (
        "1|1|unix|/tmp/plugin123|grpc|Q0VSVA|false\n"
    )
    tcp = Listener("tcp", "127.0.0.1:10000")
    assert handshake_line(1, tcp, environ={}) == "1|1|tcp|127.0.0.1:10000|grpc|\n"


# -- hclog -----------------------------------------------------------------------------------------
def test_hclog_reserved_keys_are_always_strings() -> None:
    record = json.loads(hclog_line("info", 42, {"@message": 7, "@level": None, "count": 3}))
    assert record["@message"] == "42" and record["@level"] == "info"
    assert isinstance(record["@timestamp"], str)
    datetime.strptime(record["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert record["extra_@message"] == 7 and record["extra_@level"] is None and record["count"] == 3


def test_hclog_masks_and_truncates() -> None:
    masker.add("hclog-secret-value")
    try:
        record = json.loads(
            hclog_line("warn", "x" * 20000 + " hclog-secret-value", {"k": "hclog-secret-value"})
        )
    finally:
        masker.clear()
    assert "hclog-secret-value" not in json.dumps(record)
    assert len(record["@message"]) < 17000
    assert [hclog_level(n) for n in (5, 10, 20, 30, 40, 50)] == [
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "error",
    ]


# -- state payloads --------------------------------------------------------------------------------
def test_state_payloads_validate_against_the_execution_api_models() -> None:
    pytest.importorskip("airflow.sdk.api.datamodels._generated")
    from airflow.sdk.api.datamodels._generated import (
        TIRetryStatePayload,
        TISuccessStatePayload,
        TITerminalStatePayload,
    )

    from bundle.core.execution import TaskOutcome

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    TISuccessStatePayload.model_validate(state_payload(TaskOutcome("success"), now))
    TIRetryStatePayload.model_validate(state_payload(TaskOutcome("up_for_retry", reason="x" * 900), now))
    for state in ("failed", "skipped", "removed"):
        TITerminalStatePayload.model_validate(state_payload(TaskOutcome(state), now))


# -- request translation -----------------------------------------------------------------------------
class _StubApi:
    """Answers ``request`` from a table; records what was asked."""

    def __init__(self, answers: dict[tuple[str, str], Any]):
        self.answers = answers
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        self.seen.append((method, path, kwargs))
        answer = self.answers[(method, path)]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Response):
            return answer
        return Response(200, {}, answer)


def _transport(answers: dict[tuple[str, str], Any]) -> tuple[ExecutionApiTransport, _StubApi]:
    stub = _StubApi(answers)
    return ExecutionApiTransport(stub, U), stub  # type: ignore[arg-type]


def _missing(method: str, path: str, status: int = 404) -> ApiError:
    return ApiError(method, path, status, {"reason": "not_found"}, "Server returned error")


def test_not_found_answers_are_error_response_bodies() -> None:
    t, _ = _transport(
        {
            ("GET", "variables/a%2Fb"): _missing("GET", "variables/a%2Fb"),
            ("GET", "connections/c"): _missing("GET", "connections/c"),
            ("GET", "xcoms/d/r/t/k"): _missing("GET", "xcoms/d/r/t/k"),
            ("GET", "xcoms/d/r/t/k/item/3"): _missing("GET", "xcoms/d/r/t/k/item/3"),
            ("GET", f"store/ti/{U}/s"): _missing("GET", "store"),
            ("GET", "assets/by-name"): _missing("GET", "assets/by-name"),
            ("GET", "variables/denied"): _missing("GET", "variables/denied", 403),
        }
    )
    assert t({"type": "GetVariable", "key": "a/b"}) == {
        "error": "VARIABLE_NOT_FOUND",
        "detail": {"key": "a/b"},
        "type": "ErrorResponse",
    }
    assert t({"type": "GetVariable", "key": "denied"})["error"] == "PERMISSION_DENIED"
    assert t({"type": "GetConnection", "conn_id": "c"})["error"] == "CONNECTION_NOT_FOUND"
    locator = {"dag_id": "d", "run_id": "r", "task_id": "t", "key": "k"}
    assert t({"type": "GetXCom", **locator}) == {"key": "k", "value": None, "type": "XComResult"}
    item = t({"type": "GetXComSequenceItem", **locator, "offset": 3})
    assert item == {"error": "XCOM_NOT_FOUND", "detail": {**locator, "offset": 3}, "type": "ErrorResponse"}
    assert t({"type": "GetTaskStateStore", "ti_id": U, "key": "s"})["error"] == "TASK_STORE_NOT_FOUND"
    assert t({"type": "GetAssetByName", "name": "n"}) == {
        "error": "ASSET_NOT_FOUND",
        "detail": {"name": "n"},
        "type": "ErrorResponse",
    }


def test_server_errors_raise_in_the_error_slot() -> None:
    boom = ApiError("GET", "variables/k", 500, {"message": "db down"}, "Server returned error")
    unreachable = ApiError("GET", "variables/u", None, None, "ConnectionRefusedError: refused")
    unreachable.__cause__ = ConnectionRefusedError("refused")
    t, _ = _transport({("GET", "variables/k"): boom, ("GET", "variables/u"): unreachable})
    with pytest.raises(AirflowApiError) as info:
        t({"type": "GetVariable", "key": "k"})
    assert info.value.error == "API_SERVER_ERROR"
    assert info.value.detail == {
        "status_code": 500,
        "message": "Server returned error",
        "detail": {"message": "db down"},
    }
    with pytest.raises(AirflowApiError) as info:
        t({"type": "GetVariable", "key": "u"})
    assert info.value.detail["status_code"] is None
    assert info.value.detail["exception_type"] == "ConnectionRefusedError"
    with pytest.raises(AirflowApiError) as info:
        t({"type": "SucceedTask", "end_date": datetime.now(timezone.utc)})
    assert info.value.detail == {"status_code": 400, "message": "Unhandled request"}


def test_result_bodies_match_the_supervisor() -> None:
    conn = {
        "conn_id": "c",
        "conn_type": "http",
        "host": "h",
        "schema": None,
        "login": None,
        "password": "p",
        "port": None,
        "extra": None,
    }
    t, stub = _transport(
        {
            ("GET", "variables/v"): {"key": "v", "value": None},
            ("GET", "connections/c"): conn,
            ("POST", "xcoms/d/r/t/k"): {"message": "ok"},
            ("HEAD", "xcoms/d/r/t/k"): Response(200, {"content-range": "map_indexes 4"}, None),
            ("PUT", "variables/v"): None,
            ("DELETE", "variables/v"): None,
        }
    )
    assert t({"type": "GetVariable", "key": "v"}) == {"key": "v", "value": None, "type": "VariableResult"}
    assert t({"type": "GetConnection", "conn_id": "c"}) == {
        "conn_id": "c",
        "conn_type": "http",
        "host": "h",
        "password": "p",
        "type": "ConnectionResult",
    }
    locator = {"dag_id": "d", "run_id": "r", "task_id": "t", "key": "k"}
    assert t({"type": "SetXCom", **locator, "value": None, "map_index": -1}) is None
    assert stub.seen[-1] == ("POST", "xcoms/d/r/t/k", {"params": {}, "json_body": None, "has_body": True})
    assert t({"type": "GetXComCount", **locator}) == {"len": 4, "type": "XComCountResponse"}
    assert t({"type": "PutVariable", "key": "v", "value": "x", "description": None}) is None
    assert stub.seen[-1][2] == {"json_body": {"val": "x", "description": None}}
    assert t({"type": "DeleteVariable", "key": "v"}) == {"ok": True, "type": "OKResponse"}
    assert t({"type": "MaskSecret", "value": "local-only", "name": None}) is None
    masker.clear()


def test_query_encoding_is_httpx_like() -> None:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert encode_query({"a": None, "b": True, "c": [1, "x"], "d": when}) == (
        "b=true&c=1&c=x&d=2026-01-01T00%3A00%3A00%2B00%3A00"
    )


# -- the HTTP client -------------------------------------------------------------------------------
def test_api_client_base_path_retries_and_token_refresh() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bundle.plugin import api as api_module

    seen: list[tuple[str, str, str]] = []
    answers = iter([(503, b'{"detail": "busy"}', {}), (200, b'{"ok": 1}', {"Refreshed-API-Token": "t2"})])

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.path, self.headers["Authorization"], self.rfile.read(length).decode()))
            status, body, headers = next(answers, (404, b'{"detail": {"reason": "not_found"}}', {}))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    old_waits, api_module.RETRY_WAIT_SECONDS = api_module.RETRY_WAIT_SECONDS, (0.01, 0.01)
    try:
        client = api_module.ExecutionApiClient(
            f"http://127.0.0.1:{server.server_address[1]}/execution/", "t1"
        )
        response = client.request("PUT", "variables/a%2Fb", json_body={"val": None})
        assert response.body == {"ok": 1}
        assert client.token == "t2"
        assert seen == [
            ("/execution/variables/a%2Fb", "Bearer t1", '{"val": null}'),
            ("/execution/variables/a%2Fb", "Bearer t1", '{"val": null}'),
        ]
        with pytest.raises(ApiError) as info:  # a 4xx is not retried
            client.request("PUT", "x")
        assert (info.value.status, info.value.detail, info.value.message) == (
            404,
            {"reason": "not_found"},
            "Server returned error",
        )
        assert len(seen) == 3 and seen[-1][1] == "Bearer t2"
    finally:
        api_module.RETRY_WAIT_SECONDS = old_waits
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError):
        api_module.ExecutionApiClient("ftp://nope/", "t")
