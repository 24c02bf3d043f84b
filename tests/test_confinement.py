"""``bundle.core.confinement`` in process: the proxy's rules, the bound, a child that breaks the
protocol, and the log events it relays (the released-supervisor proofs are in tests/test_callbacks.py)."""

from __future__ import annotations

import logging
import os
import time

import pytest

from bundle.core import confinement
from bundle.core.client import MessageClient
from bundle.core.log_records import record_to_event
from bundle.core.messages import CALLBACK_ACCESS

pytestmark = pytest.mark.skipif(not confinement.available(), reason="needs os.fork")


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[dict]:
        return [record_to_event(r) for r in self.records]


@pytest.fixture
def recorder():
    handler = Recorder()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def runtime_client(sent: list[dict]) -> MessageClient:
    def transport(body: dict) -> dict | None:
        sent.append(body)
        if body["type"] == "GetVariable":
            return {"type": "VariableResult", "key": body["key"], "value": "from-runtime"}
        return None

    return MessageClient(transport, None)


def run(invoke, client: MessageClient, limit: float = 10.0) -> None:
    confinement.run_confined(
        invoke, client=client, access=CALLBACK_ACCESS, what="task callback", label="cb[0] probe", limit=limit
    )


def test_only_the_levels_requests_reach_the_runtimes_transport(recorder):
    sent: list[dict] = []

    def invoke(client: MessageClient) -> None:
        log = logging.getLogger("probe")
        log.info("read %s", client.get_variable("k"))
        for body in (
            {"type": "PutVariable", "key": "k", "value": "v", "description": None},
            {"type": "TaskState", "state": "failed"},
            {"type": "GetVariable", "key": "k", "surplus": 1},
        ):
            try:
                client._transport(body)  # straight to the proxy, no Client check on the way
            except Exception as exc:
                log.info("%s -> %s", body["type"], type(exc).__name__)

    run(invoke, runtime_client(sent))
    events = [e["event"] for e in recorder.events() if e["logger"] == "probe"]
    assert events == [
        "read from-runtime",
        "PutVariable -> RequestNotAllowed",
        "TaskState -> RequestNotAllowed",
        "GetVariable -> InvalidRequest",
    ]
    assert sent == [{"type": "GetVariable", "key": "k"}]


def test_a_hung_callback_is_killed_at_the_bound_with_its_stack(recorder):
    def invoke(client: MessageClient) -> None:
        time.sleep(60)

    started = time.monotonic()
    run(invoke, runtime_client([]), limit=0.5)
    assert time.monotonic() - started < 5
    [cut] = [e for e in recorder.events() if "did not finish within 0.5 s" in e["event"]]
    assert "killed it" in cut["event"] and "time.sleep(60)" in cut["event"]
    assert not confinement._active


def test_a_callback_that_writes_garbage_to_its_socket_is_killed(recorder):
    def invoke(client: MessageClient) -> None:
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    os.write(int(name), b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1")  # 0xc1: never valid msgpack
            except OSError:
                pass
        time.sleep(60)

    started = time.monotonic()
    run(invoke, runtime_client([]))
    assert time.monotonic() - started < 5
    assert [e for e in recorder.events() if "sent an unreadable frame" in e["event"]]


def test_a_callbacks_exception_is_logged_with_its_traceback(recorder):
    def invoke(client: MessageClient) -> None:
        raise ValueError("broke")

    run(invoke, runtime_client([]))
    [failed] = [
        e for e in recorder.events() if e["event"].startswith("Failed to run task callback cb[0] probe")
    ]
    assert failed["level"] == "error"
    assert [s["exc_type"] for s in failed["exception"]] == ["ValueError"]


def test_a_callback_cannot_reach_into_the_runtime(recorder):
    """Landlock: the child can neither read the runtime's memory nor copy its descriptors."""
    from bundle.core import landlock

    if landlock.abi() < 1:
        pytest.fail("this test needs a kernel with Landlock (the development VM has ABI 7)")

    def invoke(client: MessageClient) -> None:
        log = logging.getLogger("probe")
        parent = os.getppid()
        try:
            with open(f"/proc/{parent}/mem", "rb") as f:
                f.seek(id(os))
                f.read(8)
            log.info("mem read")
        except OSError as exc:
            log.info("mem %s", type(exc).__name__)
        try:
            os.readlink(f"/proc/{parent}/fd/0")
            log.info("fd readable")
        except OSError as exc:
            log.info("fd %s", type(exc).__name__)

    run(invoke, runtime_client([]))
    events = [e["event"] for e in recorder.events() if e["logger"] == "probe"]
    assert events == ["mem PermissionError", "fd PermissionError"]
    assert not [e for e in recorder.events() if "partial" in e["event"]]


def test_without_landlock_the_open_route_is_logged(recorder, monkeypatch):
    """Where Landlock cannot be used (here: an architecture it does not know) and Yama does not
    close the route for this user, the task log says which route stays open and how to close it."""
    from bundle.core import landlock

    monkeypatch.setattr(landlock, "_ARCHES", frozenset())  # the child is forked: it inherits this
    monkeypatch.setattr(landlock, "_yama_scope", lambda: 0)

    def invoke(client: MessageClient) -> None:
        logging.getLogger("probe").info("ran %s", client.get_variable("k"))

    run(invoke, runtime_client([]))
    events = [e for e in recorder.events() if e["logger"] in ("probe", "bundle.runtime")]
    [warning] = [e for e in events if "partial" in e["event"]]
    assert warning["level"] == "warning"
    assert warning["event"].startswith("Confinement of task callback cb[0] probe is partial: ")
    assert "/proc/<pid>/mem" in warning["event"] and "kernel.yama.ptrace_scope=1" in warning["event"]
    assert [e["event"] for e in events if e["logger"] == "probe"] == ["ran from-runtime"]


def test_yama_closes_the_route_for_a_non_root_user(monkeypatch):
    from bundle.core import landlock

    monkeypatch.setattr(landlock, "_ARCHES", frozenset())
    monkeypatch.setattr(landlock, "_yama_scope", lambda: 1)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert landlock.restrict_self() is None
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # root passes Yama's scope 1
    assert "kernel.yama.ptrace_scope=1" in (landlock.restrict_self() or "")


def test_relayed_events_are_made_safe_for_the_supervisor():
    """A child's events are untrusted: keys the supervisor chokes on are renamed, a malformed
    ``exception`` and timestamp are not passed on, and secrets are masked again."""
    from bundle.core.masking import masker

    masker.add("relayed-secret-value")
    record = logging.makeLogRecord(
        {
            "name": "x",
            "levelno": logging.INFO,
            confinement.RELAYED_EVENT: {
                "event": "has relayed-secret-value",
                "logger": "probe",
                "level": "nonsense",
                "timestamp": 12,
                "msg": "crash",
                "exception": "not a stack",
            },
        }
    )
    event = record_to_event(record)
    assert event["event"] == "has ***"
    assert "msg" not in event and event["extra_msg"] == "crash"
    assert "exception" not in event and event["extra_exception"] == "not a stack"
    assert event["level"] == "info" and isinstance(event["timestamp"], str)
