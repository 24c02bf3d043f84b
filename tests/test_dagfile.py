"""``bundle-pack dag-file``: the generated Python DAG file is what core 3.3.2 reads as the bundle's DAG.

The property: core imports the generated file (``DagBag``, and the real ``DagFileProcessorProcess``)
without import errors or warnings, and ``DagSerialization.to_dict`` of what it imported equals the
bundle's own DagSerialization on every key but those listed in ``packer.dagfile`` as legitimately
different (where the DAG was read from; the stub operator's own fields). Checked for the example,
every shape of the serializer's conformance cases (which follow the shared cross-SDK fixture), and
hypothesis-generated bundles; also that the file is stable under ``ruff format`` and deterministic.
"""

from __future__ import annotations

import json
import keyword
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("airflow.providers.standard.decorators.stub")

from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

from bundle import Asset, Bundle, Param
from bundle.core.provider import registry_of
from bundle.introspection.serialization import dag_file_document
from bundle.target import load_target
from packer.dagdoc import bundle_document
from packer.dagfile import LOCATION_DAG_KEYS, MARKER, STUB_ONLY_TASK_KEYS, DagFileError, render

from .mapping_shapes import map_randomly
from .serialization_compare import compare_serialized, loaded_view
from .test_serialization import ALL_CASES, Case, build_bundle

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "bundle" / "example_dags.py"
EXAMPLE_DAG_FILE = ROOT / "examples" / "bundle" / "dags" / "simple_dag.py"
BUNDLE_PACK = [sys.executable, "-m", "packer"]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"


@pytest.fixture(autouse=True)
def configured_executors(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The conformance cases name LocalExecutor and CeleryExecutor per task; DagBag refuses a task
    whose executor the deployment does not configure, as it should, so configure both."""
    from airflow.executors import executor_loader

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor,CeleryExecutor")
    executor_loader._executor_names.clear()
    yield
    executor_loader._executor_names.clear()


def document_of(bundle: Any, dag_ids: tuple[str, ...] = ()) -> Any:
    info = bundle.get_bundle_version()
    return bundle_document(info.name, info.version, dag_file_document(registry_of(bundle), dag_ids))


def generated(bundle: Any, tmp_path: Path, name: str = "generated_dags.py") -> tuple[Path, Any]:
    """Render ``bundle``'s DAG file into ``tmp_path``; the path and the bundle document."""
    document = document_of(bundle)
    path = tmp_path / name
    path.write_text(render(document, f"bundle-pack dag-file test --output {name}"))
    return path, document


def import_with_dagbag(path: Path) -> dict[str, Any]:
    """``{dag_id: core's to_dict}`` of a DAG file, failing on import errors or warnings."""
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}, bag.import_errors
    assert not bag.captured_warnings, bag.captured_warnings
    return {dag_id: DagSerialization.to_dict(dag) for dag_id, dag in bag.dags.items()}


def assert_same_dags(document: Any, imported: dict[str, Any]) -> None:
    assert list(imported) == [dag.dag_id for dag in document.dags]
    for dag in document.dags:
        python = imported[dag.dag_id]
        diffs = compare_serialized(
            dag.serialized,
            python,
            ignored_dag_keys=LOCATION_DAG_KEYS,
            ignored_task_keys=STUB_ONLY_TASK_KEYS,
        )
        assert diffs == [], "\n".join(diffs)
        assert _view(dag.serialized) == _view(python)


def _view(serialized: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in loaded_view(serialized).items() if not key.endswith(".fileloc")}


def bundle_pack(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUNDLE_PACK, *args], capture_output=True, text=True, cwd=cwd, timeout=180)


# -- the example -----------------------------------------------------------------------------------


def test_example_dag_file_is_in_step_with_the_bundle() -> None:
    """examples/bundle/dags/simple_dag.py is generated: regenerating it changes nothing."""
    result = bundle_pack(
        "dag-file",
        "examples/bundle/example_dags.py",
        "--output",
        "examples/bundle/dags/simple_dag.py",
        "--check",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert EXAMPLE_DAG_FILE.read_text().startswith(MARKER)


def test_example_dag_file_matches_the_bundle_serialization() -> None:
    document = document_of(load_target(str(EXAMPLE)))
    assert_same_dags(document, import_with_dagbag(EXAMPLE_DAG_FILE))


def test_real_dag_processor_parses_generated_files(tmp_path: Path) -> None:
    """core 3.3.2's DagFileProcessorProcess: no import errors, no warnings, the bundle's DAGs."""
    kitchen_sink = next(case for case in ALL_CASES if case.id == "cron_every_option")
    bundle_path, bundle_doc = generated(build_bundle(kitchen_sink), tmp_path)
    example_doc = document_of(load_target(str(EXAMPLE)))
    for path, document in ((EXAMPLE_DAG_FILE, example_doc), (bundle_path, bundle_doc)):
        result = subprocess.run(
            [sys.executable, "-m", "tests.peers.dag_processor", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        parsed = json.loads(result.stdout)
        assert parsed["import_errors"] == {} and parsed["warnings"] == [], parsed
        assert_same_dags(document, {dag["dag"]["dag_id"]: dag for dag in parsed["dags"]})


def test_check_reports_a_drifted_file_with_a_diff(tmp_path: Path) -> None:
    drifted = tmp_path / "simple_dag.py"
    drifted.write_text(EXAMPLE_DAG_FILE.read_text().replace("retries=1,", "retries=3,"))
    result = bundle_pack("dag-file", str(EXAMPLE), "--output", str(drifted), "--check")
    assert result.returncode == 1
    stub = '    @task.stub(queue="python-bundle", retries={}, retry_delay=timedelta(seconds=5))'
    assert "-" + stub.format(3) in result.stdout
    assert "+" + stub.format(1) in result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "retries=3," in drifted.read_text()  # --check writes nothing
    missing = bundle_pack("dag-file", str(EXAMPLE), "--output", str(tmp_path / "absent.py"), "--check")
    assert missing.returncode == 1 and "(missing)" in missing.stdout
    assert not (tmp_path / "absent.py").exists()


# -- every conformance shape, and random bundles ---------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_generated_file_serializes_like_the_bundle(case: Case, tmp_path: Path) -> None:
    path, document = generated(build_bundle(case), tmp_path)
    assert_same_dags(document, import_with_dagbag(path))


_IDS = st.from_regex(r"[a-z][a-z0-9_.-]{0,12}", fullmatch=True) | st.sampled_from(
    ["class", "task", "DAG", "datetime", "9lives", "a-b", "a.b", "a_b", "extract_task", "match"]
)
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_WHEN = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(timezone.utc)
)
# Assets, as outlets / inlets and asset schedules: names, URIs (sanitized), groups and extras.
_ASSETS = st.builds(
    Asset,
    st.sampled_from(["orders", "a-b.c", "Übersicht", "x" * 60]),
    st.none() | st.sampled_from(["s3://Bucket/orders/", "file:///tmp/x", "postgres://h:5432/db?b=1&a=2"]),
    group=st.none() | st.sampled_from(["sales", ""]),
    extra=st.none() | st.fixed_dictionaries({}, optional={"owner": _IDS, "n": st.integers(), "deep": st.just([{"k": None}])}),
)  # fmt: skip
_SECONDS = st.integers(min_value=1, max_value=7 * 86400) | st.sampled_from([60, 300, 3600, 86400, 1.5])
_TASK_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "retries": st.integers(0, 5),
        "retry_delay": _SECONDS.map(lambda s: timedelta(seconds=s)),
        "retry_exponential_backoff": st.sampled_from([0, 1.5, 2.0]),
        "max_retry_delay": _SECONDS.map(lambda s: timedelta(seconds=s)),
        "execution_timeout": _SECONDS.map(lambda s: timedelta(seconds=s)),
        "queue": _IDS,
        "pool": _IDS,
        "pool_slots": st.integers(1, 4),
        "priority_weight": st.integers(-10, 10),
        "weight_rule": st.sampled_from(["downstream", "upstream", "absolute"]),
        "trigger_rule": st.sampled_from(["all_success", "all_done", "one_failed", "none_failed", "always"]),
        "owner": _IDS,
        "depends_on_past": st.booleans(),
        "wait_for_downstream": st.booleans(),
        "do_xcom_push": st.booleans(),
        "multiple_outputs": st.booleans(),
        "max_active_tis_per_dag": st.integers(1, 5),
        "task_display_name": _TEXT.filter(bool),
        "doc_md": _TEXT,
        "start_date": _WHEN,
        "outlets": st.lists(_ASSETS, max_size=3),
        "inlets": _ASSETS | st.lists(_ASSETS, max_size=2),
    },
)
_SCHEDULES = (
    st.sampled_from([None, "@once", "@daily", "0 3 * * *", "*/5 * * * MON-FRI"])
    | _SECONDS.map(lambda s: timedelta(seconds=int(s) + 1))
    | _ASSETS
    | st.lists(_ASSETS, max_size=3)
    | st.tuples(_ASSETS, _ASSETS, _ASSETS).map(lambda abc: (abc[0] & abc[1]) | abc[2])
)


_PARAMS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    st.integers(-5, 5)
    | _TEXT
    | st.builds(lambda low, span, description: Param(low, type="integer", minimum=low, maximum=low + span,
                                                     description=description),
                st.integers(-100, 100), st.integers(0, 10), st.none() | _TEXT)
    | st.builds(lambda options: Param(options[0], enum=options, title="Pick one"),
                st.lists(_IDS, min_size=1, max_size=3, unique=True))
    | st.builds(lambda default: Param(default, type=["number", "null"], exclusiveMinimum=-1000),
                st.none() | st.floats(-999, 999, allow_nan=False)),
    max_size=3,
)  # fmt: skip


@st.composite
def random_bundles(draw: st.DrawFn) -> Bundle:
    bundle = Bundle(draw(_IDS), version=draw(st.none() | st.just("2.0.1")), queue=draw(st.none() | _IDS))
    dag_options: dict[str, Any] = {"schedule": draw(_SCHEDULES)}
    for key, strategy in (
        ("start_date", _WHEN),
        ("description", _TEXT),
        ("tags", st.lists(_IDS, max_size=3)),
        ("catchup", st.booleans()),
        ("max_active_runs", st.integers(1, 20)),
        ("dagrun_timeout", _SECONDS.map(lambda s: timedelta(seconds=s))),
        (
            "default_args",
            st.fixed_dictionaries(
                {},
                optional={
                    "retries": st.integers(0, 3),
                    "owner": _IDS,
                    "outlets": st.lists(_ASSETS, max_size=2),
                },
            ),
        ),
    ):
        if draw(st.booleans()):
            dag_options[key] = draw(strategy)
    if dag_options.get("catchup") and dag_options["schedule"] is not None and "start_date" not in dag_options:
        dag_options["start_date"] = draw(_WHEN)
    if draw(st.booleans()):
        dag_options["params"] = draw(_PARAMS)
    dag = bundle.dag(draw(_IDS), **dag_options)
    task_ids = draw(st.lists(_IDS, min_size=1, max_size=6, unique=True))
    groups = _random_groups(draw, dag)
    tasks = []
    for index, task_id in enumerate(task_ids):
        doc = draw(st.none() | _TEXT | st.just("First line.\n\n    More text, indented.\n    "))
        # Free parameters, bound below to earlier tasks' outputs or literals (data passing).
        names = (
            draw(st.lists(st.sampled_from(["rows", "data", "limit"]), unique=True, max_size=2))
            if index
            else []
        )
        namespace: dict[str, Any] = {}
        exec(f"def fn({', '.join(names)}):\n    return None", namespace)
        function = namespace["fn"]
        function.__doc__ = doc
        entered = _entered(draw(st.sampled_from(groups)))  # the task's group, if any
        # Plain, branch or short-circuit tasks: the latter are skip-capable stubs in the file.
        register = draw(st.sampled_from([dag.task, dag.task, dag.branch, dag.short_circuit]))
        tasks.append(register(task_id=task_id, **draw(_TASK_OPTIONS))(function))
        entered.close()
        if names:
            arguments = {}
            for name in names:
                upstream = tasks[draw(st.integers(0, index - 1))]
                key = draw(st.sampled_from(["return_value", "rows"]))
                arguments[name] = draw(
                    st.just(upstream.output[key] if key != "return_value" else upstream.output)
                    | st.sampled_from([3, "text", None, [1, 2.5], {"k": True}])
                )
            if draw(st.integers(0, 2)) == 0:  # mapped: .partial(...).expand(...) / .expand_kwargs(...)
                map_randomly(draw, tasks[-1], arguments, tasks[:-1])
            else:
                tasks[-1].bind(**arguments)
    for later in range(1, len(tasks)):
        for earlier in draw(st.sets(st.integers(0, later - 1), max_size=2)):
            tasks[earlier] >> tasks[later]
    _link_groups(draw, tasks, groups)
    return bundle


# Group ids start with a capital: no drawn task id can clash with a prefixed one ("G1.x").
_GROUP_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "prefix_group_id": st.booleans(),
        "tooltip": _TEXT,
        "ui_color": st.sampled_from(["red", "#ffeedd"]),
        "ui_fgcolor": st.just("#fff"),
        "group_display_name": _TEXT,
        "default_args": st.fixed_dictionaries({}, optional={"retries": st.integers(0, 3), "owner": _IDS}),
    },
)


def _random_groups(draw: st.DrawFn, dag: Any) -> list[Any]:
    """None (the root) and up to three task groups, the later ones possibly nested in earlier ones."""
    groups: list[Any] = [None]
    for index in range(draw(st.integers(0, 3))):
        parent = draw(st.sampled_from(groups))
        with _entered(parent):
            groups.append(dag.task_group(f"G{index}", **draw(_GROUP_OPTIONS)))
    return groups


def _entered(group: Any) -> ExitStack:
    stack = ExitStack()
    if group is not None:
        stack.enter_context(group)
    return stack


def _link_groups(draw: st.DrawFn, tasks: list[Any], groups: list[Any]) -> None:
    """Group-level ``>>`` / ``<<`` that follow the tasks' order (edges only run forwards: no cycle)."""
    index = {task.task_id: position for position, task in enumerate(tasks)}
    spans = [
        (group, [index[task.task_id] for task in group.tasks()])
        for group in groups[1:]
        if next(group.tasks(), None) is not None
    ]
    for group, members in spans:
        before = [t for t in tasks if index[t.task_id] < min(members)]
        after = [t for t in tasks if index[t.task_id] > max(members)]
        if before and draw(st.booleans()):
            draw(st.sampled_from(before)) >> group
        if after and draw(st.booleans()):
            group >> draw(st.sampled_from(after))
        for other, others in spans:
            if max(members) < min(others) and not set(group.tasks()) & set(other.tasks()):
                if draw(st.booleans()):
                    group >> other if draw(st.booleans()) else other << group


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bundle=random_bundles())
def test_random_bundles_round_trip_through_the_dag_file(bundle: Bundle, tmp_path: Path) -> None:
    path, document = generated(bundle, tmp_path)
    assert_same_dags(document, import_with_dagbag(path))
    assert render(document, "bundle-pack dag-file test --output generated_dags.py") == path.read_text()


def test_identifiers_stay_python_names(tmp_path: Path) -> None:
    """Task ids that are keywords, start with a digit or hold '.'/'-' get safe function names."""
    bundle = Bundle("names")
    dag = bundle.dag("names")
    ids = ["class", "9lives", "a-b", "a.b", "a_b", "DAG", "task", "timedelta", "a_b_task"]
    tasks = [dag.task(task_id=task_id)(lambda: None) for task_id in ids]
    tasks[0] >> tasks[1:]
    path, document = generated(bundle, tmp_path)
    source = path.read_text()
    assert all(
        not keyword.iskeyword(line.split()[1].split("(")[0])
        for line in source.splitlines()
        if line.startswith("    def ")
    )
    assert_same_dags(document, import_with_dagbag(path))


def test_docstrings_first_line_and_doc_md(tmp_path: Path) -> None:
    """The stub's docstring is the first docstring line; Airflow's doc_md stays the whole docstring."""
    bundle = Bundle("docs")
    dag = bundle.dag("docs")

    @dag.task
    def multi() -> None:
        """Summary line with "quotes" and a back\\slash.

        Details that only doc_md carries.
        """

    @dag.task(doc_md="explicit docs win")
    def explicit() -> None:
        """Ignored for doc_md, still the stub's docstring."""

    path, document = generated(bundle, tmp_path)
    source = path.read_text()
    assert '"""Summary line with "quotes" and a back\\\\slash."""' in source
    assert "Details that only doc_md carries." in source  # in the doc_md keyword, not the docstring
    assert_same_dags(document, import_with_dagbag(path))
    assert DagBag(dag_folder=str(path)).dags["docs"].task_dict["multi"].doc_md == multi.fn.__doc__


# -- formatting and determinism --------------------------------------------------------------------


@pytest.mark.parametrize("line_length", [88, 110])
def test_generated_files_are_ruff_formatted(tmp_path: Path, line_length: int) -> None:
    sources = [EXAMPLE_DAG_FILE]
    for case_id in ("cron_every_option", "default_args", "timezone_named", "timezone_fixed_offset"):
        case = next(case for case in ALL_CASES if case.id == case_id)
        sources.append(generated(build_bundle(case), tmp_path, f"{case_id}.py")[0])
    result = subprocess.run(
        [
            RUFF,
            "format",
            "--isolated",
            "--check",
            "--diff",
            f"--line-length={line_length}",
            *map(str, sources),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_same_bundle_same_bytes_from_source_and_packed_bundles(tmp_path: Path) -> None:
    """Packed bundles (both formats) are read through their own embedded runtime: same DAG file."""
    outputs = {}
    for fmt in ("executable", "zip"):
        packed = tmp_path / f"example.{fmt}"
        assert bundle_pack(str(EXAMPLE), "--format", fmt, "--output", str(packed)).returncode == 0
        target = tmp_path / f"from-{fmt}.py"
        result = bundle_pack("dag-file", str(packed), "--output", str(target))
        assert result.returncode == 0, result.stderr
        outputs[fmt] = target.read_text().split("\n", 2)[2]  # past the two header lines
    first = tmp_path / "again.py"
    for _ in range(2):
        assert bundle_pack("dag-file", str(EXAMPLE), "--output", str(first)).returncode == 0
        outputs.setdefault("source", first.read_text().split("\n", 2)[2])
        assert first.read_text().split("\n", 2)[2] == outputs["source"]
    assert outputs["executable"] == outputs["zip"] == outputs["source"]
    assert EXAMPLE_DAG_FILE.read_text().split("\n", 2)[2] == outputs["source"]


# -- refusals and bad input ------------------------------------------------------------------------


def test_refuses_what_it_cannot_express() -> None:
    document = document_of(load_target(str(EXAMPLE)))
    task = document.dags[0].serialized["dag"]["tasks"][1]["__var"]
    task["on_failure_callback"] = True  # as a newer runtime might write it
    with pytest.raises(DagFileError) as raised:
        render(document, "cmd")
    message = str(raised.value)
    assert (
        "'simple_dag'" in message
        and "'transform.filter_rows'" in message
        and "'on_failure_callback'" in message
    )
    assert "\n" not in message
    document = document_of(load_target(str(EXAMPLE)))
    document.dags[0].serialized["dag"]["params"] = [
        ["x", {"__class": "airflow.sdk.definitions.param.Param", "source": "task"}]
    ]
    with pytest.raises(DagFileError, match=r"dag 'simple_dag' attribute 'params'"):
        render(document, "cmd")


def test_bad_input_one_line_errors(tmp_path: Path) -> None:
    hand_written = tmp_path / "hand.py"
    hand_written.write_text("# my own DAG file\n")
    cases = {
        "unknown dag": (
            ["dag-file", str(EXAMPLE), "--dag", "nope", "--output", str(tmp_path / "x.py")],
            "no dag 'nope'",
        ),
        "missing target": (
            ["dag-file", str(tmp_path / "nothing.py"), "--output", str(tmp_path / "y.py")],
            "no such file",
        ),
        "not generated": (["dag-file", str(EXAMPLE), "--output", str(hand_written)], "--force"),
        "directory": (["dag-file", str(EXAMPLE), "--output", str(tmp_path)], "is a directory"),
        "check a directory": (
            ["dag-file", str(EXAMPLE), "--output", str(tmp_path), "--check"],
            "name the DAG file (a .py path)",
        ),
        "no output": (["dag-file", str(EXAMPLE)], "--output"),
    }
    for name, (args, expected) in cases.items():
        result = bundle_pack(*args)
        assert result.returncode == 2, (name, result.stderr)  # 1 is only "out of step"
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), (name, result.stderr)
        assert expected in result.stderr, (name, result.stderr)
    assert hand_written.read_text() == "# my own DAG file\n"
    assert sorted(os.listdir(tmp_path)) == ["hand.py"]  # nothing written, no temporary left behind
    forced = bundle_pack("dag-file", str(EXAMPLE), "--output", str(hand_written), "--force")
    assert forced.returncode == 0 and hand_written.read_text().startswith(MARKER)
    assert sorted(os.listdir(tmp_path)) == ["hand.py"]
