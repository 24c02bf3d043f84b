"""``bundle-run`` runs deferred tasks: its own triggerer (localrun/triggers.py) runs the real
standard-provider trigger until its first event and the same try resumes through the supervisor,
as Airflow's triggerer and scheduler do. Same bundle as the e2e test (tests/e2e/bundles/deferral.py),
so its states and tries can be held to what the real deployment shows there."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from localrun.triggers import Triggerer
from tests.test_bundle_run import ROOT, bundle_run

BUNDLE = ROOT / "tests" / "e2e" / "bundles" / "deferral.py"


def test_deferred_tasks_resume_with_their_events_in_the_same_try(tmp_path: Path) -> None:
    ready = tmp_path / "ready.flag"
    began = time.monotonic()
    # the file appears only once the run is under way: the FileTrigger must wait for it
    timer = threading.Timer(6.0, ready.write_text, args=("here",))
    timer.start()
    try:
        run = bundle_run(
            BUNDLE,
            "--dag",
            "deferral_dag",
            *("--task", "wait_time", "--task", "wait_file", "--task", "quick"),
            "--conf",
            f'{{"path": "{ready}"}}',
            tmp_path=tmp_path,
        )
    finally:
        timer.cancel()
    assert run.returncode == 0, run.describe()
    assert run.states() == {"wait_time": "success", "wait_file": "success", "quick": "success"}
    assert run.xcom("wait_time") == {"n": 3, "event_is_datetime": True}
    assert run.xcom("wait_file") == {"event": True}
    for task_id in ("wait_time", "wait_file"):
        tries = run.tries(task_id)
        assert [(t["try_number"], t["state"]) for t in tries] == [(1, "deferred"), (1, "success")], tries
    assert time.monotonic() - began >= 8.0  # the TimeDeltaTrigger's 8 s really passed


def test_waiting_for_a_triggered_dag_run_fails_clearly(tmp_path: Path) -> None:
    run = bundle_run(BUNDLE, "--dag", "deferral_dag", "--task", "trigger_child_deferred", tmp_path=tmp_path)
    assert run.states() == {"trigger_child_deferred": "failed"}, run.describe()
    logs = "\n".join(r["event"] for t in run.tries("trigger_child_deferred") for r in t["log"])
    assert "bundle-run does not run airflow.providers.standard.triggers.external_task.DagStateTrigger" in logs


def private_home(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AIRFLOW_HOME": str(tmp_path)}


def test_a_trigger_that_cannot_be_imported_fails_like_on_the_triggerer(tmp_path: Path) -> None:
    triggerer = Triggerer(private_home(tmp_path))
    deferral = {
        "classpath": "no_such_package.triggers.NeverTrigger",
        "trigger_kwargs": {"x": 1},
        "trigger_timeout": None,
        "next_method": "never",
        "next_kwargs": {},
    }
    triggerer.start("ti", deferral)
    deadline = time.monotonic() + 60
    while (fired := triggerer.poll("ti")) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fired is not None and fired.next_method == "__fail__"
    assert fired.next_kwargs["error"] == "Trigger failure"
    assert "ModuleNotFoundError: No module named 'no_such_package'" in "".join(fired.next_kwargs["traceback"])


def test_a_trigger_timeout_resumes_with_fail(tmp_path: Path) -> None:
    triggerer = Triggerer(private_home(tmp_path))
    deferral = {
        "classpath": "airflow.providers.standard.triggers.file.FileTrigger",
        "trigger_kwargs": {"filepath": "/nonexistent/never", "recursive": False, "poke_interval": 0.2},
        "trigger_timeout": "PT1S",
        "next_method": "never",
        "next_kwargs": {},
    }
    triggerer.start("ti", deferral)
    deadline = time.monotonic() + 60
    while (fired := triggerer.poll("ti")) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fired is not None and (fired.next_method, fired.next_kwargs) == (
        "__fail__",
        {"error": "Trigger timeout"},
    )
