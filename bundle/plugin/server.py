"""``serve_plugin``: the bundle as a HashiCorp go-plugin gRPC server (plugin ``dag-bundle``).

What the Go Edge Worker sees must be what a Go bundle built with the pre-retirement Go SDK showed it
(go-plugin v1.7.0 host, app protocol 1). The start-up order matters and follows go-plugin's
``Serve``: ignore SIGINT (the worker drains on Ctrl-C and stops plugins itself), negotiate the app
protocol version, listen on a fresh Unix socket (in a new directory only this user may enter, so
no other local user can call the plugin whatever the umask), register every service and *start serving*, and
only then print the handshake line (the host dials at once, fail-fast). After the handshake, fds 1
and 2 feed ``GRPCStdio`` and the plugin's own logs go to the real stderr as hclog JSON lines.

Services: ``bundle.v1.DagBundle`` (GetMetadata, Execute), ``grpc.health.v1.Health`` (``plugin`` =
SERVING), ``plugin.GRPCController/Shutdown`` (answer, then stop and exit well inside the host's 2 s
kill deadline), ``plugin.GRPCStdio/StreamStdio`` and ``plugin.GRPCBroker/StartStream`` (drained; a
dag-bundle never brokers). The process also exits when its parent dies (polling ``getppid``:
``PR_SET_PDEATHSIG`` fires when the parent *thread* exits, which would kill plugins started from a
short-lived thread of a Python host) and on SIGTERM; it removes its socket and its directory on
the way out. Requests are bounded (``pybundle.max-receive-message-bytes``, 4 MiB like grpc-go).
"""

from __future__ import annotations

import atexit
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .. import _stdout
from .._version import __version__
from ..core.provider import BundleProvider, registry_of
from ..core.registry import Registry
from ._generated.bundle.v1 import plugin_pb2, plugin_pb2_grpc
from ._generated.plugin import (
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2,
    grpc_stdio_pb2_grpc,
)
from .hclog import HclogHandler, HclogWriter
from .settings import max_receive_message_bytes
from .stdio import StdioCapture

if TYPE_CHECKING:
    from .runner import TaskRunner

CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSIONS = (1,)
PLUGIN_NAME = "dag-bundle"
HEALTH_SERVICE = "plugin"
# Two long-lived streams (stdio, broker) hold a worker each for the whole connection; the Edge Worker
# runs one workload per process, but nothing forbids concurrent Execute calls.
MAX_WORKERS = 32
STOP_GRACE_SECONDS = 0.5
# When the plugin stops with tasks running: how long a cancelled task gets to end (and report its
# own state), then the timeout of the one request that reports a task still running as failed
# (waited for at most REPORT_SLACK_SECONDS longer, however the server trickles). Together with the
# rest of the teardown (~0.1 s) they stay well inside the 2 s the host waits before SIGKILL.
TASK_STOP_GRACE_SECONDS = 0.6
FINAL_REPORT_TIMEOUT_SECONDS = 0.4
PARENT_POLL_SECONDS = 0.25
NETWORK_ENV = "PYBUNDLE_PLUGIN_NETWORK"  # "tcp" forces the TCP listener (tests, Windows-like hosts)
_SUN_PATH_MAX = 107
SOCKET_NAME = "plugin.sock"

log = logging.getLogger("bundle.plugin")


@dataclass
class _State:
    """Process-wide run state shared by the servicers and the main thread."""

    writer: HclogWriter
    stop: threading.Event = field(default_factory=threading.Event)
    exit_code: int = 0
    reason: str = ""
    executing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request_stop(self, reason: str, code: int = 0) -> None:
        """First caller wins (Shutdown, SIGTERM or parent death); the main thread does the rest."""
        with self.lock:
            if not self.stop.is_set():
                self.reason, self.exit_code = reason, code
                self.stop.set()


# -- version negotiation, listener, handshake --------------------------------------------------
def negotiate_version(offered: str | None, writer: HclogWriter | None = None) -> int:
    """go-plugin's rule: the highest own version the host offered, else the lowest own version
    (the host then rejects the plugin with a clear error)."""
    if not offered:
        return min(APP_PROTOCOL_VERSIONS)
    versions: set[int] = set()
    for part in offered.split(","):
        try:
            versions.add(int(part))
        except ValueError:
            if writer is not None:
                writer.log("warn", f"server sent invalid plugin version {part!r}")
    for version in sorted(APP_PROTOCOL_VERSIONS, reverse=True):
        if version in versions:
            return version
    return min(APP_PROTOCOL_VERSIONS)


@dataclass
class Listener:
    """Where the plugin listens, as the handshake line announces it."""

    network: str  # "unix" or "tcp"
    address: str  # socket path or 127.0.0.1:port
    socket_path: str | None = None
    socket_dir: str | None = None  # the private directory created for the socket

    def remove(self) -> None:
        """Delete the socket file and its directory: go-plugin's listener removes the socket on
        close, and hosts run many short-lived plugins, so leftovers would pile up in the temp dir."""
        for path, remove in ((self.socket_path, os.unlink), (self.socket_dir, os.rmdir)):
            if not path:
                continue
            try:
                remove(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", path, exc)


def _add_port(server: grpc.Server, target: str, credentials: grpc.ServerCredentials | None) -> int:
    if credentials is None:
        return server.add_insecure_port(target)
    return server.add_secure_port(target, credentials)


def _temp_dir(env: Mapping[str, str]) -> str:
    """Go's ``os.TempDir``: ``$TMPDIR``, else ``/tmp`` (``tempfile`` would cost start-up its imports)."""
    return env.get("TMPDIR") or "/tmp"


def private_socket_dir(parent: str, gid: int | None = None) -> str:
    """A fresh directory in ``parent`` that only this user (and ``gid``, if given) can enter.

    A Unix socket's own mode comes from the umask (0777 under ``umask 000``) and whoever can
    connect can call ``Execute``; a directory made here, mode 0700 (0710 for the socket group)
    whatever the umask, keeps other local users away from the socket however it was created.
    ``mkdir`` fails rather than reuse a directory that appeared meanwhile."""
    for _ in range(100):
        path = os.path.join(parent, "plugin" + str(int.from_bytes(os.urandom(4), "big")))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        try:
            if gid is not None:
                os.chown(path, -1, gid)
            os.chmod(path, 0o710 if gid is not None else 0o700)  # mkdir's mode is masked by the umask
        except OSError:
            os.rmdir(path)
            raise
        return path
    raise OSError(f"no unused socket directory name in {parent}")


def bind_listener(
    server: grpc.Server, credentials: grpc.ServerCredentials | None, environ: dict[str, str] | None = None
) -> Listener:
    """A Unix socket ``plugin.sock`` in a fresh private directory of ``PLUGIN_UNIX_SOCKET_DIR`` (or
    the temp dir); TCP on 127.0.0.1 within ``PLUGIN_MIN_PORT..PLUGIN_MAX_PORT`` when Unix sockets
    are unavailable, the path is too long, or ``PYBUNDLE_PLUGIN_NETWORK=tcp``.

    Who can connect: on Unix, this user only (plus ``PLUGIN_UNIX_SOCKET_GROUP``'s members when the
    host sets it), whatever the umask; over TCP, any local process (see docs/deploy.md)."""
    env = os.environ if environ is None else environ
    if hasattr(os, "fork") and env.get(NETWORK_ENV, "unix") != "tcp":
        group = env.get("PLUGIN_UNIX_SOCKET_GROUP")
        gid = _group_id(group) if group else None  # a bad group is an init error, not a fallback
        parent = env.get("PLUGIN_UNIX_SOCKET_DIR") or _temp_dir(env)
        directory: str | None = None
        try:
            directory = private_socket_dir(parent, gid)
            path = os.path.join(directory, SOCKET_NAME)
            if len(path.encode()) > _SUN_PATH_MAX:
                log.warning(
                    "socket path %s is longer than %d bytes; falling back to TCP", path, _SUN_PATH_MAX
                )
            elif _add_port(server, f"unix:{path}", credentials):
                os.chmod(path, 0o660 if group else 0o600)
                return Listener("unix", path, path, directory)
        except (RuntimeError, OSError) as exc:
            log.warning("cannot listen on a unix socket in %s (%s); falling back to TCP", parent, exc)
        if directory is not None:
            Listener("unix", "", None, directory).remove()
    low = int(env.get("PLUGIN_MIN_PORT") or 10000)
    high = int(env.get("PLUGIN_MAX_PORT") or 25000)
    for port in range(low, high + 1):
        try:
            if _add_port(server, f"127.0.0.1:{port}", credentials) == port:
                return Listener("tcp", f"127.0.0.1:{port}")
        except RuntimeError:
            continue
    raise OSError(f"couldn't bind plugin TCP listener in 127.0.0.1:{low}..{high}")


def _group_id(group: str) -> int:
    """``PLUGIN_UNIX_SOCKET_GROUP`` as a gid (a number or a group name)."""
    if group.isdigit():
        return int(group)
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"unknown group {group!r} in PLUGIN_UNIX_SOCKET_GROUP") from None


def handshake_line(
    version: int, listener: Listener, server_cert: str = "", environ: dict[str, str] | None = None
) -> str:
    """``CORE|APP|NETWORK|ADDR|grpc|CERT`` plus the broker-multiplexing field when the host asked.

    The seventh field is sent only when ``PLUGIN_MULTIPLEX_GRPC`` is set (older hosts would glue it to
    the certificate); pybundle does not multiplex the broker, so it answers ``false``."""
    env = os.environ if environ is None else environ
    line = f"{CORE_PROTOCOL_VERSION}|{version}|{listener.network}|{listener.address}|grpc|{server_cert}"
    if env.get("PLUGIN_MULTIPLEX_GRPC"):
        line += "|false"
    return line + "\n"


# -- servicers ---------------------------------------------------------------------------------
def _go_bundle_info(name: str, version: str | None) -> str:
    """Go's ``%#v`` of ``bundlev1.BundleInfo`` (the version pointer shown by value, not address)."""
    ver = "(*string)(nil)" if version is None else f"(*string)({_quote(version)})"
    return f"bundlev1.BundleInfo{{Name:{_quote(name)}, Version:{ver}}}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class DagBundleServicer(plugin_pb2_grpc.DagBundleServicer):
    """``bundle.v1.DagBundle`` with the Go plugin's status codes and messages."""

    def __init__(self, provider: BundleProvider, state: _State):
        self.provider = provider
        self.state = state
        self._registry: Registry | None = None
        self._registry_lock = threading.Lock()
        self._runner: TaskRunner | None = None

    def GetMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        """The bundle's name and version only: discovery calls this once per bundle and it must not
        build the DAGs (``get_bundle_version`` never registers them)."""
        info = self.provider.get_bundle_version()
        bundle = plugin_pb2.BundleInfo(name=info.name)
        if info.version is not None:
            bundle.version = info.version  # absent = unversioned, as the host reads HasVersion()
        return plugin_pb2.GetMetadata.Response(bundle=bundle)

    def Execute(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Validate like the Go plugin (same codes and texts, typo included), then run the task.

        A task that fails is Airflow's business (reported through the Execution API) and the call
        still succeeds; only infrastructure failures become gRPC errors."""
        workload_kind = request.WhichOneof("workload")
        if workload_kind != "task":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, 'Unimplmeneted workload "not set"')
        task = request.task
        ti = task.ti
        # The runner (Execution API client, ssl, settings, task logs) loads at the first Execute:
        # the handshake, which the host waits for, does not need it.
        from .runner import RunnerError, Workload, parse_go_uuid

        try:
            ti_id = parse_go_uuid(ti.id.value)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unable to parse UUID: {exc}")
        workload = Workload(
            token=task.token,
            ti_id=ti_id,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=ti.try_number,
            map_index=ti.map_index if ti.HasField("map_index") else None,
            hostname=ti.hostname if ti.HasField("hostname") else None,
            bundle_name=task.bundle_info.name,
            bundle_version=task.bundle_info.version if task.bundle_info.HasField("version") else None,
            log_path=task.log_path if task.HasField("log_path") else None,
        )
        runner = self._get_runner()
        if runner is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"dag bundle not found: {_go_bundle_info(workload.bundle_name, workload.bundle_version)}",
            )
        if self.state.stop.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the plugin is shutting down")
        cancelled = threading.Event()
        context.add_callback(cancelled.set)
        with self.state.lock:
            self.state.executing += 1
        try:
            runner.run(workload, cancelled)  # type: ignore[union-attr]  # abort() raised on None (grpc is untyped)
        except RunnerError as exc:
            context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), str(exc))
        except Exception as exc:  # a bug of ours: surface it like Go's codes.Unknown, keep serving
            self.state.writer.log("error", "Execute failed", error="".join(traceback.format_exception(exc)))
            context.abort(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
        finally:
            with self.state.lock:
                self.state.executing -= 1
        return plugin_pb2.Execute.Response()

    def abort_running(self, reason: str) -> int:
        """Cancel and report the running tasks before the process exits; how many had to be
        reported failed here because they did not end in time."""
        runner = self._runner
        if runner is None:
            return 0
        return runner.abort_all(reason, TASK_STOP_GRACE_SECONDS, FINAL_REPORT_TIMEOUT_SECONDS)

    def _get_runner(self) -> TaskRunner | None:
        """Register the DAGs once per process (Go's lazy ``RegisterDags``); ``None`` if that fails."""
        with self._registry_lock:
            if self._runner is None:
                try:
                    self._registry = registry_of(self.provider)
                except Exception as exc:
                    self.state.writer.log(
                        "error",
                        "registering the bundle's dags failed",
                        error="".join(traceback.format_exception(exc)),
                    )
                    return None
                from .runner import TaskRunner
                from .settings import load_settings

                self._runner = TaskRunner(self._registry, load_settings(), self.state.writer)
            return self._runner


class ControllerServicer(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """``plugin.GRPCController``: without it the host waits 2 s and SIGKILLs the plugin."""

    def __init__(self, state: _State):
        self.state = state

    def Shutdown(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Answer first (the host waits on this reply without a deadline), then the main thread stops
        the server and exits."""
        self.state.request_stop("shutdown requested by the host")
        return grpc_controller_pb2.Empty()


class StdioServicer(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """``plugin.GRPCStdio``: streams what the process wrote to fds 1 and 2 after the handshake."""

    def __init__(self, capture: StdioCapture):
        self.capture = capture

    def StreamStdio(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Stream until the host disconnects or the plugin stops (each chunk is sent once)."""
        stop = threading.Event()

        def on_done() -> None:
            stop.set()
            self.capture.wake()

        context.add_callback(on_done)
        for channel, data in self.capture.stream(stop):
            # protoc's stub types the field as its enum; enum values are these ints
            yield grpc_stdio_pb2.StdioData(channel=channel, data=data)  # type: ignore[arg-type]


class BrokerServicer(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """Accepts the host's broker stream and drains it; dag-bundle plugins never broker."""

    def __init__(self, state: _State):
        self.state = state

    def StartStream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        """Keep the stream open and empty until the host closes it or the plugin stops."""
        done = threading.Event()
        context.add_callback(done.set)

        def drain() -> None:
            try:
                for _ in request_iterator:
                    pass
            except Exception:  # the stream ends with the connection
                pass
            finally:
                done.set()

        threading.Thread(target=drain, name="pybundle-broker", daemon=True).start()
        while not done.is_set() and not self.state.stop.is_set():
            done.wait(0.1)
        return
        yield  # a generator: the response stream stays open (and empty) until the host closes it


# -- process plumbing --------------------------------------------------------------------------
def _install_hooks(state: _State, real_stderr: int) -> None:
    writer = state.writer
    handler = HclogHandler(writer)
    for name in ("bundle.plugin", "grpc"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG if name == "bundle.plugin" else logging.WARNING)

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        writer.log(
            "error", "uncaught exception", error="".join(traceback.format_exception(exc_type, exc, tb))
        )

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        writer.log("error", f"uncaught exception in thread {getattr(args.thread, 'name', '?')}", error=text)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    try:  # fatal errors (segfaults) still reach the host's log, on the real stderr
        faulthandler.enable(file=os.fdopen(os.dup(real_stderr), "w"), all_threads=True)
    except (OSError, ValueError, RuntimeError):
        pass


def serve_plugin(provider: BundleProvider) -> int:
    """Serve ``provider`` as the ``dag-bundle`` plugin until the host shuts it down.

    Returns an exit code only when the plugin cannot start (listener, AutoMTLS); once serving, the
    process ends inside (see ``_teardown``). The cookie was checked by ``bundle.plugin.run``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: Ctrl-C reaches the whole process group
    _stdout.protect_stdout()  # idempotent: nothing but the handshake may reach the real stdout
    started = time.monotonic()
    real_stderr = os.dup(2)
    state = _State(HclogWriter(real_stderr))
    writer = state.writer
    _install_hooks(state, real_stderr)
    parent = os.getppid()
    # Installed before the handshake: a host that rejects the plugin right after reading the line
    # may terminate it at once, and the socket file must still be removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: state.request_stop("received SIGTERM", 128 + signum))

    version = negotiate_version(os.environ.get("PLUGIN_PROTOCOL_VERSIONS"), writer)
    credentials, server_cert = _credentials(writer)
    if credentials is False:
        return 1

    try:
        receive_limit = max_receive_message_bytes()
    except ValueError as exc:
        writer.log("error", "plugin init error", error=str(exc))
        return 1

    capture = StdioCapture()
    executor = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="pybundle-grpc")
    server = grpc.server(
        executor,
        options=[
            ("grpc.so_reuseport", 0),  # two plugins must never share a TCP port
            # bounded like Go's gRPC (4 MiB): a larger request is RESOURCE_EXHAUSTED, not memory
            ("grpc.max_receive_message_length", receive_limit),
            ("grpc.max_send_message_length", -1),
        ],
    )
    health_servicer = health.HealthServicer()
    health_servicer.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bundle_servicer = DagBundleServicer(provider, state)
    plugin_pb2_grpc.add_DagBundleServicer_to_server(bundle_servicer, server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(ControllerServicer(state), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(StdioServicer(capture), server)
    grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(BrokerServicer(state), server)

    try:
        listener = bind_listener(server, credentials or None)
    except (OSError, ValueError) as exc:
        writer.log("error", "plugin init error", error=str(exc))
        return 1
    server.start()  # serving before the handshake: the host dials immediately, fail-fast
    line = handshake_line(version, listener, server_cert)
    _stdout.write_stdout(line.encode("utf-8"))
    capture.start(real_stderr)
    writer.log(
        "debug",
        "plugin address",
        network=listener.network,
        address=listener.address,
        version=version,
        pybundle=__version__,
        startup_seconds=round(time.monotonic() - started, 4),
    )

    while not state.stop.wait(PARENT_POLL_SECONDS):
        if os.getppid() != parent:
            state.request_stop("the host process exited", 1)
    return _teardown(state, server, executor, health_servicer, capture, listener, bundle_servicer)


def _credentials(writer: HclogWriter) -> tuple[Any, str]:
    """Server TLS credentials and handshake field 6 for AutoMTLS; ``(None, "")`` without it,
    ``(False, "")`` when AutoMTLS was asked for but cannot be served."""
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT")
    if not client_cert:
        return None, ""
    try:
        from .mtls import LIMITATION, generate_server_cert

        cert = generate_server_cert()
    except ImportError as exc:
        writer.log("error", "AutoMTLS requested but the 'cryptography' package is missing", error=str(exc))
        return False, ""
    writer.log("warn", LIMITATION)
    credentials = grpc.ssl_server_credentials([(cert.key_pem, cert.cert_pem)], root_certificates=None)
    return credentials, cert.handshake_field


def _teardown(
    state: _State,
    server: grpc.Server,
    executor: ThreadPoolExecutor,
    health_servicer: health.HealthServicer,
    capture: StdioCapture,
    listener: Listener,
    bundle_servicer: DagBundleServicer,
) -> NoReturn:
    """Stop serving and end the process, the way a Go plugin's ``main`` returns after ``Serve``.

    Tasks still running are cancelled first and reported (see ``TaskRunner.abort_all``): the
    process is about to end, and a task instance left ``running`` would wait minutes for the
    scheduler's zombie detection. It all fits in the 2 s the host waits before SIGKILL.

    The streams are ended first so the server stops without waiting out its grace period, and
    the process exits with ``os._exit`` once ``atexit`` handlers (the bundle's, ``logging``'s) ran:
    a normal interpreter shutdown joins grpc's worker threads and tears down its core, which costs
    ten times more than the rest of the shutdown and the host's kill deadline is 2 s (it would also
    wait for a task still running in a worker thread)."""
    began = time.monotonic()
    writer = state.writer
    writer.log("debug", "plugin stopping", reason=state.reason)
    stuck = 0
    if state.executing:
        stuck = bundle_servicer.abort_running(f"the plugin is stopping ({state.reason})")
    capture.close()
    health_servicer.enter_graceful_shutdown()
    grace = 0.0 if stuck else STOP_GRACE_SECONDS  # a stuck task's call cannot end: do not wait for it
    server.stop(grace).wait(grace + 0.5)
    listener.remove()
    capture.restore()
    executor.shutdown(wait=False, cancel_futures=True)
    if stuck:
        writer.log("warn", "exiting with a task still running", reason=state.reason, tasks=stuck)
    writer.log("debug", "plugin stopped", seconds=round(time.monotonic() - began, 4))
    _exit(state.exit_code)


def _exit(code: int) -> NoReturn:
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        try:
            run_exit_handlers()
        except Exception:  # a failing handler must not keep the process alive
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(code)
