"""The deterministic ZIP writer: fixed bytes for fixed entries, Unix modes, nothing host-specific."""

from __future__ import annotations

import io
import stat
import subprocess
import zipfile

import pytest

from packer import PackError
from packer.zipbundle import Entry, build_zip, entry_mode

ENTRIES = [
    Entry("zeta.txt", b"z" * 100),
    Entry("airflow-metadata.yaml", b'format_version: "1.0"\n'),
    Entry("bin/run", b"#!/bin/sh\necho hi\n", 0o755),
    Entry("caf\u00e9.py", b"pass\n"),
]


def test_identical_entries_give_identical_bytes_in_any_order():
    assert build_zip(ENTRIES) == build_zip(list(reversed(ENTRIES)))


def test_archive_fields_are_fixed():
    data = build_zip(ENTRIES)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == sorted((e.name for e in ENTRIES), key=lambda name: name.encode())
    assert archive.comment == b""
    for info in archive.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.extra == b""
        assert stat.S_ISREG(info.external_attr >> 16)
    assert entry_mode(archive.getinfo("bin/run")) == 0o755
    assert entry_mode(archive.getinfo("zeta.txt")) == 0o644
    assert not any(name.endswith("/") for name in archive.namelist())  # no directory entries
    assert archive.testzip() is None


def test_info_zip_restores_the_exec_bit(tmp_path):
    """The consumer side: Info-ZIP unzip honours the mode in the external attributes."""
    (tmp_path / "b.zip").write_bytes(build_zip(ENTRIES))
    subprocess.run(["unzip", "-q", "b.zip", "-d", "out"], cwd=tmp_path, check=True)
    assert stat.S_IMODE((tmp_path / "out" / "bin" / "run").stat().st_mode) == 0o755


@pytest.mark.parametrize("name", ["/abs", "a/../b", "../up", "a//b", "dir/", "back\\slash", ".", "a/./b", ""])
def test_unsafe_names_are_refused(name):
    with pytest.raises(PackError, match="invalid archive entry name"):
        build_zip([Entry(name, b"")])


def test_duplicates_are_refused():
    with pytest.raises(PackError, match="duplicate archive entry"):
        build_zip([Entry("a", b"1"), Entry("a", b"2")])
