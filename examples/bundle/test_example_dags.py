"""Unit tests for the example bundle, written the way a bundle author would: with ``bundle.testing``.

``run_task`` takes the same binding, execution and outcome path as a real worker, with a fake client
answering from memory, so these run in milliseconds without Airflow. A task's bound arguments (its
upstream outputs) come from the fake client's XComs, or directly from ``arguments=``.
"""

from __future__ import annotations

import logging

import pytest
from example_dags import bundle, etl, filter_rows

from bundle.testing import FakeClient, run_task

ORDERS_DB = {
    "conn_type": "postgres",
    "host": "orders.db.internal",
    "port": 5432,
    "login": "etl",
    "password": "s3cret-pw",
}
ROWS = [{"order_id": 1, "amount": 12.5}, {"order_id": 2, "amount": 3.0}]
SUMMARY = {"currency": "EUR", "rows": ROWS[:1], "total": 12.5}


def test_the_dag_wires_data_passing_a_task_group_a_mapped_task_and_a_branch():
    tasks = etl.tasks
    assert list(tasks) == [
        "extract",
        "transform.filter_rows",
        "transform.summarise",
        "check_order",
        "route",
        "load",
        "report_empty",
        "audit",
        "notify",
    ]
    assert tasks["transform.filter_rows"].upstream_task_ids == ["extract"]  # bound: extracted=extract()
    assert sorted(tasks["route"].downstream_task_ids) == ["load", "report_empty"]
    assert sorted(tasks["audit"].upstream_task_ids) == ["load", "report_empty"]
    assert tasks["audit"].effective_options["trigger_rule"] == "none_failed_min_one_success"
    assert tasks["transform.summarise"].effective_options["retries"] == 2  # the group's default_args
    mapped = tasks["check_order"]
    assert mapped.is_mapped and mapped.upstream_task_ids == ["transform.filter_rows"]
    assert mapped.expand_input.value["row"].task is tasks["transform.filter_rows"]


def test_each_mapped_check_order_instance_gets_its_row_and_label():
    rows = [{"order_id": 1, "amount": 12.5}, {"order_id": 3, "amount": 31.25}]
    client = FakeClient(xcoms={"transform.filter_rows": rows})
    for map_index, row in enumerate(rows):
        result = run_task(bundle, "simple_dag", "check_order", client=client, map_index=map_index)
        assert result.state == "success"
        assert result.xcoms["return_value"] == row["amount"]
        assert result.rendered_map_index == f"order {row['order_id']}"


def test_extract_returns_rows_and_masks_the_password():
    result = run_task(
        bundle, "simple_dag", "extract", client=FakeClient(connections={"orders_db": ORDERS_DB})
    )
    assert result.state == "success"
    assert result.xcoms["return_value"]["source"] == "orders.db.internal"
    assert len(result.xcoms["return_value"]["rows"]) == 4
    assert "Connecting as etl with password ***" in result.messages
    assert "s3cret-pw" not in "\n".join(result.messages)


def test_filter_rows_gets_extracts_output_and_applies_the_threshold_variable():
    client = FakeClient(
        variables={"min_amount": "10"},
        xcoms={"extract": {"source": "db", "rows": ROWS}},  # what extract() returned: bound to extracted
    )
    result = run_task(bundle, "simple_dag", "transform.filter_rows", client=client)
    assert result.state == "success"
    assert result.xcoms["return_value"] == ROWS[:1]
    assert "Dropped 1 rows below the threshold" in result.messages


def test_summarise_totals_in_the_currency_of_a_json_variable():
    client = FakeClient(variables={"transform_settings": '{"currency": "USD"}'})
    result = run_task(bundle, "simple_dag", "transform.summarise", client=client, arguments={"rows": ROWS})
    assert result.xcoms["return_value"] == {"currency": "USD", "rows": ROWS, "total": 15.5}


@pytest.mark.parametrize(
    ("rows", "followed", "skipped"), [(ROWS, "load", "report_empty"), ([], "report_empty", "load")]
)
def test_route_follows_load_only_when_rows_are_left(rows, followed, skipped):
    result = run_task(bundle, "simple_dag", "route", arguments={"summary": {**SUMMARY, "rows": rows}})
    assert result.state == "success"
    assert result.skipped_downstream == [[skipped, -1]]  # (task id, map index)
    assert result.xcoms == {"skipmixin_key": {"followed": [followed]}}


def test_load_fails_on_the_first_try_and_succeeds_on_the_retry():
    first = run_task(bundle, "simple_dag", "load", try_number=1, max_tries=1, arguments={"summary": SUMMARY})
    assert first.state == "up_for_retry"
    assert isinstance(first.error, ConnectionError)
    second = run_task(
        bundle,
        "simple_dag",
        "load",
        try_number=2,
        max_tries=1,
        client=FakeClient(variables={"warehouse_api_token": "tok-abc"}),
        arguments={"summary": SUMMARY},
    )
    assert second.state == "success"
    assert second.xcoms == {"return_value": 1}
    assert "with token ***" in second.messages[-1]


@pytest.mark.parametrize(("loaded", "expected"), [(3, 3), (None, 0)])
def test_audit_counts_what_load_returned_or_zero_when_it_was_skipped(loaded, expected):
    result = run_task(bundle, "simple_dag", "audit", arguments={"loaded": loaded})
    assert result.xcoms["return_value"]["loaded_rows"] == expected
    assert "loaded rows" in result.messages[-1]


@pytest.mark.parametrize(("variables", "state"), [({}, "skipped"), ({"notify_channel": "#data"}, "success")])
def test_notify_skips_without_a_channel(variables, state):
    result = run_task(
        bundle,
        "simple_dag",
        "notify",
        client=FakeClient(variables=variables),
        arguments={"report": {"loaded_rows": 3}},
    )
    assert result.state == state


def test_outside_a_dag_context_a_task_is_its_plain_function():
    client = FakeClient(variables={"min_amount": "10"})
    assert filter_rows({"rows": ROWS}, client, logging.getLogger("test")) == ROWS[:1]
