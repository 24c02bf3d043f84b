"""Long-running processes the e2e deployment starts, and the guarantee that none outlives it.

Each service is started in its own session (``start_new_session=True``), so its process group is
exactly "this service and what it forked". That is not enough on its own: Airflow's task supervisor
puts every task process in a *new* process group (``setpgid`` in ``airflow/sdk/execution_time/
supervisor.py``), so a ``killpg`` of the scheduler's group would leave running tasks behind. The
stopper therefore also collects every descendant (psutil) before signalling, and kills whatever of
those survives: a process is ours if it is in one of our groups or descends from one of our leaders.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: become a session leader's child that gets SIGTERM if pytest itself is SIGKILLed.

    Only the direct child gets it (Linux ``PR_SET_PDEATHSIG``); the service then stops its own
    children. It is the last line of defence: the normal path is :meth:`ServiceSet.stop`.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Service:
    """One started command: its leader process, its log file and its process group."""

    name: str
    argv: Sequence[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 60) -> str:
        """The last lines of the service's log (stdout and stderr together)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ServiceSet:
    """The services of one deployment; :meth:`stop` leaves no process of theirs behind."""

    log_dir: Path
    env: Mapping[str, str]
    cwd: Path
    services: list[Service] = field(default_factory=list)
    # Every pid ever seen in our trees (with its create time, so a recycled pid is not "ours").
    _seen: dict[int, float] = field(default_factory=dict)

    def _spawn(
        self, name: str, argv: Sequence[str], *, mode: str, **extra: Any
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``argv`` in a session of its own (so its whole group can be killed), output to
        ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, mode) as log_file:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
                **{"env": dict(self.env), **extra},
            )
        return popen, log_path

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Service:
        """Start a long-running service; ``env`` adds to (or overrides) the set's environment."""
        popen, log_path = self._spawn(
            name, argv, mode="ab", preexec_fn=_die_with_parent, env={**self.env, **(env or {})}
        )
        service = Service(name, list(argv), log_path, popen)
        self.services.append(service)
        self.remember()
        return service

    def run(self, name: str, argv: Sequence[str], timeout: float) -> str:
        """Run a one-shot command (``airflow db migrate``) to completion; its output."""
        return self.run_many({name: argv}, timeout)[name]

    def run_many(self, commands: Mapping[str, Sequence[str]], timeout: float) -> dict[str, str]:
        """Run one-shot commands side by side, each to completion; name -> output.

        Each gets its own session too, so a timeout kills its whole group; any failure raises.
        """
        started = {name: self._spawn(name, argv, mode="wb") for name, argv in commands.items()}
        deadline = time.monotonic() + timeout
        outputs: dict[str, str] = {}
        errors: list[str] = []
        for name, (popen, log_path) in started.items():
            argv = " ".join(commands[name])
            try:
                code = popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(popen.pid, signal.SIGKILL)
                popen.wait()
                code = None
            outputs[name] = log_path.read_text(errors="replace")
            if code is None:
                errors.append(f"{argv} did not finish in {timeout:.0f} s:\n{outputs[name][-3000:]}")
            elif code != 0:
                errors.append(f"{argv} exited {code}:\n{outputs[name][-3000:]}")
        if errors:
            raise RuntimeError("\n".join(errors))
        return outputs

    def remember(self) -> None:
        """Record every process now in our trees (call often: a task process may exit before stop)."""
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                self._seen.setdefault(proc.pid, proc.create_time())

    def processes(self) -> list[psutil.Process]:
        """Every live process that is ours: in a service's group or below a service's leader."""
        groups = {s.pid for s in self.services}
        found: dict[int, psutil.Process] = {}
        for service in self.services:
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(service.pid)
                if leader.status() != psutil.STATUS_ZOMBIE:
                    found[leader.pid] = leader
                for child in leader.children(recursive=True):
                    found[child.pid] = child
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) in groups:
                    found[proc.pid] = proc
        for pid, created in self._seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    found[pid] = proc
        return [p for p in found.values() if _running(p)]

    def dead_services(self) -> list[Service]:
        return [s for s in self.services if not s.alive()]

    def stop(self, grace: float = 15.0) -> list[str]:
        """SIGTERM every group and every known descendant, then SIGKILL what is left after *grace*.

        Returns a description of any process still running afterwards (should be empty).
        """
        self.remember()
        targets = self.processes()
        for service in self.services:
            _kill_group(service.pid, signal.SIGTERM)
        _signal_all(targets, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(p) for p in targets):
            time.sleep(0.2)
        for service in self.services:
            _kill_group(service.pid, signal.SIGKILL)
        _signal_all(self.processes() + targets, signal.SIGKILL)
        for service in self.services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.popen.wait(timeout=5)
        time.sleep(0.2)
        return [_describe(p) for p in self.processes()]


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_all(procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {proc.pid}"
