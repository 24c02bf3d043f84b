"""The local run's state in SQLite: what an Airflow metadata database would hold, minus the rest.

Variables, connections, DAG runs, task instances (with the history of earlier tries), XComs,
task logs and the task/asset state stores. In memory by default; with ``--state FILE`` a file, so
a second run sees the variables the first one wrote, its XComs and its run history (what
``get_dr_count``, ``get_previous_dag_run`` or ``get_xcom(run_id=...)`` read).

Only the parent process touches the database (the worker reaches it through the embedded
Execution API), so there is one connection and no locking to think about. Timestamps are stored
as fixed-width UTC ISO 8601 strings, which sort like the instants they denote.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, overload

from .errors import UsageError

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS variables (key TEXT PRIMARY KEY, value TEXT, description TEXT);
CREATE TABLE IF NOT EXISTS connections (
    conn_id TEXT PRIMARY KEY, conn_type TEXT, host TEXT, schema TEXT, login TEXT, password TEXT,
    port INTEGER, extra TEXT, description TEXT);
CREATE TABLE IF NOT EXISTS dag_runs (
    dag_id TEXT, run_id TEXT, logical_date TEXT, data_interval_start TEXT, data_interval_end TEXT,
    run_after TEXT, start_date TEXT, end_date TEXT, run_type TEXT, state TEXT, conf TEXT,
    clear_number INTEGER DEFAULT 0, note TEXT, PRIMARY KEY (dag_id, run_id));
CREATE TABLE IF NOT EXISTS task_instances (
    id TEXT PRIMARY KEY, dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, try_number INTEGER,
    max_tries INTEGER, state TEXT, queue TEXT, hostname TEXT, unixname TEXT, pid INTEGER,
    start_date TEXT, end_date TEXT, duration REAL, last_heartbeat TEXT, retry_delay_override REAL,
    next_retry_at REAL, note TEXT, UNIQUE (dag_id, run_id, task_id, map_index));
CREATE TABLE IF NOT EXISTS ti_history (
    id TEXT PRIMARY KEY, dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, try_number INTEGER,
    state TEXT, start_date TEXT, end_date TEXT, duration REAL, note TEXT);
CREATE TABLE IF NOT EXISTS task_logs (
    dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, try_number INTEGER, content TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number));
CREATE TABLE IF NOT EXISTS xcoms (
    dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, key TEXT, value TEXT, timestamp TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, key, map_index));
CREATE TABLE IF NOT EXISTS rendered_fields (ti_id TEXT PRIMARY KEY, fields TEXT);
CREATE TABLE IF NOT EXISTS task_map (
    dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, length INTEGER,
    PRIMARY KEY (dag_id, run_id, task_id, map_index));
CREATE TABLE IF NOT EXISTS ti_labels (
    dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, label TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index));
CREATE TABLE IF NOT EXISTS task_reschedules (
    ti_id TEXT, seq INTEGER, start_date TEXT, end_date TEXT, reschedule_date TEXT,
    PRIMARY KEY (ti_id, seq));
CREATE TABLE IF NOT EXISTS task_state_store (
    dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, key TEXT, value TEXT, expires_at TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, key));
CREATE TABLE IF NOT EXISTS asset_state_store (
    kind TEXT, ident TEXT, key TEXT, value TEXT, PRIMARY KEY (kind, ident, key));
CREATE TABLE IF NOT EXISTS asset_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, uri TEXT, extra TEXT, source_dag_id TEXT,
    source_run_id TEXT, source_task_id TEXT, source_map_index INTEGER, partition_key TEXT, timestamp TEXT);
"""
TI_COLUMNS = (
    "id dag_id run_id task_id map_index try_number max_tries state queue hostname unixname pid "
    "start_date end_date duration last_heartbeat retry_delay_override next_retry_at note"
).split()
DAG_RUN_COLUMNS = (
    "dag_id run_id logical_date data_interval_start data_interval_end run_after start_date end_date "
    "run_type state conf clear_number note"
).split()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """Fixed-width UTC ISO 8601 (``…T…[.ffffff]+00:00``), so stored strings sort chronologically."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_iso(value: str | None) -> datetime | None:
    """Parse an ISO 8601 timestamp from the wire or the database ('Z' accepted); naive means UTC."""
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class Store:
    """All reads and writes of the local metadata database."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        target = ":memory:" if self.path is None else str(self.path)
        try:
            self.db = sqlite3.connect(target, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            if self.path is not None:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"--state {path}: not a bundle-run state database ({exc})") from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif row["value"] != SCHEMA_VERSION:
            raise UsageError(
                f"--state {path} was written by a different bundle-run (state schema {row['value']}, "
                f"this one uses {SCHEMA_VERSION}); use another file"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (each statement commits on its own otherwise): creating a
        run's 10,000 task instances one commit each takes seconds on a ``--state`` file."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        """Close the database (a ``--state`` file is complete on disk after every write)."""
        self.db.close()

    # -- variables -----------------------------------------------------------------------------------
    def get_variable(self, key: str) -> tuple[bool, str | None]:
        """``(found, value)``: a variable may exist with the value None."""
        row = self.db.execute("SELECT value FROM variables WHERE key = ?", (key,)).fetchone()
        return (False, None) if row is None else (True, row["value"])

    def set_variable(self, key: str, value: str | None, description: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO variables VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "value = excluded.value, description = excluded.description",
            (key, value, description),
        )

    def delete_variable(self, key: str) -> None:
        self.db.execute("DELETE FROM variables WHERE key = ?", (key,))

    def variable_keys(self, prefix: str | None = None) -> list[str]:
        rows = self.db.execute("SELECT key FROM variables ORDER BY key").fetchall()
        return [r["key"] for r in rows if prefix is None or r["key"].startswith(prefix)]

    # -- connections ---------------------------------------------------------------------------------
    def get_connection(self, conn_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM connections WHERE conn_id = ?", (conn_id,)).fetchone()
        return None if row is None else dict(row)

    def put_connection(self, fields: dict[str, Any]) -> None:
        columns = (
            "conn_id",
            "conn_type",
            "host",
            "schema",
            "login",
            "password",
            "port",
            "extra",
            "description",
        )
        self.db.execute(
            f"INSERT OR REPLACE INTO connections ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            tuple(fields.get(c) for c in columns),
        )

    # -- dag runs ------------------------------------------------------------------------------------
    def create_dag_run(self, **fields: Any) -> dict[str, Any]:
        fields = {"clear_number": 0, "state": "queued", "run_type": "manual", **fields}
        fields["conf"] = json.dumps(fields.get("conf") or {})
        columns = [c for c in DAG_RUN_COLUMNS if c in fields]
        self.db.execute(
            f"INSERT INTO dag_runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            tuple(fields[c] for c in columns),
        )
        return self.get_dag_run(fields["dag_id"], fields["run_id"]) or {}

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM dag_runs WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
        ).fetchone()
        return None if row is None else _dag_run(row)

    def update_dag_run(self, dag_id: str, run_id: str, **fields: Any) -> None:
        if "conf" in fields:
            fields["conf"] = json.dumps(fields["conf"] or {})
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(
            f"UPDATE dag_runs SET {assignments} WHERE dag_id = ? AND run_id = ?",
            (*fields.values(), dag_id, run_id),
        )

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM dag_runs WHERE dag_id = ? ORDER BY run_after, run_id", (dag_id,)
        ).fetchall()
        return [_dag_run(r) for r in rows]

    # -- task instances ------------------------------------------------------------------------------
    def create_task_instance(self, **fields: Any) -> dict[str, Any]:
        """A new task instance (try 0, not yet run) with a fresh id unless one is given."""
        fields = {"id": str(uuid.uuid4()), "map_index": -1, "try_number": 0, "max_tries": 0, **fields}
        columns = [c for c in TI_COLUMNS if c in fields]
        self.db.execute(
            f"INSERT INTO task_instances ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            tuple(fields[c] for c in columns),
        )
        return self.ti_by_id(fields["id"]) or {}

    def ti_by_id(self, ti_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM task_instances WHERE id = ?", (ti_id,)).fetchone()
        return None if row is None else dict(row)

    def ti(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        """The current try of a task in a run (earlier tries are in :meth:`history`)."""
        row = self.db.execute(
            "SELECT * FROM task_instances WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
            (dag_id, run_id, task_id, map_index),
        ).fetchone()
        return None if row is None else dict(row)

    def update_ti(self, ti_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE task_instances SET {assignments} WHERE id = ?", (*fields.values(), ti_id))

    def start_next_try(self, ti_id: str) -> dict[str, Any]:
        """Archive the current try in the history and give the task instance a new id and try number.

        Airflow does the same when a task is retried: the finished try moves to the history table
        and the next try gets a fresh task-instance id (the id the supervisor runs with).
        """
        ti = self.ti_by_id(ti_id)
        if ti is None:
            raise KeyError(ti_id)
        if ti["try_number"] > 0:
            history: tuple[str, ...] = (
                "id",
                "dag_id",
                "run_id",
                "task_id",
                "map_index",
                "try_number",
                "state",
            )
            history += ("start_date", "end_date", "duration", "note")
            self.db.execute(
                f"INSERT OR REPLACE INTO ti_history ({', '.join(history)}) VALUES ({', '.join('?' * len(history))})",
                tuple(ti[c] for c in history),
            )
            new_id = str(uuid.uuid4())
        else:
            new_id = ti_id
        self.db.execute(
            "UPDATE task_instances SET id = ?, try_number = try_number + 1, state = 'queued', hostname = NULL, "
            "unixname = NULL, pid = NULL, start_date = NULL, end_date = NULL, duration = NULL, "
            "last_heartbeat = NULL, retry_delay_override = NULL, next_retry_at = NULL, note = NULL WHERE id = ?",
            (new_id, ti_id),
        )
        return self.ti_by_id(new_id) or {}

    def requeue(self, ti_id: str) -> None:
        """Queue the same try again (a reschedule): same id and try number, a fresh start."""
        self.db.execute(
            "UPDATE task_instances SET state = 'queued', hostname = NULL, unixname = NULL, pid = NULL, "
            "start_date = NULL, end_date = NULL, duration = NULL, last_heartbeat = NULL, "
            "next_retry_at = NULL, note = NULL WHERE id = ?",
            (ti_id,),
        )

    def ti_states(self, dag_id: str, run_id: str) -> list[sqlite3.Row]:
        """What the runner's every step reads of a run: each task instance's id, task id, map index,
        state, try number and retry time (rows indexed by column name). A third of the cost of
        :meth:`task_instances`, which builds a dict of every column: ~15 ms for 10,000 tasks."""
        return self.db.execute(
            "SELECT id, task_id, map_index, state, try_number, next_retry_at FROM task_instances "
            "WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()

    def task_instances(self, dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
        if run_id is None:
            rows = self.db.execute("SELECT * FROM task_instances WHERE dag_id = ?", (dag_id,))
        else:
            rows = self.db.execute(
                "SELECT * FROM task_instances WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
            )
        return [dict(r) for r in rows.fetchall()]

    def history(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM ti_history WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? "
            "ORDER BY try_number",
            (dag_id, run_id, task_id, map_index),
        ).fetchall()
        return [dict(r) for r in rows]

    # -- task logs -----------------------------------------------------------------------------------
    # -- reschedules (sensors in reschedule mode) -------------------------------------------------------
    def add_reschedule(self, ti_id: str, start_date: str, end_date: str, reschedule_date: str | None) -> None:
        """One ``TaskReschedule`` row, as core's server adds for each ``up_for_reschedule``."""
        self.db.execute(
            "INSERT INTO task_reschedules (ti_id, seq, start_date, end_date, reschedule_date) "
            "VALUES (?, (SELECT COUNT(*) FROM task_reschedules WHERE ti_id = ?), ?, ?, ?)",
            (ti_id, ti_id, start_date, end_date, reschedule_date),
        )

    def reschedules(self, ti_id: str) -> list[dict[str, Any]]:
        """The task instance's reschedule rows, first first (``task_reschedule_count`` is their number)."""
        rows = self.db.execute("SELECT * FROM task_reschedules WHERE ti_id = ? ORDER BY seq", (ti_id,))
        return [dict(r) for r in rows.fetchall()]

    def put_log(self, ti: dict[str, Any], content: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO task_logs VALUES (?, ?, ?, ?, ?, ?)",
            (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"], ti["try_number"], content),
        )

    # -- xcoms ---------------------------------------------------------------------------------------
    def set_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO xcoms VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dag_id, run_id, task_id, map_index, key, json.dumps(value), iso(utcnow())),
        )

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> tuple[bool, Any]:
        """``(found, value)``: an XCom may hold JSON ``null``."""
        row = self.db.execute(
            "SELECT value FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? AND map_index = ?",
            (dag_id, run_id, task_id, key, map_index),
        ).fetchone()
        return (False, None) if row is None else (True, json.loads(row["value"]))

    def xcom_values(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[Any]:
        """Every value of one XCom key, by map index (a mapped task's sequence)."""
        rows = self.db.execute(
            "SELECT value FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? ORDER BY map_index",
            (dag_id, run_id, task_id, key),
        ).fetchall()
        return [json.loads(r["value"]) for r in rows]

    def delete_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> None:
        self.db.execute(
            "DELETE FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? AND map_index = ?",
            (dag_id, run_id, task_id, key, map_index),
        )

    def clear_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
        self.db.execute(
            "DELETE FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
            (dag_id, run_id, task_id, map_index),
        )

    def run_xcoms(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every XCom of a run, in the order they were pushed (for the report)."""
        rows = self.db.execute(
            "SELECT task_id, map_index, key, value FROM xcoms WHERE dag_id = ? AND run_id = ? "
            "ORDER BY timestamp, task_id, key",
            (dag_id, run_id),
        ).fetchall()
        return [{**dict(r), "value": json.loads(r["value"])} for r in rows]

    # -- dynamic task mapping (localrun.mapping) ------------------------------------------------------
    def set_task_map(self, dag_id: str, run_id: str, task_id: str, map_index: int, length: int) -> None:
        """A ``TaskMap`` row: the length an upstream's ``return_value`` push declared."""
        self.db.execute(
            "INSERT OR REPLACE INTO task_map VALUES (?, ?, ?, ?, ?)",
            (dag_id, run_id, task_id, map_index, length),
        )

    def task_map_length(self, dag_id: str, run_id: str, task_id: str) -> int | None:
        row = self.db.execute(
            "SELECT length FROM task_map WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index < 0",
            (dag_id, run_id, task_id),
        ).fetchone()
        return None if row is None else int(row["length"])

    def mapped_xcom_count(self, dag_id: str, run_id: str, task_id: str, key: str) -> int:
        """How many mapped instances (map index >= 0) of a task pushed ``key``."""
        row = self.db.execute(
            "SELECT COUNT(*) AS n FROM xcoms WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? "
            "AND map_index >= 0",
            (dag_id, run_id, task_id, key),
        ).fetchone()
        return int(row["n"])

    def set_label(self, ti: dict[str, Any], label: str | None) -> None:
        """A task instance's rendered map index (``rendered_map_index``; None clears it)."""
        self.db.execute("INSERT OR REPLACE INTO ti_labels VALUES (?, ?, ?, ?, ?)", (*_ti_key(ti), label))

    def label(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
        row = self.db.execute(
            "SELECT label FROM ti_labels WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?",
            (dag_id, run_id, task_id, map_index),
        ).fetchone()
        return None if row is None else row["label"]

    # -- rendered fields / state stores ---------------------------------------------------------------
    def set_rendered_fields(self, ti_id: str, fields: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO rendered_fields VALUES (?, ?)", (ti_id, json.dumps(fields)))

    def get_task_store(self, ti: dict[str, Any], key: str) -> tuple[bool, Any]:
        """A task state-store value; keyed by the task, not the try, so it survives retries."""
        row = self.db.execute(
            "SELECT value, expires_at FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ? "
            "AND map_index = ? AND key = ?",
            (*_ti_key(ti), key),
        ).fetchone()
        if row is None:
            return False, None
        expires = parse_iso(row["expires_at"])
        if expires is not None and expires <= utcnow():
            return False, None
        return True, json.loads(row["value"])

    def set_task_store(self, ti: dict[str, Any], key: str, value: Any, expires_at: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO task_state_store VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*_ti_key(ti), key, json.dumps(value), iso(parse_iso(expires_at))),
        )

    def delete_task_store(self, ti: dict[str, Any], key: str | None = None) -> None:
        sql = "DELETE FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?"
        params: Sequence[Any] = _ti_key(ti)
        if key is not None:
            sql += " AND key = ?"
            params = (*params, key)
        self.db.execute(sql, params)

    def get_asset_store(self, kind: str, ident: str, key: str) -> tuple[bool, Any]:
        row = self.db.execute(
            "SELECT value FROM asset_state_store WHERE kind = ? AND ident = ? AND key = ?", (kind, ident, key)
        ).fetchone()
        return (False, None) if row is None else (True, json.loads(row["value"]))

    def set_asset_store(self, kind: str, ident: str, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO asset_state_store VALUES (?, ?, ?, ?)",
            (kind, ident, key, json.dumps(value)),
        )

    def delete_asset_store(self, kind: str, ident: str, key: str | None = None) -> None:
        if key is None:
            self.db.execute("DELETE FROM asset_state_store WHERE kind = ? AND ident = ?", (kind, ident))
        else:
            self.db.execute(
                "DELETE FROM asset_state_store WHERE kind = ? AND ident = ? AND key = ?", (kind, ident, key)
            )

    # -- helpers for queries with optional filters ----------------------------------------------------
    # -- asset events (what a task's SucceedTask outlets create) -----------------------------------------
    def add_asset_event(
        self, ti: dict[str, Any], name: str, uri: str, extra: Any, partition_key: str | None
    ) -> None:
        source = (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"])
        self.db.execute(
            "INSERT INTO asset_events (name, uri, extra, source_dag_id, source_run_id, source_task_id, "
            "source_map_index, partition_key, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, uri, json.dumps(extra or {}), *source, partition_key, iso(utcnow())),
        )

    def asset_events(
        self, *, name: str | None = None, uri: str | None = None, run: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Events of an asset (by name and/or uri), or those a DAG run's tasks emitted, oldest first."""
        where, args = [], []
        for column, value in (("name", name), ("uri", uri)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if run is not None:
            where.append("source_dag_id = ? AND source_run_id = ?")
            args.extend(run)
        sql = "SELECT * FROM asset_events" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.execute(sql + " ORDER BY timestamp, id", args).fetchall()
        return [{**dict(row), "extra": json.loads(row["extra"])} for row in rows]

    def select_tis(
        self,
        dag_id: str,
        *,
        task_ids: Iterable[str] | None = None,
        run_ids: Iterable[str] | None = None,
        states: Iterable[str | None] | None = None,
        map_index: int | None = None,
        logical_dates: Iterable[datetime] | None = None,
    ) -> list[dict[str, Any]]:
        """Current task instances matching Airflow's ``/task-instances/count`` style filters."""
        tis = self.task_instances(dag_id)
        task_set = set(task_ids) if task_ids else None
        run_set = set(run_ids) if run_ids else None
        state_set = set(states) if states else None
        dates = {iso(d) for d in logical_dates} if logical_dates else None
        runs = {r["run_id"]: r for r in self.dag_runs(dag_id)} if dates else {}
        out = []
        for ti in tis:
            if task_set is not None and ti["task_id"] not in task_set:
                continue
            if run_set is not None and ti["run_id"] not in run_set:
                continue
            if state_set is not None and ti["state"] not in state_set:
                continue
            if map_index is not None and ti["map_index"] != map_index:
                continue
            if dates is not None and runs.get(ti["run_id"], {}).get("logical_date") not in dates:
                continue
            out.append(ti)
        return out


def _ti_key(ti: dict[str, Any]) -> tuple[str, str, str, int]:
    return ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]


def _dag_run(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["conf"] = json.loads(data["conf"]) if data.get("conf") else {}
    return data
