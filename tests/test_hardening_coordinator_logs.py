"""Hardening of the log channel, beyond tests/test_log_channel_safety.py.

* Extra-field NAMES taken from the released peer's own logging code (every identifier in
  structlog, ``airflow.sdk.log`` and the supervisor module): a field named like a parameter of a
  function the supervisor calls with ``**event`` crashes it (``self`` and ``method_name`` did).
  The list is read from the installed peer at test time, so an upgrade is covered automatically.
* Hostile records (objects whose ``__str__``/``__repr__`` raise, odd ``__notes__``, self-containing
  values, unformattable messages): the handler never raises into the task and never drops a
  record silently; every line it emits is accepted by the peer's reader.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle.coordinator.logs import LogChannel
from bundle.core.log_records import LevelPolicy, encode_event, record_to_event

from .conftest import ROOT


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory removed after the test (pytest's ``tmp_path`` keeps old runs)."""
    with tempfile.TemporaryDirectory(prefix="pybundle-hardening-logs-") as directory:
        yield Path(directory)


def peer_identifiers() -> list[str]:
    """Every identifier in the peer's logging path, from the installed sources."""
    import airflow.sdk.execution_time.supervisor as supervisor
    import airflow.sdk.log as sdk_log
    import structlog

    files = [Path(supervisor.__file__), Path(sdk_log.__file__)]
    files += Path(structlog.__file__).parent.rglob("*.py")
    names: set[str] = set()
    for path in files:
        names.update(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", path.read_text(encoding="utf-8")))
    return sorted(names)


def run_peer_reader(lines: list[bytes], scratch: Path) -> tuple[dict[str, Any], list[bytes]]:
    (scratch / "lines").write_bytes(b"".join(lines))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.peers.supervisor_log_reader",
            str(scratch / "lines"),
            str(scratch / "task.log"),
            str(scratch / "result.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "AIRFLOW_HOME": str(scratch / "airflow_home")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((scratch / "result.json").read_text())
    return result, (scratch / "task.log").read_bytes().splitlines()


def make_record(msg: Any = "m", args: Any = (), **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("hostile.logger", logging.INFO, "f.py", 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_extra_fields_named_like_anything_in_the_peers_logging_code_never_crash_it(scratch):
    names = peer_identifiers()
    assert len(names) > 1000 and {"self", "method_name"} <= set(names)
    # What ``extra=`` can set: ``Logger.makeRecord`` refuses the record's own attributes.
    settable = [n for n in names if n not in vars(make_record()) and n not in ("message", "asctime")]
    logger = logging.getLogger("hardening.extras")
    lines = []
    for name in settable:
        for value in ("s", 1, None, [1], {"k": "v"}):
            record = logger.makeRecord(
                logger.name, logging.INFO, "f.py", 1, "field %s", (name,), None, extra={name: value}
            )
            lines.append(encode_event(record_to_event(record)))
    result, written = run_peer_reader(lines, scratch)
    assert result["crashes"] == [], result["crashes"][:5]
    assert len(written) == len(lines)


class _Raises:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def _self_containing() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _odd_exception(kind: str) -> BaseException:
    exc: BaseException
    if kind == "notes-int":
        exc = ValueError("v")
        exc.__notes__ = 5  # type: ignore[attr-defined]
    elif kind == "notes-raising":
        exc = ValueError("v")
        exc.__notes__ = [_Raises()]  # type: ignore[attr-defined]
    elif kind == "str-raising":

        class Bad(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no str")

        exc = Bad()
    else:
        exc = KeyError(_self_containing())
    try:
        raise exc
    except BaseException as caught:
        return caught


hostile_values = st.sampled_from(
    [_Raises(), _self_containing(), {"a": _self_containing()}, {_Raises(): 1}, float("nan"), b"\xff\xfe"]
)
hostile_messages = st.sampled_from([_Raises(), "%s %s", "%d", _self_containing(), "\udcff"])
hostile_exceptions = st.none() | st.sampled_from(["notes-int", "notes-raising", "str-raising", "self-key"])


@st.composite
def hostile_records(draw: st.DrawFn) -> logging.LogRecord:
    extra = draw(st.dictionaries(st.sampled_from(["self", "method_name", "value", "target"]), hostile_values))
    record = make_record(draw(hostile_messages), draw(st.sampled_from([(), ("a",), (_Raises(),)])))
    record.__dict__.update(extra)
    kind = draw(hostile_exceptions)
    if kind is not None:
        exc = _odd_exception(kind)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return record


def test_hostile_records_are_never_dropped_and_every_line_is_accepted(scratch):
    channel = LogChannel(LevelPolicy(logging.DEBUG))
    emitted: list[bytes] = []

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(hostile_records())
    def feed(record: logging.LogRecord) -> None:
        before = len(channel.pipe._lines)
        channel.emit(record)  # must not raise
        assert len(channel.pipe._lines) == before + 1, "the record was dropped"
        emitted.append(channel.pipe._lines[-1])

    feed()
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in emitted)
    result, written = run_peer_reader(emitted, scratch)
    assert result["crashes"] == [], result["crashes"][:5]
    assert len(written) == len(emitted)


def test_secrets_occurring_in_the_timestamp_or_level_name_never_break_a_line(scratch):
    """A registered secret that happens to occur in the timestamp ("2026", a run of digits) or in a
    level name ("nfo", "err") used to be masked there too: the supervisor then failed to parse the
    timestamp (a crash) or dropped the record (unknown level)."""
    from datetime import datetime, timezone

    from bundle.core.masking import masker

    now = datetime.now(timezone.utc)
    secrets = [
        str(now.year),
        now.strftime("%m-%d"),
        now.strftime("%H:%M"),
        "nfo",
        "err",
        "arn",
        "ebu",
        "ical",
    ]
    lines = []
    masker.clear()
    try:
        for secret in secrets:
            masker.add(secret)
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
            record = logging.LogRecord("t", level, "f.py", 1, "uses %s", (secrets[0],), None)
            event = record_to_event(record)
            assert event["event"] == "uses ***" and "***" not in event["timestamp"] + event["level"]
            lines.append(encode_event(event))
    finally:
        masker.clear()
    result, written = run_peer_reader(lines, scratch)
    assert result["crashes"] == [] and len(written) == len(lines)
