"""Timing helpers: whole processes, alternated subject/baseline, medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .stub_supervisor import StubSupervisor

ROOT = Path(__file__).resolve().parents[1]
BENCH_BUNDLE = Path(__file__).with_name("bench_bundle.py")
FLOOR_RUNTIME = Path(__file__).with_name("floor_runtime.py")
PYTHON = sys.executable


def subject_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every measured process gets. Bytecode caching is forced on: with
    ``PYTHONDONTWRITEBYTECODE`` set, every run would recompile pybundle from source and measure the
    compiler, not the runtime (installed code and the packer's extracted cache always have .pyc)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


@dataclass
class Sample:
    seconds: float
    max_rss_kib: int = 0


@dataclass
class Series:
    name: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def rss_kib(self) -> int:
        return max((s.max_rss_kib for s in self.samples), default=0)


def alternate(runs: int, subjects: dict[str, Callable[[], Sample]]) -> dict[str, Series]:
    """Run every subject ``runs`` times, interleaved, so drift hits all of them alike."""
    series = {name: Series(name) for name in subjects}
    for fn in subjects.values():  # one warm-up each (page cache, pyc files)
        fn()
    for _ in range(runs):
        for name, fn in subjects.items():
            series[name].samples.append(fn())
    return series


def coordinator_start(command: list[str], env: dict[str, str] | None = None) -> Sample:
    """exec → the first request frame reaching a local supervisor."""
    stub = StubSupervisor().start()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*command, *stub.args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subject_env(env),
    )
    stub.pid = proc.pid
    proc.wait()
    stub.join()
    if stub.error or stub.first_request_at is None or proc.returncode != 0:
        raise RuntimeError(f"{command} failed: exit {proc.returncode}, stub error {stub.error!r}")
    return Sample(stub.first_request_at - started, stub.peak_rss_kib)


def process_time(command: list[str], env: dict[str, str] | None = None) -> Sample:
    """exec → exit."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=subject_env(env),
    )
    proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"{command} exited {proc.returncode}")
    return Sample(time.monotonic() - started)
