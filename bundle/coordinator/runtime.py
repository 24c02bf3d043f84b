"""Coordinator-mode main loop: dial, read the first frame, run the task or parse the DAGs, exit.

Exit codes follow what the supervisor infers from them: 0 after exactly one valid terminal message
(the terminal message carries the task's state); 1 when the protocol failed before one was sent, in
which case the supervisor derives failed / up_for_retry itself.
"""

from __future__ import annotations

import os
import socket
import sys

from ..core.provider import BundleProvider
from ..core.runtime_log import runtime_log
from .channel import CommChannel
from .frames import ProtocolError, max_frame_bytes
from .log_hook import when_imported
from .log_pipe import LogPipe

EXIT_OK, EXIT_PROTOCOL_ERROR = 0, 1
CONNECT_TIMEOUT_SECONDS = 5.0


def parse_address(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag}={value!r} is not HOST:PORT")
    return host, int(port)


def dial(address: tuple[str, int]) -> socket.socket:
    host, port = address
    # An ASCII host goes to getaddrinfo as bytes: as str it is IDNA-encoded first, and the idna
    # codec (with stringprep and unicodedata) costs every task start a few milliseconds.
    target = (host.encode("ascii") if host.isascii() else host, port)
    # typeshed types the host as str only; getaddrinfo takes bytes as well
    sock = socket.create_connection(target, timeout=CONNECT_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _route_records_to(pipe: LogPipe) -> None:
    def install_handler(_logging: object) -> None:
        from ..core.log_records import LevelPolicy
        from .logs import LogChannel, install

        install(LogChannel(LevelPolicy.from_env(), pipe))

    when_imported("logging", install_handler)


def run_coordinator(provider: BundleProvider, comm: str, logs: str) -> int:
    log_pipe = LogPipe()
    _route_records_to(log_pipe)  # records are buffered until the log socket is up
    try:
        comm_address, logs_address = parse_address(comm, "--comm"), parse_address(logs, "--logs")
        limit = max_frame_bytes()
    except (ValueError, ProtocolError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        log_pipe.close()
        return 2
    try:
        comm_sock = dial(comm_address)
        logs_sock = dial(logs_address)
    except OSError as exc:
        runtime_log().error("Cannot connect to the supervisor (comm %s, logs %s): %s", comm, logs, exc)
        log_pipe.close()
        return EXIT_PROTOCOL_ERROR
    log_pipe.attach(logs_sock)
    channel = CommChannel(comm_sock, limit)
    try:
        return _serve_first_frame(provider, channel, log_pipe)
    finally:
        channel.close()
        log_pipe.close()


def _serve_first_frame(provider: BundleProvider, channel: CommChannel, log_pipe: LogPipe) -> int:
    try:
        first = channel.read_first()
    except ProtocolError as exc:
        runtime_log().error("No usable first frame from the supervisor: %s", exc)
        return EXIT_PROTOCOL_ERROR
    body = first.body or {}
    kind = body.get("type")

    def lost(failure: ProtocolError) -> None:
        # The supervisor is gone or broken while the task runs: nothing can report a state any more.
        runtime_log().error("Lost the supervisor: %s; exiting", failure)
        # A live supervisor that sent garbage still reads the log socket: give the error a moment
        # to arrive there as a record; a dead one fails the write at once and it goes to stderr.
        log_pipe.flush(timeout=0.5)
        log_pipe.fall_back_to_stderr()
        confinement = sys.modules.get("bundle.core.confinement")  # a callback's process ends too
        if confinement is not None:
            confinement.kill_active()
        os._exit(EXIT_PROTOCOL_ERROR)

    if kind == "StartupDetails":
        from .task_mode import run_task

        channel.on_lost = lost
        channel.start_watching()
        return run_task(provider, channel, body, log_pipe)
    if kind == "DagFileParseRequest":
        from .parse_mode import parse_dags

        channel.on_lost = lost
        channel.start_watching()
        return parse_dags(provider, channel, body)
    runtime_log().error(
        "Unexpected first frame from the supervisor: type %r (expected StartupDetails or DagFileParseRequest)",
        kind,
    )
    return EXIT_PROTOCOL_ERROR
