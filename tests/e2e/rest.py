"""Airflow 3.3.2's public REST API (``/api/v2``), as the e2e tests use it: nothing reads the database.

Authentication is what a default install does: SimpleAuthManager. With ``[core]
simple_auth_manager_all_admins = True`` ``GET /auth/token`` returns a JWT without credentials (with
users configured it would be ``POST /auth/token {"username", "password"}``); every call sends it as
``Authorization: Bearer``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
RETRY_FOR = 30.0  # seconds a 5xx answer is retried


@dataclass(frozen=True)
class TaskInstance:
    task_id: str
    state: str | None
    try_number: int
    map_index: int
    queue: str | None
    hostname: str | None = None  # the worker that ran it ([core] hostname_callable there)
    queued_when: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    executor: str | None = None
    id: str | None = None
    rendered_map_index: str | None = None  # a mapped instance's label (map_index_template)


@dataclass(frozen=True)
class TaskLog:
    """One try's log: the structured records and the raw response text (for "appears nowhere")."""

    records: list[dict[str, Any]]
    raw: str

    def events(self) -> list[str]:
        return [str(r.get("event", "")) for r in self.records]

    def find(self, needle: str) -> list[dict[str, Any]]:
        return [r for r in self.records if needle in str(r.get("event", ""))]


class AirflowRest:
    """A thin, typed client: each method is one REST call the docs show."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        # Generous per-request timeout: a fresh api-server answered its first request after 15.6 s.
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.get("/auth/token")
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def _call(
        self, method: str, path: str, accept: str = "application/json", **kwargs: Any
    ) -> httpx.Response:
        """One request; a 401 refreshes the token, a 5xx is retried (callers send idempotent calls).

        5xx happen for real on SQLite: a write that waits longer than SQLite's 5 s busy timeout
        for the lock ("Database error", observed with the whole test suite running beside us).
        """
        deadline = time.monotonic() + RETRY_FOR
        while True:
            response = self._http.request(
                method, path, headers={**self._headers(), "Accept": accept}, **kwargs
            )
            if response.status_code == 401:  # token expired: fetch a new one
                self._token = None
            elif response.status_code < 500 or time.monotonic() >= deadline:
                return response
            time.sleep(1.0)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowRestError(method, path, response.status_code, response.text)
        return response.json()

    # --- health and DAGs ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health``: metadatabase, scheduler, triggerer, dag_processor."""
        response = self._http.get("/api/v2/monitor/health")
        response.raise_for_status()
        return response.json()

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/api/v2/dags/{dag_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowRestError("GET", f"/api/v2/dags/{dag_id}", response.status_code, response.text)
        return response.json()

    def import_errors(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/v2/importErrors")["import_errors"]

    def unpause(self, dag_id: str) -> None:
        self._json("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    # --- runs ----------------------------------------------------------------------------------------

    def trigger_run(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """A manual run now (``logical_date: null``); its run_id.

        The run id is chosen here so that a retried POST is idempotent: 409 means the first one won.
        """
        run_id = f"manual__e2e_{uuid.uuid4().hex[:12]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        path = f"/api/v2/dags/{dag_id}/dagRuns"
        response = self._call("POST", path, json=body)
        if response.status_code == 409 and self.run_state(dag_id, run_id):
            return run_id
        if response.status_code >= 400:
            raise AirflowRestError("POST", path, response.status_code, response.text)
        return response.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float, poll: float = 1.0) -> str:
        """Poll until the run is success/failed; TimeoutError (with the task states) once it stalls.

        *timeout* bounds a hang, not a speed: it is how long the run may go without any task instance
        changing state or try (:class:`Progress`), so a loaded machine gives a slow pass, not a failure.
        """
        progress = Progress(timeout)

        def probe() -> str | None:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return state
            progress.saw(self.ti_progress(dag_id, run_id))
            return None

        return progress.poll(
            probe,
            poll,
            lambda: f"run {dag_id}/{run_id} not finished; tasks: {self.task_instances(dag_id, run_id)}",
        )

    def ti_progress(self, dag_id: str, run_id: str) -> frozenset[tuple[str, int, str | None, int]]:
        """What counts as progress for a run: each task instance's (id, map index, state, try)."""
        return frozenset(
            (ti.task_id, ti.map_index, ti.state, ti.try_number)
            for ti in self.task_instances(dag_id, run_id).values()
        )

    def task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], TaskInstance]:
        """(task_id, map_index) -> the task instance's current state and try number."""
        body = self._json(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )
        return {
            (ti["task_id"], ti["map_index"]): TaskInstance(
                ti["task_id"],
                ti["state"],
                ti["try_number"],
                ti["map_index"],
                ti.get("queue"),
                ti.get("hostname"),
                ti.get("queued_when"),
                ti.get("start_date"),
                ti.get("end_date"),
                ti.get("executor"),
                ti.get("id"),
                ti.get("rendered_map_index"),
            )
            for ti in body["task_instances"]
        }

    def create_pool(self, name: str, slots: int, *, include_deferred: bool = False) -> dict[str, Any]:
        """``POST /api/v2/pools`` (``include_deferred`` False, Airflow's default: a deferred task
        frees its slot); a 409 from a retried POST whose first attempt won returns the pool."""
        body = {"name": name, "slots": slots, "include_deferred": include_deferred}
        response = self._call("POST", "/api/v2/pools", json=body)
        if response.status_code == 409:
            return self._json("GET", f"/api/v2/pools/{name}")
        if response.status_code >= 400:
            raise AirflowRestError("POST", "/api/v2/pools", response.status_code, response.text)
        return response.json()

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
        """The XCom's value as the task pushed it (the API returns it as JSON); KeyError if none."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        response = self._call("GET", path, params={"map_index": map_index})
        if response.status_code == 404:
            raise KeyError(f"no XCom {key!r} for {dag_id}/{run_id}/{task_id}[{map_index}]")
        if response.status_code >= 400:
            raise AirflowRestError("GET", path, response.status_code, response.text)
        return response.json()["value"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> TaskLog:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        response = self._call(
            "GET",
            path,
            params={"full_content": "true", "map_index": map_index},
        )
        if response.status_code >= 400:
            raise AirflowRestError("GET", path, response.status_code, response.text)
        content = response.json()["content"]
        records = [r if isinstance(r, dict) else {"event": str(r)} for r in content]
        return TaskLog(records, response.text)


class AirflowRestError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:500]}")
        self.status = status
        self.body = body


def seconds_between(start: str | None, end: str | None) -> float:
    """The seconds between two of the API's ISO timestamps (``start_date``, ``end_date``, ...)."""
    if not start or not end:
        raise ValueError(f"missing timestamp: {start!r} -> {end!r}")
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def poll_until(probe: Callable[[], T | None], timeout: float, poll: float, describe: Callable[[], str]) -> T:
    """Call *probe* until it returns non-None, at most *timeout* seconds; then TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"after {timeout:.0f} s: {describe()}")
        time.sleep(poll)


class Progress:
    """A wait bounded by a stall, not by a total time: the e2e tests' guard against a hang.

    The wait fails only when what it watches has not changed for *stall* seconds (a hang), or after
    ``CAP_FACTOR * stall`` seconds in all (a run that keeps changing but never ends). On a slow or
    loaded machine a run that keeps moving is waited for; one that stops moving fails as before.
    """

    CAP_FACTOR = 6

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self._began = self._changed = time.monotonic()
        self._last: object = None

    def saw(self, snapshot: object) -> None:
        """Record what the watched thing looks like now; a difference from last time is progress."""
        if snapshot != self._last:
            self._last = snapshot
            self._changed = time.monotonic()

    def expired(self) -> bool:
        now = time.monotonic()
        return now - self._changed >= self.stall or now - self._began >= self.CAP_FACTOR * self.stall

    def describe(self) -> str:
        return f"no progress for {self.stall:.0f} s (or {self.CAP_FACTOR * self.stall:.0f} s in all)"

    def poll(self, probe: Callable[[], T | None], poll: float, describe: Callable[[], str]) -> T:
        """Call *probe* (which calls :meth:`saw`) until it returns non-None; TimeoutError on a stall."""
        while True:
            result = probe()
            if result is not None:
                return result
            if self.expired():
                raise TimeoutError(f"{self.describe()}: {describe()}")
            time.sleep(poll)
