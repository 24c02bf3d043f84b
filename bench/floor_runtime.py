"""The floor for coordinator start-up: the least a Python runtime can do and still be one.

Dials both sockets, reads the first frame, sends one request, waits for the answer, sends a
terminal message. Same interpreter and msgpack as pybundle; nothing else.
"""

import socket
import struct
import sys
from datetime import datetime, timezone

import msgpack


def _addr(flag: str) -> tuple[str, int]:
    host, _, port = next(a for a in sys.argv if a.startswith(flag)).split("=", 1)[1].rpartition(":")
    return host, int(port)


def _read(rfile):
    (n,) = struct.unpack(">I", rfile.read(4))
    return msgpack.unpackb(rfile.read(n), timestamp=3)


def _send(sock, request_id, body):
    payload = msgpack.packb([request_id, body], datetime=True)
    sock.sendall(struct.pack(">I", len(payload)) + payload)


comm = socket.create_connection(_addr("--comm="))
logs = socket.create_connection(_addr("--logs="))
rfile = comm.makefile("rb")
_read(rfile)
rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 1
for i in range(rounds):
    _send(comm, i, {"type": "GetVariable", "key": "k"})
    _read(rfile)
_send(
    comm,
    rounds,
    {"type": "SucceedTask", "end_date": datetime.now(timezone.utc), "task_outlets": [], "outlet_events": []},
)
_read(rfile)
