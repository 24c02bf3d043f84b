"""The floor for coordinator start-up: the least a Python runtime can do and still be one.

Dials both sockets, reads the first frame, sends one request, waits for the answer, sends a
terminal message. Same interpreter and msgpack as pybundle; nothing else. With ``--rounds N`` it
is figure 3's floor: N x (GetVariable, SetXCom), the same bodies the Client sends.
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
comm.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as pybundle does
logs = socket.create_connection(_addr("--logs="))
rfile = comm.makefile("rb")
ti = _read(rfile)[1]["ti"]
request_id = 0
if "--rounds" in sys.argv:
    where = {"dag_id": ti["dag_id"], "run_id": ti["run_id"], "task_id": ti["task_id"], "map_index": -1}
    for i in range(int(sys.argv[sys.argv.index("--rounds") + 1])):
        _send(comm, request_id, {"type": "GetVariable", "key": "bench"})
        _read(rfile)
        _send(comm, request_id + 1, {"type": "SetXCom", "key": "bench", "value": i, **where})
        _read(rfile)
        request_id += 2
else:
    _send(comm, request_id, {"type": "GetVariable", "key": "k"})
    _read(rfile)
    request_id += 1
_send(
    comm,
    request_id,
    {"type": "SucceedTask", "end_date": datetime.now(timezone.utc), "task_outlets": [], "outlet_events": []},
)
_read(rfile)
