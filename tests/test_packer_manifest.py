"""Manifest rendering (exact bytes), YAML quoting, schema checks and id warnings."""

from __future__ import annotations

import pytest
import yaml

from packer.manifest import (
    ExecutableManifest,
    ManifestError,
    ZipManifest,
    check_executable_manifest,
    check_zip_manifest,
    id_warnings,
    is_plain_safe,
    load,
    quote,
)

EXAMPLE_DAGS = {"simple_dag": ["extract", "transform", "load", "notify", "audit"]}

ZIP_TEXT = """\
format_version: "1.0"
sdk:
  language: python
  version: "0.1.0"
source: example_dags.py
executable: example_dags
dags:
  simple_dag:
    tasks:
      - extract
      - transform
      - load
      - notify
      - audit
"""

EXECUTABLE_TEXT = """\
airflow_bundle_metadata_version: "1.0"
sdk:
  language: "python"
  version: "0.1.0"
  supervisor_schema_version: "2026-06-16"
source: "example_dags.py"
dags:
  simple_dag:
    tasks:
      - "extract"
      - "transform"
      - "load"
      - "notify"
      - "audit"
"""


def zip_manifest(dags: dict[str, list[str]], **overrides: str) -> ZipManifest:
    fields = {
        "format_version": "1.0",
        "sdk_language": "python",
        "sdk_version": "0.1.0",
        "source": "example_dags.py",
        "executable": "example_dags",
    }
    fields.update(overrides)
    return ZipManifest(dags=dags, **fields)


def executable_manifest(dags: dict[str, list[str]], **overrides: str) -> ExecutableManifest:
    fields = {
        "metadata_version": "1.0",
        "sdk_language": "python",
        "sdk_version": "0.1.0",
        "supervisor_schema_version": "2026-06-16",
        "source": "example_dags.py",
    }
    fields.update(overrides)
    return ExecutableManifest(dags=dags, **fields)


def test_zip_manifest_exact_text():
    assert zip_manifest(EXAMPLE_DAGS).render().decode() == ZIP_TEXT


def test_executable_manifest_exact_text():
    assert executable_manifest(EXAMPLE_DAGS).render().decode() == EXECUTABLE_TEXT


def test_dag_ids_sorted_tasks_in_registration_order_and_renders_repeat():
    dags = {"zeta": ["b", "a"], "alpha": ["z", "y"], "mid": ["only"]}
    first = executable_manifest(dags).render()
    assert first == executable_manifest(dict(reversed(list(dags.items())))).render()
    text = first.decode()
    assert text.index("  alpha:") < text.index("  mid:") < text.index("  zeta:")
    assert text.index('"z"') < text.index('"y"') and text.index('"b"') < text.index('"a"')


def test_values_quoted_keys_plain_in_executable_manifest():
    text = executable_manifest({"my_dag": ["123", "true", "extract"]}).render().decode()
    assert '      - "123"\n' in text and '      - "true"\n' in text and '      - "extract"\n' in text
    assert "\n  my_dag:\n" in text


def test_empty_dags_and_empty_task_list():
    assert executable_manifest({}).render().decode().endswith('source: "example_dags.py"\ndags: {}\n')
    assert zip_manifest({}).render().decode().endswith("executable: example_dags\ndags: {}\n")
    text = zip_manifest({"d": []}).render().decode()
    assert text.endswith("dags:\n  d:\n    tasks: []\n")
    assert yaml.safe_load(text)["dags"] == {"d": {"tasks": []}}


@pytest.mark.parametrize(
    "value",
    [
        "123",
        "1.0",
        "true",
        "True",
        "yes",
        "No",
        "on",
        "OFF",
        "null",
        "~",
        "y",
        "",
        " lead",
        "trail ",
        "a: b",
        "a #b",
        "-x",
        "@x",
        "x\ny",
        "tab\there",
        'quote"d',
        "back\\slash",
        "caf\u00e9",
        "\u65e5\u672c",
        "nel\x85x",
        "ls\u2028x",
        "bom\ufeffx",
        "nbsp\u00a0x",
        "\x00nul",
        "\x7fdel",
        "emoji\U0001f600",
        "0x1F",
        "1e3",
        ".inf",
        "2026-01-01",
        "<<",
        "=",
        "*alias",
        "&anchor",
        "!tag",
        "%pct",
        "{a}",
        "[a]",
        "a,b",
        "'single'",
    ],
)
def test_every_scalar_reads_back_as_the_same_string(value):
    """Plain when safe, double-quoted otherwise: YAML must give back exactly the str that went in."""
    dags = {value or "d": [value, "t"]}
    for manifest in (zip_manifest(dags, source=value or "s"), executable_manifest(dags, source=value or "s")):
        document = yaml.safe_load(manifest.render().decode("utf-8"))
        assert document["dags"] == {key: {"tasks": tasks} for key, tasks in dags.items()}
        assert document["source"] == (value or "s")


@pytest.mark.parametrize("value", ["extract", "simple_dag", "a.b-c_d", "_private", "Transform2"])
def test_ordinary_ids_stay_plain(value):
    assert is_plain_safe(value)


@pytest.mark.parametrize("value", ["123", "true", "Null", "off", "y", "a b", "-a", ".a", "caf\u00e9", ""])
def test_ambiguous_or_unusual_ids_are_quoted(value):
    assert not is_plain_safe(value)
    assert yaml.safe_load(quote(value)) == value


def test_load_rejects_what_airflow_rejects():
    with pytest.raises(ManifestError, match="not valid UTF-8"):
        load(b"dags: \xff\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load(b"dags: [unclosed\n")
    with pytest.raises(ManifestError, match="not a YAML mapping"):
        load(b"- a\n- b\n")


def test_schema_accepts_rendered_manifests():
    assert check_zip_manifest(load(ZIP_TEXT.encode())) == []
    assert check_executable_manifest(load(EXECUTABLE_TEXT.encode())) == []


def test_schema_tolerates_unknown_keys():
    document = load(EXECUTABLE_TEXT.encode() + b"future_key: 1\n")
    document["dags"]["simple_dag"]["extra"] = "x"
    assert check_executable_manifest(document) == []


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"airflow_bundle_metadata_version": None}, "airflow_bundle_metadata_version is missing"),
        ({"airflow_bundle_metadata_version": 1.0}, "must be a string"),
        ({"airflow_bundle_metadata_version": "one"}, "not a MAJOR.MINOR"),
        ({"airflow_bundle_metadata_version": "2.0"}, "unsupported major"),
        ({"sdk": "python"}, "sdk must be a mapping"),
        (
            {"sdk": {"language": "Python!", "version": "1", "supervisor_schema_version": "2026-06-16"}},
            "lower-case",
        ),
        (
            {"sdk": {"language": "python", "version": "", "supervisor_schema_version": "2026-06-16"}},
            "sdk.version",
        ),
        ({"sdk": {"language": "python", "version": "1"}}, "sdk.supervisor_schema_version must be"),
        (
            {"sdk": {"language": "python", "version": "1", "supervisor_schema_version": "soon"}},
            "not a YYYY-MM-DD",
        ),
        (
            {"sdk": {"language": "python", "version": "1", "supervisor_schema_version": "2030-01-01"}},
            "accepts only",
        ),
        ({"source": ""}, "source must be a non-empty string"),
        ({"dags": None}, "dags is missing"),
        ({"dags": {}}, "dags is empty"),
        ({"dags": ["simple_dag"]}, "dags must be a mapping"),
        ({"dags": {123: {"tasks": ["a"]}}}, "dag id 123"),
        ({"dags": {"d": ["a"]}}, "must be a mapping with a tasks list"),
        ({"dags": {"d": {"tasks": "a"}}}, "tasks must be a list"),
        ({"dags": {"d": {"tasks": ["a", 1, ""]}}}, "has 1, not a non-empty string"),
    ],
)
def test_executable_schema_problems(patch, message):
    document = load(EXECUTABLE_TEXT.encode())
    for key, value in patch.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    problems = check_executable_manifest(document)
    assert any(message in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format_version", "x", "not a MAJOR.MINOR"),
        ("executable", None, "executable must be a non-empty string"),
        ("executable", 5, "executable must be a non-empty string"),
        ("source", None, "source must be a non-empty string"),
    ],
)
def test_zip_schema_problems(key, value, message):
    document = load(ZIP_TEXT.encode())
    if value is None:
        document.pop(key)
    else:
        document[key] = value
    assert any(message in problem for problem in check_zip_manifest(document))


def test_unquoted_numeric_dag_id_from_a_foreign_manifest_is_reported():
    document = load(
        b'format_version: "1.0"\nsdk: {language: go, version: "1"}\nsource: a\nexecutable: b\n'
        b"dags: {123: {tasks: [x]}}\n"
    )
    assert any("quote it" in problem for problem in check_zip_manifest(document))


def test_valid_ids_give_no_warnings():
    assert id_warnings(EXAMPLE_DAGS) == []
    assert id_warnings({"\u65e5" * 250: ["\u0436" * 250, "a.b-c_9"]}) == []


def test_too_long_and_bad_charset_and_double_dot_warnings():
    warnings = id_warnings({"x" * 251: ["ok"], "has space": ["a..b", "fine"], "d..d": []})
    assert warnings == [
        'dag id "d..d" contains ".."; Airflow rejects it unless [core] allow_double_dot_in_ids is enabled',
        'dag "d..d" has no tasks',
        'dag id "has space" has characters Airflow rejects (allowed: letters, digits, "_", "." and "-")',
        'task id "a..b" in dag "has space" contains ".."; Airflow rejects it unless [core] '
        "allow_double_dot_in_ids is enabled",
        f'dag id "{"x" * 251}" is 251 characters long; Airflow accepts at most 250',
    ]


def test_too_long_and_invalid_id_gets_both_warnings_and_charset_hides_double_dot():
    warnings = id_warnings({"d": ["a b.." + "x" * 250]})
    assert len(warnings) == 2
    assert "characters long" in warnings[0] and "has characters Airflow rejects" in warnings[1]
    assert not any('".."' in warning for warning in warnings)
