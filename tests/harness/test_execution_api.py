"""In-process checks of FakeExecutionAPI against the real task-SDK ``Client`` (no supervisor)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest

# A fixed scratch AIRFLOW_HOME (importing the task SDK reads/writes airflow config there).
os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)

httpx = pytest.importorskip("httpx")
pytest.importorskip("airflow.sdk.api.client")

from airflow.sdk.api.client import Client, ServerResponseError  # noqa: E402
from airflow.sdk.api.datamodels._generated import ConnectionResponse, VariableResponse  # noqa: E402
from airflow.sdk.exceptions import ErrorType  # noqa: E402
from airflow.sdk.execution_time.comms import ErrorResponse  # noqa: E402

from tests.harness.execution_api import FakeExecutionAPI  # noqa: E402

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def make_client(api: FakeExecutionAPI) -> Client:
    return Client(base_url="http://execution-api.test", token="t", transport=httpx.MockTransport(api))


@pytest.fixture
def api() -> FakeExecutionAPI:
    return FakeExecutionAPI(
        variables={"my_var": "hello", "other": "x"},
        connections={"db": {"conn_type": "postgres", "host": "h", "password": "pw", "port": 5432}},
        xcoms={("d", "r", "up", "return_value"): {"a": 1}},
        max_tries=2,
    )


def test_run_heartbeat_and_state(api):
    ti_id = api.add_task_instance(dag_id="d", run_id="r", task_id="t", state="queued")
    client = make_client(api)
    ctx = client.task_instances.start(uuid.UUID(ti_id), 1234, NOW)
    assert ctx.dag_run.dag_id == "d" and ctx.max_tries == 2 and ctx.should_retry is True
    client.task_instances.heartbeat(uuid.UUID(ti_id), pid=1234)
    client.task_instances.succeed(uuid.UUID(ti_id), NOW, [], [], None)
    assert api.ti_state(ti_id) == "success"
    assert api.state_updates[-1]["state"] == "success"
    # the real server refuses a second transition from a terminal state
    with pytest.raises(ServerResponseError) as e:
        client.task_instances.finish(uuid.UUID(ti_id), "failed", NOW, None)
    assert e.value.response.status_code == 409
    api.assert_clean()


def test_invalid_bodies_are_422_and_recorded(api):
    ti_id = api.add_task_instance(dag_id="d", run_id="r", task_id="t", state="running")
    client = make_client(api)
    with pytest.raises(ServerResponseError) as e:
        client.request("PATCH", f"task-instances/{ti_id}/state", json={"state": "success", "bogus": 1})
    assert e.value.response.status_code == 422
    assert api.validation_errors and api.validation_errors[0]["path"].endswith("/state")
    with pytest.raises(AssertionError):
        api.assert_clean()


def test_variables_connections_xcoms(api):
    client = make_client(api)
    assert isinstance(client.variables.get("my_var"), VariableResponse)
    missing = client.variables.get("nope")
    assert isinstance(missing, ErrorResponse) and missing.error == ErrorType.VARIABLE_NOT_FOUND
    client.variables.set("new", "v", "desc")
    assert api.variables["new"] == "v" and api.variable_descriptions["new"] == "desc"
    assert client.variables.keys(prefix="n").keys == ["new"]
    client.variables.delete("new")
    assert "new" not in api.variables

    conn = client.connections.get("db")
    assert isinstance(conn, ConnectionResponse) and conn.port == 5432 and conn.password == "pw"
    assert client.connections.get("nope").error == ErrorType.CONNECTION_NOT_FOUND

    assert client.xcoms.get("d", "r", "up", "return_value").value == {"a": 1}
    assert client.xcoms.get("d", "r", "up", "missing").value is None
    client.xcoms.set("d", "r", "t", "k", [1, 2], map_index=0, mapped_length=2)
    client.xcoms.set("d", "r", "t", "k", [3], map_index=1)
    assert api.xcom("d", "r", "t", "k", 0) == [1, 2]
    assert client.xcoms.head("d", "r", "t", "k").len == 2
    assert client.xcoms.get_sequence_item("d", "r", "t", "k", 1).root == [3]
    assert client.xcoms.get_sequence_item("d", "r", "t", "k", 5).error == ErrorType.XCOM_NOT_FOUND
    assert client.xcoms.get_sequence_slice("d", "r", "t", "k", None, None, -1).root == [[3], [1, 2]]
    client.xcoms.delete("d", "r", "t", "k", 1)
    assert client.xcoms.head("d", "r", "t", "k").len == 1
    client.xcoms.set("d", "r", "t", "none", None)
    assert api.xcom("d", "r", "t", "none") is None
    api.assert_clean()


def test_dag_runs_and_task_instance_queries(api):
    ti_id = api.add_task_instance(dag_id="d", run_id="r", task_id="t", state="running")
    api.add_task_instance(dag_id="d", run_id="r", task_id="u", state="success")
    api.add_dag_run("d", "old", logical_date="2025-12-01T00:00:00Z", state="success")
    client = make_client(api)
    assert client.dag_runs.get_state("d", "r").state == "running"
    assert client.dag_runs.get_detail("d", "r").run_id == "r"
    assert client.dag_runs.get_count("d").count == 2
    assert client.dag_runs.get_count("d", states=["success"]).count == 1
    assert (
        client.dag_runs.get_previous("d", datetime(2026, 1, 1, tzinfo=timezone.utc)).dag_run.run_id == "old"
    )
    assert client.dag_runs.trigger("d2", "new", conf={"a": 1}).ok
    assert client.dag_runs.trigger("d2", "new").error == ErrorType.DAGRUN_ALREADY_EXISTS
    assert api.dag_runs[("d2", "new")]["conf"] == {"a": 1}
    assert client.task_instances.get_count("d").count == 2
    assert client.task_instances.get_count("d", states=["success"]).count == 1
    assert client.task_instances.get_task_states("d", run_ids=["r"]).task_states == {
        "r": {"t": "running", "u": "success"}
    }
    assert client.task_instances.get_previous("d", "u").task_instance.state == "success"
    assert client.task_instances.get_previous_successful_dagrun(uuid.UUID(ti_id)).start_date is not None
    client.task_instances.set_rtif(uuid.UUID(ti_id), {"cmd": "echo"})
    assert api.rtif[ti_id] == {"cmd": "echo"}
    assert client.dags.get("d").dag_id == "d"
    api.assert_clean()


def test_stores_assets_and_unhandled(api):
    ti = uuid.uuid4()
    api.assets.append({"name": "a1", "uri": "s3://b/a1"})
    api.asset_aliases["al"] = ["a1"]
    client = make_client(api)
    assert client.task_state_store.get(ti, "k/1").error == ErrorType.TASK_STORE_NOT_FOUND
    client.task_state_store.set(ti, "k/1", {"x": 1}, None)
    assert client.task_state_store.get(ti, "k/1").value == {"x": 1}
    client.asset_state_store.set("k", 5, name="a1")
    assert client.asset_state_store.get("k", name="a1").value == 5
    assert client.assets.get(name="a1").uri == "s3://b/a1"
    assert client.assets.get(uri="nope").error == ErrorType.ASSET_NOT_FOUND
    assert [a.name for a in client.assets.get_by_alias("al").assets] == ["a1"]
    assert client.asset_events.get(name="a1").asset_events == []
    with pytest.raises(ServerResponseError):
        client.get("no/such/endpoint")
    assert api.unhandled[0]["path"] == "/no/such/endpoint"


def test_round_trips_through_json(api):
    api.add_task_instance(dag_id="d", run_id="r", task_id="t", state="queued")
    api.add_fault("PUT", "/task-instances/*/heartbeat", 409, skip=1)
    clone = FakeExecutionAPI.from_dict(api.to_dict())
    assert clone.to_dict() == api.to_dict()
    assert clone.xcom("d", "r", "up", "return_value") == {"a": 1}
