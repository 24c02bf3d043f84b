"""Our request table against the released supervisor's own models (task-sdk 1.3.2 / core 3.3.2).

Every body our validator accepts must be accepted by the peer's pydantic union, and the required
fields must be exactly the peer's: a body the peer would drop would hang the task.
"""

from __future__ import annotations

import json
import typing
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from bundle.core import messages
from bundle.core.errors import InvalidRequest, RequestNotAllowed


def _peer_schema() -> dict:
    import airflow.sdk.execution_time.schema as schema_package

    return json.loads((Path(schema_package.__file__).parent / "schema.json").read_text())


SCHEMA = _peer_schema()
NOT_SENT = {  # request types a bundle never sends, and why
    "AwaitInputTask": "human-in-the-loop is not offered",
    "CreateHITLDetailPayload": "human-in-the-loop is not offered",
    "UpdateHITLDetail": "unhandled by the 1.3.2 supervisor",
    "GetHITLDetailResponse": "unhandled by the 1.3.2 supervisor",
    "ResendLoggingFD": "an fd transfer, meaningless over TCP",
}
CANDIDATES = ["x", 1, True, 1.5, {"k": "v"}, [], datetime(2026, 1, 2, tzinfo=timezone.utc), str(uuid.uuid4())]


def peer_union(type_: str):
    if type_ == "DagFileParsingResult":
        from airflow.dag_processing.processor import ToManager

        return ToManager
    from airflow.sdk.execution_time.comms import ToSupervisor

    return ToSupervisor


def peer_types() -> set[str]:
    from airflow.sdk.execution_time.comms import ToSupervisor

    union = typing.get_args(ToSupervisor)[0]
    return {cls.__name__ for cls in typing.get_args(union)}


def example(spec: messages.MessageSpec, optional: bool) -> dict:
    body = {"type": spec.type}
    for name, check in spec.fields.items():
        if name not in spec.required and not optional:
            continue
        if name == "state":
            body[name] = {
                "TaskState": "failed",
                "RetryTask": "up_for_retry",
                "DeferTask": "deferred",
                "RescheduleTask": "up_for_reschedule",
            }.get(spec.type, "success")
            continue
        if name == "serialized_dags":
            body[name] = []
            continue
        body[name] = next(value for value in CANDIDATES if check(value))
    return body


@pytest.mark.parametrize("type_", sorted(messages.SPECS))
def test_required_fields_and_keys_match_the_peer_schema(type_):
    definition = SCHEMA["$defs"][type_]
    peer_required = set(definition.get("required", [])) - {"type"}
    assert set(messages.SPECS[type_].required) == peer_required
    assert set(messages.SPECS[type_].fields) <= set(definition["properties"])


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("type_", sorted(messages.SPECS))
def test_bodies_we_accept_the_peer_accepts(type_, optional):
    spec = messages.SPECS[type_]
    body = example(spec, optional)
    messages.validate_request(body, messages.TASK_ACCESS | messages.DAG_PARSING_ACCESS)
    TypeAdapter(peer_union(type_)).validate_python(body)


def test_every_peer_request_is_covered_or_deliberately_not_sent():
    covered = set(messages.SPECS) - {"DagFileParsingResult"}
    assert covered | set(NOT_SENT) == peer_types()
    assert not covered & set(NOT_SENT)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"type": "NoSuchThing"}, "unknown request type 'NoSuchThing'"),
        ({"key": "k"}, "unknown request type None"),
        ("not a map", "must be a mapping"),
        ({"type": "GetVariable"}, "missing required field(s) key"),
        ({"type": "GetVariable", "key": "k", "extra": 1}, "unknown field 'extra'"),
        (
            {"type": "SucceedTask", "end_date": datetime(2026, 1, 1)},
            "end_date must be a timezone-aware datetime",
        ),
        (
            {"type": "SetXCom", "key": "k", "dag_id": "d", "run_id": "r", "task_id": "t", "value": b"bytes"},
            "value must be JSON",
        ),
        (
            {
                "type": "SetXCom",
                "key": "k",
                "dag_id": "d",
                "run_id": "r",
                "task_id": "t",
                "value": float("nan"),
            },
            "value must be JSON",
        ),
        ({"type": "TaskState", "state": "success"}, "state must be one of ['failed', 'removed', 'skipped']"),
        ({"type": "GetPrevSuccessfulDagRun", "ti_id": "not-a-uuid"}, "ti_id must be a UUID string"),
    ],
)
def test_invalid_bodies_are_refused_before_sending(body, error):
    with pytest.raises(InvalidRequest) as excinfo:
        messages.validate_request(body)
    assert error in str(excinfo.value)


def test_peer_would_have_dropped_what_we_refuse():
    """The refusals above are real: the supervisor's union rejects them too (and would not answer)."""
    from pydantic import ValidationError

    for body in (
        {"type": "SucceedTask", "end_date": datetime(2026, 1, 1), "extra_key": 1},
        {"type": "SucceedTask", "end_date": "2026-01-01T00:00:00"},
        {"type": "SetXCom", "key": "k", "dag_id": "d", "run_id": "r", "task_id": "t", "value": b"x"},
    ):
        with pytest.raises(ValidationError):
            TypeAdapter(peer_union(body["type"])).validate_python(body)


def test_access_levels_compose_per_mode():
    write = {"type": "SetXCom", "key": "k", "dag_id": "d", "run_id": "r", "task_id": "t", "value": 1}
    with pytest.raises(RequestNotAllowed, match="SetXCom is a write request"):
        messages.validate_request(write, messages.DAG_PARSING_ACCESS)
    messages.validate_request(write, messages.TASK_ACCESS)
    # The 1.3.2 DAG processor answers PutVariable (ToManager), so a parse may send it.
    put = {"type": "PutVariable", "key": "k", "value": "v", "description": None}
    messages.validate_request(put, messages.DAG_PARSING_ACCESS)
    messages.validate_request({"type": "GetVariable", "key": "k"}, messages.DAG_PARSING_ACCESS)
    messages.validate_request({"type": "MaskSecret", "value": "s"}, messages.DAG_PARSING_ACCESS)
    with pytest.raises(RequestNotAllowed):
        messages.validate_request({"type": "TaskState", "state": "failed"}, messages.DAG_PARSING_ACCESS)
    with pytest.raises(RequestNotAllowed):
        messages.validate_request({"type": "DagFileParsingResult", "fileloc": "f", "serialized_dags": []})
