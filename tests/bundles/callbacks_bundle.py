"""Tasks with ``on_*_callback`` for tests/test_callbacks.py (released supervisor, bundle-run, in process).

Every callback logs one ``callback ...`` line with what it was given, and reads the variable
``cb_seen`` (a read request, allowed), so a test can tell from the task log and the Execution API's
call order when each ran and with which context.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

from bundle import Bundle, Client, Context, FailTask, RequestNotAllowed, SkipTask, serve

bundle = Bundle("callback_tests", version="1", queue="pybundle")
log = logging.getLogger("callback_tests")


def record(ctx: Context, client: Client, exception) -> None:
    seen = client.get_variable("cb_seen", default="unset")
    log.info(
        "callback %s task=%s try=%s exception=%r var=%s",
        ctx.callback,
        ctx.ti.task_id,
        ctx.ti.try_number,
        exception,
        seen,
    )


def second(ctx: Context) -> None:
    log.info("callback second %s", ctx.callback)


def raises(ctx: Context) -> None:
    raise ValueError(f"callback {ctx.callback} broke")


def writes(ctx: Context, client: Client) -> None:
    """Tries every kind of request a callback may not send; logs what each raised."""
    attempts = {
        "set_variable": lambda: client.set_variable("cb_written", "x"),
        "push_xcom": lambda: client.push_xcom("cb_key", 1),
        "succeed": lambda: client.request({"type": "TaskState", "state": "skipped"}),
        "trigger": lambda: client.trigger_dag_run("other_dag", "cb_run"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except RequestNotAllowed as exc:
            log.info("refused %s: %s|%s|%s", name, exc.request_type, exc.group, exc.workload)
        else:
            log.info("allowed %s", name)
    raise RequestNotAllowed("uncaught on purpose") from None  # and an escaping one changes nothing


def escalate(ctx: Context, client: Client) -> None:
    """Tries every way back to full access a callback had before it ran in a process of its own:
    the public ``restricted(TASK)``, the private ``_transport``, the runtime's own client found in
    memory, and raw writes of a supervisor frame to every inherited descriptor. Logs each outcome
    as ``escape <route>: <outcome>``, then does what it may: a read and a log line."""
    import gc
    import os

    import bundle.access
    from bundle.coordinator.frames import encode_request

    def put(key: str) -> dict:
        return {"type": "PutVariable", "key": key, "value": "escalated", "description": None}

    def attempt(route: str, action) -> None:
        try:
            action()
        except RequestNotAllowed as exc:
            outcome = f"refused {exc.request_type}|{exc.group}|{exc.workload}"
        except Exception as exc:
            outcome = f"failed {type(exc).__name__}"
        else:
            outcome = "ALLOWED"
        log.info("escape %s: %s", route, outcome)

    full = client.restricted(bundle.access.TASK)
    attempt("restricted-set_variable", lambda: full.set_variable("cb_escalated", "x"))
    attempt("restricted-push_xcom", lambda: full.push_xcom("cb_escalated", 1))
    attempt("transport-PutVariable", lambda: client._transport(put("cb_transport")))
    attempt(
        "transport-SetXCom",
        lambda: client._transport(
            {
                "type": "SetXCom",
                "key": "cb_transport",
                "dag_id": ctx.ti.dag_id,
                "run_id": ctx.ti.run_id,
                "task_id": ctx.ti.task_id,
                "value": 1,
                "map_index": -1,
            }
        ),
    )
    runtime_clients = [
        o
        for o in gc.get_objects()
        if type(o).__name__ == "MessageClient" and o is not client and o is not full
    ]
    log.info("escape found %d runtime client(s) in memory", len(runtime_clients))
    for index, other in enumerate(runtime_clients):
        attempt(f"memory-client-{index}", lambda other=other: other.set_variable("cb_memory", "x"))
    comm = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--comm=")]
    if comm:  # coordinator mode: dial the supervisor's comm address again (it is in argv)

        def redial() -> None:
            import socket

            host, port = comm[0].rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=2) as sock:
                sock.sendall(encode_request(0, put("cb_redial")))
                if not sock.recv(1):  # an answer would be a frame; the supervisor never reads it
                    raise ConnectionResetError("closed")

        attempt("redial-comm", redial)
    halves = os.environ.get("CALLBACK_TESTS_TOKEN_HALVES")
    if halves:  # the task's token, in two halves (never joined here): is it anywhere in memory?
        head, tail = halves.split("|", 1)
        log.info("escape token-in-objects: %s", token_in_objects(head, tail))
        log.info("escape token-in-memory: %s", token_in_memory(head.encode(), tail.encode()))
    ancestor_routes(attempt)
    ordinary_work(attempt)
    seen = client.get_variable("cb_seen", default="unset")  # allowed: read
    log.info("callback escalate read var=%s", seen)  # allowed: logging
    kinds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            kinds[int(name)] = os.readlink(f"/proc/self/fd/{name}").split(":")[0]
        except OSError:
            continue  # listdir's own descriptor
    log.info("escape descriptors: %s", " ".join(f"{fd}={kind}" for fd, kind in sorted(kinds.items())))
    # Every descriptor number but 0-2 and the one socket to the runtime's proxy: a supervisor
    # frame written raw (the comm socket was one of these numbers in the runtime).
    frame = encode_request(0, put("cb_raw"))
    for fd, kind in sorted(kinds.items()):
        if fd > 2 and kind != "socket":
            attempt(f"raw-fd-{fd}", lambda fd=fd: os.write(fd, frame))


def token_in_objects(head: str, tail: str) -> str:
    """Every str/bytes reachable from a gc-tracked container, searched for head+tail."""
    import gc

    def holds(value) -> bool:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        if not isinstance(value, str):
            return False
        at = value.find(head)
        while at >= 0:
            if value.startswith(tail, at + len(head)):
                return True
            at = value.find(head, at + 1)
        return False

    for obj in gc.get_objects():
        items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple, set)) else ()
        try:
            if any(holds(item) for item in list(items)):
                return "found"
            if any(holds(item) for item in vars(obj).values()):
                return "found"
        except Exception:
            continue
    return "absent"


def token_in_memory(head: bytes, tail: bytes) -> str:
    """This process's readable memory (``/proc/self/mem``), searched for head+tail."""
    found = 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            at = data.find(head)
            while at >= 0:
                if data.startswith(tail, at + len(head)):
                    found += 1
                at = data.find(head, at + 1)
            del data
    return f"found {found}" if found else "absent"


def ancestor_routes(attempt) -> None:
    """The OS routes to the runtime's (parent's) and its parent's memory, descriptors, signals."""
    import ctypes
    import os
    import signal
    import sys

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getppid()
    with open(f"/proc/{parent}/status") as status:
        grandparent = next(int(line.split()[1]) for line in status if line.startswith("PPid:"))

    def checked(result: int) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return result

    try:
        numbers = sorted(int(n) for n in os.listdir(f"/proc/{parent}/fd"))
    except OSError:
        numbers = list(range(64))
    log.info("escape parent-fd-count: %d", len(numbers))

    for who, pid in (("parent", parent), ("grandparent", grandparent)):

        def getfd(pid=pid) -> None:
            pidfd = os.pidfd_open(pid)
            try:
                copied = [copy for copy in (_getfd(libc, pidfd, fd) for fd in numbers) if copy >= 0]
            finally:
                os.close(pidfd)
            for fd in copied:
                os.close(fd)
            if not copied:
                raise PermissionError("no descriptor copied")

        def mem(pid=pid) -> None:
            with open(f"/proc/{pid}/mem", "rb", buffering=0) as f:
                f.seek(id(sys.modules))
                f.read(16)

        def vm_readv(pid=pid) -> None:
            class Iovec(ctypes.Structure):
                _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

            buffer = ctypes.create_string_buffer(16)
            local = Iovec(ctypes.cast(buffer, ctypes.c_void_p), 16)
            remote = Iovec(id(sys.modules), 16)  # forked: the runtime has an object there too
            checked(libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))

        attempt(f"pidfd_getfd-{who}", getfd)
        attempt(f"proc-mem-{who}", mem)
        attempt(f"process_vm_readv-{who}", vm_readv)
        attempt(f"signal-{who}", lambda pid=pid: os.kill(pid, 0))
        attempt(f"sigcont-{who}", lambda pid=pid: os.kill(pid, signal.SIGCONT))


def _getfd(libc, pidfd: int, fd: int) -> int:
    return libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd (the same number on every architecture)


def ordinary_work(attempt) -> None:
    """What a callback that sends a notification does: files, a TCP connection, a program."""
    import os
    import socket
    import subprocess
    import tempfile

    def files() -> None:
        handle, path = tempfile.mkstemp(prefix="cb-")
        try:
            with os.fdopen(handle, "w") as f:
                f.write("written")
            with open(path) as f:
                assert f.read() == "written"
        finally:
            os.unlink(path)

    def tcp() -> None:
        with socket.create_server(("127.0.0.1", 0)) as server:
            with socket.create_connection(server.getsockname(), timeout=2) as sock:
                peer, _ = server.accept()
                with peer:
                    sock.sendall(b"ping")
                    assert peer.recv(4) == b"ping"

    def program() -> None:
        assert subprocess.run(["/bin/sh", "-c", "exit 7"], check=False).returncode == 7

    attempt("ordinary-files", files)
    attempt("ordinary-tcp", tcp)
    attempt("ordinary-program", program)


def hangs(ctx: Context) -> None:
    log.info("callback hangs starts")
    time.sleep(120)


dag = bundle.dag(
    "callbacks_dag",
    default_args={"on_failure_callback": record, "on_retry_callback": [record, second]},
)


@dag.task(on_execute_callback=record, on_success_callback=[raises, record])
def succeeds(client: Client) -> str:
    client.get_variable("task_var", default=None)
    return "ok"


@dag.task(retries=1)
def fails() -> None:
    raise RuntimeError("task broke")


@dag.task(on_failure_callback=[writes, record])
def fails_hard() -> None:
    raise FailTask("no retry")


@dag.task(on_skipped_callback=record)
def skips() -> None:
    raise SkipTask("nothing to do")


@dag.task(on_success_callback=escalate)
def escalates(client: Client) -> str:
    return "done"


@dag.task(on_success_callback=[hangs, record])
def hangs_after() -> None:
    return None


@dag.task(on_execute_callback=writes, on_success_callback=writes)
def guarded(client: Client) -> None:
    client.push_xcom("task_key", "task value")  # the task itself may still write


with dag.task_group("grp", default_args={"on_skipped_callback": second}):

    @dag.task
    def grouped() -> None:
        raise SkipTask("grouped skip")


# For bundle-run: a task that fails its first try and succeeds on the retry.
local = bundle.dag("callbacks_local")


@local.task(
    retries=1,
    retry_delay=timedelta(seconds=1),
    on_retry_callback=record,
    on_success_callback=record,
    on_execute_callback=second,
)
def flaky(ctx: Context) -> None:
    if ctx.ti.try_number == 1:
        raise RuntimeError("first try fails")


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
