"""proto/ and the generated stubs: fresh, and wire-identical to the Go SDK and go-plugin."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.plugin_host import ROOT

GENERATED = ROOT / "bundle" / "plugin" / "_generated"


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    """``scripts/gen_protos.py`` into a temp dir reproduces bundle/plugin/_generated.

    What matters is the code derived from ``proto/``: the generator's own version stamps are compared
    separately (:func:`test_stubs_were_generated_by_the_locked_grpcio_tools`), so a stale proto and a
    different toolchain give different, precise failures.
    """
    out = tmp_path / "generated"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = _files(out)
    committed = _files(GENERATED)
    assert fresh == committed, "generated file set differs: run scripts/gen_protos.py"
    stale = [str(p) for p in fresh if _unstamped(out / p) != _unstamped(GENERATED / p)]
    assert stale == [], f"stale generated stubs {stale}: run .venv/bin/python scripts/gen_protos.py"
    restamped = [str(p) for p in fresh if (out / p).read_bytes() != (GENERATED / p).read_bytes()]
    assert restamped == [], f"{restamped} differ only in version stamps: install from requirements/dev.lock"


def test_stubs_were_generated_by_the_locked_grpcio_tools() -> None:
    """The stubs' ``GRPC_GENERATED_VERSION`` is the lock's grpcio-tools: regenerating changes nothing."""
    locked = re.search(
        r"^grpcio-tools==(\S+)", (ROOT / "requirements" / "dev.lock").read_text(), re.MULTILINE
    )
    assert locked, "requirements/dev.lock pins no grpcio-tools"
    stamps = {
        match.group(1)
        for path in GENERATED.rglob("*_pb2_grpc.py")
        for match in [_GRPC_STAMP.search(path.read_text())]
        if match
    }
    assert stamps == {locked.group(1)}, f"stubs stamped {stamps}, lock has grpcio-tools {locked.group(1)}"


_GRPC_STAMP = re.compile(r"^GRPC_GENERATED_VERSION = '([^']+)'$", re.MULTILINE)
_STAMPS = re.compile(rb"^(GRPC_GENERATED_VERSION = |# Protobuf Python Version: |    \d+,$).*$", re.MULTILINE)


def _unstamped(path: Path) -> bytes:
    """A generated file without the generator's version stamps (grpc's constant, protoc's header and
    the version numbers of protobuf's runtime check)."""
    return _STAMPS.sub(b"", path.read_bytes())


def _files(root: Path) -> list[Path]:
    """Source files under ``root``, without caches (``__pycache__``, ``.ruff_cache``...)."""
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(root).parts)
    )


def _full_methods(service: object) -> list[str]:
    return [f"/{service.full_name}/{m.name}" for m in service.methods]  # type: ignore[attr-defined]


def test_method_paths_and_descriptor_names() -> None:
    from bundle.plugin._generated.bundle.v1 import plugin_pb2
    from bundle.plugin._generated.plugin import grpc_broker_pb2, grpc_controller_pb2, grpc_stdio_pb2

    assert _full_methods(plugin_pb2.DESCRIPTOR.services_by_name["DagBundle"]) == [
        "/bundle.v1.DagBundle/GetMetadata",
        "/bundle.v1.DagBundle/Execute",
    ]
    assert _full_methods(grpc_controller_pb2.DESCRIPTOR.services_by_name["GRPCController"]) == [
        "/plugin.GRPCController/Shutdown"
    ]
    assert _full_methods(grpc_stdio_pb2.DESCRIPTOR.services_by_name["GRPCStdio"]) == [
        "/plugin.GRPCStdio/StreamStdio"
    ]
    assert _full_methods(grpc_broker_pb2.DESCRIPTOR.services_by_name["GRPCBroker"]) == [
        "/plugin.GRPCBroker/StartStream"
    ]
    names = {m.DESCRIPTOR.name for m in (plugin_pb2, grpc_broker_pb2, grpc_controller_pb2, grpc_stdio_pb2)}
    assert names == {
        "bundle/v1/plugin.proto",
        "plugin/grpc_broker.proto",
        "plugin/grpc_controller.proto",
        "plugin/grpc_stdio.proto",
    }
    stdio = grpc_stdio_pb2.DESCRIPTOR.services_by_name["GRPCStdio"].methods_by_name["StreamStdio"]
    assert stdio.input_type.full_name == "google.protobuf.Empty" and stdio.server_streaming
    broker = grpc_broker_pb2.DESCRIPTOR.services_by_name["GRPCBroker"].methods_by_name["StartStream"]
    assert broker.client_streaming and broker.server_streaming


def test_bundle_v1_field_numbers_and_presence() -> None:
    from bundle.plugin._generated.bundle.v1 import plugin_pb2 as pb

    def fields(message: object) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]

    assert fields(pb.BundleInfo) == {"name": 1, "version": 2}
    assert fields(pb.UUID) == {"value": 1}
    assert fields(pb.GetMetadata.Response) == {"bundle": 1}
    assert fields(pb.ExecuteTaskWorkload) == {"token": 1, "ti": 2, "bundle_info": 3, "log_path": 4}
    assert fields(pb.TaskInstance) == {
        "id": 1,
        "dag_id": 2,
        "run_id": 3,
        "task_id": 4,
        "map_index": 5,
        "try_number": 6,
        "hostname": 7,
        "otel_context": 8,
    }
    assert fields(pb.Execute.Request) == {"task": 1}
    assert pb.Execute.Request.DESCRIPTOR.oneofs_by_name["workload"].fields[0].name == "task"
    ti = pb.TaskInstance()
    assert not ti.HasField("map_index")
    ti.map_index = 0  # explicit presence: zero is not "absent"
    assert pb.TaskInstance.FromString(ti.SerializeToString()).HasField("map_index")
    info = pb.BundleInfo.FromString(pb.BundleInfo(name="b").SerializeToString())
    assert not info.HasField("version")
    assert pb.BundleInfo.FromString(pb.BundleInfo(name="b", version="").SerializeToString()).HasField(
        "version"
    )
    # the JSON names the Go descriptor uses
    json_names = {f.name: f.json_name for f in pb.TaskInstance.DESCRIPTOR.fields}
    assert json_names["dag_id"] == "dagId" and json_names["otel_context"] == "otelContext"
    # wire bytes of a known message (field 2 = dag_id, field 5 = map_index 0)
    assert pb.TaskInstance(dag_id="d", map_index=0).SerializeToString() == b"\x12\x01d(\x00"


def test_proto_sources_have_no_go_only_options() -> None:
    text = (ROOT / "proto" / "bundle" / "v1" / "plugin.proto").read_text()
    assert 'edition = "2023";' in text
    assert 'import "google/protobuf/go_features.proto"' not in text
    assert "features.(pb.go)" not in text
