"""``bundle-run --conf``: the run's conf meets the DAG's params as a triggered run's does.

Real supervisor, real bundle processes (as ``tests/test_bundle_run.py``). The bundle
(``tests/bundles/data_passing_bundle.py``) declares ``n = Param(3, type="integer", minimum=1,
maximum=10)`` and ``label = "x"``; its ``load`` task returns ``ctx.params``.

* A valid conf overrides a param, keeps the others and adds undeclared keys (``ctx.params``), and is
  the run's ``dag_run.conf``.
* An invalid one is refused before anything runs, as Airflow 3.3.2's trigger endpoint refuses it
  (400, no run created): exit status 2, Airflow's own message (core validates it, on the DAG as
  core loaded it: ``params.deep_merge(conf).validate()``).
* Malformed JSON, or JSON that is not an object, is a usage error (exit 2) too.
* On the DAG and confs of ``tests/e2e/test_taskflow_equivalence.py``, bundle-run ends as the real
  deployment does (states, tries, XComs, the refused conf).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.test_bundle_run import ROOT, bundle_run

PARAMS = ROOT / "tests" / "bundles" / "data_passing_bundle.py"


def error_line(stderr: str) -> str:
    """The one ``error:`` line (progress lines may come before it on stderr)."""
    [line] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return line


def test_conf_overrides_a_param_and_reaches_ctx_params(tmp_path: Path) -> None:
    run = bundle_run(PARAMS, "--task", "load", "--conf", '{"n": 7, "extra": [1]}', tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    assert run.states() == {"extract": "success", "load": "success"}
    assert run.xcom("load")["params"] == {"n": 7, "label": "x", "extra": [1]}


def test_without_conf_the_params_defaults_apply(tmp_path: Path) -> None:
    run = bundle_run(PARAMS, "--task", "load", tmp_path=tmp_path)
    assert run.returncode == 0, run.describe()
    assert run.xcom("load")["params"] == {"n": 3, "label": "x"}


def test_an_invalid_conf_is_refused_before_any_run_with_airflows_message(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    run = bundle_run(PARAMS, "--task", "load", "--conf", '{"n": 11}', "--state", state, tmp_path=tmp_path)
    assert run.returncode == 2, run.describe()
    assert error_line(run.stderr) == (
        "error: --conf is not valid for the params of DAG 'dp_dag': "
        "Invalid input for param n: 11 is greater than the maximum of 10"
    ), run.stderr
    assert "Failed validating 'maximum'" in run.stderr  # jsonschema's detail, indented under it
    assert run.report is None  # nothing ran, so no report
    assert sqlite3.connect(state).execute("SELECT COUNT(*) FROM dag_runs").fetchone() == (0,)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("{not json", "Invalid value for '--conf': not JSON"),
        ("[1, 2]", "Invalid value for '--conf': must be a JSON object"),
        ('{"n": "seven"}', "Invalid input for param n: 'seven' is not of type 'integer'"),
    ],
)
def test_bad_conf_is_a_usage_error(tmp_path: Path, conf: str, message: str) -> None:
    run = bundle_run(PARAMS, "--task", "load", "--conf", conf, tmp_path=tmp_path, timeout=120)
    assert run.returncode == 2, run.describe()
    assert message in error_line(run.stderr), run.stderr


@pytest.mark.parametrize("conf_name", ["defaults", "override", "violation"])
def test_bundle_run_agrees_with_the_deployment_on_the_taskflow_dag(tmp_path: Path, conf_name: str) -> None:
    """The DAG and confs of tests/e2e/test_taskflow_equivalence.py, whose values its deployment
    checks (and its Python twin produces): bundle-run ends with the same states, tries and XComs, and
    refuses the conf the trigger endpoint refuses, with the same message."""
    from tests.e2e import test_taskflow_equivalence as deployed

    conf = deployed.CONFS[conf_name]
    args = ("--conf", json.dumps(conf)) if conf is not None else ()
    run = bundle_run(deployed.HERE / "bundles" / "taskflow.py", *args, tmp_path=tmp_path)
    if conf_name == "violation":
        assert run.returncode == 2 and run.report is None, run.describe()
        assert "Invalid input for param n: 11 is greater than the maximum of 10" in error_line(run.stderr)
        return
    assert run.returncode == 0, run.describe()
    tries = {task: (row["state"], row["tries"]) for task, row in run.report["tasks"].items()}
    assert tries == deployed.ALL_SUCCEEDED_FIRST_TRY
    xcoms = {(x["task_id"], x["key"]): x["value"] for x in run.report["xcoms"]}
    assert {key: xcoms[key] for key in deployed.XCOM_KEYS if key in xcoms} == deployed.EXPECTED_XCOMS[
        conf_name
    ]
