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
    assert sorted(loaded["task_ids"]) == ["audit", "extract", "load", "notify", "transform"]
    assert loaded["downstream"]["extract"] == ["transform"]
    assert loaded["downstream"]["load"] == ["audit", "notify"]
    assert set(loaded["queues"].values()) == {"python-bundle"}
    assert "CronTriggerTimetable" in str(loaded["timetable"])
    [data] = run.serialized_dags
    tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
    assert tasks["load"]["retries"] == 1 and tasks["load"]["retry_delay"] == 5.0
    assert tasks["transform"]["language"] == "python"
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
