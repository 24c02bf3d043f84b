"""DAG-level callbacks: serialized as core does, written into the DAG file as a callable that runs
the bundle, run by the released DAG processor's own ``_execute_dag_callbacks`` against a packed
bundle found through an ``ExecutableCoordinator`` config (tests/e2e/test_dag_callbacks.py does it in
a real deployment).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import structlog
from airflow.api_fastapi.execution_api.datamodels.taskinstance import DagRun, TaskInstance
from airflow.callbacks.callback_requests import DagCallbackRequest, DagRunContext
from airflow.dag_processing.dagbag import DagBag
from airflow.dag_processing.processor import _execute_dag_callbacks
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Bundle, Context, RegistrationError, RequestNotAllowed
from bundle.core.dag_callbacks import DAG_CALLBACK_ACCESS, context_from_request, environment_client

from .serialization_compare import loaded_view
from .test_dagfile import RUFF, assert_same_dags, generated, import_with_dagbag
from .test_serialization import Case, assert_equivalent, ours_and_python

ROOT = Path(__file__).resolve().parent.parent
E2E_BUNDLE = ROOT / "tests" / "e2e" / "bundles" / "dag_callbacks.py"
MARKER_LOGGER = "pybundle.dag_callback"


def notify(ctx: Context) -> None:
    """Any callable works for Airflow; pybundle injects by annotation."""


CASES = [
    Case("dag_on_success", dag={"on_success_callback": notify}),
    Case("dag_on_failure_list", dag={"on_failure_callback": [notify, notify]}),
    Case("dag_both", dag={"on_success_callback": notify, "on_failure_callback": [notify]}, queue="py"),
]


@pytest.fixture(autouse=True)
def configured_executors(monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.executors import executor_loader

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    executor_loader._executor_names.clear()
    yield
    executor_loader._executor_names.clear()


# -- what the scheduler sees ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_serialized_like_core(case: Case) -> None:
    ours, python = ours_and_python(case)
    assert {k for k in ours["dag"] if k.startswith("has_on_")} == {f"has_{k}" for k in case.dag}
    DagSerialization.validate_schema(ours)
    assert_equivalent(ours, python)
    assert loaded_view(ours) == loaded_view(python)
    loaded = DagSerialization.from_dict(json.loads(json.dumps(ours)))
    assert loaded.has_on_success_callback == ("on_success_callback" in case.dag)
    assert loaded.has_on_failure_callback == ("on_failure_callback" in case.dag)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_dag_file_round_trip(case: Case, tmp_path: Path) -> None:
    from .test_serialization import build_bundle

    path, document = generated(build_bundle(case), tmp_path)
    assert_same_dags(document, import_with_dagbag(path))
    text = path.read_text()
    for kind in case.dag:
        count = len(case.dag[kind]) if isinstance(case.dag[kind], list) else 1
        call = f'{kind}=_bundle_dag_callback("{case.dag_id}","{kind}",{count}'  # flat or exploded
        assert call in "".join(text.split())
    assert text.count("def _bundle_dag_callback(") == 1
    formatted = subprocess.run([RUFF, "format", "--diff", str(path)], capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_a_dag_without_callbacks_gets_no_helper(tmp_path: Path) -> None:
    bundle = Bundle("plain")
    bundle.dag("plain", on_success_callback=None).add_task_with_name("t", lambda: None)
    path, _ = generated(bundle, tmp_path)
    assert "_bundle_dag_callback" not in path.read_text()


# -- the client and context a DAG callback gets ---------------------------------------------------


def test_the_client_reads_the_environment_and_refuses_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    context = context_from_request({"dag_id": "d", "callback": "on_failure_callback", "run_id": "r"})
    client = environment_client(context.ti)
    monkeypatch.setenv("AIRFLOW_VAR_COLOUR", "blue")
    monkeypatch.setenv("AIRFLOW_CONN_PAGER", "https://user:s3cret@pager.example:443")
    assert client.get_variable("colour") == "blue"
    assert client.get_connection("pager").host == "pager.example"
    client.mask_secret("hide-me")  # logging: allowed, applied locally
    for call in (
        lambda: client.get_variable("not_in_env", default="x"),
        lambda: client.get_connection("not_in_env"),
        lambda: client.get_xcom("t"),
        lambda: client.set_variable("k", "v"),
        lambda: client.push_xcom("k", 1),
    ):
        with pytest.raises(RequestNotAllowed, match="which a DAG callback may not send") as caught:
            call()
        assert caught.value.workload == DAG_CALLBACK_ACCESS.name


# -- the generated callable, run by the released DAG processor code against a packed bundle ---------


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The e2e bundle packed into an executables_root, and its generated DAG file."""
    root = tmp_path_factory.mktemp("dag-callbacks")
    executables = root / "executable-bundles"
    executables.mkdir()
    executable = executables / "dag_callbacks"
    for argv in (
        [str(E2E_BUNDLE), "--format", "executable", "--output", str(executable)],
        ["dag-file", str(E2E_BUNDLE), "--output", str(root / "dag_callbacks.py")],
    ):
        subprocess.run([sys.executable, "-m", "packer", *argv], check=True, capture_output=True, timeout=300)
    executable.chmod(0o755)
    return {"root": executables, "dag_file": root / "dag_callbacks.py"}


def _configure(monkeypatch: pytest.MonkeyPatch, executables_root: Path) -> None:
    coordinators = {
        "pybundle": {
            "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
            "kwargs": {"executables_root": [str(executables_root)]},
        }
    }
    monkeypatch.setenv("AIRFLOW__SDK__COORDINATORS", json.dumps(coordinators))


def _request(dag_id: str, *, failure: bool, conf: dict[str, Any]) -> DagCallbackRequest:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    run = DagRun(
        dag_id=dag_id,
        run_id="manual__1",
        logical_date=now,
        data_interval_start=now,
        data_interval_end=now,
        run_after=now,
        start_date=now,
        end_date=now,
        run_type="manual",
        state="failed" if failure else "success",
        conf=conf,
        consumed_asset_events=[],
        partition_key=None,
    )
    task_id = "explode" if failure else "fine"
    ti = TaskInstance(
        id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag_id,
        run_id="manual__1",
        try_number=1,
        dag_version_id=uuid.uuid4(),
    )
    return DagCallbackRequest(
        filepath="dag_callbacks.py",
        dag_id=dag_id,
        run_id="manual__1",
        bundle_name="dags-folder",
        bundle_version=None,
        context_from_server=DagRunContext(dag_run=run, last_ti=ti),
        is_failure_callback=failure,
        msg="task_failure" if failure else "success",
    )


def _run_in_dag_processor(dag_file: Path, request: DagCallbackRequest, caplog: Any) -> list[str]:
    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}, bag.import_errors
    with caplog.at_level(logging.INFO, logger=MARKER_LOGGER):
        _execute_dag_callbacks(bag, request, structlog.get_logger())
    return [r.getMessage() for r in caplog.records if r.name == MARKER_LOGGER]


def test_the_dag_processor_runs_the_bundles_failure_callback(
    deployed: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    _configure(monkeypatch, deployed["root"])
    monkeypatch.setenv("AIRFLOW_VAR_DAG_CALLBACK_MARKER", "from-env")
    request = _request("dag_callbacks_failing", failure=True, conf={"why": "unit"})
    lines = _run_in_dag_processor(deployed["dag_file"], request, caplog)
    assert (
        "dag_callbacks: DAG-CALLBACK-MARKER on_failure_callback dag=dag_callbacks_failing run=manual__1 "
        "reason=task_failure state=failed ti=explode conf={'why': 'unit'} var=from-env; "
        "PutVariable (write) refused for a DAG callback"
    ) in lines, lines
    assert any("finished in" in line for line in lines), lines


def test_the_dag_processor_runs_the_bundles_success_callback(
    deployed: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    _configure(monkeypatch, deployed["root"])
    monkeypatch.delenv("AIRFLOW_VAR_DAG_CALLBACK_MARKER", raising=False)
    request = _request("dag_callbacks_passing", failure=False, conf={})
    lines = _run_in_dag_processor(deployed["dag_file"], request, caplog)
    assert (
        "dag_callbacks: DAG-CALLBACK-MARKER on_success_callback dag=dag_callbacks_passing run=manual__1 "
        "reason=success state=success ti=fine conf={} var=GetVariable refused; "
        "PutVariable (write) refused for a DAG callback"
    ) in lines, lines


def test_a_missing_executable_is_logged_not_raised(
    deployed: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: Any, tmp_path: Path
) -> None:
    _configure(monkeypatch, tmp_path)  # an empty executables_root
    request = _request("dag_callbacks_failing", failure=True, conf={})
    lines = _run_in_dag_processor(deployed["dag_file"], request, caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Cannot run the bundle for dag dag_callbacks_failing on_failure_callback: ")
    assert "cannot find executable bundle containing dag_id='dag_callbacks_failing'" in lines[0]


HANGING_BUNDLE = """
import os, time
from bundle import Bundle, Context, serve

bundle = Bundle("hangs", version="1", queue="python-bundle")


def stuck(ctx: Context) -> None:
    time.sleep(120)


def broken(ctx: Context) -> None:
    raise ValueError("the alert failed")


def after(ctx: Context) -> None:
    import logging
    logging.getLogger("hangs").info("AFTER-MARKER %s", ctx.reason)


bundle.dag("hangs_dag", on_failure_callback=[stuck, broken, after]).add_task_with_name("t", lambda: None)
if os.environ.get("PYBUNDLE_DAG_CALLBACK") and os.environ.get("HANG_AT_IMPORT"):
    time.sleep(120)

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
"""


def test_a_hanging_or_failing_callback_is_bounded_and_the_next_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    source = tmp_path / "hangs.py"
    source.write_text(HANGING_BUNDLE)
    root = tmp_path / "root"
    root.mkdir()
    executable = root / "hangs"
    for argv in (
        [str(source), "--format", "executable", "--output", str(executable)],
        ["dag-file", str(source), "--output", str(tmp_path / "hangs_dag.py")],
    ):
        subprocess.run([sys.executable, "-m", "packer", *argv], check=True, capture_output=True, timeout=300)
    executable.chmod(0o755)
    _configure(monkeypatch, root)
    monkeypatch.setenv("PYBUNDLE_CALLBACK_TIMEOUT_SECONDS", "1")
    request = _request("hangs_dag", failure=True, conf={})
    request.context_from_server = None  # Airflow's minimal context: dag, run_id, reason
    started = time.monotonic()
    lines = _run_in_dag_processor(tmp_path / "hangs_dag.py", request, caplog)
    assert time.monotonic() - started < 10, lines
    text = "\n".join(lines)
    assert "did not finish within 1.0 s (PYBUNDLE_CALLBACK_TIMEOUT_SECONDS); abandoned it" in text, text
    assert "in stuck" in text  # the stack where it hangs
    assert "Failed to run DAG callback hangs_dag on_failure_callback[1] broken: ValueError" in text, text
    assert "hangs: AFTER-MARKER task_failure" in lines, lines

    # A bundle that does not even start its callbacks is killed at the outer bound (3 x 1 s + 10 s).
    caplog.clear()
    monkeypatch.setenv("HANG_AT_IMPORT", "1")
    started = time.monotonic()
    lines = _run_in_dag_processor(tmp_path / "hangs_dag.py", request, caplog)
    elapsed = time.monotonic() - started
    assert 12 < elapsed < 30, elapsed
    assert lines[-1] == "The bundle did not finish dag hangs_dag on_failure_callback within 13.0 s; killed it"


def test_serve_enters_the_mode_only_without_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    request = json.dumps({"dag_id": "nope", "callback": "on_failure_callback"})
    env = {**os.environ, "PYBUNDLE_DAG_CALLBACK": request}
    out = subprocess.run(
        [sys.executable, str(E2E_BUNDLE)], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 1
    record = json.loads(out.stdout.splitlines()[-1])
    assert record["level"] == "error" and "the bundle has no dag 'nope'" in record["event"], out.stdout
    dump = subprocess.run(
        [sys.executable, str(E2E_BUNDLE), "--bundle-metadata"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert dump.returncode == 0 and json.loads(dump.stdout)["name"] == "dag_callbacks"


def test_a_callback_with_an_unknown_parameter_is_refused_at_import() -> None:
    def bad(ctx: Context, webhook) -> None: ...

    with pytest.raises(
        RegistrationError, match=r"dag 'd': invalid on_failure_callback: callback .*bad: parameter 'webhook'"
    ):
        Bundle("b").dag("d", on_failure_callback=bad)
    Bundle("b").dag("d", on_failure_callback=lambda ctx=None: None)  # defaults are fine


PRINTING_BUNDLE = """
import os, sys
from bundle import Bundle, Client, Context, serve

bundle = Bundle("prints", version="1", queue="python-bundle")


def leaky(ctx: Context, client: Client) -> None:
    password = client.get_connection("warehouse").password  # registered with the masker
    token = client.get_variable("api_secret")  # a sensitive name: registered too
    print("PRINTED", password, token)
    print("STDERR", password, file=sys.stderr)
    os.write(2, f"RAW {token}\\n".encode())


bundle.dag("prints_dag", on_failure_callback=leaky).add_task_with_name("t", lambda: None)

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
"""


def test_a_callbacks_print_and_stderr_are_masked_in_the_dag_processors_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    source = tmp_path / "prints.py"
    source.write_text(PRINTING_BUNDLE)
    root = tmp_path / "root"
    root.mkdir()
    executable = root / "prints"
    for argv in (
        [str(source), "--format", "executable", "--output", str(executable)],
        ["dag-file", str(source), "--output", str(tmp_path / "prints_dag.py")],
    ):
        subprocess.run([sys.executable, "-m", "packer", *argv], check=True, capture_output=True, timeout=300)
    executable.chmod(0o755)
    _configure(monkeypatch, root)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgres://etl:hunter2-pw@db:5432/dwh")
    monkeypatch.setenv("AIRFLOW_VAR_API_SECRET", "tok-s3cr3t-value")
    request = _request("prints_dag", failure=True, conf={})
    lines = _run_in_dag_processor(tmp_path / "prints_dag.py", request, caplog)
    text = "\n".join(lines)
    assert "hunter2-pw" not in text and "tok-s3cr3t-value" not in text, text
    assert "stdout: PRINTED *** ***" in lines, lines
    assert "stderr: STDERR ***" in lines, lines
    assert "stderr: RAW ***" in lines, lines
