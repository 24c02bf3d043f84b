"""Whatever a task logs, the line we emit is accepted by the released supervisor's log reader.

Records are generated with hypothesis (any extra keys — ``msg``, ``target``, ``level``, ``event``
included —, non-serialisable values, huge and invalid-UTF-8 messages, exceptions with cyclic causes),
turned into lines by the same code the log channel uses, and fed to the peer's own reader in a
separate process. A crash there would take down a real supervisor.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle.core.log_records import encode_event, record_to_event
from bundle.core.masking import masker

from .conftest import ROOT

RESERVED = [
    "msg",
    "target",
    "level",
    "event",
    "timestamp",
    "logger",
    "exception",
    "error_detail",
    "exc_info",
    "positional_args",
    "args",
    "name",
    "_record",
]
keys = st.sampled_from(RESERVED) | st.text(min_size=1, max_size=12)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=8)
    | st.builds(object)
    | st.datetimes()
    | st.sampled_from([float("nan"), float("inf"), 10**40])
)
values = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)
messages = st.text() | st.sampled_from(["x" * 100_000, "bad \udcff surrogate", "%s %d", "", "\x00\x1b[31m"])
levels = st.sampled_from([0, 1, 5, 10, 15, 20, 25, 30, 40, 50, 60])


@st.composite
def records(draw) -> logging.LogRecord:
    record = logging.LogRecord(
        draw(st.text(max_size=20)),
        draw(levels),
        "f.py",
        1,
        draw(messages),
        draw(st.sampled_from([(), ("a",), (1, 2)])),
        None,
    )
    for key, value in draw(st.dictionaries(keys, values, max_size=4)).items():
        if key not in ("args", "name", "msg", "exc_info"):
            record.__dict__[key] = value
    if draw(st.booleans()):
        record.exc_info = _cyclic_exception_info(draw(st.text(max_size=30)))
    return record


def _cyclic_exception_info(text: str):
    try:
        first, second = ValueError(text), KeyError(text)
        first.__context__, second.__context__ = second, first
        raise first
    except ValueError:
        return sys.exc_info()


def generated_lines(count: int) -> list[bytes]:
    """``count`` hypothesis-generated records, as the lines the log channel would send."""
    lines: list[bytes] = []

    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(records())
    def collect(record: logging.LogRecord) -> None:
        lines.append(encode_event(record_to_event(record)))

    masker.add("s3cr3t-value")
    try:
        collect()
    finally:
        masker.clear()
    return lines


def test_every_line_is_accepted_by_the_supervisors_reader(tmp_path):
    lines = generated_lines(600)
    assert len(lines) >= 500 and all(line.count(b"\n") == 1 for line in lines)
    (tmp_path / "lines").write_bytes(b"".join(lines))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.peers.supervisor_log_reader",
            str(tmp_path / "lines"),
            str(tmp_path / "task.log"),
            str(tmp_path / "result.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["crashes"] == []
    written = (tmp_path / "task.log").read_bytes().splitlines()
    assert len(written) == len(lines)  # nothing silently dropped: every level we emit is one the peer knows
