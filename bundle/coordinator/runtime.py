"""Coordinator-mode main loop: dial, read the first frame, run the task or parse the DAGs, exit.

Exit codes follow what the supervisor infers from them: 0 after exactly one valid terminal message
(the terminal message carries the task's state); 1 when the protocol failed before one was sent, in
which case the supervisor derives failed / up_for_retry itself.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from ..core.execution import RUNTIME_LOGGER
from ..core.log_records import LevelPolicy
from ..core.provider import BundleProvider
from .channel import CommChannel
from .frames import ProtocolError, max_frame_bytes
from .logs import LogChannel, install

EXIT_OK, EXIT_PROTOCOL_ERROR = 0, 1
CONNECT_TIMEOUT_SECONDS = 5.0

log = logging.getLogger(RUNTIME_LOGGER)


def parse_address(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag}={value!r} is not HOST:PORT")
    return host, int(port)


def dial(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_SECONDS)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run_coordinator(provider: BundleProvider, comm: str, logs: str) -> int:
    log_channel = LogChannel(LevelPolicy.from_env())
    install(log_channel)  # records are buffered until the log socket is up
    try:
        comm_address, logs_address = parse_address(comm, "--comm"), parse_address(logs, "--logs")
        limit = max_frame_bytes()
    except (ValueError, ProtocolError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        log_channel.close()
        return 2
    try:
        comm_sock = dial(comm_address)
        logs_sock = dial(logs_address)
    except OSError as exc:
        log.error("Cannot connect to the supervisor (comm %s, logs %s): %s", comm, logs, exc)
        log_channel.close()
        return EXIT_PROTOCOL_ERROR
    log_channel.attach(logs_sock)
    channel = CommChannel(comm_sock, limit)
    try:
        return _serve_first_frame(provider, channel, log_channel)
    finally:
        channel.close()
        log_channel.close()


def _serve_first_frame(provider: BundleProvider, channel: CommChannel, log_channel: LogChannel) -> int:
    try:
        first = channel.read_first()
    except ProtocolError as exc:
        log.error("No usable first frame from the supervisor: %s", exc)
        return EXIT_PROTOCOL_ERROR
    body = first.body or {}
    kind = body.get("type")

    def lost(failure: ProtocolError) -> None:
        # The supervisor is gone or broken while the task runs: nothing can report a state any more.
        log.error("Lost the supervisor: %s; exiting", failure)
        # A live supervisor that sent garbage still reads the log socket: give the error a moment
        # to arrive there as a record; a dead one fails the write at once and it goes to stderr.
        log_channel.flush(timeout=0.5)
        log_channel.fall_back_to_stderr()
        os._exit(EXIT_PROTOCOL_ERROR)

    if kind == "StartupDetails":
        from .task_mode import run_task

        channel.on_lost = lost
        channel.start_watching()
        return run_task(provider, channel, body, log_channel)
    if kind == "DagFileParseRequest":
        from .parse_mode import parse_dags

        channel.on_lost = lost
        channel.start_watching()
        return parse_dags(provider, channel, body)
    log.error(
        "Unexpected first frame from the supervisor: type %r (expected StartupDetails or DagFileParseRequest)",
        kind,
    )
    return EXIT_PROTOCOL_ERROR
