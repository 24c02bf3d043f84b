"""serve(): every row of the invocation matrix, with the exact bytes a Go bundle prints."""

from __future__ import annotations

import json

import pytest
import yaml

from bundle import __version__

from .conftest import run_python

NOISY_BUNDLE = """
    import sys, warnings
    print("import-time noise on stdout")
    from bundle import Bundle, serve
    print("more noise after importing bundle")
    warnings.warn("a deprecation at import time")

    bundle = Bundle("demo<&>", version="2.0")
    zeta = bundle.dag("zeta_dag")
    alpha = bundle.dag("alpha_dag")

    @zeta.task
    def second(): print("never runs during a dump")

    @zeta.task
    def first(): pass

    @alpha.task(task_id="only")
    def whatever(): pass

    empty = bundle.dag("empty_dag")

    if __name__ == "__main__":
        raise SystemExit(serve(bundle))
"""

EXPECTED_METADATA = b'{\n    "name": "demo\\u003c\\u0026\\u003e",\n    "version": "2.0"\n}\n'
EXPECTED_SPEC = (
    b'{\n    "format_version": "1.0",\n    "sdk": {\n        "language": "python",\n'
    b'        "version": "' + __version__.encode() + b'"\n    },\n    "dags": {\n'
    b'        "alpha_dag": {\n            "tasks": [\n                "only"\n            ]\n        },\n'
    b'        "empty_dag": {\n            "tasks": []\n        },\n'
    b'        "zeta_dag": {\n            "tasks": [\n                "second",\n                "first"\n            ]\n        }\n'
    b"    }\n}\n"
)
EXPECTED_MANIFEST_YAML = (
    b'airflow_bundle_metadata_version: "1.0"\nsdk:\n    language: python\n    version: '
    + __version__.encode()
    + b'\n    supervisor_schema_version: "2026-06-16"\ndags:\n'
    b"    alpha_dag:\n        tasks:\n            - only\n"
    b"    empty_dag:\n        tasks: []\n"
    b"    zeta_dag:\n        tasks:\n            - second\n            - first\n"
)


@pytest.fixture
def noisy(write_bundle):
    return write_bundle(NOISY_BUNDLE)


@pytest.mark.parametrize("launch", ["script", "module"])
def test_bundle_metadata_is_go_json(noisy, launch):
    args = [str(noisy)] if launch == "script" else ["-m", "bundle", "--bundle", str(noisy)]
    result = run_python([*args, "--bundle-metadata"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_METADATA
    assert "import-time noise on stdout" in result.stderr  # moved, not lost


@pytest.mark.parametrize("launch", ["script", "module"])
def test_dump_bundle_spec_sorted_dags_tasks_in_registration_order(noisy, launch):
    args = [str(noisy)] if launch == "script" else ["-m", "bundle", "--bundle", str(noisy)]
    result = run_python([*args, "--dump-bundle-spec"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_SPEC
    assert "a deprecation at import time" in result.stderr


def test_airflow_metadata_yaml_is_default(noisy):
    result = run_python([str(noisy), "--airflow-metadata"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_MANIFEST_YAML
    assert yaml.safe_load(result.stdout)["sdk"]["supervisor_schema_version"] == "2026-06-16"


@pytest.mark.parametrize(
    "flags", [["--airflow-metadata", "--format", "json"], ["--airflow-metadata", "--format=json"]]
)
def test_airflow_metadata_json(noisy, flags):
    result = run_python([str(noisy), *flags])
    assert result.returncode == 0, result.stderr
    expected = {
        "airflow_bundle_metadata_version": "1.0",
        "sdk": {"language": "python", "version": __version__, "supervisor_schema_version": "2026-06-16"},
        "dags": {
            "alpha_dag": {"tasks": ["only"]},
            "empty_dag": {"tasks": []},
            "zeta_dag": {"tasks": ["second", "first"]},
        },
    }
    assert result.stdout == (json.dumps(expected, indent=4) + "\n").encode()
    assert yaml.safe_load(run_python([str(noisy), "--airflow-metadata"]).stdout) == json.loads(result.stdout)


def test_unversioned_bundle_prints_null_version(write_bundle):
    path = write_bundle("""
        from bundle import Bundle, serve
        bundle = Bundle("plain")
        raise SystemExit(serve(bundle))
    """)
    result = run_python([str(path), "--bundle-metadata"])
    assert result.stdout == b'{\n    "name": "plain",\n    "version": null\n}\n'


def test_metadata_flags_win_over_coordinator_flags_in_matrix_order(noisy):
    both = run_python(
        [str(noisy), "--comm=127.0.0.1:1", "--logs=127.0.0.1:2", "--dump-bundle-spec", "--bundle-metadata"]
    )
    assert both.returncode == 0
    assert both.stdout == EXPECTED_METADATA


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--comm=127.0.0.1:1"], "error: --comm and --logs must be supplied together"),
        (["--logs", "127.0.0.1:1"], "error: --comm and --logs must be supplied together"),
        (["--format", "json"], "error: --format is only valid together with --airflow-metadata"),
        (
            ["--bundle-metadata", "--format=yaml"],
            "error: --format is only valid together with --airflow-metadata",
        ),
        (
            ["--airflow-metadata", "--format", "xml"],
            'error: unsupported --airflow-metadata format "xml": want "yaml" or "json"',
        ),
        (["--no-such-flag"], "error: unknown flag: --no-such-flag"),
        (["-x"], "error: unknown shorthand flag: 'x' in -x"),
        (["--comm"], "error: flag needs an argument: --comm"),
        (["stray"], "error: unexpected argument 'stray'"),
        (["--bundle-metadata=maybe"], 'error: invalid argument "maybe" for "--bundle-metadata" flag'),
    ],
)
def test_usage_errors_exit_2_with_usage_and_empty_stdout(noisy, flags, message):
    result = run_python([str(noisy), *flags])
    assert result.returncode == 2
    # no document: at most the bundle's own prints (moved to stderr when a dump flag was present)
    assert result.stdout in (b"", b"import-time noise on stdout\nmore noise after importing bundle\n")
    assert message in result.stderr
    for mode in (
        "--bundle-metadata",
        "--dump-bundle-spec",
        "--airflow-metadata",
        "--comm=HOST:PORT",
        "AIRFLOW_BUNDLE_MAGIC_COOKIE",
    ):
        assert mode in result.stderr


def test_python_m_bundle_keeps_stdout_clean_even_unbuffered(noisy):
    result = run_python(
        ["-m", "bundle", "--bundle", str(noisy), "--bundle-metadata"], env={"PYTHONUNBUFFERED": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_METADATA


def test_usage_errors_print_nothing_on_stdout_through_python_m_bundle(noisy):
    result = run_python(["-m", "bundle", "--bundle", str(noisy), "--bogus"])
    assert result.returncode == 2
    assert "unknown flag: --bogus" in result.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0_and_names_every_mode(noisy, flag):
    result = run_python(["-m", "bundle", "--bundle", str(noisy), flag])
    assert result.returncode == 0
    assert "--dump-bundle-spec" in result.stderr and "--comm=HOST:PORT" in result.stderr


def test_no_mode_at_all_is_gos_plugin_refusal_plus_usage(noisy):
    result = run_python([str(noisy)])
    assert result.returncode == 1
    assert "This binary is a plugin. These are not meant to be executed directly." in result.stderr
    for mode in (
        "--bundle-metadata",
        "--dump-bundle-spec",
        "--airflow-metadata",
        "--comm=HOST:PORT",
        "AIRFLOW_BUNDLE_MAGIC_COOKIE",
    ):
        assert mode in result.stderr


def test_cookie_routes_to_plugin_mode_and_wrong_cookie_is_refused(noisy):
    result = run_python([str(noisy)], env={"AIRFLOW_BUNDLE_MAGIC_COOKIE": "wrong"})
    assert result.returncode == 1
    assert "This binary is a plugin. These are not meant to be executed directly." in result.stderr
    assert result.stdout == b""  # nothing may precede a handshake line, not even import-time prints


def test_registration_error_in_dump_exits_1(write_bundle):
    path = write_bundle("""
        from bundle import Registry, BundleInfo, serve

        class Broken:
            def get_bundle_version(self):
                return BundleInfo("broken")
            def register_dags(self, registry):
                registry.add_dag("bad id!")

        raise SystemExit(serve(Broken()))
    """)
    result = run_python([str(path), "--dump-bundle-spec"])
    assert result.returncode == 1
    assert "error: registering dags: dag id 'bad id!' may contain only letters" in result.stderr
    assert result.stdout == b""
    # --bundle-metadata does not build the DAGs, as GetBundleVersion promises
    ok = run_python([str(path), "--bundle-metadata"])
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"name": "broken", "version": None}


def test_go_shaped_provider_is_served(write_bundle):
    path = write_bundle("""
        from bundle import BundleInfo, serve

        def extract(): pass
        def load(): pass

        class MyBundle:
            def get_bundle_version(self):
                return BundleInfo("go_shaped", "0.0")
            def register_dags(self, registry):
                dag = registry.add_dag("tutorial_dag")
                dag.add_task(extract)
                dag.add_task_with_name("load_it", load)

        raise SystemExit(serve(MyBundle()))
    """)
    result = run_python([str(path), "--dump-bundle-spec"])
    assert json.loads(result.stdout)["dags"] == {"tutorial_dag": {"tasks": ["extract", "load_it"]}}
