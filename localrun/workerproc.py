"""The parent's handle on the worker process: start it, give it work, answer its API calls, stop it.

While the worker parses or runs a try, the parent sits in :meth:`WorkerProcess.call`: it answers
each relayed Execution API request from the embedded :class:`~localrun.api.ExecutionAPI`, calls
``on_tick`` a few times a second (the live progress view), and enforces the per-try timeout:

1. at the deadline the bundle process (every descendant of the worker) gets SIGTERM - the
   supervisor then sees its task exit and finishes the try normally (failed, or up_for_retry);
2. 10 s later, SIGKILL for the same processes;
3. 10 s after that the whole worker session is killed and :class:`WorkerLost` is raised; the
   runner records the try as failed and starts a fresh worker for the next one.

So a run always ends, whatever a bundle or the supervisor does.

A triggered DAG run (``childruns.py``) runs its tasks from inside the parent's ``on_tick``, on a
worker of its own; while that inner worker is waited on, the outer workers' relayed API calls are
answered too (:meth:`WorkerProcess.serve_pending`), so a task polling ``GetDagRunState`` sees the
triggered run progress instead of waiting for the inner try to end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from .api import ExecutionAPI
from .channel import Channel, ChannelClosed

TERM_GRACE = 10.0
KILL_GRACE = 10.0
TICK = 0.1
_WAITING: list[WorkerProcess] = []
"""Workers whose :meth:`WorkerProcess.call` is in progress, outermost first (one thread only)."""
_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; sys.path.insert(0, {root!r}); "
    "from localrun.worker import main; main()"
)


class WorkerLost(Exception):
    """The worker died, or had to be killed; the message says which and why."""

    def __init__(self, message: str, *, import_failed: bool = False) -> None:
        super().__init__(message)
        self.import_failed = import_failed
        """True when the worker could not import apache-airflow-task-sdk (a broken install)."""


class WorkerProcess:
    """One worker child process and the parent's side of its channel."""

    def __init__(self, api: ExecutionAPI, config: dict[str, Any], env: dict[str, str], workdir: Path) -> None:
        self.api = api
        self.config = config
        self.env = env
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.timed_out = False
        self._generation = 0
        self._stash: list[dict[str, Any]] = []  # non-API messages read by serve_pending

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float, on_tick: Callable[[], None] | None = None) -> None:
        """Spawn the worker and wait until it has imported the supervisor (the slow part)."""
        self._generation += 1
        parent_sock, child_sock = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)
        out = open(self.workdir / f"worker-{self._generation}.out", "wb")
        err = open(self.workdir / f"worker-{self._generation}.err", "wb")
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOT.format(root=root),
                    str(child_sock.fileno()),
                    json.dumps(self.config),
                ],
                pass_fds=[child_sock.fileno()],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # Ctrl-C reaches bundle-run only; it decides what to stop
            )
        finally:
            out.close()
            err.close()
            child_sock.close()
        self.channel = Channel(parent_sock)
        deadline = time.monotonic() + timeout
        while True:
            message = self._recv(deadline, on_tick, "starting the Airflow supervisor")
            if message is None:
                continue
            if message.get("op") == "ready":
                return
            if message.get("op") == "fatal":
                self.kill()
                raise WorkerLost(
                    f"the worker could not import the Airflow supervisor: {message.get('error')}",
                    import_failed=True,
                ) from RuntimeError(message.get("traceback", ""))

    @property
    def alive(self) -> bool:
        """Whether the worker is running. Never reaps it: while it is unreaped its pid - which is
        also the process-group id :meth:`kill` signals - cannot be handed to another process."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def stop(self) -> None:
        """Ask the worker to exit, then clean up whatever is left of its process group."""
        if self.channel is not None and self.alive:
            try:
                self.channel.send({"op": "exit"})
            except ChannelClosed:
                pass
            deadline = time.monotonic() + 5.0
            while self.alive and time.monotonic() < deadline:
                time.sleep(0.05)
        self.kill()

    def kill(self) -> None:
        """Kill the worker, the supervisor in it and every bundle process it started."""
        if self.proc is not None:
            for pid in self._descendants():
                _signal(pid, signal.SIGKILL)
            if self.proc.returncode is None:  # not reaped yet, so the group id is still ours
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    # -- work -----------------------------------------------------------------------------------------
    def call(
        self,
        message: dict[str, Any],
        *,
        timeout: float,
        on_tick: Callable[[], None] | None = None,
        what: str = "the task",
    ) -> dict[str, Any]:
        """Send a command and serve API requests until its answer arrives (see the module docs)."""
        if self.channel is None or not self.alive:
            raise WorkerLost("the worker is not running")
        self.timed_out = False
        self.channel.send(message)
        _WAITING.append(self)
        try:
            return self._serve_call(timeout, on_tick, what)
        finally:
            _WAITING.remove(self)

    def _serve_call(self, timeout: float, on_tick: Callable[[], None] | None, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        stage = 0
        while True:
            now = time.monotonic()
            if stage == 0 and now >= deadline:
                self.timed_out, stage = True, 1
                self._signal_bundle(signal.SIGTERM)
            elif stage == 1 and now >= deadline + TERM_GRACE:
                stage = 2
                self._signal_bundle(signal.SIGKILL)
            elif stage == 2 and now >= deadline + TERM_GRACE + KILL_GRACE:
                self.kill()
                raise WorkerLost(
                    f"{what} did not finish within {timeout:.0f}s and could not be stopped; killed"
                )
            reply = self._recv(None, on_tick, what, wait=TICK)
            if reply is not None and reply.get("op") in ("parsed", "ran"):
                return reply

    def _recv(
        self,
        deadline: float | None,
        on_tick: Callable[[], None] | None,
        what: str,
        wait: float = TICK,
    ) -> dict[str, Any] | None:
        """One step: a non-API message, or None after answering API calls / a quiet ``wait``."""
        assert self.channel is not None
        if deadline is not None and time.monotonic() > deadline:
            self.kill()
            raise WorkerLost(f"timed out {what}")
        for outer in list(_WAITING):
            if outer is not self:
                outer.serve_pending()
        try:
            message = self._stash.pop(0) if self._stash else self.channel.recv(timeout=wait)
        except ChannelClosed:
            self._lost(what)
        if message is not None and message.get("op") == "api":
            self._answer(message)  # before on_tick, which may run a triggered run's try
            if on_tick is not None:
                on_tick()
            return None
        if on_tick is not None:
            on_tick()
        if message is None:
            if not self.alive:
                self._lost(what)
            return None
        return message

    def serve_pending(self) -> None:
        """Answer the API calls already waiting on the channel; keep any other message for
        :meth:`call` (which is suspended further up the stack)."""
        if self.channel is None:
            return
        while True:
            try:
                message = self.channel.recv(timeout=0)
            except ChannelClosed:
                return  # the suspended call() sees it when it reads again
            if message is None:
                return
            if message.get("op") == "api":
                self._answer(message)
            else:
                self._stash.append(message)
                return

    def _answer(self, request: dict[str, Any]) -> None:
        assert self.channel is not None
        reply: dict[str, Any] = {"op": "api_reply"}
        try:
            response = self.api.handle(
                request["method"], request["path"], request.get("query") or (), request.get("body")
            )
            reply["status"] = response.status
            reply["headers"] = response.headers
            has_body = response.has_body and request["method"].upper() != "HEAD"
            reply["body_json"] = json.dumps(response.body) if has_body else None
        except Exception as exc:  # a bug here must fail the request, not hang the supervisor
            reply["error"] = f"{type(exc).__name__}: {exc}"
            self.api.problems.append(
                f"embedded Execution API failed on {request.get('method')} {request.get('path')}:\n"
                + traceback.format_exc()
            )
        self.channel.send(reply)

    # -- process tree ---------------------------------------------------------------------------------
    def _descendants(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            import psutil

            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except Exception:  # psutil missing, or the worker is already gone
            return []

    def _signal_bundle(self, signum: int) -> None:
        for pid in self._descendants():
            _signal(pid, signum)

    def _lost(self, what: str) -> NoReturn:
        self.kill()  # whatever it left behind, and reap it for its exit status
        raise WorkerLost(f"the worker process died while {what}{self._exit_detail()}")

    def _exit_detail(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        err = self.workdir / f"worker-{self._generation}.err"
        tail = ""
        try:
            lines = err.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            if lines:
                tail = "; its stderr ends with:\n" + "\n".join(lines[-15:])
        except OSError:
            pass
        return (f" (exit status {code})" if code is not None else "") + tail


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
