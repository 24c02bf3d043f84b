"""bundle-run's triggerer: run a deferred task's trigger until its first event, as Airflow's would.

Each deferral gets its own Python process (``python -m localrun.triggers``, with the worker's private
``AIRFLOW_HOME``), so several triggers wait at once while the runner keeps running other tasks, and
the bundle-run process itself never imports Airflow. The child does what the triggerer does
(``airflow/jobs/triggerer_job_runner.py``, ``Trigger._decrypt_kwargs``, ``handle_event_submit``):
import the class by classpath, build it from the serde-decoded kwargs, run ``run()`` until the
first event (bounded by ``trigger_timeout``), and answer with the task's new ``next_method`` /
``next_kwargs`` (``serde.serialize({**stored, "event": payload})``), or ``__fail__`` with
``Trigger timeout`` / ``Trigger failure`` and the traceback, or an end state for an
``end_from_trigger`` trigger (``TaskSuccessEvent`` and friends).

``DagStateTrigger`` (a deferred ``ctx.trigger_dag_run`` wait) asks the API for DAG run states,
which only bundle-run itself holds: the runner watches the runs (``childruns.py`` runs the triggered
runs of DAGs of the bundle) and, once every watched run is in one of the trigger's states, the
child process builds the event as the trigger's ``run()`` does (its own ``serialize()`` data plus
``{run_id: state}``). A run bundle-run is not running, or a DAG outside the bundle, fails the task
at once, saying so (in a deployment the trigger would wait until ``trigger_timeout``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

FAIL = "__fail__"
DAG_STATE_TRIGGER = "airflow.providers.standard.triggers.external_task.DagStateTrigger"
DagRunWatch = Callable[[dict[str, Any]], "dict[str, Any] | str | None"]
"""The runner's answer for a ``DagStateTrigger``'s kwargs: ``{run_id: state}``, an error, or None (wait)."""


@dataclass
class Fired:
    """What the trigger decided: resume with ``next_method``/``next_kwargs``, or end in ``state``."""

    next_method: str | None = None
    next_kwargs: dict[str, Any] | None = None
    state: str | None = None
    description: str = ""


class Triggerer:
    """The running triggers of one ``bundle-run``, by task-instance id."""

    def __init__(self, env: dict[str, str] | None = None, dag_runs: DagRunWatch | None = None) -> None:
        self.env = env
        self.dag_runs = dag_runs
        self._running: dict[str, tuple[subprocess.Popen[str], Path, float | None]] = {}
        self._fired: dict[str, Fired] = {}
        self._watching: dict[str, dict[str, Any]] = {}  # DagStateTrigger deferrals, by ti id

    def start(self, ti_id: str, deferral: dict[str, Any]) -> None:
        if deferral["classpath"] == DAG_STATE_TRIGGER:
            self._watching[ti_id] = deferral
            return
        self._spawn(ti_id, deferral)

    def _spawn(self, ti_id: str, deferral: dict[str, Any]) -> None:
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        with handle:
            json.dump(deferral, handle)
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(self.env or os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen(
            [sys.executable, "-m", "localrun.triggers", handle.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=root,
        )
        self._running[ti_id] = (proc, Path(handle.name), time.monotonic())

    def poll(self, ti_id: str) -> Fired | None:
        """The trigger's decision once it has one; None while it still waits."""
        if ti_id in self._fired:
            return self._fired.pop(ti_id)
        if ti_id in self._watching:
            return self._watch(ti_id)
        entry = self._running.get(ti_id)
        if entry is None:
            return Fired(FAIL, {"error": "Trigger failure", "traceback": ["bundle-run lost this trigger\n"]})
        proc, path, _ = entry
        if proc.poll() is None:
            return None
        out, err = proc.communicate()
        del self._running[ti_id]
        path.unlink(missing_ok=True)
        try:
            answer = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            tail = (err or "").strip().splitlines()[-20:]
            return Fired(
                FAIL,
                {"error": "Trigger failure", "traceback": [line + "\n" for line in tail]},
                description="the trigger process ended without an answer",
            )
        return Fired(
            answer.get("next_method"), answer.get("next_kwargs"), answer.get("state"), answer.get("what", "")
        )

    def _watch(self, ti_id: str) -> Fired | None:
        """A ``DagStateTrigger``: ask the runner; once it fires, build the event in a child process."""
        deferral = self._watching[ti_id]
        kwargs = deferral.get("trigger_kwargs") or {}
        if self.dag_runs is None:
            answer: dict[str, Any] | str | None = "this bundle-run has no DAG runs to watch"
        elif not isinstance(kwargs, dict) or any(isinstance(v, dict) for v in kwargs.values()):
            answer = f"bundle-run cannot read these DagStateTrigger kwargs: {kwargs!r}"
        else:
            answer = self.dag_runs(kwargs)
        if answer is None:
            return None
        del self._watching[ti_id]
        if isinstance(answer, str):
            return Fired(
                FAIL,
                {"error": "Trigger failure", "traceback": [f"bundle-run: {answer}\n"]},
                description=answer,
            )
        self._spawn(ti_id, {**deferral, "dag_run_states": answer})
        return None

    def stop(self) -> None:
        for proc, path, _ in self._running.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            path.unlink(missing_ok=True)
        self._running.clear()
        self._watching.clear()


# -- the child process ------------------------------------------------------------------------------------
def _run(deferral: dict[str, Any]) -> dict[str, Any]:
    import asyncio
    import traceback
    from datetime import timedelta

    from pydantic import TypeAdapter

    try:
        import importlib

        from airflow.sdk.serde import deserialize, serialize

        # serde.deserialize is typed ``object``; both were serialized from dicts
        kwargs = cast("dict[str, Any]", deserialize(deferral.get("trigger_kwargs") or {}))
        module, _, name = deferral["classpath"].rpartition(".")
        trigger = getattr(importlib.import_module(module), name)(**kwargs)
        raw_timeout = deferral.get("trigger_timeout")
        timeout = TypeAdapter(timedelta).validate_python(raw_timeout).total_seconds() if raw_timeout else None

        async def first_event() -> Any:
            states = deferral.get("dag_run_states")
            if states is not None:  # DagStateTrigger.run's event, the states read by bundle-run
                from airflow.triggers.base import TriggerEvent

                classpath, data = trigger.serialize()
                return TriggerEvent((classpath, {**data, **states}))
            async for event in trigger.run():
                return event
            return None

        try:
            event = asyncio.run(asyncio.wait_for(first_event(), timeout))
        except asyncio.TimeoutError:
            return {
                "next_method": FAIL,
                "next_kwargs": {"error": "Trigger timeout"},
                "what": "trigger timeout",
            }
        if event is None:
            raise RuntimeError("the trigger's run() ended without an event")
        end_state = getattr(event, "task_instance_state", None)
        if end_state is not None:  # TaskSuccessEvent / TaskFailedEvent / TaskSkippedEvent
            return {"state": str(getattr(end_state, "value", end_state)), "what": "ended by the trigger"}
        stored = cast("dict[str, Any]", deserialize(deferral.get("next_kwargs") or {}))
        next_kwargs = serialize({**stored, "event": event.payload})
        return {
            "next_method": deferral["next_method"],
            "next_kwargs": next_kwargs,
            "what": f"event {event.payload!r}",
        }
    except Exception as exc:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return {
            "next_method": FAIL,
            "next_kwargs": {"error": "Trigger failure", "traceback": lines},
            "what": f"trigger failed: {type(exc).__name__}: {exc}",
        }


def main(argv: list[str] | None = None) -> None:
    path = (argv or sys.argv[1:])[0]
    deferral = json.loads(Path(path).read_text())
    print(json.dumps(_run(deferral), default=str), flush=True)


if __name__ == "__main__":
    main()
