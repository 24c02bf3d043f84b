"""Hardening: secrets never reach the task log unmasked, asserted through the RELEASED supervisor.

One task (``leaks`` in the hardening bundle) puts a connection password and a sensitive variable
into every place a task can: log arguments, f-strings, extra fields (nested, and as a key),
``print`` to stdout and stderr, ``warnings``, a handled exception chain with notes, and finally an
unhandled exception whose text becomes the retry reason. The assertions read the task log the
supervisor itself wrote, and the Execution API calls it made.
"""

from __future__ import annotations

import json

from tests.harness.execution_api import FakeExecutionAPI
from tests.harness.supervised import run_task

from .test_hardening_coordinator_peers import DAG, RUN, command, hardening_bundle

__all__ = ["hardening_bundle"]  # the session fixture, re-exported for pytest

PASSWORD = "Hunter2-pw-Zq9"
TOKEN = "tok-Secret-77x"


def test_no_secret_reaches_the_task_log_or_the_api_unmasked(hardening_bundle):
    api = FakeExecutionAPI(
        variables={"api_secret": TOKEN},
        connections={
            "db": {
                "conn_type": "postgres",
                "host": "db.internal",
                "login": "etl",
                "password": PASSWORD,
                "extra": json.dumps({"sslmode": "require", "client_secret": PASSWORD}),
            }
        },
        max_tries=2,
        should_retry=True,
    )
    run = run_task(command(hardening_bundle), dag_id=DAG, task_id="leaks", run_id=RUN, api=api)
    assert run.final_state == "up_for_retry", run.describe()

    # 1. Nothing anywhere in the task log, whatever the path the text took.
    text = json.dumps(run.log_records)
    assert PASSWORD not in text and TOKEN not in text, [
        r for r in run.log_records if PASSWORD in json.dumps(r) or TOKEN in json.dumps(r)
    ]

    # 2. ... and every path was really taken (masked, not missing).
    def one(contains: str, **fields):
        found = run.find_logs(contains=contains, **fields)
        assert found, f"no task-log record containing {contains!r}:\n{run.describe(60)}"
        return found[0]

    assert one("message args").get("event") == "message args *** and ***"
    assert one("f-string").get("event") == "f-string *** ***"
    extras = one("extras")
    assert extras["pw"] == "***" and extras["nested"] == {"items": ["***", {"deep": "***"}]}
    assert extras["pair"] == ["***", 1]
    assert one("connection repr")["event"].count("***") >= 1  # extra_dejson's client_secret
    assert one("extra key").get("k_***") == 1
    named = one("fields the supervisor passes on by name")  # ``self``/``method_name`` used to crash it
    assert (named["extra_self"], named["extra_method_name"]) == ("***", "***")
    assert one("stdout print", logger="task.stdout")["event"] == "stdout print *** ***"
    assert one("stderr print", logger="task.stderr")["event"] == "stderr print *** ***"
    assert one("warning ***")
    handled = one("handled ***")
    outer, cause = handled["error_detail"]
    assert (outer["exc_value"], outer["exc_notes"], cause["exc_value"]) == (
        "outer ***",
        ["note ***"],
        "'***'",
    )
    [failed] = run.find_logs(contains="Task failed with exception")
    assert failed["error_detail"][0]["exc_value"] == "final *** ***"

    # 3. The retry reason goes to the Execution API, not through the supervisor's log masking.
    [retry] = [u for u in run.state_updates if u.get("state") == "up_for_retry"]
    assert retry["retry_reason"] == "ValueError: final *** ***"
    api_text = json.dumps([c.json for c in run.calls if c.method in ("PATCH", "POST", "PUT")], default=str)
    assert PASSWORD not in api_text and TOKEN not in api_text

    # 4. The supervisor's own log (not shown in the UI, but kept by workers) is clean too.
    assert PASSWORD not in json.dumps(run.supervisor_log) and TOKEN not in json.dumps(run.supervisor_log)
