"""``serve(bundle)``: the single entrypoint that decides, from argv and the environment, what to be.

Modes, first match wins (the Go SDK's ``Serve`` matrix, see docs/cli.md):

1. ``--bundle-metadata``                 BundleInfo JSON on stdout, exit 0
2. ``--dump-bundle-spec``                spec JSON on stdout, exit 0
3. ``--airflow-metadata [--format F]``   manifest (yaml by default, or json), exit 0
4. ``--comm=H:P --logs=H:P``             coordinator mode: one task or one DAG parse
5. only one of ``--comm`` / ``--logs``   usage error, exit 2
6. no mode flag, cookie set              go-plugin gRPC server for the Go Edge Worker
7. no mode flag, no cookie               go-plugin's "This binary is a plugin" message and usage, exit 1
8. anything else                         usage on stderr, exit 2

Before all of them, no argument at all with ``PYBUNDLE_DAG_CALLBACK`` set is DAG-callback mode
(``bundle.dag_callback.mode``): what a generated DAG file starts from the DAG processor.

Usage errors (unknown flag, missing value, stray argument, ``--format`` misuse) exit 2; a bundle that
fails to register its DAGs, or that is run with no mode at all, exits 1. Only the selected mode's modules are imported, so coordinator
start-up never pays for grpc, protobuf or YAML.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import _stdout
from .core.provider import BundleProvider, check_provider

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

_BOOL_FLAGS = ("bundle-metadata", "dump-bundle-spec", "airflow-metadata")
_VALUE_FLAGS = ("format", "comm", "logs")


class UsageError(Exception):
    pass


class Invocation:
    """The parsed command line (a plain class: ``dataclasses`` would import ``inspect`` at start-up)."""

    def __init__(self) -> None:
        self.bundle_metadata = self.dump_bundle_spec = self.airflow_metadata = self.help = False
        self.format: str | None = None
        self.comm: str | None = None
        self.logs: str | None = None


def usage(prog: str) -> str:
    return f"""usage: {prog} [MODE]

An Airflow bundle program (pybundle). Modes, first match wins:
  --bundle-metadata                  print the bundle's name and version as JSON
  --dump-bundle-spec                 print the bundle spec (dags and their tasks) as JSON
  --airflow-metadata [--format F]    print the bundle manifest; F is yaml (default) or json
  --comm=HOST:PORT --logs=HOST:PORT  coordinator mode: run one task (or parse the DAGs) for the
                                     Airflow task supervisor; both flags are required together
  (no flag, {_stdout.COOKIE_KEY} set)
                                     go-plugin mode: serve the bundle.v1 gRPC plugin for the Go
                                     Edge Worker (the worker sets the variable itself)
  -h, --help                         show this help

Exit codes: 0 success, 1 runtime or registration error (or no mode), 2 usage error.
"""


def parse_args(argv: Sequence[str]) -> Invocation:
    """Parse like Go's pflag: ``--flag=value`` or ``--flag value``; bools take ``=true|false``."""
    inv = Invocation()
    given: set[str] = set()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-h", "--help"):
            inv.help = True
            continue
        if arg == "--":
            if i < len(args):
                raise UsageError(f"unexpected argument {args[i]!r}")
            break
        if not arg.startswith("-") or arg == "-":
            raise UsageError(f"unexpected argument {arg!r}")
        if not arg.startswith("--"):
            raise UsageError(f"unknown shorthand flag: {arg[1]!r} in {arg}")
        name, has_value, value = arg[2:].partition("=")
        if name in _BOOL_FLAGS:
            if has_value and value not in ("true", "false"):
                raise UsageError(f'invalid argument "{value}" for "--{name}" flag: expected true or false')
            setattr(inv, name.replace("-", "_"), value != "false")
        elif name in _VALUE_FLAGS:
            if not has_value:
                if i >= len(args):
                    raise UsageError(f"flag needs an argument: --{name}")
                value = args[i]
                i += 1
            setattr(inv, name, value)
        else:
            raise UsageError(f"unknown flag: --{name}")
        given.add(name)
    if "format" in given and not inv.airflow_metadata:
        raise UsageError("--format is only valid together with --airflow-metadata")
    if inv.format not in (None, "", "yaml", "json"):
        raise UsageError(f'unsupported --airflow-metadata format "{inv.format}": want "yaml" or "json"')
    return inv


def serve(bundle: BundleProvider, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the bundle program; returns the process exit code (``raise SystemExit(serve(bundle))``).

    ``argv`` defaults to ``sys.argv[1:]``; a bundle with flags of its own passes what remains after
    removing them. The reserved flags are the ones in the usage text."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or os.path.basename(sys.argv[0] or "bundle")
    if _stdout.needs_clean_stdout(argv):
        _stdout.protect_stdout()
    provider = check_provider(bundle)
    if not argv and "PYBUNDLE_DAG_CALLBACK" in os.environ:  # a generated DAG file's DAG callback
        from .dag_callback.mode import run as run_dag_callback

        return run_dag_callback(provider)
    try:
        inv = parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n{usage(prog)}")
        return EXIT_USAGE
    if inv.help:
        sys.stderr.write(usage(prog))
        return EXIT_OK

    if inv.bundle_metadata or inv.dump_bundle_spec or inv.airflow_metadata:
        return _dump(provider, inv)
    if inv.comm is not None and inv.logs is not None:
        from .coordinator import run as run_coordinator

        return run_coordinator(provider, inv.comm, inv.logs)
    if inv.comm is not None or inv.logs is not None:
        sys.stderr.write(f"error: --comm and --logs must be supplied together\n{usage(prog)}")
        return EXIT_USAGE
    if _stdout.COOKIE_KEY in os.environ:
        from .plugin import run as run_plugin

        return run_plugin(provider)
    # What a Go bundle run by hand does: it enters go-plugin mode, which refuses without the cookie.
    from .plugin import NOT_A_PLUGIN_MESSAGE

    sys.stderr.write(f"{NOT_A_PLUGIN_MESSAGE}\n{usage(prog)}")
    return EXIT_ERROR


def _dump(provider: BundleProvider, inv: Invocation) -> int:
    from .introspection.dumps import render

    try:
        document = render(provider, metadata=inv.bundle_metadata, spec=inv.dump_bundle_spec, fmt=inv.format)
    except Exception as exc:
        sys.stderr.write(f"error: registering dags: {exc}\n")
        return EXIT_ERROR
    _stdout.write_stdout(document)
    return EXIT_OK
