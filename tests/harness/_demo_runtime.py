"""A tiny hand-written coordinator runtime used to prove the harness works (only needs ``msgpack``).

Usage (the supervisor appends the last two arguments)::

    python _demo_runtime.py <scenario> --comm=127.0.0.1:P --logs=127.0.0.1:Q

Scenarios:

* ``succeed``       GetVariable my_var, log the reply, SucceedTask, exit 0.
* ``bad_succeed``   SucceedTask with an extra key (invalid: the supervisor drops it, no reply), exit 0.
* ``mask``          MaskSecret "s3cr3t", log a line containing it; GetVariable my_api_key / my_plain,
                    GetConnection db, log the values; SucceedTask.
* ``levels``        log one record per level (debug..critical) + stdout/stderr lines, SucceedTask.
* ``wait``          log "ready", then block on the comm socket: SIGTERM → log + exit 143;
                    EOF (supervisor gone) → exit 7.
* ``crash_supervisor``  send a log line without ``level`` (crashes the 1.3.2 supervisor), then block
                    until EOF like ``wait``.
* ``hang``          connect and then sleep forever (for the harness timeout).
* ``fail``          exit 1 without a terminal message.
* ``parse``         answer DagFileParseRequest with a two-task Dag (spec §13.4), exit 0.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from datetime import datetime, timezone

import msgpack


def _addr(value: str) -> tuple[str, int]:
    host, port = value.rsplit(":", 1)
    return host, int(port)


class Runtime:
    def __init__(self, comm: str, logs: str):
        self.comm = socket.create_connection(_addr(comm))
        self.logs = socket.create_connection(_addr(logs))
        self.next_id = 0

    # -- framing -------------------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.comm.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def read_frame(self):
        header = self._recv_exact(4)
        if header is None:
            return None
        payload = self._recv_exact(int.from_bytes(header, "big"))
        if payload is None:
            return None
        return msgpack.unpackb(payload, timestamp=3, raw=False)

    def send(self, body: dict, request_id: int | None = None) -> int:
        if request_id is None:
            request_id = self.next_id
            self.next_id += 1
        payload = msgpack.packb([request_id, body], datetime=True, use_bin_type=True)
        self.comm.sendall(len(payload).to_bytes(4, "big") + payload)
        return request_id

    def request(self, body: dict):
        rid = self.send(body)
        frame = self.read_frame()
        assert frame is not None and frame[0] == rid, frame
        return frame

    # -- logs ----------------------------------------------------------------------------------------
    def log(self, event: str, level: str = "info", **fields) -> None:
        rec = {
            "event": event,
            "level": level,
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "logger": "demo.runtime",
            **fields,
        }
        self.logs.sendall(json.dumps(rec).encode() + b"\n")

    def succeed(self, **extra) -> None:
        body = {
            "type": "SucceedTask",
            "end_date": datetime.now(timezone.utc),
            "task_outlets": [],
            "outlet_events": [],
            **extra,
        }
        self.send(body)
        self.read_frame()  # [id, nil, nil]; optional, but proves the reply came

    def close(self) -> None:
        self.comm.close()
        self.logs.close()


TWO_TASK_DAG = {
    "__version": 3,
    "dag": {
        "dag_id": "example_two",
        "fileloc": "/srv/airflow/dags/example_bundle",
        "relative_fileloc": "example_bundle",
        "timezone": "UTC",
        "timetable": {
            "__type": "airflow.timetables.trigger.CronTriggerTimetable",
            "__var": {
                "expression": "0 3 * * *",
                "timezone": "UTC",
                "interval": 0.0,
                "run_immediately": False,
            },
        },
        "start_date": 1767225600.0,
        "catchup": False,
        "max_active_tasks": 16,
        "max_active_runs": 16,
        "max_consecutive_failed_dag_runs": 0,
        "disable_bundle_versioning": False,
        "tasks": [
            {
                "__type": "operator",
                "__var": {
                    "task_id": "extract",
                    "task_type": "ExtractTask",
                    "_task_module": "example_bundle",
                    "language": "python-rt",
                    "queue": "py-rt",
                    "template_fields": [],
                    "downstream_task_ids": ["load"],
                },
            },
            {
                "__type": "operator",
                "__var": {
                    "task_id": "load",
                    "task_type": "LoadTask",
                    "_task_module": "example_bundle",
                    "language": "python-rt",
                    "queue": "py-rt",
                    "template_fields": [],
                },
            },
        ],
        "dag_dependencies": [],
        "task_group": {
            "_group_id": None,
            "group_display_name": "",
            "prefix_group_id": True,
            "tooltip": "",
            "ui_color": "CornflowerBlue",
            "ui_fgcolor": "#000",
            "children": {"extract": ["operator", "extract"], "load": ["operator", "load"]},
            "upstream_group_ids": [],
            "downstream_group_ids": [],
            "upstream_task_ids": [],
            "downstream_task_ids": [],
        },
        "edge_info": {},
        "params": [],
        "deadline": None,
        "allowed_run_types": None,
    },
}


def _block_until_eof(rt: Runtime) -> None:
    while rt.read_frame() is not None:
        pass


def main(argv: list[str]) -> int:
    scenario = argv[0]
    comm = next(a.split("=", 1)[1] for a in argv if a.startswith("--comm="))
    logs = next(a.split("=", 1)[1] for a in argv if a.startswith("--logs="))
    rt = Runtime(comm, logs)

    first = rt.read_frame()
    if first is None:
        return 4  # supervisor aborted before StartupDetails
    body = first[1]

    if scenario == "parse":
        assert body["type"] == "DagFileParseRequest", body
        rt.log("parsing", file=body["file"])
        rt.send(
            {
                "type": "DagFileParsingResult",
                "fileloc": body["file"],
                "serialized_dags": [{"data": TWO_TASK_DAG}],
                "warnings": [],
                "import_errors": {},
            }
        )
        rt.read_frame()
        rt.close()
        return 0

    assert body["type"] == "StartupDetails", body
    ti = body["ti"]
    rt.log(
        "startup", ti_id=ti["id"], task_id=ti["task_id"], start_date_type=type(body["start_date"]).__name__
    )

    if scenario == "succeed":
        reply = rt.request({"type": "GetVariable", "key": "my_var"})
        rt.log("got variable", level="info", reply=reply)
        rt.succeed()
    elif scenario == "bad_succeed":
        rt.send(
            {
                "type": "SucceedTask",
                "end_date": datetime.now(timezone.utc),
                "task_outlets": [],
                "outlet_events": [],
                "bogus": 1,
            }
        )
        time.sleep(0.3)  # give the supervisor a chance to (not) answer; do not wait for a reply
    elif scenario == "mask":
        rt.request({"type": "MaskSecret", "value": "s3cr3t", "name": None})
        rt.log("the secret is s3cr3t", secret="s3cr3t")
        var = rt.request({"type": "GetVariable", "key": "my_api_key"})[1]
        plain = rt.request({"type": "GetVariable", "key": "my_plain"})[1]
        conn = rt.request({"type": "GetConnection", "conn_id": "db"})[1]
        rt.log(
            f"values: {var.get('value')} {plain.get('value')} {conn.get('password')} {conn.get('host')}",
            var_reply=var,
            conn_reply=conn,
        )
        rt.succeed()
    elif scenario == "levels":
        for level in ("debug", "info", "warning", "error", "critical"):
            rt.log(f"a {level} record", level=level, n=1)
        rt.log("uppercase level", level="INFO")
        print("hello on stdout", flush=True)
        print("hello on stderr", file=sys.stderr, flush=True)
        rt.succeed()
    elif scenario in ("wait", "crash_supervisor"):

        def on_term(signum, frame):
            try:
                rt.log("received signal", signal=signal.Signals(signum).name)
            finally:
                sys.exit(143)

        signal.signal(signal.SIGTERM, on_term)
        if scenario == "crash_supervisor":
            rt.logs.sendall(b'{"event": "no level here"}\n')
        rt.log("ready")
        _block_until_eof(rt)
        return 7
    elif scenario == "hang":
        rt.log("hanging")
        while True:
            time.sleep(1)
    elif scenario == "fail":
        rt.log("failing", level="error")
        return 1
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
