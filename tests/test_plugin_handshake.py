"""go-plugin mode, process level: handshake, services, shutdown, signals (a Python host, no Go)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from tests.plugin_host import EXAMPLE, ROOT, HandshakeError, PluginHost, bundle_command, wait_for

SERVING = 1
HANDSHAKE = re.compile(r"^1\|1\|unix\|(/[^|]+)\|grpc\|\n$")


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An isolated AIRFLOW_HOME and socket dir per plugin process."""
    home = tmp_path / "airflow_home"
    home.mkdir()
    return {"AIRFLOW_HOME": str(home)}


def start(argv: list[str] | None = None, **kwargs) -> PluginHost:
    return PluginHost.start(argv or bundle_command(), **kwargs)


@pytest.mark.parametrize("module_mode", [True, False], ids=["python-m-bundle", "script"])
def test_full_lifecycle_against_example(module_mode: bool, plugin_env: dict[str, str]) -> None:
    with start(bundle_command(module_mode=module_mode), env=plugin_env) as host:
        hs = host.handshake
        match = HANDSHAKE.match(hs.raw)
        assert match, hs.raw
        assert os.path.isabs(hs.address) and Path(hs.address).is_socket()
        assert Path(hs.address).name.startswith("plugin")
        assert host.ping() == SERVING
        assert host.ping("") == SERVING
        info = host.metadata()
        assert (info.name, info.HasField("version"), info.version) == ("example_dags", True, "1.0.0")
        killed = host.kill()
        assert killed.graceful and killed.returncode == 0, host.stderr_text()
        assert killed.seconds < 1.0, killed
        assert not os.path.exists(hs.address), "socket file left behind"
        assert host.later_stdout == [], "nothing but the handshake may reach stdout"
        assert host.hclog_problems() == []
        print(
            f"handshake {hs.seconds:.3f}s, Shutdown→exit {killed.seconds:.3f}s (rpc {killed.shutdown_seconds:.3f}s)"
        )


def test_socket_dir_and_group(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    env = {**plugin_env, "PLUGIN_UNIX_SOCKET_DIR": str(sockets), "PLUGIN_UNIX_SOCKET_GROUP": str(os.getgid())}
    with start(env=env) as host:
        path = Path(host.handshake.address)
        assert path.parent.parent == sockets  # in a fresh directory the group may only enter
        assert path.stat().st_mode & 0o777 == 0o660
        assert path.stat().st_gid == os.getgid()
        assert (path.parent.stat().st_mode & 0o777, path.parent.stat().st_gid) == (0o710, os.getgid())
        assert host.kill().graceful
        assert list(sockets.iterdir()) == []


def test_tcp_listener_within_port_range(plugin_env: dict[str, str]) -> None:
    env = {
        **plugin_env,
        "PYBUNDLE_PLUGIN_NETWORK": "tcp",
        "PLUGIN_MIN_PORT": "23100",
        "PLUGIN_MAX_PORT": "23199",
    }
    with start(env=env) as host:
        assert re.match(r"^1\|1\|tcp\|127\.0\.0\.1:231\d\d\|grpc\|\n$", host.handshake.raw)
        assert host.metadata().name == "example_dags"
        assert host.kill().graceful


def test_multiplex_env_adds_seventh_field(plugin_env: dict[str, str]) -> None:
    with start(env={**plugin_env, "PLUGIN_MULTIPLEX_GRPC": "true"}) as host:
        assert host.handshake.raw.endswith("|grpc||false\n")
        assert host.kill().graceful


def test_no_cookie_refuses_to_run() -> None:
    """Without the cookie serve() refuses the way a Go bundle run by hand does: go-plugin's message,
    plus the usage naming every mode (the cookie included), exit 1, nothing on stdout."""
    proc = subprocess.run(
        bundle_command(), cwd=ROOT, capture_output=True, env=_env_without_cookie(), timeout=60
    )
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"This binary is a plugin.")
    assert b"AIRFLOW_BUNDLE_MAGIC_COOKIE" in proc.stderr and b"go-plugin" in proc.stderr
    code = (
        "import os, sys; os.environ.pop('AIRFLOW_BUNDLE_MAGIC_COOKIE', None)\n"
        "from bundle.plugin import run; from bundle import Bundle\n"
        "rc = run(Bundle('b')); assert 'grpc' not in sys.modules; raise SystemExit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, env=_env_without_cookie()
    )
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.startswith(b"This binary is a plugin. These are not meant to be executed directly.")


def test_wrong_cookie_refuses_to_run() -> None:
    with pytest.raises(HandshakeError, match="plugin exited before we could connect"):
        start(cookie="not-the-cookie")
    env = {**_env_without_cookie(), "AIRFLOW_BUNDLE_MAGIC_COOKIE": "wrong"}
    proc = subprocess.run(bundle_command(), cwd=ROOT, capture_output=True, env=env, timeout=60)
    assert proc.returncode == 1 and b"This binary is a plugin" in proc.stderr and proc.stdout == b""


@pytest.mark.parametrize("offered", ["2", "3,2"])
def test_unsupported_protocol_versions(offered: str, plugin_env: dict[str, str]) -> None:
    """The plugin answers with its lowest version; the host rejects it with go-plugin's message."""
    env = {**plugin_env, "PLUGIN_PROTOCOL_VERSIONS": offered}
    versions = tuple(int(v) for v in offered.split(","))
    with pytest.raises(HandshakeError, match=r"Incompatible API version with plugin. Plugin version: 1"):
        start(env=env, versions=versions)


def test_bad_version_entries_are_skipped(plugin_env: dict[str, str]) -> None:
    with start(env={**plugin_env, "PLUGIN_PROTOCOL_VERSIONS": "x,1"}) as host:
        assert host.handshake.app_version == 1
        assert host.kill().graceful
        assert any("invalid plugin version" in r.get("@message", "") for r in host.hclog_records())


def test_stdout_noise_at_import_does_not_break_handshake(write_bundle, plugin_env: dict[str, str]) -> None:
    path = write_bundle(
        """
        import sys
        print("noise before importing bundle is the author's problem; after it, it is ours")
        from bundle import Bundle, serve
        print("import-time noise")
        sys.stdout.write("more noise without newline")
        sys.stdout.flush()
        import os
        os.write(1, b"raw fd 1 noise\\n")
        bundle = Bundle("noisy", version=None)
        dag = bundle.dag("d")

        @dag.task
        def t():
            print("task print")

        if __name__ == "__main__":
            raise SystemExit(serve(bundle))
        """
    )
    # python -m bundle protects stdout before the module is imported, so even the first print is safe
    with start(bundle_command(path), env=plugin_env) as host:
        assert HANDSHAKE.match(host.handshake.raw), host.handshake.raw
        info = host.metadata()
        assert info.name == "noisy" and not info.HasField("version")
        assert host.kill().graceful
        assert "import-time noise" in host.stderr_text()


def test_metadata_without_version_and_no_dag_building(write_bundle, plugin_env: dict[str, str]) -> None:
    """GetMetadata must not register DAGs (discovery calls it for every bundle)."""
    path = write_bundle(
        """
        from bundle import BundleInfo, serve

        class Lazy:
            def get_bundle_version(self):
                return BundleInfo("lazy_bundle")

            def register_dags(self, registry):
                raise RuntimeError("GetMetadata must not build DAGs")

        bundle = Lazy()
        """
    )
    with start(bundle_command(path), env=plugin_env) as host:
        info = host.metadata()
        assert info.name == "lazy_bundle" and not info.HasField("version")
        assert host.kill().graceful
        assert "must not build" not in host.stderr_text()


def test_sigint_is_ignored(plugin_env: dict[str, str]) -> None:
    with start(env=plugin_env) as host:
        host.signal(signal.SIGINT)
        time.sleep(0.3)
        assert host.proc.poll() is None
        assert host.metadata().name == "example_dags"
        killed = host.kill()
        assert killed.graceful and killed.seconds < 1.0


def test_sigterm_stops_and_removes_socket(plugin_env: dict[str, str]) -> None:
    with start(env=plugin_env) as host:
        host.signal(signal.SIGTERM)
        assert host.proc.wait(5) == 143
        assert not os.path.exists(host.handshake.address)


def test_exits_when_parent_dies(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    """A launcher that dies without Kill() must not leave the plugin running."""
    launcher = tmp_path / "launcher.py"
    launcher.write_text(
        textwrap.dedent(
            f"""
            import os, subprocess, sys
            env = dict(os.environ, AIRFLOW_BUNDLE_MAGIC_COOKIE="23C6AB18-91F9-4760-B3E8-328EF3C861AB",
                       PLUGIN_PROTOCOL_VERSIONS="1")
            p = subprocess.Popen({bundle_command()!r}, cwd={str(ROOT)!r}, env=env, stdout=subprocess.PIPE)
            line = p.stdout.readline().decode()
            print(p.pid, line.split("|")[3], flush=True)
            os._exit(0)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(launcher)], capture_output=True, env={**os.environ, **plugin_env}, timeout=60
    )
    pid_text, socket_path = out.stdout.decode().split()
    pid = int(pid_text)
    assert wait_for(lambda: not _alive(pid), timeout=5), "plugin outlived its parent"
    assert not os.path.exists(socket_path)


def test_stdio_stream_forwards_output_after_handshake(write_bundle, plugin_env: dict[str, str]) -> None:
    path = write_bundle(
        """
        import os, sys, threading, time
        from bundle import Bundle, serve

        bundle = Bundle("chatty")

        def chatter():
            time.sleep(0.5)
            print("to stdout", flush=True)
            sys.stderr.write("to stderr\\n")
            sys.stderr.flush()
            os.write(2, b"raw fd 2\\n")

        threading.Thread(target=chatter, daemon=True).start()
        """
    )
    with start(bundle_command(path), env=plugin_env) as host:
        assert wait_for(lambda: "raw fd 2" in host.stdio_text(), timeout=10), host.stdio
        # two pipes, two reader threads: stdout's line may be queued after stderr's
        assert wait_for(lambda: "to stdout" in host.stdio_text(1), timeout=10), host.stdio
        assert "to stderr" in host.stdio_text(2)
        assert "to stdout" not in host.stderr_text()
        assert host.later_stdout == []
        assert host.kill().graceful


def test_broker_stream_is_drained(plugin_env: dict[str, str]) -> None:
    with start(env=plugin_env) as host:
        for i in range(3):
            host.send_broker(i)
        assert host.metadata().name == "example_dags"
        assert host.kill().graceful


def test_many_concurrent_calls_do_not_starve(plugin_env: dict[str, str]) -> None:
    """Long-lived stdio/broker streams must leave workers for the real RPCs."""
    from concurrent.futures import ThreadPoolExecutor

    with start(env=plugin_env) as host:
        with ThreadPoolExecutor(16) as pool:
            names = list(pool.map(lambda _: host.metadata().name, range(32)))
        assert set(names) == {"example_dags"}
        assert host.kill().graceful


def test_auto_mtls(plugin_env: dict[str, str]) -> None:
    """PLUGIN_CLIENT_CERT → TLS with the plugin's cert in field 6 (unpadded base64 DER); the host's
    P-521 client certificate is not verified (grpcio limitation), which is logged."""
    key_pem, cert_pem = _host_client_cert()
    env = {**plugin_env, "PLUGIN_CLIENT_CERT": cert_pem.decode()}
    with start(env=env, connect=False) as host:
        field6 = host.handshake.server_cert
        assert len(field6) > 50 and "=" not in field6 and re.fullmatch(r"[A-Za-z0-9+/]+", field6)
        host.connect(client_cert=(key_pem, cert_pem))
        assert host.metadata().name == "example_dags"
        assert host.kill().graceful
        assert any("grpcio cannot verify" in r.get("@message", "") for r in host.hclog_records())


def test_plaintext_client_cannot_talk_to_tls_plugin(plugin_env: dict[str, str]) -> None:
    _key_pem, cert_pem = _host_client_cert()
    with start(env={**plugin_env, "PLUGIN_CLIENT_CERT": cert_pem.decode()}, connect=False) as host:
        channel = grpc.insecure_channel(f"unix:{host.handshake.address}")
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=0.5)
        channel.close()


def test_coordinator_and_dump_paths_never_import_grpc() -> None:
    """grpc and protobuf are imported only in go-plugin mode."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bundle", "--bundle", str(EXAMPLE), "--dump-bundle-spec"],
        cwd=ROOT,
        capture_output=True,
        env=_env_without_cookie(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines() if "|" in line]
    assert "bundle" in modules and "bundle.introspection" in modules
    heavy = [
        m for m in modules if m.split(".")[0] in ("grpc", "grpc_health") or m.startswith("google.protobuf")
    ]
    assert heavy == []
    assert not [m for m in modules if m.startswith("bundle.plugin.")]


# -- helpers -----------------------------------------------------------------------------------
def _env_without_cookie() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k != "AIRFLOW_BUNDLE_MAGIC_COOKIE" and not k.startswith("PLUGIN_")
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie whose parent is gone is reaped by init quickly; treat it as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _host_client_cert() -> tuple[bytes, bytes]:
    """A client certificate like go-plugin's host generates (ECDSA P-521, self-signed)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA512())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def test_bundle_atexit_handlers_run_on_shutdown(
    write_bundle, tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    """The plugin ends with os._exit for speed, but only after the bundle's atexit handlers ran."""
    marker = tmp_path / "atexit-ran"
    path = write_bundle(
        f"""
        import atexit
        from bundle import Bundle

        bundle = Bundle("with_atexit")
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        """
    )
    with start(bundle_command(path), env=plugin_env) as host:
        killed = host.kill()
        assert killed.graceful and killed.seconds < 1.0
    assert marker.read_text() == "yes"
