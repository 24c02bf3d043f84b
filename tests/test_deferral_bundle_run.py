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
from tests.deferral_expected import (
    CHILD_DAG,
    CHILD_RUN_ID_PREFIX,
    CHILD_RUN_STATE,
    CHILD_VALUES,
    DEFERRING,
    FINAL,
    POLLING,
    RESUMED,
    RUN_STATE,
)
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


def test_the_whole_dag_ends_as_in_the_deployment_triggered_runs_included(tmp_path: Path) -> None:
    """trigger_child polls GetDagRunState and trigger_child_deferred defers to DagStateTrigger:
    bundle-run runs each triggered deferral_child run too, as the scheduler would, so both waits
    end; states, tries and XComs are those tests/e2e/test_deferral.py expects of the deployment."""
    ready = tmp_path / "ready.flag"
    timer = threading.Timer(6.0, ready.write_text, args=("here",))
    timer.start()
    try:
        run = bundle_run(
            BUNDLE, "--dag", "deferral_dag", "--conf", f'{{"path": "{ready}"}}', tmp_path=tmp_path
        )
    finally:
        timer.cancel()
    assert run.returncode == 0, run.describe()
    assert run.report["state"] == RUN_STATE
    assert {t: (row["state"], row["tries"]) for t, row in run.report["tasks"].items()} == FINAL
    for task_id, value in RESUMED.items():
        assert run.xcom(task_id) == value
    for task_id in DEFERRING:
        assert [(t["try_number"], t["state"]) for t in run.tries(task_id)] == [
            (1, "deferred"),
            (1, "success"),
        ]
    assert [(t["try_number"], t["state"]) for t in run.tries(POLLING)] == [(1, "success")]

    children = {c["run_id"]: c for c in run.report["triggered_runs"]}
    for task_id, value in CHILD_VALUES.items():
        run_id = run.xcom(task_id, "trigger_run_id")
        assert run_id.startswith(CHILD_RUN_ID_PREFIX)
        child = children.pop(run_id)  # its own DAG run, with the run id the request named
        assert (child["dag_id"], child["state"]) == (CHILD_DAG, CHILD_RUN_STATE)
        assert {t: (row["state"], row["tries"]) for t, row in child["tasks"].items()} == {
            "child_work": ("success", 1)
        }
        assert [(x["task_id"], x["key"], x["value"]) for x in child["xcoms"]] == [
            ("child_work", "return_value", value)  # the conf the trigger passed
        ]
    assert not children, children  # no other run was triggered

    # The polling task waited for the triggered run (GetDagRunState). How many polls it took depends on
    # how fast the child run ends on a loaded machine (one when it is already done at the first poll).
    polls = [r["event"] for t in run.tries(POLLING) for r in t["log"] if "Waiting for dag run" in r["event"]]
    assert len(polls) >= 1, polls
    # The deferred wait resumed with DagStateTrigger's event: {run_id: state} for its run.
    resumed = [r["event"] for r in run.tries("trigger_child_deferred")[-1]["log"]]
    deferred_run = run.xcom("trigger_child_deferred", "trigger_run_id")
    assert f"{CHILD_DAG} finished with allowed state success for run_id {deferred_run}" in resumed, resumed


OUTSIDE = """
from bundle import Bundle, Context, serve
from bundle.triggers import DagStateTrigger

bundle = Bundle("outside", version="1.0.0")
dag = bundle.dag("outside_dag", schedule=None)


@dag.task
def trigger_other(ctx: Context) -> None:
    ctx.trigger_dag_run("not_in_this_bundle", wait_for_completion=True, poke_interval=1)


@dag.task
def wait_other(ctx: Context) -> None:
    trigger = DagStateTrigger("not_in_this_bundle", states=["success"], run_ids=["r1"], poll_interval=1)
    ctx.defer(trigger=trigger, method_name="done")


@wait_other.resume
def done(event: object) -> None: ...


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
"""


def test_waiting_for_a_dag_outside_the_bundle_fails_clearly(tmp_path: Path) -> None:
    source = tmp_path / "outside.py"
    source.write_text(OUTSIDE)
    began = time.monotonic()
    run = bundle_run(source, "--dag", "outside_dag", "--task-timeout", "120", tmp_path=tmp_path)
    assert run.states() == {"trigger_other": "failed", "wait_other": "failed"}, run.describe()
    assert time.monotonic() - began < 100  # at once, not after --task-timeout
    # the API answers 404 as Airflow's does for an unknown DAG; the task fails with it, no retry
    note = run.report["tasks"]["trigger_other"]["note"]
    assert "TriggerDagRun failed" in note and "Dag with dag_id: 'not_in_this_bundle' not found" in note, note
    assert "bundle-run knows only the DAGs of this bundle: outside_dag" in note, note
    assert run.report["triggered_runs"] == []
    wait_log = "\n".join(r["event"] for t in run.tries("wait_other") for r in t["log"])
    assert "DagStateTrigger waits for DAG 'not_in_this_bundle', which is not in this bundle" in wait_log


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


def test_a_dag_state_trigger_fires_with_the_triggers_own_event(tmp_path: Path) -> None:
    """The runner answers for the watched runs; the event is what providers-standard 1.21.0's
    ``DagStateTrigger.run`` yields (its ``serialize()`` data plus ``{run_id: state}``), serde-encoded
    into ``next_kwargs`` beside the stored ones."""
    from airflow.providers.standard.triggers.external_task import DagStateTrigger
    from airflow.sdk.serde import deserialize

    kwargs = {
        "dag_id": "child",
        "states": ["success", "failed"],
        "poll_interval": 2.0,
        "run_ids": ["r1"],
        "execution_dates": None,
    }
    answers = iter([None, {"r1": "success"}])
    asked: list[dict] = []
    triggerer = Triggerer(private_home(tmp_path), dag_runs=lambda kw: (asked.append(kw), next(answers))[1])
    deferral = {
        "classpath": "airflow.providers.standard.triggers.external_task.DagStateTrigger",
        "trigger_kwargs": kwargs,
        "trigger_timeout": None,
        "next_method": "execute_complete",
        "next_kwargs": {"trigger_dag_id": "child"},
    }
    triggerer.start("ti", deferral)
    assert triggerer.poll("ti") is None  # the runs are not there yet: it waits
    deadline = time.monotonic() + 60
    while (fired := triggerer.poll("ti")) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fired is not None and fired.next_method == "execute_complete", fired
    classpath, data = DagStateTrigger(**kwargs).serialize()
    assert deserialize(fired.next_kwargs) == {
        "trigger_dag_id": "child",
        "event": (classpath, {**data, "r1": "success"}),
    }
    assert asked == [kwargs, kwargs]


def test_a_dag_state_trigger_that_cannot_fire_here_fails_at_once(tmp_path: Path) -> None:
    triggerer = Triggerer(private_home(tmp_path), dag_runs=lambda kw: "runs of child will never get there")
    deferral = {
        "classpath": "airflow.providers.standard.triggers.external_task.DagStateTrigger",
        "trigger_kwargs": {"dag_id": "child", "states": ["success"], "run_ids": ["r1"]},
        "trigger_timeout": None,
        "next_method": "execute_complete",
        "next_kwargs": {},
    }
    triggerer.start("ti", deferral)
    fired = triggerer.poll("ti")
    assert fired is not None and fired.next_method == "__fail__"
    assert fired.next_kwargs == {
        "error": "Trigger failure",
        "traceback": ["bundle-run: runs of child will never get there\n"],
    }
