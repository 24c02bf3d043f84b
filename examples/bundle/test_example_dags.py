"""Unit tests for the example bundle, written the way a bundle author would: with ``bundle.testing``.

``run_task`` takes the same binding, execution and outcome path as a real worker, with a fake client
answering from memory, so these run in milliseconds without Airflow.
"""

from __future__ import annotations

import pytest
from example_dags import bundle

from bundle.testing import FakeClient, run_task

ORDERS_DB = {
    "conn_type": "postgres",
    "host": "orders.db.internal",
    "port": 5432,
    "login": "etl",
    "password": "s3cret-pw",
}


def test_extract_returns_rows_and_masks_the_password():
    result = run_task(
        bundle, "simple_dag", "extract", client=FakeClient(connections={"orders_db": ORDERS_DB})
    )
    assert result.state == "success"
    assert result.xcoms["return_value"]["source"] == "orders.db.internal"
    assert len(result.xcoms["return_value"]["rows"]) == 4
    assert "Connecting as etl with password ***" in result.messages
    assert "s3cret-pw" not in "\n".join(result.messages)


def test_transform_applies_the_threshold_variable_to_extracts_xcom():
    rows = [{"order_id": 1, "amount": 12.5}, {"order_id": 2, "amount": 3.0}]
    client = FakeClient(
        variables={"min_amount": "10", "transform_settings": '{"currency": "USD"}'},
        xcoms={"extract": {"source": "db", "rows": rows}},
    )
    result = run_task(bundle, "simple_dag", "transform", client=client)
    assert result.state == "success"
    assert result.xcoms["return_value"] == {"currency": "USD", "rows": rows[:1], "total": 12.5}
    assert "Dropped 1 rows below the threshold" in result.messages


def test_load_fails_on_the_first_try_and_succeeds_on_the_retry():
    summary = {"currency": "EUR", "rows": [{"order_id": 1, "amount": 12.5}], "total": 12.5}
    first = run_task(
        bundle,
        "simple_dag",
        "load",
        try_number=1,
        max_tries=1,
        client=FakeClient(xcoms={"transform": summary}),
    )
    assert first.state == "up_for_retry"
    assert isinstance(first.error, ConnectionError)
    second = run_task(
        bundle,
        "simple_dag",
        "load",
        try_number=2,
        max_tries=1,
        client=FakeClient(variables={"warehouse_api_token": "tok-abc"}, xcoms={"transform": summary}),
    )
    assert second.state == "success"
    assert second.xcoms == {"loaded_rows": 1}
    assert "with token ***" in second.messages[-1]


@pytest.mark.parametrize(("variables", "state"), [({}, "skipped"), ({"notify_channel": "#data"}, "success")])
def test_notify_skips_without_a_channel(variables, state):
    assert run_task(bundle, "simple_dag", "notify", client=FakeClient(variables=variables)).state == state


def test_audit_is_the_handler_of_a_python_stub_task():
    result = run_task(bundle, "simple_dag", "audit", client=FakeClient(xcoms={"load.loaded_rows": 3}))
    assert result.xcoms["return_value"]["loaded_rows"] == 3
