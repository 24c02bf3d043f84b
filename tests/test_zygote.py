"""``bundle.core.zygote`` in process: callbacks forked from a process that never saw the token,
their context carried as data, a dead zygote meaning "not run", and the zygote dying with its
parent. (The go-plugin proof under a real plugin is in tests/test_callbacks.py.)"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import MappingProxyType

import pytest

from bundle import Bundle, Client, Context
from bundle.core import zygote
from bundle.core.callbacks import run_callbacks
from bundle.core.client import MessageClient
from bundle.core.context import DagRunInfo, TaskInstanceInfo
from bundle.core.log_records import record_to_event

pytestmark = pytest.mark.skipif(not zygote.supported(), reason="needs Linux pidfd_open")

SECRET = "token-that-only-the-parent-ever-held"
log = logging.getLogger("zygote_probe")


class Unpicklable(Exception):
    def __init__(self, a: str, b: str) -> None:  # pickle re-creates it with one argument: fails
        super().__init__(f"{a}/{b}")


def seen(ctx: Context, client: Client, exception) -> None:
    log.info(
        "seen %s %s conf=%s mapping=%s exception=%s:%s cancelled=%s var=%s held=%s",
        ctx.callback,
        ctx.ti.task_id,
        dict(ctx.dag_run.conf),
        type(ctx.dag_run.conf).__name__,
        type(exception).__name__,
        exception,
        ctx.is_cancelled(),
        client.get_variable("k"),
        any(SECRET in str(v) for v in globals().get("HELD", ())),
    )


bundle = Bundle("zygote_tests", version="1")
dag = bundle.dag("zygote_dag")


@dag.task(on_failure_callback=[seen, seen])
def probe() -> None:
    return None


def sleeps(ctx: Context) -> None:
    log.info("sleeps starts")
    time.sleep(60)


@dag.task(on_success_callback=[sleeps, seen])
def hangs() -> None:
    return None


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(record_to_event(record)["event"])


@pytest.fixture
def recorder():
    handler = Recorder()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def started():
    """A zygote forked now (before HELD holds the secret), forgotten afterwards."""
    globals().pop("HELD", None)
    handle = zygote.start(bundle)
    assert handle is not None and handle.pid
    yield handle
    zygote._current = None
    handle._broken()  # its end of the socket closed: the zygote exits
    try:
        os.waitpid(handle.pid, 0)
    except ChildProcessError:  # reaped by the test already
        pass


def client_and_context(sent: list[dict], task_id: str = "probe") -> tuple[MessageClient, Context]:
    def transport(body: dict) -> dict:
        sent.append(body)
        return {"type": "VariableResult", "key": body["key"], "value": "from-runtime"}

    ti = TaskInstanceInfo("zygote_dag", "run_1", task_id)
    context = Context(ti, DagRunInfo("zygote_dag", "run_1", conf=MappingProxyType({"a": 1})))
    context.cancelled.set()
    return MessageClient(transport, ti), context


def test_callbacks_run_in_the_zygotes_children_with_their_context_as_data(started, recorder):
    globals()["HELD"] = [SECRET]  # what only this process (the "plugin") holds after the fork
    sent: list[dict] = []
    client, context = client_and_context(sent)
    task = bundle.registry.lookup_task("zygote_dag", "probe")
    assert run_callbacks(task, "on_failure_callback", context, client, Unpicklable("x", "y")) == 2
    lines = [e for e in recorder.events if e.startswith("seen ")]
    assert (
        lines
        == [
            "seen on_failure_callback probe conf={'a': 1} mapping=mappingproxy exception=Unpicklable:x/y "
            "cancelled=True var=from-runtime held=False"
        ]
        * 2
    ), recorder.events
    assert sent == [{"type": "GetVariable", "key": "k"}] * 2


def test_a_dead_zygote_means_the_callback_did_not_run(started, recorder):
    os.kill(started.pid, signal.SIGKILL)
    os.waitpid(started.pid, 0)
    sent: list[dict] = []
    client, context = client_and_context(sent)
    task = bundle.registry.lookup_task("zygote_dag", "probe")
    run_callbacks(task, "on_failure_callback", context, client, None)
    assert sent == []  # never run, not even in a process forked from this one
    not_run = [e for e in recorder.events if e.startswith("Cannot start a process for task callback")]
    assert len(not_run) == 2 and all(e.endswith("it did not run") for e in not_run), recorder.events
    assert all("the callback process server is gone" in e for e in not_run), not_run


def test_the_zygote_dies_with_the_process_that_started_it(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time
        from bundle import Bundle
        from bundle.core import zygote
        print(zygote.start(Bundle("dies_with", version="1")).pid, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    os.kill(pid, 0)  # alive
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the zygote outlived the process that started it")


class TokenTransport:
    """Picklable on purpose: only the refusal keeps its token out of the spec."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, body: dict) -> dict:
        return {"type": "VariableResult", "key": body["key"], "value": "v"}


def test_the_runtimes_client_never_travels_to_a_callbacks_process():
    from bundle.core.callbacks import CallbackContext, callback_spec

    ti = TaskInstanceInfo("zygote_dag", "run_1", "probe")
    client = MessageClient(TokenTransport(SECRET), ti)
    context = Context(ti, DagRunInfo("zygote_dag", "run_1"))
    context.params = {"where": "here", "client": client}  # a client hidden in the data
    context._assets = [client]  # the asset accessors hold the runtime's client
    task = bundle.registry.lookup_task("zygote_dag", "probe")
    spec = callback_spec(
        task, "on_failure_callback", 0, CallbackContext(context, "on_failure_callback", None), "x"
    )
    assert SECRET.encode() not in spec
    assert b"TokenTransport" not in spec


def test_a_hung_callback_of_the_zygote_is_killed_at_the_bound(started, recorder, monkeypatch):
    monkeypatch.setenv("PYBUNDLE_CALLBACK_TIMEOUT_SECONDS", "0.5")
    sent: list[dict] = []
    client, context = client_and_context(sent, "hangs")
    task = bundle.registry.lookup_task("zygote_dag", "hangs")
    began = time.monotonic()
    run_callbacks(task, "on_success_callback", context, client, None)
    assert time.monotonic() - began < 5
    [cut] = [e for e in recorder.events if "did not finish within 0.5 s" in e]
    assert "killed it" in cut and "time.sleep(60)" in cut, cut
    assert "sleeps starts" in recorder.events
    assert len(sent) == 1  # the next callback still ran
