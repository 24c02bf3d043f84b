"""Self-tests of the harness: a tiny hand-written runtime driven by the REAL released supervisor."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk.coordinators._subprocess")
pytest.importorskip("msgpack")

from tests.harness import FakeExecutionAPI, HarnessTimeout, parse_dag_file, run_task

DEMO = str(Path(__file__).with_name("_demo_runtime.py"))


def demo(scenario: str) -> list[str]:
    return [sys.executable, DEMO, scenario]


def test_success_round_trip_with_get_variable():
    api = FakeExecutionAPI(variables={"my_var": "hello"})
    run = run_task(demo("succeed"), dag_id="demo_dag", task_id="demo_task", api=api)

    assert run.exit_code == 0, run.describe()
    assert run.final_state == "success"
    assert run.supervisor_errors == []
    api.assert_clean()  # every request body validated against the Execution API's own models

    # what the fake Execution API saw
    run_calls = api.calls_to("PATCH", f"/task-instances/{run.ti_id}/run")
    assert len(run_calls) == 1 and run_calls[0].json["state"] == "running"
    assert run_calls[0].json["pid"] == run.runtime_pid
    assert [c.path for c in run.calls if c.method == "GET"] == ["/variables/my_var"]
    assert len(run.state_updates) == 1
    assert run.state_updates[0]["state"] == "success"
    assert run.state_updates[0]["task_outlets"] == [] and run.state_updates[0]["outlet_events"] == []
    assert run.server_state == "success"

    # what the task log (the supervisor's own JSON task log) got from the runtime's logs socket
    (startup,) = run.find_logs("startup", logger="demo.runtime")
    assert startup["ti_id"] == run.ti_id and startup["task_id"] == "demo_task"
    assert startup["start_date_type"] == "datetime"  # msgpack Timestamp ext decoded with timestamp=3
    (got,) = run.find_logs("got variable")
    # the exact reply frame: [id, body, error], `type` last in the body
    assert got["reply"] == [0, {"key": "my_var", "value": "hello", "type": "VariableResult"}, None]
    assert got["level"] == "info" and got["timestamp"].endswith("Z")


def test_invalid_message_is_visible_in_supervisor_errors():
    run = run_task(demo("bad_succeed"), dag_id="demo_dag", task_id="demo_task")

    (err,) = [e for e in run.supervisor_errors if e["event"] == "Unable to decode message"]
    assert err["body"]["type"] == "SucceedTask" and err["body"]["bogus"] == 1
    assert "bogus" in str(err.get("exception"))
    # dropped message => no PATCH /state; the supervisor still thinks it is a success (exit 0)
    assert run.exit_code == 0 and run.final_state == "success"
    assert run.state_updates == []
    assert run.server_state == "running"


def test_masking_and_log_levels_as_the_peer_applies_them():
    api = FakeExecutionAPI(
        variables={"my_api_key": "k3y-value", "my_plain": "plainval"},
        connections={"db": {"conn_type": "postgres", "host": "dbhost", "password": "pa55word"}},
    )
    run = run_task(demo("mask"), dag_id="demo_dag", task_id="demo_task", api=api)
    assert run.final_state == "success", run.describe()
    (rec,) = run.find_logs(contains="the secret is")
    assert rec["event"] == "the secret is ***" and rec["secret"] == "***"  # MaskSecret
    (rec,) = run.find_logs(contains="values:")
    # sensitive-looking variable name and connection password are masked; the rest is not
    assert rec["event"] == "values: *** plainval *** dbhost"
    assert rec["var_reply"]["value"] == "***" and rec["conn_reply"]["password"] == "***"

    run = run_task(demo("levels"), dag_id="demo_dag", task_id="demo_task", logging_level="INFO")
    events = run.events()
    # the supervisor does no level filtering: the debug record is there even at INFO
    assert "a debug record" in events and "a critical record" in events
    assert "uppercase level" not in events  # level "INFO" (uppercase) is silently dropped
    (out,) = run.find_logs("hello on stdout")
    (err,) = run.find_logs("hello on stderr")
    assert (out["logger"], out["level"]) == ("task.stdout", "info")
    assert (err["logger"], err["level"]) == ("task.stderr", "error")


def test_sigterm_to_supervisor_is_forwarded_to_runtime():
    run = run_task(
        demo("wait"),
        dag_id="demo_dag",
        task_id="demo_task",
        signal_after=(signal.SIGTERM, 0.2),
        trigger_on_log="ready",
    )
    assert run.find_logs("received signal", signal="SIGTERM"), run.describe()
    assert any(r["event"] == "Received signal, forwarding to task subprocess" for r in run.supervisor_log)
    assert run.exit_code == 143 and run.final_state == "failed"
    assert run.state_updates[-1]["state"] == "failed"


def test_supervisor_killed_runtime_goes_away():
    run = run_task(
        demo("wait"),
        dag_id="demo_dag",
        task_id="demo_task",
        kill_supervisor_after=0.2,
        trigger_on_log="ready",
    )
    assert run.supervisor_killed and run.supervisor_exit_code == -signal.SIGKILL
    assert run.exit_code is None and run.final_state is None
    assert run.runtime_pid and run.runtime_survived_supervisor is False, run.describe()
    assert not run.runtime_alive()
    assert run.server_state == "running"  # nobody told the server


def test_supervisor_crash_is_reported():
    run = run_task(demo("crash_supervisor"), dag_id="demo_dag", task_id="demo_task")
    assert run.supervisor_exit_code == 3
    assert "KeyError: 'level'" in run.supervisor_exception
    assert run.supervisor_errors[-1]["logger"] == "pybundle.harness"
    assert run.runtime_survived_supervisor is False
    assert run.server_state == "running"


def test_hard_timeout_kills_everything(tmp_path):
    with pytest.raises(HarnessTimeout) as e:
        run_task(demo("hang"), dag_id="demo_dag", task_id="demo_task", timeout=6, workdir=tmp_path)
    run = e.value.run
    assert run.timed_out and "did not finish within 6" in str(e.value)
    assert not run.runtime_alive()


def test_dag_parse_path():
    run = parse_dag_file(demo("parse"))
    assert run.errors == [], run.describe()
    assert run.exit_code == 0 and run.got_result
    assert run.dag_ids == ["example_two"]
    assert run.serialized_dags[0]["dag"]["tasks"][0]["__var"]["task_id"] == "extract"
    loaded = run.loaded_dags["example_two"]
    assert loaded["downstream"] == {"extract": ["load"], "load": []}
    assert loaded["queues"] == {"extract": "py-rt", "load": "py-rt"}
    assert run.import_errors == {} and run.warnings == []
    assert run.find_logs("parsing", logger="demo.runtime")
