"""The example bundle's ``simple_dag`` in a real Airflow 3.3.2: states, tries, XComs, masked logs,
the task group and the branch (with its join) as the scheduler ran them."""

from __future__ import annotations

import pytest

from tests.e2e.deployment import Deployment

DAG_ID = "simple_dag"
RAW_PASSWORD = "s3cret-local-pw"  # examples/bundle/local/connections.yaml
RAW_TOKEN = "local-dev-token-7f3a9c"  # examples/bundle/local/variables.yaml
TASK_IDS = [
    "extract",
    "transform.filter_rows",
    "transform.summarise",
    "check_order",
    "route",
    "load",
    "report_empty",
    "audit",
    "notify",
]
RUN_TIMEOUT = 240.0  # 8 tasks one after the other; load waits 5 s for its retry


@pytest.fixture(scope="module")
def finished_run(airflow_deployment: Deployment) -> tuple[str, str]:
    """One manual run of simple_dag, waited for: (run_id, final state)."""
    run_id = airflow_deployment.trigger_run(DAG_ID)
    return run_id, airflow_deployment.wait_run(DAG_ID, run_id, RUN_TIMEOUT)


def test_run_ends_in_success_with_each_tasks_final_state_and_try(
    airflow_deployment: Deployment, finished_run: tuple[str, str]
) -> None:
    """The branch follows load (rows are left after the threshold) and skips report_empty; the
    audit join (none_failed_min_one_success) runs although one of its upstreams is skipped."""
    run_id, state = finished_run
    tis = airflow_deployment.task_instances(DAG_ID, run_id)
    summary = {task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()}
    assert state == "success", summary
    assert summary == {
        "extract": ("success", 1),
        "transform.filter_rows": ("success", 1),  # in the task group "transform"
        "transform.summarise": ("success", 1),
        "route": ("success", 1),
        "load": ("success", 2),  # fails its first try, retry_delay 5 s
        "report_empty": ("skipped", 0),  # skipped by route before the scheduler started it
        "audit": ("success", 1),
        "notify": ("skipped", 1),  # no notify_channel variable
    }
    assert {ti.queue for ti in tis.values()} == {"python-bundle"}


def test_check_order_is_expanded_over_the_kept_rows_with_labels(
    airflow_deployment: Deployment, finished_run: tuple[str, str]
) -> None:
    """The scheduler expanded the mapped task over filter_rows' output (its mapped_length): one
    instance per kept row, each labelled by map_index_template, each returning its row's amount."""
    run_id, _ = finished_run
    every = airflow_deployment.rest.task_instances(DAG_ID, run_id)
    mapped = {index: ti for (task_id, index), ti in every.items() if task_id == "check_order"}
    assert sorted(mapped) == [0, 1, 2]
    kept = airflow_deployment.xcom(DAG_ID, run_id, "transform.filter_rows")
    for index, row in enumerate(kept):
        assert (mapped[index].state, mapped[index].try_number) == ("success", 1)
        assert mapped[index].rendered_map_index == f"order {row['order_id']}"
        assert airflow_deployment.xcom(DAG_ID, run_id, "check_order", map_index=index) == row["amount"]


def test_the_scheduler_sees_the_task_group_and_the_branch(airflow_deployment: Deployment) -> None:
    """What Airflow parsed from the generated DAG file: the group (graph view), its default_args,
    the branch's edges and the join's trigger rule."""
    rest = airflow_deployment.rest
    tasks = {t["task_id"]: t for t in rest._json("GET", f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]}
    assert sorted(tasks) == sorted(TASK_IDS)
    assert tasks["transform.summarise"]["retries"] == 2  # the group's default_args
    assert sorted(tasks["route"]["downstream_task_ids"]) == ["load", "report_empty"]
    assert tasks["audit"]["trigger_rule"] == "none_failed_min_one_success"
    structure = rest._json("GET", "/ui/structure/structure_data", params={"dag_id": DAG_ID})
    [group] = [node for node in structure["nodes"] if node["id"] == "transform"]
    assert group["tooltip"] == "Filter the rows, then total them"
    assert {child["id"] for child in group["children"]} >= {"transform.filter_rows", "transform.summarise"}


def test_first_try_of_load_failed_with_the_bundles_error(
    airflow_deployment: Deployment, finished_run: tuple[str, str]
) -> None:
    run_id, _ = finished_run
    log = airflow_deployment.task_log(DAG_ID, run_id, "load", try_number=1)
    assert any("warehouse is not accepting connections yet" in line for line in log.raw.splitlines()), (
        log.events()
    )


def test_xcoms_pushed_by_the_bundle(airflow_deployment: Deployment, finished_run: tuple[str, str]) -> None:
    run_id, _ = finished_run
    extracted = airflow_deployment.xcom(DAG_ID, run_id, "extract")
    assert extracted["source"] == "orders.db.internal"  # from the imported orders_db connection
    assert [row["amount"] for row in extracted["rows"]] == [12.5, 7.0, 31.25, 3.5]
    kept = airflow_deployment.xcom(DAG_ID, run_id, "transform.filter_rows")  # got extract's output
    assert [row["amount"] for row in kept] == [12.5, 7.0, 31.25]  # the imported min_amount "5"
    summary = airflow_deployment.xcom(DAG_ID, run_id, "transform.summarise")
    assert summary["currency"] == "EUR"  # the imported transform_settings JSON variable
    assert summary["rows"] == kept and summary["total"] == 50.75
    assert airflow_deployment.xcom(DAG_ID, run_id, "route", key="skipmixin_key") == {"followed": ["load"]}
    with pytest.raises(KeyError):
        airflow_deployment.xcom(DAG_ID, run_id, "route")  # a branch that skipped pushes no return_value
    assert airflow_deployment.xcom(DAG_ID, run_id, "load") == 3
    assert airflow_deployment.xcom(DAG_ID, run_id, "audit") == {"run_id": run_id, "loaded_rows": 3}


def test_secrets_are_masked_in_the_task_logs(
    airflow_deployment: Deployment, finished_run: tuple[str, str]
) -> None:
    run_id, _ = finished_run
    extract = airflow_deployment.task_log(DAG_ID, run_id, "extract", try_number=1)
    debug = extract.find("Connecting as etl with password")
    assert [r["event"] for r in debug] == ["Connecting as etl with password ***"], extract.events()
    assert debug[0]["level"] == "debug"  # visible through [logging] namespace_levels only
    assert RAW_PASSWORD not in extract.raw

    load = airflow_deployment.task_log(DAG_ID, run_id, "load", try_number=2)
    loading = load.find("Loading 3 rows")
    assert [r["event"] for r in loading] == ["Loading 3 rows (total 50.75 EUR) with token ***"], load.events()
    assert RAW_TOKEN not in load.raw


def test_audit_uses_the_dependency_packed_into_the_bundle(
    airflow_deployment: Deployment, finished_run: tuple[str, str]
) -> None:
    """tabulate comes from the bundle (examples/bundle/requirements.lock, vendored at pack time) and is
    imported from the bundle's extracted cache, never from the worker's site-packages."""
    run_id, _ = finished_run
    audit = airflow_deployment.task_log(DAG_ID, run_id, "audit", try_number=1)
    [record] = audit.find("Audit (tabulate ")
    header, table = record["event"].split("\n", 1)
    assert header.startswith("Audit (tabulate 0.9.0 from ")
    module_path = header.removeprefix("Audit (tabulate 0.9.0 from ").removesuffix("):")
    assert "/lib/tabulate" in module_path and "site-packages" not in module_path, module_path
    assert table.splitlines()[0].split() == ["run", "loaded", "rows"]
    assert table.splitlines()[2].split() == [run_id, "3"]
