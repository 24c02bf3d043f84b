"""What ``bundle-run`` prints when the run is over (stdout), and its JSON twin (``--json-report``).

Order: each try's task log (as the supervisor stored it), the run's XComs, any problems, and last
the summary table - the thing to look at, so it ends the output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from .mapping import instance_name
from .progress import format_duration, paint
from .runtypes import RunResult, TryRecord
from .store import Store
from .tasklog import format_log, parse_log

XCOM_WIDTH = 400


def task_rows(result: RunResult, store: Store) -> list[dict[str, Any]]:
    """One row per task: final state, tries used/allowed, duration of the last try, notes."""
    rows = []
    tries_of: dict[tuple[str, int], list[TryRecord]] = {}
    for record in result.tries:
        tries_of.setdefault((record.task_id, record.map_index), []).append(record)
    for task_id, ti in _instances(result, store):
        map_index = ti.get("map_index", -1)
        tries = tries_of.get((task_id, map_index), [])
        notes = [
            f"try {t.try_number}: {t.state}" + (f" ({_first_line(t.note)})" if t.note else "")
            for t in tries[:-1]
        ]
        if ti.get("note") and ti.get("state") != "success":
            notes.append(_first_line(ti["note"]))
        rows.append(
            {
                "task_id": task_id,
                # a mapped task's instances: task[i], with the rendered map_index_template
                "name": instance_name(task_id, map_index),
                "map_index": map_index,
                "rendered_map_index": store.label(result.dag_id, result.run_id, task_id, map_index),
                "state": ti.get("state"),
                # The try number, as Airflow shows it: a reschedule reruns the same try.
                "tries": ti.get("try_number") or len(tries),
                "max_tries": (ti.get("max_tries") or 0) + 1,
                "duration": tries[-1].duration if tries else None,
                "note": "; ".join(notes),
            }
        )
    return rows


def _instances(result: RunResult, store: Store) -> list[tuple[str, dict[str, Any]]]:
    """Each selected task's instances by map index (one for a task that is not mapped)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in sorted(store.task_instances(result.dag_id, result.run_id), key=lambda ti: ti["map_index"]):
        by_task.setdefault(ti["task_id"], []).append(ti)
    out: list[tuple[str, dict[str, Any]]] = []
    for task_id in result.task_ids:
        out.extend((task_id, ti) for ti in by_task.get(task_id) or [{}])
    return out


def write_report(
    out: TextIO,
    result: RunResult,
    store: Store,
    *,
    target: str,
    problems: Iterable[str] = (),
    show_logs: bool = True,
    color: bool = False,
    exit_code: int = 0,
) -> None:
    """The human-readable report."""
    w = out.write
    if show_logs:
        w(_heading("Task logs", color))
        for record in result.tries:
            w(
                paint(
                    f"--- {_try_name(record)} · try {record.try_number} · {record.state}", record.state, color
                )
                + "\n"
            )
            lines = format_log(record.log)
            if record.exception:
                lines.append(f"(bundle-run) {record.exception}")
            if not lines:
                lines = ["(no log records)"]
            w("".join(f"  {line}\n" for line in lines))
        w("\n")

    w(_heading("XComs", color))
    xcoms = store.run_xcoms(result.dag_id, result.run_id)
    order = {t: i for i, t in enumerate(result.task_ids)}
    xcoms.sort(key=lambda x: (order.get(x["task_id"], len(order)), x["map_index"], x["key"]))
    if not xcoms:
        w("  (none)\n")
    for xcom in xcoms:
        where = xcom["task_id"] + (f"[{xcom['map_index']}]" if xcom["map_index"] >= 0 else "")
        w(f"  {where} {xcom['key']} = {_clip(json.dumps(xcom['value'], default=str))}\n")
    w("\n")

    problem_lines = list(problems)
    for record in result.tries:
        for err in record.supervisor_errors:
            problem_lines.append(
                f"supervisor ({record.task_id} try {record.try_number}) logged {err.get('level')}: {err.get('event')}"
            )
    if problem_lines:
        w(_heading("Problems", color))
        w("".join(f"  {line}\n" for line in problem_lines))
        w("\n")

    if result.triggered:  # runs its tasks triggered of DAGs of the bundle, run here too
        w(_heading("Triggered DAG runs", color))
        for child in result.triggered:
            tasks = ", ".join(
                f"{r['name']} {r['state']} ({r['tries']}/{r['max_tries']})" for r in task_rows(child, store)
            )
            w(
                "  "
                + paint(f"{child.dag_id} {child.run_id}: {child.state}", child.state, color)
                + f" · {tasks}\n"
            )
        w("\n")

    w(_heading("Summary", color))
    w(f"  bundle {target}\n  dag    {result.dag_id}\n  run    {result.run_id}\n\n")
    rows = task_rows(result, store)
    headers = ("TASK", "STATE", "TRIES", "DURATION", "NOTES")
    cells = [
        (
            r["name"] + (f" ({r['rendered_map_index']})" if r["rendered_map_index"] else ""),
            str(r["state"]),
            f"{r['tries']}/{r['max_tries']}",
            format_duration(r["duration"]),
            r["note"],
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers[:-1])]
    w("  " + "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers[:-1])) + "  " + headers[-1] + "\n")
    for cell, row in zip(cells, rows, strict=True):
        text = "  ".join(c.ljust(widths[i]) for i, c in enumerate(cell[:-1])) + "  " + cell[-1]
        w("  " + paint(text.rstrip(), str(row["state"]), color) + "\n")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"] or "not run"] = counts.get(r["state"] or "not run", 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    events = store.asset_events(run=(result.dag_id, result.run_id))
    if events:
        w("\n  Asset events:\n")
        for event in events:
            w(
                f"  {event['source_task_id']} -> {_asset_label(event)} extra {_clip(json.dumps(event['extra']))}\n"
            )
    verdict = "interrupted" if result.interrupted else result.state
    w(f"\n  DAG run {verdict}: {tally} (exit status {exit_code})\n")


def json_report(
    result: RunResult, store: Store, *, target: str, problems: Iterable[str], exit_code: int
) -> dict[str, Any]:
    """Everything in the text report, machine-readable (used by ``--json-report`` and the tests)."""
    rows = task_rows(result, store)
    return {
        "bundle": target,
        "dag_id": result.dag_id,
        "run_id": result.run_id,
        "state": result.state,
        "interrupted": result.interrupted,
        "exit_code": exit_code,
        "tasks": {
            r["name"]: {
                **r,
                "tries_detail": [
                    _try_json(t)
                    for t in result.tries
                    if t.task_id == r["task_id"] and t.map_index == r["map_index"]
                ],
            }
            for r in rows
        },
        "xcoms": [
            {"task_id": x["task_id"], "map_index": x["map_index"], "key": x["key"], "value": x["value"]}
            for x in store.run_xcoms(result.dag_id, result.run_id)
        ],
        "asset_events": [
            {k: e[k] for k in ("source_task_id", "source_map_index", "name", "uri", "extra", "partition_key")}
            for e in store.asset_events(run=(result.dag_id, result.run_id))
        ],
        "problems": list(problems),
        "triggered_runs": [
            json_report(child, store, target=target, problems=(), exit_code=exit_code)
            for child in result.triggered
        ],
    }


def _try_json(record: TryRecord) -> dict[str, Any]:
    return {
        "try_number": record.try_number,
        "state": record.state,
        "duration": record.duration,
        "ti_duration": record.ti_duration,
        "note": record.note,
        "exception": record.exception,
        "log": parse_log(record.log),
        "supervisor_errors": record.supervisor_errors,
    }


def _try_name(record: TryRecord) -> str:
    name = instance_name(record.task_id, record.map_index)
    return f"{name} ({record.label})" if record.label else name


def _asset_label(event: dict[str, Any]) -> str:
    label = event["name"] if event["name"] == event["uri"] else f"{event['name']} ({event['uri']})"
    return label + (f" [partition {event['partition_key']}]" if event["partition_key"] else "")


def _heading(text: str, color: bool) -> str:
    return (f"\x1b[1m== {text}\x1b[0m" if color else f"== {text}") + "\n"


def _clip(text: str) -> str:
    return text if len(text) <= XCOM_WIDTH else text[: XCOM_WIDTH - 1] + "…"


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
