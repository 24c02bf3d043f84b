"""DAG parsing over the coordinator transport, answered to apache-airflow-core 3.3.2's real
``DagFileProcessorProcess``; the result is validated and loaded by core's own serializer."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.harness.supervised import parse_dag_file

from .conftest import EXAMPLE

ROOT = Path(__file__).resolve().parents[1]


def test_example_bundle_parses_into_loadable_dags():
    run = parse_dag_file([sys.executable, "-m", "bundle", "--bundle", str(EXAMPLE)])
    assert run.errors == [], run.describe()
    assert run.exit_code == 0
    assert run.dag_ids == ["simple_dag"]
    loaded = run.loaded_dags["simple_dag"]
    assert sorted(loaded["task_ids"]) == [
        "audit",
        "check_order",
        "extract",
        "load",
        "notify",
        "report_empty",
        "route",
        "transform.filter_rows",
        "transform.summarise",
    ]
    assert loaded["downstream"]["extract"] == ["transform.filter_rows"]
    assert loaded["downstream"]["route"] == ["load", "report_empty"]
    assert loaded["downstream"]["load"] == ["audit"]
    assert set(loaded["queues"].values()) == {"python-bundle"}
    assert "CronTriggerTimetable" in str(loaded["timetable"])
    [data] = run.serialized_dags
    tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
    assert tasks["load"]["retries"] == 1 and tasks["load"]["retry_delay"] == 5.0
    assert tasks["transform.summarise"]["language"] == "python"
    assert tasks["transform.summarise"]["retries"] == 2  # the task group's default_args
    assert tasks["route"]["_can_skip_downstream"] is True
    assert tasks["check_order"]["_is_mapped"] is True  # expanded by the scheduler over filter_rows
    assert tasks["check_order"]["op_kwargs_expand_input"]["type"] == "dict-of-lists"
    assert tasks["audit"]["trigger_rule"] == "none_failed_min_one_success"
    assert data["dag"]["task_group"]["children"]["transform"][0] == "taskgroup"
    assert run.import_errors in ({}, None)


def test_registration_failure_becomes_an_import_error(write_bundle):
    path = write_bundle("""
        from bundle import BundleInfo

        class Broken:
            def get_bundle_version(self):
                return BundleInfo("broken")
            def register_dags(self, registry):
                raise RuntimeError("cannot reach the config service")

        bundle = Broken()
    """)
    run = parse_dag_file([sys.executable, "-m", "bundle", "--bundle", str(path)])
    assert run.exit_code == 0
    assert run.serialized_dags == []
    [(_, message)] = run.import_errors.items()
    assert "cannot reach the config service" in message
