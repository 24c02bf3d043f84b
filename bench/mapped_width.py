"""Figure 10: a 1,000-wide dynamic task mapping: map index 0 vs 999 must cost the same.

Each task instance finds its own element from the DAG definition (``bundle.core.mapped``), so its
start-up and element lookup must not grow with the width or the index. The same task process of
``bench/mapped_bundle.py`` runs as map index 0 and 999 (interleaved) against the stub supervisor,
which answers the XCom requests for an upstream of 1,000 values, for two shapes: mapping over an
unmapped upstream's list (one ``GetXCom`` of the whole list) and over a mapped upstream's 1,000
results (one ``GetXComCount`` and one ``GetXComSequenceItem``). A third subject is the reduce of the
1,000 results (one ``GetXComSequenceSlice``). Per subject: the whole process (exec to exit), start-up
(exec to the first request's arrival) and the element lookup (first lookup request's arrival to the
next request's, i.e. the lookups' round trips and the indexing), and the requests the stub saw. The
figure fails unless every instance made exactly the expected requests (index 999 the same as 0);
there is no time threshold: the whole process is ~60 ms of start-up on an idle machine and the
lookup one or two round trips, and on a shared VM the noise is larger than either difference.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .figures import Row
from .measure import PYTHON, Sample, alternate, subject_env
from .stub_supervisor import StubSupervisor, startup_details

MAPPED_BUNDLE = Path(__file__).with_name("mapped_bundle.py")
COMMAND = [PYTHON, "-m", "bundle", "--bundle", str(MAPPED_BUNDLE)]
FIGURE = "10 mapped 1,000-wide"
WIDTH = 1000
VALUES = list(range(WIDTH))
LOOKUPS = {"GetXCom", "GetXComCount", "GetXComSequenceItem", "GetXComSequenceSlice"}
EXPECTED = {
    "wide": {"GetXCom": 1, "SetRenderedMapIndex": 1, "SetXCom": 1, "SucceedTask": 1},
    "over_mapped": {"GetXComCount": 1, "GetXComSequenceItem": 1, "SetXCom": 1, "SucceedTask": 1},
    "reduce": {"GetXComSequenceSlice": 1, "SetXCom": 1, "SucceedTask": 1},
}


def _answer(body: dict[str, Any]) -> Any:
    """What the supervisor answers for an upstream of 1,000 values (``VALUES``)."""
    kind = body.get("type")
    if kind == "GetXCom":
        return {"key": body["key"], "value": VALUES, "type": "XComResult"}
    if kind == "GetXComCount":
        return {"len": WIDTH, "type": "XComCountResponse"}
    if kind == "GetXComSequenceItem":
        return {"root": VALUES[body["offset"]], "type": "XComSequenceIndexResult"}
    if kind == "GetXComSequenceSlice":
        return {
            "root": VALUES[body["start"] : body["stop"] : body["step"]],
            "type": "XComSequenceSliceResult",
        }
    return NotImplemented


@dataclass
class _MappedSample(Sample):
    startup: float = 0.0
    lookup: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)


def _run(task_id: str, map_index: int) -> _MappedSample:
    details = startup_details(dag_id="bench_mapped_dag", task_id=task_id)
    details["ti"]["map_index"] = map_index
    stub = StubSupervisor(details, answer=_answer).start()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*COMMAND, *stub.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subject_env()
    )
    proc.wait()
    ended = time.monotonic()
    stub.join()
    where = f"{task_id} map index {map_index}"
    if proc.returncode != 0 or stub.error or stub.request_types != EXPECTED[task_id]:
        raise RuntimeError(
            f"{where}: exit {proc.returncode}, stub error {stub.error!r}, requests {stub.request_types} "
            f"(expected {EXPECTED[task_id]})"
        )
    kinds = [kind for kind, _ in stub.arrivals]
    first = next(i for i, kind in enumerate(kinds) if kind in LOOKUPS)
    after = next(i for i in range(first, len(kinds)) if kinds[i] not in LOOKUPS)
    return _MappedSample(
        ended - started,
        startup=stub.arrivals[0][1] - started,
        lookup=stub.arrivals[after][1] - stub.arrivals[first][1],
        requests=dict(stub.request_types),
    )


def mapped_width(runs: int) -> list[Row]:
    """Rows for ``wide`` and ``over_mapped`` at map index 999 beside 0, and the reduce."""
    subjects = {
        f"{task_id} map index {index}": (lambda t=task_id, i=index: _run(t, i))
        for task_id in ("wide", "over_mapped")
        for index in (0, WIDTH - 1)
    }
    subjects["reduce of 1,000 results"] = lambda: _run("reduce", -1)
    series = alternate(runs, subjects)
    rows = []
    for task_id in ("wide", "over_mapped"):
        first, last = series[f"{task_id} map index 0"], series[f"{task_id} map index {WIDTH - 1}"]
        if first.samples[-1].requests != last.samples[-1].requests:  # type: ignore[attr-defined]
            raise RuntimeError(f"{task_id}: map index {WIDTH - 1} made other requests than map index 0")
        for s in (first, last):
            rows.append(_row(s, first))
    rows.append(_row(series["reduce of 1,000 results"], None))
    return rows


def _row(s: Any, baseline: Any) -> Row:
    extra = {
        "requests": s.samples[-1].requests,
        "startup_ms": round(statistics.median(x.startup for x in s.samples) * 1000, 2),
        "lookup_us": round(statistics.median(x.lookup for x in s.samples) * 1e6, 1),
    }
    if baseline is None or baseline is s:
        return Row(FIGURE, s.name, s.median * 1000, "ms", extra=extra)
    base_lookup = statistics.median(x.lookup for x in baseline.samples)
    extra["lookup_ratio"] = round(statistics.median(x.lookup for x in s.samples) / base_lookup, 2)
    return Row(
        FIGURE,
        s.name,
        s.median * 1000,
        "ms",
        baseline.name,
        baseline.median * 1000,
        s.median / baseline.median,
        None,  # no time threshold: under load the noise is larger than one round trip (see docs)
        extra,
    )
