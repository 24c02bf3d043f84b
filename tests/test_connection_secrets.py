"""A malformed connection never echoes its password: not in ``Connection``'s parse errors (the
task's failure message), not in ``bundle-run``'s ``--conns`` error, not in its ``AIRFLOW_CONN_*``
warning. Each message names the connection and what is wrong instead."""

from __future__ import annotations

import json

import pytest

from bundle.core.connection import Connection

from .test_bundle_run import EXAMPLE, bundle_run, clean_env

SECRET = "Pw7SECRETtoken"
TAIL = "TailSECRET9"
# Each value holds the secret in its userinfo (and, where a '/' splits the password, its tail).
MALFORMED = {
    "no scheme": f"//etl:{SECRET}@orders.internal:5432/orders",
    "unencoded '/' in the password": f"postgres://etl:{SECRET}/{TAIL}@orders.internal:5432/orders",
    "unencoded '#' in the password": f"postgres://etl:{SECRET}#{TAIL}@orders.internal/orders",
    "port out of range": f"postgres://etl:{SECRET}@orders.internal:99999/orders",
    "unbalanced bracket": f"postgres://etl:{SECRET}@[orders.internal/orders",
    "JSON that does not parse": f'{{"conn_type": "postgres", "password": "{SECRET}", }}',
    "JSON with a bad port": f'{{"conn_type": "postgres", "password": "{SECRET}", "port": "{TAIL}"}}',
}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and TAIL not in text, text


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_parse_error_names_the_connection_and_never_the_value(kind):
    with pytest.raises(ValueError) as caught:
        Connection.from_env_value("orders_db", MALFORMED[kind])
    message = str(caught.value)
    assert message.startswith("connection 'orders_db': ")
    assert_no_secret(message)
    error = caught.value  # nor an original exception chained to it (a traceback prints those)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("kind", [k for k in sorted(MALFORMED) if not k.startswith("JSON")])
def test_bundle_run_conns_file_error_does_not_echo_the_uri(tmp_path, kind):
    conns = tmp_path / "conns.yaml"
    conns.write_text(json.dumps({"orders_db": MALFORMED[kind]}), encoding="utf-8")
    run = bundle_run(EXAMPLE, "--conns", conns, tmp_path=tmp_path)
    assert run.returncode == 2, run.describe()
    assert run.stderr.count("error:") == 1 and run.stderr.startswith("error: connections file ")
    assert "connection 'orders_db': " in run.stderr and "internal error" not in run.stderr
    assert_no_secret(run.stdout, run.stderr)


def test_airflow_conn_warning_and_task_failure_do_not_echo_the_uri(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_env(
        PYBUNDLE_CACHE_DIR=str(tmp_path / "cache"),
        TMPDIR=str(scratch),
        AIRFLOW_CONN_ORDERS_DB=MALFORMED["unencoded '/' in the password"],
    )
    run = bundle_run(EXAMPLE, "--task", "extract", "--keep-workdir", tmp_path=tmp_path, env=env)
    assert run.returncode == 1, run.describe()
    warnings = [
        line for line in run.stderr.splitlines() if line.startswith("warning: AIRFLOW_CONN_ORDERS_DB")
    ]
    assert warnings == [
        "warning: AIRFLOW_CONN_ORDERS_DB is neither a connection URI nor a JSON object: the URI's port is "
        "not a number from 0 to 65535 (a ':', '/', '?', '#', '@' or '[' in the login or password must be "
        "percent-encoded, e.g. '/' as %2F)"
    ]
    assert run.states() == {"extract": "failed"}
    # The task's failure message (report, progress line) and its log name the connection, never the value.
    assert "connection 'orders_db': the URI's port is not a number" in run.stdout
    assert_no_secret(run.stdout, run.stderr, json.dumps(run.report))
    logs = [p for p in scratch.rglob("*.log") if p.is_file()]  # the supervisor's task log, kept
    assert logs and any("orders_db" in p.read_text(errors="replace") for p in logs)
    assert_no_secret(*(p.read_text(errors="replace") for p in logs))
