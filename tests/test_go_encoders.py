"""The dumps compared byte for byte with Go's own encoders (``encoding/json``, ``gopkg.in/yaml.v3``),
fed the same documents through structs shaped like the go-sdk's (``tests/gohost/yamlprobe``)."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle.introspection import go_json, go_yaml
from bundle.introspection.dumps import MANIFEST_VERSION, SUPERVISOR_SCHEMA_VERSION

TRICKY_IDS = [
    "123",
    "true",
    "yes",
    "on",
    "1.0",
    "null",
    "2026-06-16",
    "2026-02-30",
    "a.b",
    "-x",
    "-",
    "---",
    "...",
    "....",
    "0x1F",
    "0o17",
    "017",
    "019",
    "1e3",
    ".inf",
    "-.inf",
    ".nan",
    "NaN",
    "False",
    "Y",
    "n",
    "no",
    "off",
    "NULL",
    "é",
    "日本",
    "1_000",
    "-1",
    "0",
    "00",
    "1.",
    ".5",
    "_x",
    "a-",
    "a.",
    "1a",
    "1.5",
    "1.10",
    "99999999999999999999",
    "0b101",
    "-0b1",
    "0b2",
    "inf",
    "-Infinity",
    "x" * 130,
    "T1",
    "~x",
    "٣",
    "a٣b",
    "ⅷ",
]


def manifest(dags: dict[str, list[str]], version: str = "0.1.0") -> dict:
    return {
        "airflow_bundle_metadata_version": MANIFEST_VERSION,
        "sdk": {
            "language": "python",
            "version": version,
            "supervisor_schema_version": SUPERVISOR_SCHEMA_VERSION,
        },
        "dags": {dag_id: {"tasks": tasks} for dag_id, tasks in dags.items()},
    }


def ours(doc: dict) -> bytes:
    return go_yaml.encode({**doc, "dags": go_yaml.GoMap(doc["dags"])})


def theirs(probe, doc: dict, kind: str = "manifest", fmt: str = "yaml") -> bytes:
    proc = subprocess.run(
        [str(probe), "-stdin", "-kind", kind, "-format", fmt],
        input=json.dumps(doc).encode(),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def probe(go_tools):
    return go_tools["yamlprobe"]


def test_tricky_ids_as_tasks_and_dag_keys(probe):
    doc = manifest({"dag": TRICKY_IDS, **{i: [] for i in TRICKY_IDS}})
    assert ours(doc) == theirs(probe, doc)


@pytest.mark.parametrize(
    "version", ["0.1.0", "1.0", "2026-06-16", "(devel)", "v1.2.3-rc.1+build", "1", "true"]
)
def test_versions(probe, version):
    doc = manifest({"simple_dag": ["extract"]}, version)
    assert ours(doc) == theirs(probe, doc)


def test_empty_dags_and_tasks(probe):
    for doc in (manifest({}), manifest({"d": []})):
        assert ours(doc) == theirs(probe, doc)


_ID_CHARS = st.characters(
    whitelist_categories=("Lu", "Ll", "Lo", "Nd"), max_codepoint=0x3000
) | st.sampled_from("._-0123456789aZ")
ids = st.text(_ID_CHARS, min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(ids, st.lists(ids, max_size=4), max_size=6))
def test_random_manifests_match_yaml_v3(probe, dags):
    doc = manifest(dags)
    assert ours(doc) == theirs(probe, doc)


NAMES = [
    "example_dags",
    "a<b>&c",
    "line\u2028sep\u2029",
    "tab\tand\nnewline",
    'quote"back\\slash',
    "é日本🙂",
    "\x7fdel\x01",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("version", [None, "1.0.0", "<&>"])
def test_bundle_metadata_json(probe, name, version):
    doc = {"name": name, "version": version}
    assert go_json.encode(doc) == theirs(probe, doc, "info", "json")


def test_spec_and_manifest_json(probe):
    dags = {"dag": TRICKY_IDS, **{i: [] for i in TRICKY_IDS}}
    spec = {
        "format_version": "1.0",
        "sdk": {"language": "python", "version": "0.1.0"},
        "dags": {d: {"tasks": t} for d, t in sorted(dags.items())},
    }
    assert go_json.encode(spec) == theirs(probe, spec, "spec", "json")
    doc = manifest(dags)
    doc["dags"] = dict(sorted(doc["dags"].items()))
    assert go_json.encode(doc) == theirs(probe, doc, "manifest", "json")


def test_a_real_bundles_four_dumps_match_go(probe, write_bundle):
    from .conftest import run_python

    path = write_bundle("""
        from bundle import Bundle, serve
        bundle = Bundle("tricky <&> \u2028 name", version="1.0")
        for dag_id in ("123", "zeta", "a10", "a9", "true", "2026-06-16", "x" * 140):
            dag = bundle.dag(dag_id)
            for task_id in ("yes", "t1", "-", "...x"):
                dag.add_task_with_name(task_id, lambda: None)
        raise SystemExit(serve(bundle))
    """)
    outputs = {
        flags: run_python([str(path), *flags])
        for flags in (
            ("--bundle-metadata",),
            ("--dump-bundle-spec",),
            ("--airflow-metadata", "--format", "json"),
            ("--airflow-metadata",),
        )
    }
    for result in outputs.values():
        assert result.returncode == 0, result.stderr
    info = json.loads(outputs[("--bundle-metadata",)].stdout)
    spec = json.loads(outputs[("--dump-bundle-spec",)].stdout)
    manifest_doc = json.loads(outputs[("--airflow-metadata", "--format", "json")].stdout)
    assert outputs[("--bundle-metadata",)].stdout == theirs(probe, info, "info", "json")
    assert outputs[("--dump-bundle-spec",)].stdout == theirs(probe, spec, "spec", "json")
    assert outputs[("--airflow-metadata", "--format", "json")].stdout == theirs(
        probe, manifest_doc, "manifest", "json"
    )
    assert outputs[("--airflow-metadata",)].stdout == theirs(probe, manifest_doc, "manifest", "yaml")
