"""Access levels as a public contract: the table is the released peers' unions, checked at test time.

Every ``ToSupervisor`` type of the installed apache-airflow-task-sdk (1.3.2) must be in exactly one
group, so a type added upstream fails here; the DAG-parse workload must be exactly what the
installed DAG processor answers (``ToManager``); docs/access-levels.md must hold the rendered table.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

import bundle
from bundle import access
from bundle.core import messages
from bundle.core.client import MessageClient
from bundle.core.context import TaskInstanceInfo

DOC = Path(__file__).resolve().parents[1] / "docs" / "access-levels.md"
SEVEN_GROUPS = {"read", "write", "logging", "task lifecycle", "task metadata", "orchestration", "HITL"}


def union_names(union: object) -> set[str]:
    inner = typing.get_args(union)[0]  # Annotated[A | B | ..., Field(discriminator="type")]
    return {cls.__name__ for cls in typing.get_args(inner)}


def test_every_released_supervisor_request_type_is_in_exactly_one_group():
    from airflow.sdk.execution_time.comms import ToSupervisor

    released = union_names(ToSupervisor)
    assert len(released) >= 50  # the derivation found the union, not an empty tuple
    assert set(access.REQUEST_GROUPS) == released  # dict keys: at most one group each
    assert {access.group_of(t) for t in released} == SEVEN_GROUPS


def test_the_task_workload_is_the_whole_union_and_nothing_else():
    from airflow.sdk.execution_time.comms import ToSupervisor

    assert access.TASK.types == union_names(ToSupervisor)


def test_the_dag_parse_workload_is_what_the_released_dag_processor_answers():
    from airflow.dag_processing.processor import ToManager

    assert access.DAG_PARSE.types == union_names(ToManager)


def test_callbacks_get_read_and_logging_a_superset_of_airflows_own_callback_channels():
    from airflow.sdk.execution_time.callback_supervisor import CallbackToSupervisor

    expected = {t for t, g in access.REQUEST_GROUPS.items() if access.GROUP_NAMES[g] in ("read", "logging")}
    assert access.CALLBACK.types == expected
    assert union_names(CallbackToSupervisor) <= access.CALLBACK.types
    for refused in (
        "SetXCom",
        "PutVariable",
        "SucceedTask",
        "TaskState",
        "TriggerDagRun",
        "SetRenderedFields",
    ):
        assert refused not in access.CALLBACK


def test_spec_groups_agree_with_the_table():
    for type_, spec in messages.SPECS.items():
        if type_ != "DagFileParsingResult":
            assert messages.REQUEST_GROUPS[type_] is spec.access, type_


def test_request_not_allowed_names_type_group_and_workload_and_sends_nothing():
    sent: list[dict] = []
    ti = TaskInstanceInfo(dag_id="d", run_id="r", task_id="t", id="00000000-0000-4000-8000-000000000001")
    client = MessageClient(sent.append, ti, access.TASK).restricted(access.CALLBACK)
    cases = [
        (lambda: client.set_variable("k", "v"), "PutVariable", "write"),
        (lambda: client.push_xcom("k", 1), "SetXCom", "write"),
        (lambda: client.request({"type": "SucceedTask", "end_date": None}), "SucceedTask", "task lifecycle"),
        (lambda: client.trigger_dag_run("other", "run"), "TriggerDagRun", "orchestration"),
    ]
    for call, type_, group in cases:
        with pytest.raises(bundle.RequestNotAllowed) as raised:
            call()
        error = raised.value
        assert (error.request_type, error.group, error.workload) == (type_, group, "callback")
        assert str(error).startswith(f"{type_} is a {group} request, which a callback may not send")
    assert sent == []
    client.get_variable("k", default=None)  # read: reaches the transport
    assert [body["type"] for body in sent] == ["GetVariable"]


def test_a_task_lifecycle_request_while_parsing_is_refused_but_put_variable_is_not():
    put = {"type": "PutVariable", "key": "k", "value": "v", "description": None}
    messages.validate_request(put, access.DAG_PARSE)  # the DAG processor answers it
    with pytest.raises(
        bundle.RequestNotAllowed, match="TaskState is a task lifecycle request, which a DAG parse"
    ):
        messages.validate_request({"type": "TaskState", "state": "failed"}, access.DAG_PARSE)
    with pytest.raises(bundle.RequestNotAllowed, match="GetDagRun is a read request, which a DAG parse"):
        messages.validate_request({"type": "GetDagRun", "dag_id": "d", "run_id": "r"}, access.DAG_PARSE)


def test_the_docs_table_is_the_rendered_table():
    text = DOC.read_text()
    table = access.markdown_table()
    assert table in text, "docs/access-levels.md is stale: paste the output of `python -m bundle.access`"
    row = re.compile(r"^\| [^|]+ \| `\w+` \| (yes|no) \|", re.M)
    assert len(row.findall(text)) == len(row.findall(table))  # no second, hand-written table


def test_dag_callbacks_are_in_the_catalogue_with_mask_secret_only():
    from bundle.core.dag_callbacks import environment_client

    assert access.DAG_CALLBACK in access.WORKLOADS
    assert access.DAG_CALLBACK.types == frozenset({"MaskSecret"})
    assert "| DAG callback |" in access.markdown_table().splitlines()[0]
    assert environment_client(None)._access is access.DAG_CALLBACK  # what DAG-callback mode uses
    with pytest.raises(bundle.RequestNotAllowed, match="GetVariable is a read request, which a DAG callback"):
        messages.validate_request({"type": "GetVariable", "key": "k"}, access.DAG_CALLBACK)
