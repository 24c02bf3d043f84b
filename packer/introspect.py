"""Ask a bundle about itself by running it - never by reading its source.

Two kinds of question, each answered by a subprocess so the bundle's import-time side effects (prints,
``sys.path`` edits, registration errors) stay out of the packer:

* the bundle's own introspection flags (``--bundle-metadata``, ``--dump-bundle-spec``,
  ``--airflow-metadata --format json``), run through pybundle's ``python -m bundle`` entry point for a
  target, or by executing a packed artifact. The runtime points fd 1 at stderr before the bundle's
  code runs, so only the document reaches stdout; the packer still insists on one clean JSON value.
* which of the bundle's own modules its import pulled in (:data:`DISCOVER_CODE`), so that the packed
  artifact embeds the sibling modules and packages a bundle imports, and warns about those it cannot.

The three runs for a pack are independent and start together.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import PackError
from .manifest import show
from .payload import AppFile, is_relative_to, runtime_dir

TIMEOUT_SECONDS = 120.0

# Runs pybundle's CLI (`python -m bundle`) with pybundle's own directory first on sys.path, so a
# `bundle` directory in the working directory cannot stand in for the runtime.
_RUNTIME_MAIN = (
    "import sys;sys.path.insert(0,sys.argv.pop(1));from bundle.__main__ import main;sys.exit(main())"
)

DISCOVER_CODE = r"""
import json, os, site, sys, sysconfig
runtime_parent, target = sys.argv[1], sys.argv[2]
sys.path.insert(0, runtime_parent)
report_fd = os.dup(1)
os.dup2(2, 1)  # the bundle's prints go to stderr; fd report_fd carries only the report
from bundle.target import TargetError, is_file_target, load_target, split_target
before = set(sys.modules)
try:
    load_target(target)
except TargetError as exc:
    sys.stderr.write(f"error: cannot load bundle target {target!r}: {exc}\n")
    sys.exit(1)
real = os.path.realpath
libs, sites = set(), set()
for key in ("stdlib", "platstdlib", "purelib", "platlib"):
    if sysconfig.get_paths().get(key):
        libs.add(real(sysconfig.get_paths()[key]))
for key in ("purelib", "platlib"):
    if sysconfig.get_paths().get(key):
        sites.add(real(sysconfig.get_paths()[key]))
for path in site.getsitepackages() + [site.getusersitepackages()]:
    libs.add(real(path))
    sites.add(real(path))
for name in ("bundle", "msgpack"):
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None):
        libs.add(real(os.path.dirname(module.__file__)))
location, attr = split_target(target)
if is_file_target(location):
    kind, primary = "file", real(os.path.abspath(location))
    root = os.path.dirname(primary)
else:
    kind, primary = "module", real(sys.modules[location].__file__)
    up = len(location.split(".")) + (os.path.basename(primary) == "__init__.py")
    root = primary
    for _ in range(up):
        root = os.path.dirname(root)
modules = []
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if isinstance(path, str) and path:
        modules.append({"name": name, "file": real(path), "new": name not in before})
report = {"kind": kind, "location": location, "attr": attr, "primary": primary, "root": root,
          "libs": sorted(libs), "sites": sorted(sites), "modules": modules}
os.write(report_fd, json.dumps(report).encode())
"""


@dataclass
class RunResult:
    returncode: int
    stdout: bytes
    stderr: str


class RunAborted(PackError):
    """The run was stopped: it did not finish in time, or it printed more than a dump can be."""


MAX_STDOUT_BYTES = 64 << 20  # a dump of the largest manifest bundle-pack reads is ~1 MiB
STDERR_TAIL_BYTES = 64 << 10  # only the end of stderr is ever shown
EXIT_GRACE_SECONDS = 1.0  # after the bundle exits, how long something it started may hold its pipes


# What a run of an artifact someone else built keeps of the caller's environment: enough to find
# the interpreter and decode text, nothing that could hold a secret (AIRFLOW_*, AWS_*, tokens, ...).
ISOLATED_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def isolated_env(**extra: str) -> dict[str, str]:
    """The environment for running a packed bundle's code on behalf of ``verify`` / ``dag-file``:
    the allow-list :data:`ISOLATED_ENV_KEEP` of the caller's variables, plus ``extra``.

    A packed bundle is an artifact, possibly someone else's; ``inspect`` never runs it, but these
    commands import its modules, and that code must not see the caller's credentials."""
    env = {key: os.environ[key] for key in ISOLATED_ENV_KEEP if key in os.environ}
    env.update(extra)
    return env


def start(command: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdin closed and both output streams captured.

    It leads a new process group, so that :func:`finish` can stop whatever the bundle started too
    (a bundle's import may spawn helpers that inherit the pipes and would keep them open)."""
    try:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise PackError(f"cannot run {command[0]}: {exc.strerror or exc}") from None


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the process exited, *without* reaping it: while it is unreaped its pid, and so its
    process group id, cannot be reused, which keeps the ``killpg`` in :func:`stop` safe."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
    except (AttributeError, OSError):  # no waitid: polling reaps, which is fine without group kills
        return process.poll() is not None


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the process group (the run and anything it left behind), reap it, close its pipes."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:  # unkillable (uninterruptible sleep): leave it to init
        pass
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def finish(
    process: subprocess.Popen[bytes],
    what: str,
    timeout: float = TIMEOUT_SECONDS,
    *,
    stdout_limit: int = MAX_STDOUT_BYTES,
) -> RunResult:
    """Collect a run's output within ``timeout`` seconds and at most ``stdout_limit`` bytes of stdout.

    Raises :class:`RunAborted` when it runs out of time or prints too much; either way the whole
    process group is killed and nothing is left running. Memory is bounded: stdout up to the limit,
    the last ``STDERR_TAIL_BYTES`` of stderr."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    problem = None
    exited_at = None
    selector = selectors.DefaultSelector()
    try:
        for stream, sink in ((process.stdout, out), (process.stderr, err)):
            if stream is not None:
                selector.register(stream, selectors.EVENT_READ, sink)
        while selector.get_map() and problem is None:
            now = time.monotonic()
            if exited_at is None and _exited(process):
                exited_at = now
            limit = deadline if exited_at is None else min(deadline, exited_at + EXIT_GRACE_SECONDS)
            if now >= limit:
                if exited_at is None:
                    problem = f"{what} did not finish within {timeout:.0f} s"
                break  # it exited but something it started holds the pipes: stop listening
            for key, _ in selector.select(min(limit - now, 0.1)):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                sink = key.data
                sink += data
                if sink is err and len(err) > STDERR_TAIL_BYTES:
                    del err[: len(err) - STDERR_TAIL_BYTES]
                elif sink is out and len(out) > stdout_limit:
                    problem = f"{what} printed more than {stdout_limit} bytes on stdout"
                    break
        if problem is None and exited_at is None:  # both pipes closed: the exit is imminent
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problem = f"{what} did not finish within {timeout:.0f} s"
    finally:
        selector.close()
        stop(process)
    stderr = err.decode("utf-8", "replace")
    if problem is not None:
        detail = _tail(stderr)
        raise RunAborted(problem + (f":\n{detail}" if detail else ""))
    return RunResult(process.returncode, bytes(out), stderr)


def parse_json(result: RunResult, what: str) -> Any:
    """The single JSON document a successful dump printed; a precise error otherwise."""
    if result.returncode != 0:
        detail = _tail(result.stderr) or "(no output on stderr)"
        raise PackError(f"{what} exited with status {result.returncode}:\n{detail}")
    try:
        return json.loads(result.stdout.decode("utf-8"))
    except RecursionError:
        raise PackError(f"{what} printed JSON nested too deeply to read") from None
    except (UnicodeDecodeError, ValueError) as exc:
        head = result.stdout[:200].decode("utf-8", "replace")
        raise PackError(
            f"{what} did not print one JSON document ({exc}); stdout began with {head!r}"
        ) from None


def _tail(text: str, lines: int = 20) -> str:
    kept = text.strip().splitlines()[-lines:]
    return "\n".join("  " + line for line in kept)


def runtime_command(target: str, *flags: str) -> list[str]:
    """``python -m bundle --bundle TARGET FLAGS``, pinned to the runtime this packer embeds."""
    return [sys.executable, "-c", _RUNTIME_MAIN, str(runtime_dir().parent), "--bundle", target, *flags]


# -- target introspection -----------------------------------------------------------------------
@dataclass
class TargetInfo:
    """Everything a pack learns by running the target."""

    name: str
    version: str | None
    document: dict[str, Any]
    kind: str
    location: str
    attr: str
    primary: Path
    primary_name: str
    app_files: list[AppFile]
    warnings: list[str] = field(default_factory=list)
    installed_imports: list[str] = field(default_factory=list)  # top-level names from site-packages


def introspect_target(target: str, document_flags: Sequence[str]) -> TargetInfo:
    """Run ``--bundle-metadata``, the manifest dump (``document_flags``) and module discovery together."""
    runs = {
        "metadata": start(runtime_command(target, "--bundle-metadata")),
        "document": start(runtime_command(target, *document_flags)),
        "discover": start([sys.executable, "-c", DISCOVER_CODE, str(runtime_dir().parent), target]),
    }
    results = {}
    try:
        for key, process in runs.items():
            results[key] = finish(process, f"the bundle ({key})")
    finally:  # one run failing to finish must not leave the others running
        for process in runs.values():
            if process.returncode is None:
                stop(process)
    metadata = parse_json(results["metadata"], f"{target} --bundle-metadata")
    document = parse_json(results["document"], f"{target} {' '.join(document_flags)}")
    report = parse_json(results["discover"], f"loading {target} to find its modules")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise PackError(f"{target} --bundle-metadata printed {show(metadata)}, not {{name, version}}")
    if not isinstance(document, dict):
        raise PackError(f"{target} {' '.join(document_flags)} printed {show(document)}, not a JSON object")
    app_files, warnings = plan_app_files(report)
    version = metadata.get("version")
    return TargetInfo(
        name=metadata["name"],
        version=version if isinstance(version, str) else None,
        document=document,
        kind=report["kind"],
        location=report["location"],
        attr=report["attr"],
        primary=Path(report["primary"]),
        primary_name=Path(report["primary"]).relative_to(report["root"]).as_posix(),
        app_files=app_files,
        warnings=warnings,
        installed_imports=third_party_imports(report),
    )


def plan_app_files(report: Mapping[str, Any]) -> tuple[list[AppFile], list[str]]:
    """Choose the files under ``app/`` from a discovery report.

    The bundle's *root* is the directory of a file target, or the ``sys.path`` entry a module target
    was imported from. Every imported module whose file lies under the root (and not in the
    interpreter's library directories) is the bundle's own: a top-level package is embedded whole (so
    lazily imported submodules come along), a top-level module as its file. Relative paths are kept,
    so code that finds files next to ``__file__`` keeps working. Modules from anywhere else that are
    not part of the interpreter's libraries are reported, not embedded: the worker must provide them.
    Installed (site-packages) imports are not judged here: the pack checks them against the declared
    dependencies (:func:`third_party_imports`, :mod:`packer.deps`).
    """
    root = report["root"]
    libs = list(report["libs"])
    primary = report["primary"]
    installed = any(is_relative_to(root, lib) for lib in libs)
    chosen: dict[str, Path] = {}
    warnings: list[str] = []

    def add_tree(top: Path) -> None:
        for path in sorted(top.rglob("*.py")):
            relative = path.relative_to(root)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            chosen.setdefault(relative.as_posix(), path)

    def add_module(path: str) -> None:
        relative = Path(path).relative_to(root)
        top = Path(root) / relative.parts[0]
        if len(relative.parts) > 1 and (top / "__init__.py").is_file():
            add_tree(top)
        else:
            chosen.setdefault(relative.as_posix(), Path(path))

    add_module(primary)
    for module in report["modules"]:
        path = module["file"]
        if path == primary or any(is_relative_to(path, lib) for lib in libs):
            continue
        inside = is_relative_to(path, root) and not installed
        if inside and not path.endswith(".py"):
            warnings.append(
                f"module {module['name']} ({path}) is not Python source and is not embedded; "
                "the bundle runs isolated from the worker's environment, so its import fails there "
                "(ship it as a wheel in the bundle's requirements)"
            )
        elif inside:
            add_module(path)
        elif os.path.exists(path):
            warnings.append(
                f"module {module['name']} is imported from {path}, outside the bundle's directory {root}; "
                "it is not embedded, and the bundle runs isolated from the worker's PYTHONPATH and "
                "site-packages, so its import fails there (make it part of the bundle or a requirement)"
            )
    files = [AppFile(name, path) for name, path in sorted(chosen.items())]
    return files, warnings


def third_party_imports(report: Mapping[str, Any]) -> list[str]:
    """Top-level names of site-packages modules that loading the bundle imported (besides the runtime)."""
    sites = list(report.get("sites", ()))
    names = {
        module["name"].split(".")[0]
        for module in report["modules"]
        if module.get("new") and any(is_relative_to(module["file"], site) for site in sites)
    }
    return sorted(names - {"bundle", "msgpack"})
