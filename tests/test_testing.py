"""``bundle.testing``: the outcome mapping, injection and client, through the shared execution path."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bundle import (
    Bundle,
    Client,
    ConnectionNotFound,
    Context,
    FailTask,
    SkipTask,
    VariableClient,
    VariableNotFound,
)
from bundle.testing import FakeClient, run_task

b = Bundle("testing_bundle")
d = b.dag("d")


@d.task
def returns_dict(ctx: Context) -> dict:
    return {"dag": ctx.ti.dag_id, "task": ctx.task_id, "try": ctx.try_number, "conf": dict(ctx.dag_run.conf)}


@d.task
def returns_none() -> None:
    return None


@d.task
def fails() -> None:
    raise RuntimeError("kaput")


@d.task
def fails_hard() -> None:
    raise FailTask("stop")


@d.task
def skips() -> None:
    raise SkipTask("later")


@d.task
def exits() -> None:
    raise SystemExit(3)


@d.task
async def async_task(client: VariableClient) -> str:
    await asyncio.sleep(0)
    return client.get_variable("v")


@d.task
def unserialisable() -> object:
    return object()


@d.task(multiple_outputs=True)
def several() -> dict:
    return {"a": 1, "b": [2]}


@d.task(do_xcom_push=False)
def quiet() -> int:
    return 5


@d.task
def uses_everything(log: logging.Logger, client: Client, ctx: Context) -> dict:
    log.info("hello from %s", ctx.task_id)
    conn = client.get_connection("c")
    client.set_variable("out", "written")
    client.push_xcom("pushed", 1)
    try:
        client.get_variable("missing")
    except VariableNotFound:
        pass
    try:
        client.get_connection("missing")
    except ConnectionNotFound:
        pass
    return {
        "uri": conn.get_uri(),
        "extra": conn.extra_dejson,
        "upstream": client.get_xcom("returns_dict", default="none"),
    }


def test_success_pushes_return_value():
    result = run_task(b, "d", "returns_dict", try_number=2, conf={"x": 1})
    assert result.state == "success"
    value = {"dag": "d", "task": "returns_dict", "try": 2, "conf": {"x": 1}}
    # `-> dict` infers multiple_outputs, as Airflow's @task does: each key is pushed too
    assert result.xcoms == {"return_value": value, **value}


def test_none_pushes_nothing():
    result = run_task(b, "d", "returns_none")
    assert (result.state, result.xcoms) == ("success", {})


@pytest.mark.parametrize(
    ("task", "max_tries", "state"),
    [
        ("fails", 0, "failed"),
        ("fails", 1, "up_for_retry"),
        ("fails_hard", 3, "failed"),
        ("skips", 3, "skipped"),
        ("exits", 0, "failed"),
        ("unserialisable", 0, "failed"),
        ("nope", 0, "removed"),
    ],
)
def test_outcome_mapping(task, max_tries, state):
    assert run_task(b, "d", task, max_tries=max_tries).state == state


def test_exception_is_logged_with_traceback_and_reason():
    result = run_task(b, "d", "fails")
    assert result.reason == "RuntimeError: kaput"
    [record] = [r for r in result.logs if r.exc_info]
    assert record.exc_info[1] is result.error


def test_no_retry_on_the_last_try():
    assert run_task(b, "d", "fails", try_number=2, max_tries=1).state == "failed"


def test_async_task_and_narrow_client():
    assert (
        run_task(b, "d", "async_task", client=FakeClient(variables={"v": "ok"})).xcoms["return_value"] == "ok"
    )


def test_multiple_outputs_and_do_xcom_push():
    assert run_task(b, "d", "several").xcoms == {"a": 1, "b": [2], "return_value": {"a": 1, "b": [2]}}
    assert run_task(b, "d", "quiet").xcoms == {}


def test_fake_client_records_everything():
    client = FakeClient(
        connections={
            "c": {
                "conn_type": "http",
                "host": "h",
                "login": "u",
                "password": "p@ss word",
                "port": 80,
                "extra": '{"token": "t0ken-value"}',
            }
        },
        xcoms={"returns_dict": {"upstream": True}},
    )
    result = run_task(b, "d", "uses_everything", client=client)
    assert result.state == "success", result.reason
    assert result.xcoms["return_value"] == {
        "uri": "http://u:p%40ss%20word@h:80?token=t0ken-value",
        "extra": {"token": "t0ken-value"},
        "upstream": {"upstream": True},
    }
    assert result.xcoms["pushed"] == 1
    assert result.xcoms["extra"] == {"token": "t0ken-value"}  # `-> dict`: multiple_outputs inferred
    assert client.variables["out"] == "written"
    assert "p@ss word" in client.masked and {"token": "t0ken-value"} in client.masked
    assert [r["type"] for r in client.requests][:2] == ["GetConnection", "MaskSecret"]
    assert result.messages == ["hello from uses_everything"]


def test_task_is_still_a_plain_function():
    assert returns_none() is None
    with pytest.raises(RuntimeError):
        fails()


def test_typed_calls_check_their_own_arguments_before_anything_is_sent():
    # get_variable and push_xcom skip the generic validation of the body they build (a round trip
    # costs less); their own argument checks must refuse what that validation would have.
    from bundle.core.context import TaskInstanceInfo
    from bundle.core.errors import InvalidRequest

    client = FakeClient().bind(TaskInstanceInfo(dag_id="d", run_id="r", task_id="t"))
    with pytest.raises(InvalidRequest, match=r"GetVariable\.key must be a string"):
        client.get_variable(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=r"SetXCom\.key must be a string"):
        client.push_xcom(None, 1)  # type: ignore[arg-type]
    for value in (object(), b"bytes", {1: "non-str key"}, float("nan")):
        with pytest.raises(InvalidRequest, match=r"SetXCom\.value must be JSON-serialisable"):
            client.push_xcom("k", value)
    assert client.requests == []
    client.push_xcom("k", {"ok": [1, 2.5, None]})
    assert client.requests[-1]["type"] == "SetXCom" and client.pushed == {"k": {"ok": [1, 2.5, None]}}
