"""Deferral and TriggerDagRun under the released supervisor (task-sdk 1.3.2), against the fake
Execution API, which validates every PATCH body with core's own server models (TIStateUpdate,
TIDeferredStatePayload). Resumes get ``next_kwargs`` exactly as the server stores them: Airflow's
own ``serde.serialize({**stored, "event": payload})``. e2e: tests/e2e/test_deferral.py."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pendulum
import pytest

from bundle.core import deferral
from bundle.triggers import DagStateTrigger, DateTimeTrigger, FileTrigger, TimeDeltaTrigger, Trigger
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task

BUNDLE = Path(__file__).parent / "bundles" / "deferral_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG, RUN = "deferral_dag", "manual__2026-01-01"


def supervised(task_id: str, api: FakeExecutionAPI | None = None, **kwargs):
    run = run_task(COMMAND, dag_id=DAG, task_id=task_id, run_id=RUN, api=api, timeout=60, **kwargs)
    assert run.api.problems() == [], run.describe()
    assert run.supervisor_errors == [], run.describe()
    return run


def server_model(body: dict):
    """Core's own server model for a deferral PATCH (extra=forbid)."""
    from airflow.api_fastapi.execution_api.datamodels.taskinstance import TIDeferredStatePayload

    return TIDeferredStatePayload.model_validate(body)


def stored_next_kwargs(patch: dict, event) -> dict:
    """What the server hands the resumed run: ``handle_event_submit``'s serde round trip."""
    from airflow.sdk.serde import deserialize, serialize

    return json.loads(json.dumps(serialize({**deserialize(patch["next_kwargs"]), "event": event})))


def triggerer_builds(patch: dict):
    """Build the trigger as the triggerer does: import by classpath, kwargs decoded by
    ``Trigger._decrypt_kwargs`` (JSON, then serde) from what the server stored (json.dumps)."""
    import importlib

    from airflow.models.trigger import Trigger as TriggerRow

    module, _, name = patch["classpath"].rpartition(".")
    kwargs = TriggerRow._decrypt_kwargs(json.dumps(patch["trigger_kwargs"]))
    return getattr(importlib.import_module(module), name)(**kwargs)


# -- the DeferTask body -------------------------------------------------------------------------------
def test_a_deferral_patches_exactly_what_core_stores_and_the_triggerer_can_build():
    run = supervised("waits", FakeExecutionAPI(max_tries=1))
    assert (run.exit_code, run.final_state, run.server_state) == (0, "deferred", "deferred"), run.describe()
    patch = run.state_updates[-1]
    assert server_model(patch).next_method == "done"
    assert patch == {
        "state": "deferred",
        "classpath": "airflow.providers.standard.triggers.temporal.DateTimeTrigger",
        "trigger_kwargs": {
            "moment": {
                "__classname__": "datetime.datetime",
                "__version__": 2,
                "__data__": {
                    "timestamp": 1893456000.0,
                    "tz": {
                        "__classname__": "builtins.tuple",
                        "__version__": 1,
                        "__data__": ["UTC", "pendulum.tz.timezone.FixedTimezone", 1, True],
                    },
                },
            },
            "end_from_trigger": False,
        },
        "trigger_timeout": "PT1M30S",
        "queue": None,
        "next_method": "done",
        "next_kwargs": {
            "n": 3,
            "when": {
                "__classname__": "datetime.datetime",
                "__version__": 2,
                "__data__": {
                    "timestamp": datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc).timestamp(),
                    "tz": {
                        "__classname__": "builtins.tuple",
                        "__version__": 1,
                        "__data__": ["UTC", "pendulum.tz.timezone.FixedTimezone", 1, True],
                    },
                },
            },
            "span": {"__classname__": "datetime.timedelta", "__version__": 2, "__data__": 30.0},
            "pair": {"__classname__": "builtins.tuple", "__version__": 1, "__data__": [1, "a"]},
            "nested": {"k": [1]},
        },
        "rendered_map_index": None,
    }
    trigger = triggerer_builds(patch)
    assert trigger.moment == pendulum.datetime(2030, 1, 1, tz="UTC") and trigger.end_from_trigger is False
    # Airflow's serde reads our next_kwargs back to the values the task gave
    from airflow.sdk.serde import deserialize

    assert deserialize(patch["next_kwargs"]) == {
        "n": 3,
        "when": datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
        "span": timedelta(seconds=30),
        "pair": (1, "a"),
        "nested": {"k": [1]},
    }
    assert run.find_logs(contains="Pausing task as DEFERRED")


def test_the_body_we_build_is_the_released_comms_model_and_our_validator_accepts_it():
    from airflow.sdk.execution_time.comms import DeferTask

    from bundle.core.messages import validate_request

    deferred = deferral.defer(FileTrigger("/data/*.csv", recursive=True), "resume", None, 12)
    body = deferral.defer_body(deferred, "resume")
    validate_request(body)
    model = DeferTask.model_validate(body)
    assert model.trigger_timeout == timedelta(seconds=12) and model.next_kwargs == {}
    assert body["trigger_kwargs"] == {"filepath": "/data/*.csv", "recursive": True, "poke_interval": 5.0}


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda: FileTrigger("/x", poke_interval=2),
            lambda: __import__("airflow.providers.standard.triggers.file", fromlist=["F"]).FileTrigger(
                "/x", poke_interval=2
            ),
        ),
        (
            lambda: DagStateTrigger("other", ["success", "failed"], run_ids=["r"], poll_interval=3),
            lambda: __import__(
                "airflow.providers.standard.triggers.external_task", fromlist=["D"]
            ).DagStateTrigger(dag_id="other", states=["success", "failed"], run_ids=["r"], poll_interval=3),
        ),
    ],
)
def test_typed_triggers_serialize_as_the_standard_providers_own(ours, theirs):
    from airflow.sdk.serde import serialize

    classpath, kwargs = ours().serialize()
    assert (classpath, deferral.encode_kwargs(kwargs, "t")) == (
        theirs().serialize()[0],
        serialize(theirs().serialize()[1]),
    )


def test_time_delta_trigger_is_stored_as_an_absolute_date_time_trigger():
    before = datetime.now(timezone.utc)
    classpath, kwargs = TimeDeltaTrigger(timedelta(minutes=5)).serialize()
    assert classpath.endswith("temporal.DateTimeTrigger")
    assert (
        before + timedelta(minutes=5) <= kwargs["moment"] <= datetime.now(timezone.utc) + timedelta(minutes=5)
    )


@pytest.mark.parametrize(
    ("task_id", "message"),
    [
        (
            "bad_trigger_kwargs",
            "trigger kwargs of my_company.triggers.Queue: key 'client': a object cannot be sent",
        ),
        ("bad_next_kwargs", "ctx.defer kwargs: key 'blob': a bytes cannot be sent to the triggerer"),
        (
            "unknown_method",
            "ctx.defer(method_name='nope') names no resume function of the task (registered: none)",
        ),
    ],
)
def test_bad_deferrals_fail_the_task_naming_the_problem(task_id, message):
    run = supervised(task_id)
    assert (run.final_state, run.server_state) == ("failed", "failed"), run.describe()
    assert [r for r in run.log_records if message in json.dumps(r)], run.describe()


def test_naive_datetimes_and_reserved_keys_are_refused_at_the_call():
    with pytest.raises(TypeError, match="key 'at': a naive datetime"):
        deferral.defer(Trigger("a.B"), None, {"at": datetime(2026, 1, 1)}, None)
    with pytest.raises(TypeError, match="'__classname__' is reserved"):
        deferral.defer(Trigger("a.B", spec={"__classname__": "x"}), None, None, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        DateTimeTrigger(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="classpath"):
        Trigger("NoModule")


# -- resuming -----------------------------------------------------------------------------------------
def test_a_resumed_task_runs_its_resume_function_with_the_decoded_event_and_kwargs():
    first = supervised("waits", FakeExecutionAPI(max_tries=1))
    event = pendulum.datetime(2030, 1, 1, tz="UTC")  # DateTimeTrigger's payload: its moment
    api = FakeExecutionAPI(
        max_tries=1,
        run_context={
            "next_method": "done",
            "next_kwargs": stored_next_kwargs(first.state_updates[-1], event),
            "xcom_keys_to_clear": ["stale"],  # the server sends [] on resume; not applied even if present
        },
        xcoms={(DAG, RUN, "waits", "stale"): 1},
    )
    run = supervised("waits", api)
    assert (run.final_state, run.server_state) == ("success", "success"), run.describe()
    assert api.xcom(DAG, RUN, "waits", "return_value") == {
        "event": "2030-01-01T00:00:00+00:00",
        "n": 3,
        "when": "2026-05-06T07:08:09+00:00",
        "span": 30.0,
        "pair": [1, "a"],
        "pair_is_tuple": True,
        "nested": {"k": [1]},
        "try": 1,
        "loaded": ["bundle.core.deferral", "bundle.triggers"],
    }
    assert api.xcom(DAG, RUN, "waits", "stale") == 1
    assert not api.calls_to("DELETE")


def test_bundles_that_do_not_defer_never_load_the_deferral_modules():
    import subprocess

    root = Path(__file__).parent.parent
    example = root / "examples" / "bundle" / "example_dags.py"
    code = (
        "import sys; from bundle.target import load_target; from bundle.testing import run_task; "
        f"b = load_target({str(example)!r}); run_task(b, 'simple_dag', 'audit'); "
        "print([m for m in ('bundle.core.deferral', 'bundle.core.trigger_dagrun', 'bundle.triggers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr
    # and a bundle that defers does not load TriggerDagRun's handler for a plain task
    api = FakeExecutionAPI()
    supervised("plain", api)
    assert api.xcom(DAG, RUN, "plain", "return_value") == {"loaded": ["bundle.core.deferral"]}


def test_a_task_may_defer_again_from_its_resume_function():
    first = supervised("defers_twice")
    assert first.state_updates[-1]["next_method"] == "first"
    second = supervised(
        "defers_twice",
        FakeExecutionAPI(
            run_context={
                "next_method": "first",
                "next_kwargs": stored_next_kwargs(first.state_updates[-1], None),
            }
        ),
    )
    patch = second.state_updates[-1]
    assert (second.server_state, patch["next_method"], patch["next_kwargs"]) == (
        "deferred",
        "second",
        {"step": 2},
    )
    assert patch["classpath"] == "airflow.providers.standard.triggers.file.FileTrigger"
    assert triggerer_builds(patch).filepath == "/pybundle-never".join(("/tmp", ""))
    api = FakeExecutionAPI(
        run_context={"next_method": "second", "next_kwargs": stored_next_kwargs(patch, True)}
    )
    third = supervised("defers_twice", api)
    assert third.server_state == "success" and api.xcom(DAG, RUN, "defers_twice", "return_value") == 20


@pytest.mark.parametrize(
    ("next_kwargs", "exc_type", "max_tries", "state"),
    [
        ({"error": "Trigger timeout"}, "TaskDeferralTimeout", 0, "failed"),
        ({"error": "Trigger timeout"}, "TaskDeferralTimeout", 1, "up_for_retry"),
        (
            {
                "error": "Trigger failure",
                "traceback": ["Traceback (most recent call last):\n", "ValueError: boom\n"],
            },
            "TaskDeferralError",
            0,
            "failed",
        ),
    ],
)
def test_fail_resumes_fail_the_task_as_airflow_does(next_kwargs, exc_type, max_tries, state):
    api = FakeExecutionAPI(
        max_tries=max_tries, run_context={"next_method": "__fail__", "next_kwargs": next_kwargs}
    )
    run = supervised("waits", api)
    assert (run.final_state, run.server_state) == (state, state), run.describe()
    errors = [
        d for r in run.log_records for d in r.get("error_detail") or [] if d.get("exc_type") == exc_type
    ]
    assert errors and errors[0]["exc_value"] == next_kwargs["error"], run.describe()
    if state == "up_for_retry":
        assert run.state_updates[-1]["retry_reason"] == f"{exc_type}: {next_kwargs['error']}"
    if "traceback" in next_kwargs:
        assert run.find_logs(contains="Trigger failed:\nTraceback (most recent call last):\nValueError: boom")


# -- TriggerDagRun ------------------------------------------------------------------------------------
def test_trigger_dag_run_triggers_pushes_the_run_id_and_polls_until_an_allowed_state():
    api = FakeExecutionAPI()
    run = supervised("triggers_and_polls", api)
    assert run.server_state == "success", run.describe()
    assert api.dag_runs[("other_dag", "polled")]["conf"] == {"x": 1}
    assert api.xcom(DAG, RUN, "triggers_and_polls", "trigger_run_id") == "polled"
    assert api.calls_to("GET", "/dag-runs/other_dag/polled/state")


def test_trigger_dag_run_in_a_failed_state_fails_and_is_retried():
    run = supervised("triggers_and_fails", FakeExecutionAPI(max_tries=1))
    assert run.server_state == "up_for_retry", run.describe()
    assert run.state_updates[-1]["retry_reason"] == "DagRunFailed: other_dag failed with failed state queued"


@pytest.mark.parametrize(
    ("task_id", "state"), [("triggers_existing_skips", "skipped"), ("triggers_existing_fails", "failed")]
)
def test_an_existing_run_skips_or_fails_without_retry(task_id, state):
    api = FakeExecutionAPI(max_tries=1, dag_runs={("other_dag", "exists"): {"state": "success"}})
    run = supervised(task_id, api)
    assert run.server_state == state, run.describe()
    assert (DAG, RUN, task_id, "trigger_run_id", -1) not in api.xcoms


def test_fire_and_forget_generates_a_manual_run_id():
    api = FakeExecutionAPI()
    run = supervised("triggers_fire_and_forget", api)
    assert run.server_state == "success", run.describe()
    run_id = api.xcom(DAG, RUN, "triggers_fire_and_forget", "trigger_run_id")
    assert run_id.startswith("manual__") and ("other_dag", run_id) in api.dag_runs
    assert api.dag_runs[("other_dag", run_id)]["logical_date"] is None


@pytest.mark.parametrize(("final", "state"), [("success", "success"), ("failed", "failed")])
def test_deferrable_trigger_dag_run_defers_to_dag_state_trigger_and_completes(final, state):
    first = supervised("triggers_deferrable")
    patch = first.state_updates[-1]
    assert (first.server_state, patch["next_method"]) == ("deferred", "execute_complete"), first.describe()
    trigger = triggerer_builds(patch)
    assert (trigger.dag_id, trigger.states, trigger.run_ids, trigger.poll_interval) == (
        "other_dag",
        ["success", "failed"],
        ["deferred_run"],
        3.0,
    )
    classpath, data = trigger.serialize()
    event = (classpath, {**data, "deferred_run": final})  # what DagStateTrigger yields on Airflow 3
    api = FakeExecutionAPI(
        run_context={"next_method": "execute_complete", "next_kwargs": stored_next_kwargs(patch, event)}
    )
    run = supervised("triggers_deferrable", api)
    assert run.server_state == state, run.describe()
    if state == "failed":
        [error] = [
            d for r in run.log_records for d in r.get("error_detail") or [] if d["exc_type"] == "DagRunFailed"
        ]
        assert (
            error["exc_value"]
            == "other_dag failed with failed states ['failed'] for run_ids ['deferred_run']"
        )
