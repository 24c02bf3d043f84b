"""Task callbacks (``on_*_callback``): where they run, what they get, what they may not do.

Coordinator mode under the released supervisor (tests/harness, the fake Execution API validating
every call with core's models); ``bundle-run`` as the installed console script; registration and
serialization in process, beside core's ``DagSerialization.to_dict`` of the same Python DAG.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from bundle import Bundle, Context, RegistrationError
from bundle.introspection.serialization import serialize_dag
from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task
from tests.serialization_compare import assert_equivalent

BUNDLE = Path(__file__).parent / "bundles" / "callbacks_bundle.py"
COMMAND = [sys.executable, "-m", "bundle", "--bundle", str(BUNDLE)]
DAG = "callbacks_dag"


def supervised(task_id: str, *, max_tries: int = 0, env: dict[str, str] | None = None):
    api = FakeExecutionAPI(variables={"cb_seen": "from-airflow", "task_var": "t"}, max_tries=max_tries)
    run = run_task(COMMAND, dag_id=DAG, task_id=task_id, api=api, env=env, timeout=90)
    assert run.api.problems() == [], run.describe()
    assert run.supervisor_errors == [], run.describe()
    return run


def callback_lines(run) -> list[str]:
    return [e for e in run.events(logger="callback_tests") if e.startswith("callback ")]


def call_index(run, method: str, path: str, **json_fields) -> list[int]:
    """Positions (in this run's call order) of the calls matching method, path and body fields."""
    return [
        i
        for i, call in enumerate(run.calls)
        if call.method == method
        and call.path == path
        and all((call.json or {}).get(k) == v for k, v in json_fields.items())
    ]


def state_calls(run) -> list[int]:
    return [i for i, c in enumerate(run.calls) if c.method == "PATCH" and c.path.endswith("/state")]


# -- under the released supervisor --------------------------------------------------------------------
def test_execute_runs_before_the_task_and_success_callbacks_after_the_terminal_message():
    run = supervised("succeeds")
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    assert callback_lines(run) == [
        "callback on_execute_callback task=succeeds try=1 exception=None var=from-airflow",
        "callback on_success_callback task=succeeds try=1 exception=None var=from-airflow",
    ]
    callback_reads = call_index(run, "GET", "/variables/cb_seen")
    [task_read] = call_index(run, "GET", "/variables/task_var")
    [success] = state_calls(run)
    # on_execute reads before the task does; on_success reads after SucceedTask reached the API.
    assert callback_reads[0] < task_read < success < callback_reads[1], run.calls
    # The first success callback raised: logged with its traceback; the next one still ran.
    [broken] = run.find_logs(contains="Failed to run task callback on_success_callback[0] raises")
    assert broken["level"] == "error"
    assert [d["exc_type"] for d in broken["error_detail"]] == ["ValueError"]
    assert run.api.xcom(DAG, "manual__2026-01-01", "succeeds", "return_value") == "ok"


@pytest.mark.parametrize(
    ("max_tries", "state", "expected"),
    [
        (
            1,
            "up_for_retry",
            [
                "callback on_retry_callback task=fails try=1 exception=RuntimeError('task broke') var=from-airflow",
                "callback second on_retry_callback",
            ],
        ),
        (
            0,
            "failed",
            [
                "callback on_failure_callback task=fails try=1 exception=RuntimeError('task broke') var=from-airflow"
            ],
        ),
    ],
)
def test_default_args_failure_and_retry_callbacks_get_the_exception(max_tries, state, expected):
    run = supervised("fails", max_tries=max_tries)
    assert (run.exit_code, run.final_state, run.server_state) == (0, state, state), run.describe()
    events = run.events(logger="callback_tests")
    assert [e for e in events if e.startswith("callback ")] == expected
    if state == "up_for_retry":  # RetryTask goes to the API at once: the callback's read comes later
        [retry] = state_calls(run)
        [read] = call_index(run, "GET", "/variables/cb_seen")
        assert retry < read, run.calls


def test_a_callback_gets_request_not_allowed_for_writes_lifecycle_and_orchestration():
    run = supervised("fails_hard")
    assert (run.exit_code, run.final_state, run.server_state) == (0, "failed", "failed"), run.describe()
    refused = [e for e in run.events(logger="callback_tests") if e.startswith(("refused", "allowed"))]
    assert refused == [
        "refused set_variable: PutVariable|write|callback",
        "refused push_xcom: SetXCom|write|callback",
        "refused succeed: TaskState|task lifecycle|callback",
        "refused trigger: TriggerDagRun|orchestration|callback",
    ]
    # Nothing of it reached the supervisor, and the next callback still ran with the task's error.
    assert not [c for c in run.calls if c.method in ("PUT", "POST") and "/variables" in c.path + "/dag-runs"]
    assert "cb_written" not in run.api.variables
    assert callback_lines(run) == [
        "callback on_failure_callback task=fails_hard try=1 exception=FailTask('no retry') var=from-airflow"
    ]
    assert [u["state"] for u in run.state_updates] == ["failed"]


def test_an_on_execute_callback_that_breaks_the_rules_does_not_change_the_task():
    run = supervised("guarded")
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    assert run.api.xcom(DAG, "manual__2026-01-01", "guarded", "task_key") == "task value"  # the task may
    assert [key[3] for key in run.api.xcoms] == ["task_key"]  # its callbacks may not: no cb_key
    assert not [c for c in run.calls if c.path.endswith("/cb_key")]
    assert len(run.find_logs(contains="Failed to run task callback on_execute_callback[0] writes")) == 1
    assert len(run.find_logs(contains="Failed to run task callback on_success_callback[0] writes")) == 1


def test_skipped_callbacks_from_the_task_and_from_a_task_groups_default_args():
    run = supervised("skips")
    assert (run.final_state, run.server_state) == ("skipped", "skipped"), run.describe()
    assert callback_lines(run) == [
        "callback on_skipped_callback task=skips try=1 exception=None var=from-airflow"
    ]
    grouped = supervised("grp.grouped")
    assert (grouped.final_state, grouped.server_state) == ("skipped", "skipped"), grouped.describe()
    assert callback_lines(grouped) == ["callback second on_skipped_callback"]


def test_a_hanging_callback_is_cut_off_within_the_bound_and_the_state_stands():
    started = time.monotonic()
    run = supervised("hangs_after", env={"PYBUNDLE_CALLBACK_TIMEOUT_SECONDS": "2"})
    elapsed = time.monotonic() - started
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    [cut] = run.find_logs(contains="Task callback on_success_callback[0] hangs did not finish within 2.0 s")
    assert cut["level"] == "error"
    assert "time.sleep(120)" in cut["event"]  # where it hung
    assert "threading.py" not in cut["event"]  # the stack starts at the callback
    assert callback_lines(run) == [
        "callback hangs starts",
        "callback on_success_callback task=hangs_after try=1 exception=None var=from-airflow",
    ]
    [start] = run.find_logs("callback hangs starts")
    waited = (_when(cut) - _when(start)).total_seconds()
    assert 1.9 <= waited < 5, (start, cut)
    assert elapsed < 45, run.describe()  # the 120 s sleep did not hold the process


def test_a_callback_past_the_supervisors_overtime_keeps_the_reported_state():
    """The supervisor stops a process still running task_success_overtime after its terminal
    message (SIGTERM); the runtime then exits 0, so the state it reported stands (an exit code
    other than 0 would make the supervisor finish the task instance as failed)."""
    env = {"PYBUNDLE_CALLBACK_TIMEOUT_SECONDS": "60", "AIRFLOW__CORE__TASK_SUCCESS_OVERTIME": "2"}
    run = supervised("hangs_after", env=env)
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    assert [u["state"] for u in run.state_updates] == ["success"]
    assert run.duration < 40, run.describe()


def _when(record: dict) -> datetime:
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))


# -- bundle-run -----------------------------------------------------------------------------------------
def test_bundle_run_runs_task_callbacks(tmp_path: Path):
    from tests.test_bundle_run import bundle_run

    run = bundle_run(BUNDLE, "--dag", "callbacks_local", "--vars", _vars(tmp_path), tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    assert run.states() == {"flaky": "success"}
    logged = [
        [r.get("event") for r in attempt["log"] if str(r.get("event", "")).startswith("callback ")]
        for attempt in run.tries("flaky")
    ]
    assert logged == [
        [
            "callback second on_execute_callback",
            "callback on_retry_callback task=flaky try=1 exception=RuntimeError('first try fails') var=local",
        ],
        [
            "callback second on_execute_callback",
            "callback on_success_callback task=flaky try=2 exception=None var=local",
        ],
    ]


def _vars(tmp_path: Path) -> Path:
    path = tmp_path / "vars.yaml"
    path.write_text("cb_seen: local\n")
    return path


# -- authoring and serialization --------------------------------------------------------------------------
def _noop() -> None: ...


def _cb(ctx: Context) -> None: ...


def test_serialization_is_cores_has_on_callback_flags():
    from airflow.sdk import DAG
    from airflow.sdk.definitions.taskgroup import TaskGroup
    from airflow.serialization.serialized_objects import DagSerialization

    from tests.test_serialization import Noop

    bundle = Bundle("cb")
    dag = bundle.dag("d", default_args={"on_failure_callback": _cb, "retries": 1})
    dag.add_task_with_name("a", _noop, on_retry_callback=[_cb, _cb], on_execute_callback=_cb)
    with dag.task_group("g", default_args={"on_skipped_callback": _cb}):
        dag.add_task_with_name("b", _noop, on_success_callback=[])
    ours = serialize_dag(dag, fileloc="")
    DagSerialization.validate_schema(ours)

    def cb(context):  # Airflow's callbacks take the context dict
        pass

    with DAG("d", schedule=None, default_args={"on_failure_callback": cb, "retries": 1}) as python:
        Noop(task_id="a", on_retry_callback=[cb, cb], on_execute_callback=cb)
        with TaskGroup("g", default_args={"on_skipped_callback": cb}):
            Noop(task_id="b", on_success_callback=[])
    assert_equivalent(ours, DagSerialization.to_dict(python))
    tasks = {t["__var"]["task_id"]: t["__var"] for t in ours["dag"]["tasks"]}
    assert {k for k in tasks["a"] if k.startswith("has_on")} == {
        "has_on_execute_callback",
        "has_on_retry_callback",
        "has_on_failure_callback",
    }
    assert {k for k in tasks["g.b"] if k.startswith("has_on")} == {
        "has_on_failure_callback",
        "has_on_skipped_callback",
    }


def test_the_generated_dag_file_gives_the_stubs_no_callbacks(tmp_path: Path):
    out = tmp_path / "callbacks_dags.py"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "bundle-pack"), "dag-file", str(BUNDLE), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    source = out.read_text()
    assert "_callback" not in source, source  # no on_*_callback, no has_on_*_callback
    from tests.test_dagfile import import_with_dagbag

    # What the scheduler reads: no flags, so it never asks the DAG processor to run a stub callback.
    imported = import_with_dagbag(out)[DAG]["dag"]
    assert "has_on_" not in repr(imported), imported
    assert [t["__var"]["task_id"] for t in imported["tasks"]][:2] == ["succeeds", "fails"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_failure_callback": "notify"}, "invalid on_failure_callback: expected a callable"),
        ({"on_retry_callback": [_cb, 3]}, "invalid on_retry_callback: expected a callable"),
        (
            {"on_success_callback": lambda context: None},
            "invalid on_success_callback: callback <lambda>: parameter 'context' cannot be given: "
            "annotate it Context, Client or logging.Logger, name it 'exception', or give it a default",
        ),
    ],
)
def test_bad_callbacks_fail_at_import_naming_task_and_option(options, message):
    dag = Bundle("cb").dag("d")
    with pytest.raises(RegistrationError, match=re.escape("task 'd.t': " + message)):
        dag.add_task_with_name("t", _noop, **options)
    with pytest.raises(RegistrationError, match=re.escape("dag 'd.default_args': " + message)):
        Bundle("cb").dag("d", default_args=options)


def test_a_plain_task_does_not_load_the_callbacks_module():
    probe = (
        "import sys\nfrom bundle import Bundle\nfrom bundle.testing import run_task\n"
        "b = Bundle('b')\nb.dag('d').add_task_with_name('t', lambda: None)\n"
        "assert run_task(b, 'd', 't').state == 'success'\n"
        "print([m for m in ('bundle.core.callbacks', 'bundle.core.confinement') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("kind", ["on_success_callback", "on_failure_callback"])
def test_dag_level_callbacks_are_accepted_and_checked_at_import(kind):
    # Run by the bundle from the DAG processor (tests/test_dag_callbacks.py); checked like task ones.
    assert Bundle("cb").dag("d", **{kind: [_cb, _cb]}).options[kind] == (_cb, _cb)
    with pytest.raises(RegistrationError, match=f"dag 'd': invalid {kind}: expected a callable"):
        Bundle("cb").dag("d", **{kind: "notify"})
    assert Bundle("cb").dag("d", **{kind: None}).options[kind] is None  # Airflow's default


# -- go-plugin mode (a real plugin process, a Python host, a real HTTP Execution API) -------------------
@pytest.mark.parametrize(
    ("max_tries", "state", "kind"), [(0, "failed", "failure"), (1, "up_for_retry", "retry")]
)
def test_go_plugin_mode_runs_callbacks_after_the_state_update(tmp_path: Path, max_tries, state, kind):
    pytest.importorskip("grpc")
    from tests.plugin_host import ExecutionApiServer, bundle_command, execute_request, iter_json_lines
    from tests.test_plugin_execute import run as run_plugin

    run_id = "manual__2026-01-01T00:00:00+00:00"
    api = FakeExecutionAPI(variables={"cb_seen": "from-api"}, max_tries=max_tries)
    ti = api.add_task_instance(dag_id=DAG, run_id=run_id, task_id="fails", state="queued")
    log_path = f"dag_id={DAG}/run_id={run_id}/task_id=fails/attempt=1.log"
    with ExecutionApiServer(api) as server:
        home = tmp_path / "home"
        home.mkdir()
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__EXECUTION_API_URL": server.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
        }
        request = execute_request(
            ti_id=ti,
            dag_id=DAG,
            run_id=run_id,
            task_id="fails",
            bundle_name="callback_tests",
            log_path=log_path,
            token=TOKEN,
        )
        _, error, _ = run_plugin(env, request, argv=bundle_command(BUNDLE))
    assert error is None
    api.assert_clean()
    assert api.ti_state(ti) == state
    events = [str(r.get("event")) for r in iter_json_lines(tmp_path / "logs" / log_path)]
    assert (
        f"callback on_{kind}_callback task=fails try=1 exception=RuntimeError('task broke') var=from-api"
        in events
    )
    paths = [(c.method, c.path) for c in api.calls if not c.path.endswith("/heartbeat")]
    assert paths.index(("PATCH", f"/task-instances/{ti}/state")) < paths.index(("GET", "/variables/cb_seen"))


# -- least privilege that holds: a callback runs in a process of its own behind a proxy ---------------
def test_a_callback_cannot_get_write_access_back_by_any_route():
    """Under the released supervisor: the public ``restricted(TASK)``, the private ``_transport``,
    the runtime's client found in memory and raw writes to every inherited descriptor are all
    refused, nothing is written, and the callback's read and log line still work."""
    run = supervised("escalates")
    assert (run.exit_code, run.final_state, run.server_state) == (0, "success", "success"), run.describe()
    escapes = dict(
        e.removeprefix("escape ").split(": ", 1)
        for e in run.events(logger="callback_tests")
        if e.startswith("escape ") and ": " in e
    )
    refused = "refused {}|write|callback"
    assert escapes.pop("restricted-set_variable") == refused.format("PutVariable"), escapes
    assert escapes.pop("restricted-push_xcom") == refused.format("SetXCom"), escapes
    assert escapes.pop("transport-PutVariable") == refused.format("PutVariable"), escapes
    assert escapes.pop("transport-SetXCom") == refused.format("SetXCom"), escapes
    memory = [k for k in escapes if k.startswith("memory-client-")]
    assert memory, escapes  # the runtime's own client is in the child's memory: it is no way out
    for route in memory:
        assert escapes.pop(route).startswith("failed "), (route, escapes)
    # Descriptors: 0-2, one socket (to the proxy), every other inherited number /dev/null.
    descriptors = dict(item.split("=", 1) for item in escapes.pop("descriptors").split())
    others = {int(fd): kind for fd, kind in descriptors.items() if int(fd) > 2}
    assert list(others.values()).count("socket") == 1, descriptors
    assert {kind for kind in others.values() if kind != "socket"} <= {"/dev/null"}, descriptors
    raw = {k: escapes.pop(k) for k in list(escapes) if k.startswith("raw-fd-")}
    assert raw and set(raw.values()) == {"failed OSError"}, raw
    # The supervisor accepts one comm connection, at start: a new one is never read.
    assert escapes.pop("redial-comm").startswith("failed "), escapes
    # Nothing reached Airflow but the read.
    assert not [c for c in run.calls if c.method in ("PUT", "POST", "DELETE") and "/variables" in c.path]
    assert not [c for c in run.calls if "/xcoms/" in c.path and c.method in ("POST", "PUT")][1:], run.calls
    assert set(run.api.variables) == {"cb_seen", "task_var"}
    assert [key[3] for key in run.api.xcoms] == ["return_value"]
    assert "callback escalate read var=from-airflow" in run.events(logger="callback_tests")
    assert call_index(run, "GET", "/variables/cb_seen")
    # The OS routes to the runtime (parent) and the supervisor (grandparent): Landlock.
    assert_ancestors_out_of_reach(escapes)
    assert not [e for e in run.events() if "Confinement of" in e], run.events()


def assert_ancestors_out_of_reach(escapes: dict[str, str]) -> None:
    """A callback cannot copy its ancestors' descriptors, read their memory or (Landlock ABI 6+)
    signal them; it still writes files, connects over TCP and runs programs."""
    from bundle.core import landlock

    assert int(escapes.pop("parent-fd-count")) > 3, escapes
    for who in ("parent", "grandparent"):
        assert escapes.pop(f"pidfd_getfd-{who}") == "failed PermissionError", (who, escapes)
        assert escapes.pop(f"proc-mem-{who}") == "failed PermissionError", (who, escapes)
        assert escapes.pop(f"process_vm_readv-{who}") == "failed PermissionError", (who, escapes)
        signalled = "failed PermissionError" if landlock.abi() >= 6 else "ALLOWED"
        assert escapes.pop(f"signal-{who}") == signalled, (who, escapes)
        assert escapes.pop(f"sigcont-{who}") == signalled, (who, escapes)
    for work in ("files", "tcp", "program"):
        assert escapes.pop(f"ordinary-{work}") == "ALLOWED", escapes


TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.workload-token-for-the-memory-route.c2lnbmF0dXJl"


def test_go_plugin_mode_confines_callbacks_too(tmp_path: Path):
    """go-plugin mode runs the same callbacks behind the same proxy: ``restricted(TASK)``, the
    private ``_transport`` and raw writes to every inherited descriptor are refused, nothing is
    written, and the callback's read still reaches the Execution API. The callback's process is
    forked from the zygote, which never held the task's Execution API token: no runtime client and
    no copy of the token is in its memory, and Landlock keeps it out of the plugin's."""
    pytest.importorskip("grpc")
    from tests.plugin_host import ExecutionApiServer, bundle_command, execute_request, iter_json_lines
    from tests.test_plugin_execute import run as run_plugin

    run_id = "manual__2026-01-01T00:00:00+00:00"
    api = FakeExecutionAPI(variables={"cb_seen": "from-api"})
    ti = api.add_task_instance(dag_id=DAG, run_id=run_id, task_id="escalates", state="queued")
    log_path = f"dag_id={DAG}/run_id={run_id}/task_id=escalates/attempt=1.log"
    with ExecutionApiServer(api) as server:
        home = tmp_path / "home"
        home.mkdir()
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__EXECUTION_API_URL": server.url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
            # The callback looks for the token in its memory; it must never see it whole.
            "CALLBACK_TESTS_TOKEN_HALVES": f"{TOKEN[:20]}|{TOKEN[20:]}",
        }
        request = execute_request(
            ti_id=ti,
            dag_id=DAG,
            run_id=run_id,
            task_id="escalates",
            bundle_name="callback_tests",
            log_path=log_path,
            token=TOKEN,
        )
        _, error, _ = run_plugin(env, request, argv=bundle_command(BUNDLE))
    assert error is None
    assert api.ti_state(ti) == "success"
    events = [str(r.get("event")) for r in iter_json_lines(tmp_path / "logs" / log_path)]
    escapes = dict(
        e.removeprefix("escape ").split(": ", 1) for e in events if e.startswith("escape ") and ": " in e
    )
    refused = "refused {}|write|callback"
    assert escapes.pop("restricted-set_variable") == refused.format("PutVariable"), escapes
    assert escapes.pop("restricted-push_xcom") == refused.format("SetXCom"), escapes
    assert escapes.pop("transport-PutVariable") == refused.format("PutVariable"), escapes
    assert escapes.pop("transport-SetXCom") == refused.format("SetXCom"), escapes
    descriptors = dict(item.split("=", 1) for item in escapes.pop("descriptors").split())
    others = [kind for fd, kind in descriptors.items() if int(fd) > 2]
    assert others.count("socket") == 1 and set(others) == {"socket", "/dev/null"}, descriptors
    raw = {k: escapes.pop(k) for k in list(escapes) if k.startswith("raw-fd-")}
    assert raw and set(raw.values()) == {"failed OSError"}, raw
    assert not [c for c in api.calls if c.method == "PUT" and c.path.startswith("/variables/")], api.calls
    xcom_writes = [c.path for c in api.calls if c.method == "POST" and c.path.startswith("/xcoms/")]
    assert xcom_writes == [f"/xcoms/{DAG}/{run_id}/escalates/return_value"], xcom_writes  # the task's own
    assert "callback escalate read var=from-api" in events, events
    # The process the callback runs in was forked from one that never held the token.
    assert "escape found 0 runtime client(s) in memory" in events, events
    assert escapes.pop("token-in-objects") == "absent", escapes
    assert escapes.pop("token-in-memory") == "absent", escapes
    # Nor can it reach into the zygote (parent) or the plugin (grandparent), which holds it.
    assert_ancestors_out_of_reach(escapes)
    paths = [(c.method, c.path) for c in api.calls]
    assert paths.index(("PATCH", f"/task-instances/{ti}/state")) < paths.index(("GET", "/variables/cb_seen"))
