"""Log records → Airflow task-log JSON, and the level policy, for any record user code can produce."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from bundle.core.log_records import LevelPolicy, encode_event, level_name, parse_level, record_to_event
from bundle.core.masking import SecretsMasker, masker


def make_record(
    msg="hello %s", args=("world",), levelno=logging.INFO, name="my.logger", exc_info=None, **extra
):
    record = logging.LogRecord(name, levelno, __file__, 10, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def roundtrip(record) -> dict:
    line = encode_event(record_to_event(record))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    value = json.loads(line)
    assert isinstance(value, dict)
    assert isinstance(value["level"], str) and isinstance(value["timestamp"], str)
    assert "msg" not in value and "target" not in value
    return value


def test_basic_shape():
    value = roundtrip(make_record())
    assert value["event"] == "hello world" and value["level"] == "info" and value["logger"] == "my.logger"
    assert value["timestamp"].endswith("Z") and "T" in value["timestamp"]


@pytest.mark.parametrize(
    ("levelno", "name"),
    [
        (5, "debug"),
        (10, "debug"),
        (15, "debug"),
        (20, "info"),
        (25, "info"),
        (30, "warning"),
        (40, "error"),
        (45, "error"),
        (50, "critical"),
        (99, "critical"),
    ],
)
def test_level_names_are_lowercase_structlog_names(levelno, name):
    assert level_name(levelno) == name


def test_reserved_and_colliding_extras_are_renamed():
    value = roundtrip(
        make_record(target="t", event="e", level=3, timestamp=12, logger="l", exception="x", rows=2)
    )
    assert value["extra_target"] == "t" and value["extra_event"] == "e" and value["extra_level"] == 3
    assert value["extra_timestamp"] == 12 and value["extra_logger"] == "l" and value["extra_exception"] == "x"
    assert value["rows"] == 2 and value["event"] == "hello world" and value["level"] == "info"


def test_unserialisable_and_nonfinite_values_become_strings():
    class Weird:
        def __repr__(self):
            raise RuntimeError("no repr")

    value = roundtrip(
        make_record(obj=object(), nan=float("nan"), weird=Weird(), data=b"\xff", nested={1: [set()]})
    )
    assert value["nan"] == "nan" and value["weird"] == "<unrepresentable Weird>"
    assert value["data"] == "b'\\xff'" and value["nested"] == {"1": ["set()"]}


def test_bad_format_args_do_not_lose_the_record():
    value = roundtrip(make_record(msg="%d items", args=("many",)))
    assert "formatting failed" in value["event"] and "many" in value["event"]


def test_huge_messages_are_truncated_and_surrogates_replaced():
    value = roundtrip(make_record(msg="x" * 200_000, args=()))
    assert len(value["event"]) < 70_000 and "truncated" in value["event"]
    assert roundtrip(make_record(msg="bad \udcff", args=()))["event"] == "bad ?"


def test_exception_chain_with_cycle_is_bounded():
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            outer = RuntimeError("outer")
            inner.__context__ = outer  # a cycle: outer -> inner -> outer
            raise outer from inner
    except RuntimeError:
        record = make_record(exc_info=sys.exc_info())
    stacks = roundtrip(record)["exception"]
    assert [s["exc_type"] for s in stacks] == ["RuntimeError", "ValueError"]
    assert stacks[1]["is_cause"] is True and stacks[0]["frames"]


def test_masking_applies_to_event_and_extras():
    masker.add("sup3r-secret")
    try:
        value = roundtrip(make_record(args=("sup3r-secret",), detail={"k": ["sup3r-secret!"]}))
        assert value["event"] == "hello ***" and value["detail"] == {"k": ["***!"]}
    finally:
        masker.clear()


def test_masker_ignores_tiny_values_and_prefers_longest():
    m = SecretsMasker()
    m.add(["ab", "abc", "abcdef"])
    assert m.redact("ab abc abcdef") == "ab *** ***"


@pytest.mark.parametrize(
    ("env", "checks"),
    [
        ({}, {"any": logging.INFO}),
        ({"AIRFLOW__LOGGING__LOGGING_LEVEL": "warning"}, {"any": logging.WARNING}),
        ({"AIRFLOW__LOGGING__LOGGING_LEVEL": "bogus"}, {"any": logging.INFO}),
        (
            {
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "a=DEBUG, a.b=ERROR a.b.c=warn junk =x y=nope",
            },
            {
                "a": logging.DEBUG,
                "a.x": logging.DEBUG,
                "a.b": logging.ERROR,
                "a.b.d": logging.ERROR,
                "a.b.c.d": logging.WARNING,
                "ab": logging.INFO,
                "y": logging.INFO,
            },
        ),
    ],
)
def test_level_policy_longest_dotted_prefix_wins(env, checks):
    policy = LevelPolicy.from_env(env)
    for name, level in checks.items():
        assert policy.threshold(name) == level, name


def test_parse_level_accepts_go_spellings():
    assert [parse_level(x) for x in ("debug", "WARN", "Fatal", "critical", "notset", "")] == [
        logging.DEBUG,
        logging.WARNING,
        logging.CRITICAL,
        logging.CRITICAL,
        logging.DEBUG,
        None,
    ]
