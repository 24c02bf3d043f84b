"""``bundle-pack inspect`` and ``bundle-pack verify`` on good bundles and on every kind of corruption.

Each corrupted executable bundle is also shown to the released reader (apache-airflow-task-sdk 1.3.2
``ExecutableCoordinator``'s ``_read_bundle_metadata``): ``verify`` must fail exactly where Airflow
would skip the file, and pass where Airflow routes tasks to it.
"""

from __future__ import annotations

import functools
import io
import pathlib
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from packer.trailer import assemble, parse_bundle
from packer.zipbundle import Entry, build_zip
from tests.fixtures.packer.support import (
    EXAMPLE,
    EXAMPLE_TASKS,
    bundle_pack,
    clean_env,
    ensure_airflow_home,
    run,
)


@functools.cache
def released() -> Any:
    """The released reader, ``airflow.sdk.coordinators.executable.coordinator`` (task-sdk 1.3.2)."""
    ensure_airflow_home()
    from airflow.sdk.coordinators.executable import coordinator

    return coordinator


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("good")
    paths = {}
    for fmt, name in (("zip", "good.zip"), ("executable", "good")):
        result = bundle_pack(str(EXAMPLE), "--format", fmt, "--output", str(directory / name))
        assert result.returncode == 0, result.stderr
        paths[fmt] = directory / name
    return paths


def released_reader(path: Path) -> dict | None:
    released()._digest_cache.clear()
    return released()._read_bundle_metadata(pathlib.Path(path))


def write_bundle(path: Path, data: bytes, mode: int = 0o755) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def verify(path: Path):
    return bundle_pack("verify", str(path), env=clean_env())


def assert_verify_fails(path: Path, *messages: str) -> str:
    result = verify(path)
    assert result.returncode == 1, result.stderr
    assert result.text == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors, result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr
    return result.stderr


# -- good bundles -------------------------------------------------------------------------------
def test_verify_passes_on_both_formats(good):
    for fmt, path in good.items():
        result = verify(path)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert result.text.startswith(f"OK {path}: {fmt} bundle (sdk=python/")
        assert result.text.endswith(f", dags=1, tasks={len(EXAMPLE_TASKS)})\n")


def test_released_reader_routes_the_good_executable_bundle(good, tmp_path):
    assert released_reader(good["executable"])["dags"] == {"simple_dag": {"tasks": EXAMPLE_TASKS}}
    root = tmp_path / "roots" / "nested"
    root.mkdir(parents=True)
    write_bundle(root / "bundle", good["executable"].read_bytes())
    found = released()._Bundle.find([tmp_path / "roots"], "simple_dag")
    assert (found.path, found.schema_version) == ((root / "bundle").resolve(), "2026-06-16")


def test_inspect_prints_the_manifest_verbatim(good):
    executable = parse_bundle(good["executable"].read_bytes())
    result = bundle_pack("inspect", str(good["executable"]))
    assert (result.returncode, result.stdout, result.stderr) == (0, executable.metadata, "")
    archive = zipfile.ZipFile(good["zip"])
    result = bundle_pack("inspect", str(good["zip"]))
    assert (result.returncode, result.stdout, result.stderr) == (0, archive.read("airflow-metadata.yaml"), "")


def test_inspect_with_source(good):
    executable = parse_bundle(good["executable"].read_bytes())
    expected = b"# --- source ---\n" + EXAMPLE.read_bytes() + b"# --- manifest ---\n" + executable.metadata
    assert bundle_pack("inspect", "--source", str(good["executable"])).stdout == expected
    archive = zipfile.ZipFile(good["zip"])
    expected = (
        b"# --- source ---\n"
        + EXAMPLE.read_bytes()
        + b"# --- manifest ---\n"
        + archive.read("airflow-metadata.yaml")
    )
    assert bundle_pack("inspect", str(good["zip"]), "--source").stdout == expected


def test_inspect_adds_missing_newlines(tmp_path, good):
    binary = parse_bundle(good["executable"].read_bytes()).binary
    path = write_bundle(tmp_path / "b", assemble(binary, b"no newline", b"dags: {d: {tasks: [t]}}"))
    result = bundle_pack("inspect", "--source", str(path))
    assert result.stdout == b"# --- source ---\nno newline\n# --- manifest ---\ndags: {d: {tasks: [t]}}\n"


# -- corrupted executable bundles ---------------------------------------------------------------
def patch(data: bytes, position: int, value: bytes) -> bytes:
    position %= len(data)
    return data[:position] + value + data[position + len(value) :]


def flip(data: bytes, position: int) -> bytes:
    position %= len(data)
    return patch(data, position, bytes([data[position] ^ 0x01]))


def rebuilt(
    good_path: Path,
    *,
    source: bytes | None = None,
    metadata: bytes | None = None,
    binary: bytes | None = None,
) -> bytes:
    bundle = parse_bundle(good_path.read_bytes())
    return assemble(
        bundle.binary if binary is None else binary,
        bundle.source if source is None else source,
        bundle.metadata if metadata is None else metadata,
    )


CORRUPTIONS = {
    "flipped byte in the launcher": (lambda d: flip(d, 500), "SHA-256 of the binary region"),
    "flipped byte in the embedded runtime": (
        lambda d: flip(d, len(parse_bundle(d).binary) - 3000),
        "SHA-256",
    ),
    "flipped byte in the trailer hash": (lambda d: flip(d, -40), "SHA-256 of the binary region"),
    "truncated trailer": (lambda d: d[:-10], "no valid AFBNDL01 trailer"),
    "wrong magic": (lambda d: patch(d, -8, b"AFBNDL02"), "no valid AFBNDL01 trailer"),
    "non-zero reserved bytes": (lambda d: patch(d, -15, b"\x07"), "reserved bytes are not zero"),
    "footer version 2": (lambda d: patch(d, -56, struct.pack("<I", 2)), "unsupported footer_ver 2"),
    "lengths past the start": (lambda d: patch(d, -64, struct.pack("<I", len(d))), "more than the"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_executable_bundles(good, tmp_path, name):
    corrupt, message = CORRUPTIONS[name]
    path = write_bundle(tmp_path / "bundle", corrupt(good["executable"].read_bytes()))
    assert_verify_fails(path, message)
    inspected = bundle_pack("inspect", str(path))
    assert inspected.returncode == 1 and message in inspected.stderr, inspected.stderr
    assert released_reader(path) is None, "the released reader accepted it"


def test_a_damaged_launcher_refuses_to_run(good, tmp_path):
    path = write_bundle(tmp_path / "bundle", flip(good["executable"].read_bytes(), 500))
    result = run([str(path), "--bundle-metadata"], env=clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "c")))
    assert result.returncode == 1 and result.stdout == b""
    assert (
        "is corrupted: the SHA-256 of its launcher region does not match the bundle trailer" in result.stderr
    )


def test_damaged_runtime_with_a_recomputed_hash_fails_when_run(good, tmp_path):
    """A consistent trailer over a broken embedded ZIP: only running the executable finds it."""
    bundle = parse_bundle(good["executable"].read_bytes())
    stored = zipfile.ZipFile(io.BytesIO(bundle.binary)).read("lib/bundle/serve.py")
    binary = flip(
        bundle.binary, bundle.binary.index(stored) + 10
    )  # entries are stored: flip one of its bytes
    path = write_bundle(tmp_path / "bundle", assemble(binary, bundle.source, bundle.metadata))
    assert released_reader(path) is not None  # Airflow would run it ...
    stderr = assert_verify_fails(
        path, "executable --bundle-metadata exited with status 1"
    )  # ... and it breaks
    assert "the embedded runtime archive is damaged" in stderr


def test_bad_yaml_manifest(good, tmp_path):
    path = write_bundle(tmp_path / "bundle", rebuilt(good["executable"], metadata=b"dags: [unclosed\n"))
    assert_verify_fails(path, "manifest is not valid YAML")
    assert released_reader(path) is None
    assert bundle_pack("inspect", str(path)).stdout == b"dags: [unclosed\n"  # inspect shows what is there


def test_manifest_that_is_not_a_mapping(good, tmp_path):
    path = write_bundle(tmp_path / "bundle", rebuilt(good["executable"], metadata=b"- simple_dag\n"))
    assert_verify_fails(path, "manifest is not a YAML mapping (got list)")
    assert released_reader(path) is None


def test_unsupported_schema_version(good, tmp_path):
    metadata = parse_bundle(good["executable"].read_bytes()).metadata.replace(b"2026-06-16", b"2030-01-01")
    path = write_bundle(tmp_path / "bundle", rebuilt(good["executable"], metadata=metadata))
    assert_verify_fails(path, "accepts only '2026-06-16'")
    with pytest.raises(FileNotFoundError, match="usable supervisor_schema_version"):
        released()._Bundle.find([tmp_path], "simple_dag")


def test_manifest_and_bundle_disagree(good, tmp_path):
    metadata = parse_bundle(good["executable"].read_bytes()).metadata
    # inside ``dags`` (the manifest may go on with the example's pybundle_vendored)
    ghost = metadata.replace(
        b'      - "audit"\n', b'      - "audit"\n  ghost_dag:\n    tasks:\n      - "boo"\n'
    )
    path = write_bundle(tmp_path / "ghost", rebuilt(good["executable"], metadata=ghost))
    assert_verify_fails(
        path, "dag 'ghost_dag' is in the manifest, but the bundle's --dump-bundle-spec does not expose it"
    )
    missing = metadata.replace(b'      - "audit"\n', b"")
    path = write_bundle(tmp_path / "missing", rebuilt(good["executable"], metadata=missing))
    assert_verify_fails(
        path,
        "the bundle's --dump-bundle-spec has task 'audit' in dag 'simple_dag', which the manifest does not list",
    )
    extra = metadata.replace(b'      - "audit"\n', b'      - "audit"\n      - "phantom"\n')
    path = write_bundle(tmp_path / "extra", rebuilt(good["executable"], metadata=extra))
    assert_verify_fails(
        path, "task 'phantom' of dag 'simple_dag' is in the manifest, but not in the bundle's"
    )


def test_missing_exec_bit(good, tmp_path):
    path = write_bundle(tmp_path / "bundle", good["executable"].read_bytes(), mode=0o644)
    assert_verify_fails(path, "is not executable (mode 0644)")
    # the released scanner ignores files without the exec bit:
    with pytest.raises(
        FileNotFoundError, match="cannot find executable bundle containing dag_id='simple_dag'"
    ):
        released()._Bundle.find([tmp_path], "simple_dag")


def test_non_canonical_manifest_is_a_warning_only(good, tmp_path):
    metadata = (
        b'airflow_bundle_metadata_version: "1.0"\nsdk: {language: python, version: "%s", '
        % (parse_bundle(good["executable"].read_bytes()).metadata.split(b'version: "')[2].split(b'"')[0])
    )
    metadata += b'supervisor_schema_version: "2026-06-16"}\nsource: example_dags.py\n'
    metadata += b"dags: {simple_dag: {tasks: [%s]}}\n" % ", ".join(EXAMPLE_TASKS).encode()
    path = write_bundle(tmp_path / "bundle", rebuilt(good["executable"], metadata=metadata))
    result = verify(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "warning: the manifest is valid but not in bundle-pack's canonical rendering\n"


# -- corrupted ZIP bundles ----------------------------------------------------------------------
def zip_entries(path: Path) -> dict[str, tuple[bytes, int]]:
    archive = zipfile.ZipFile(path)
    return {
        info.filename: (archive.read(info), (info.external_attr >> 16) & 0o7777)
        for info in archive.infolist()
    }


def rezip(path: Path, target: Path, changes: dict[str, tuple[bytes, int] | None]) -> Path:
    """``path``'s entries with some replaced (or removed, for None), written deterministically to ``target``."""
    entries = zip_entries(path)
    for name, value in changes.items():
        if value is None:
            entries.pop(name)
        else:
            entries[name] = value
    target.write_bytes(build_zip(Entry(name, data, mode) for name, (data, mode) in entries.items()))
    return target


def test_zip_with_flipped_bytes_fails_crc(good, tmp_path):
    data = good["zip"].read_bytes()
    archive = zipfile.ZipFile(good["zip"])
    for name in ("example_dags.py", "example_dags"):
        info = archive.getinfo(name)
        offset = info.header_offset + 30 + len(info.filename.encode()) + 100
        path = tmp_path / f"{name}.zip"
        path.write_bytes(flip(data, offset))
        assert_verify_fails(path, f"entry '{name}' is damaged (CRC-32 mismatch or bad header)")


def test_zip_with_bad_yaml(good, tmp_path):
    path = rezip(good["zip"], tmp_path / "b.zip", {"airflow-metadata.yaml": (b"format_version: [\n", 0o644)})
    assert_verify_fails(path, "manifest is not valid YAML")


def test_zip_without_exec_bits(good, tmp_path):
    data, _ = zip_entries(good["zip"])["example_dags"]
    path = rezip(good["zip"], tmp_path / "b.zip", {"example_dags": (data, 0o644)})
    assert_verify_fails(
        path, "executable entry 'example_dags' has no exec bits in its external attributes (mode 0644)"
    )


def test_zip_missing_entries_and_schema_errors(good, tmp_path):
    manifest = zip_entries(good["zip"])["airflow-metadata.yaml"][0]
    assert_verify_fails(
        rezip(good["zip"], tmp_path / "a.zip", {"example_dags.py": None}),
        "manifest source 'example_dags.py' is not an entry",
    )
    assert_verify_fails(
        rezip(good["zip"], tmp_path / "b.zip", {"example_dags": None}),
        "manifest executable 'example_dags' is not an entry",
    )
    bumped = manifest.replace(b'format_version: "1.0"', b'format_version: "2.0"')
    assert_verify_fails(
        rezip(good["zip"], tmp_path / "c.zip", {"airflow-metadata.yaml": (bumped, 0o644)}),
        "unsupported major version",
    )
    nested = manifest.replace(b"source: example_dags.py", b"source: src/example_dags.py")
    source = zip_entries(good["zip"])["example_dags.py"]
    changes = {
        "airflow-metadata.yaml": (nested, 0o644),
        "example_dags.py": None,
        "src/example_dags.py": source,
    }
    assert_verify_fails(
        rezip(good["zip"], tmp_path / "d.zip", changes),
        "manifest source 'src/example_dags.py' is not at the archive root",
    )


def test_not_a_bundle(tmp_path, good):
    junk = write_bundle(tmp_path / "junk", b"just some bytes\n" * 10)
    assert_verify_fails(junk, "is not a bundle: it has no AFBNDL01 trailer and is not a ZIP archive")
    plain = tmp_path / "plain.zip"
    plain.write_bytes(build_zip([Entry("readme.txt", b"hi")]))
    assert_verify_fails(plain, "is a ZIP archive without airflow-metadata.yaml at its root: not a bundle")
    launcher = write_bundle(tmp_path / "launcher", zipfile.ZipFile(good["zip"]).read("example_dags"))
    assert_verify_fails(launcher, "is a bundle executable without a manifest")
    missing = bundle_pack("inspect", str(tmp_path / "nope"))
    assert (missing.returncode, missing.stderr) == (
        1,
        f"error: cannot read {tmp_path / 'nope'}: No such file or directory\n",
    )
    directory = bundle_pack("verify", str(tmp_path))
    assert directory.returncode == 1 and "Is a directory" in directory.stderr


def test_zip_executable_entry_runs_after_extraction_like_a_consumer_would(good, tmp_path):
    """The spec's consumer flow: extract, chmod (ZipFile drops modes), run with the dump flags."""
    zipfile.ZipFile(good["zip"]).extractall(tmp_path / "x")
    executable = tmp_path / "x" / "example_dags"
    assert not stat.S_IMODE(executable.stat().st_mode) & 0o111
    executable.chmod(0o755)
    result = run(
        [str(executable), "--dump-bundle-spec"], env=clean_env(PYBUNDLE_CACHE_DIR=str(tmp_path / "c"))
    )
    assert result.returncode == 0, result.stderr
    assert result.json()["dags"]["simple_dag"]["tasks"][0] == "extract"
