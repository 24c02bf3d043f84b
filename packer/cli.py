"""The ``bundle-pack`` command line.

::

    bundle-pack TARGET [--format zip|executable] [--output PATH] [--source FILE] [--name NAME] [--python CMD]
    bundle-pack pack TARGET [...]          the same, spelled out
    bundle-pack inspect BUNDLE [--source]
    bundle-pack verify BUNDLE
    bundle-pack dag-file TARGET|BUNDLE [--dag DAG_ID ...] --output PATH [--check] [--force]

Packing is the default action, so ``TARGET`` may come first. A first argument that is a subcommand
name (``pack``, ``inspect``, ``verify``, ``dag-file``) always means the subcommand: to pack a target literally named
like one, write it as a path (``./verify``, ``verify.py``) or use ``bundle-pack pack verify``.

Every failure prints one ``error: <message>`` line on stderr and exits 1 (``dag-file``: 2, its exit
1 meaning only "``--check`` found the file out of step"); warnings are
``warning: <message>`` lines on stderr; stdout carries only results (``Wrote bundle ...``, the
inspected manifest, the verification verdict).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from . import PackError
from .inspect_ import load_bundle, write_rendered
from .launcher import DEFAULT_PYTHON
from .pack import FORMATS, PackRequest, pack
from .verify import verify

_SUBCOMMANDS_HELP = """Pack a pybundle bundle for Airflow, or inspect / verify a packed bundle.

\b
  bundle-pack TARGET [OPTIONS]       pack TARGET (same as: bundle-pack pack TARGET)
  bundle-pack inspect BUNDLE         print a bundle's manifest (--source: and its DAG source)
  bundle-pack verify BUNDLE          check a bundle and run its executable
  bundle-pack dag-file TARGET -o F   write the Python DAG file Airflow reads (--check: compare)

TARGET is what `python -m bundle --bundle` accepts: path/to/file.py[:attr] or package.module[:attr]
(attr defaults to `bundle`). A first argument named like a subcommand is the subcommand; write a
target called `verify` as ./verify or use `bundle-pack pack verify`.
"""


class _PackByDefault(click.Group):
    """A group whose default command is ``pack``: ``bundle-pack TARGET`` needs no subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help", "--version")):
            args = ["pack", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=_PackByDefault,
    help=_SUBCOMMANDS_HELP,
    subcommand_metavar="TARGET [OPTIONS] | COMMAND [ARGS]...",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(
    package_name="pybundle", prog_name="bundle-pack", message="%(prog)s (pybundle) %(version)s"
)
def cli() -> None:
    pass


@cli.command("pack")
@click.argument("target")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="zip",
    show_default=True,
    help="zip: the bundle-spec ZIP (manifest + source + executable); executable: one self-contained "
    "file with the AFBNDL01 trailer that Airflow's ExecutableCoordinator discovers.",
)
@click.option(
    "--output",
    "-o",
    metavar="PATH",
    help="Where to write (default: <name>.zip or <name> in the current directory). Missing directories "
    "are created; a directory or an input file is refused.",
)
@click.option(
    "--source",
    metavar="FILE",
    help="The DAG source shown by Airflow (default: the target's own file).",
)
@click.option(
    "--name",
    metavar="NAME",
    help="Artifact base name: default output file name and the executable's name inside a ZIP bundle "
    "(default: the bundle's name from --bundle-metadata).",
)
@click.option(
    "--python",
    metavar="CMD",
    default=DEFAULT_PYTHON,
    show_default=True,
    help="The interpreter command the executable runs the bundle with (Python >= 3.10, nothing else needed).",
)
@click.option(
    "--requirements",
    "-r",
    metavar="FILE",
    help="The bundle's third-party dependencies, a pip requirements file (--hash honoured). Default: a "
    "requirements.lock next to or above TARGET, else [project] dependencies of its pyproject.toml.",
)
@click.option(
    "--python-version",
    metavar="X.Y",
    help="The CPython version the vendored wheels are chosen for (default: this interpreter's).",
)
@click.option(
    "--platform",
    metavar="TAG",
    help="The wheel platform tag the vendored wheels are chosen for, e.g. manylinux_2_28_x86_64 or "
    "manylinux2014_aarch64 (default: this machine's).",
)
@click.option(
    "--allow-undeclared",
    is_flag=True,
    help="Pack a bundle that imports installed packages no declared dependency provides (a warning, "
    "not an error); those imports fail on the worker.",
)
def pack_command(
    target: str,
    fmt: str,
    output: str | None,
    source: str | None,
    name: str | None,
    python: str,
    requirements: str | None,
    python_version: str | None,
    platform: str | None,
    allow_undeclared: bool,
) -> int:
    """Pack TARGET into a bundle (the default command)."""
    packed = pack(
        PackRequest(
            target=target,
            format=fmt,
            output=output,
            source=source,
            name=name,
            python=python,
            requirements=requirements,
            python_version=python_version,
            platform=platform,
            allow_undeclared=allow_undeclared,
        ),
        warn=lambda message: click.echo(f"warning: {message}", err=True),
    )
    click.echo(
        f"Wrote bundle {packed.output} (sdk={packed.sdk_language}/{packed.sdk_version}, dags={packed.dag_count})"
    )
    return 0


@cli.command("inspect")
@click.argument("bundle")
@click.option("--source", "with_source", is_flag=True, help="Also print the DAG source, before the manifest.")
def inspect_command(bundle: str, with_source: bool) -> int:
    """Print the manifest of BUNDLE (either format), checking its trailer or archive on the way."""
    with load_bundle(bundle) as loaded:
        if with_source:  # a damaged source must fail before anything is printed
            for _ in loaded.iter_source():
                pass
        write_rendered(loaded, with_source, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


@cli.command("verify")
@click.argument("bundle")
def verify_command(bundle: str) -> int:
    """Check BUNDLE like Airflow would, then run its executable's introspection flags."""
    report = verify(bundle)
    for message in report.warnings:
        click.echo(f"warning: {message}", err=True)
    for message in report.problems:
        click.echo(f"error: {message}", err=True)
    if not report.ok:
        return 1
    click.echo(
        f"OK {bundle}: {report.format} bundle (sdk={report.sdk}, dags={report.dag_count}, tasks={report.task_count})"
    )
    return 0


@cli.command("dag-file")
@click.argument("target")
@click.option(
    "--dag",
    "dag_ids",
    multiple=True,
    metavar="DAG_ID",
    help="Write only this DAG (repeatable; default: every DAG of the bundle, in its order).",
)
@click.option(
    "--output", "-o", metavar="PATH", required=True, help="The DAG file to write (one per invocation)."
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing: exit 1 with a unified diff when PATH differs from what would be written.",
)
@click.option("--force", is_flag=True, help="Overwrite PATH even if bundle-pack did not generate it.")
def dag_file_command(
    target: str, dag_ids: tuple[str, ...], output: str, check_only: bool, force: bool
) -> int:
    """Write the Python DAG file (DAG + @task.stub) that declares TARGET's DAGs for Airflow.

    TARGET is a source target or a packed bundle (either format). The file is rendered from the
    bundle's own DagSerialization, so the scheduler sees exactly the bundle's DAGs."""
    import shlex

    from .dagdoc import read_bundle_document
    from .dagfile import check, render, write

    path = Path(output)
    if path.is_dir():
        raise PackError(f"--output {output} is a directory; name the DAG file (a .py path) instead")
    dags = [f"--dag={dag_id}" for dag_id in dag_ids]
    # The header names the command run from the file's own directory, so the file's bytes do not
    # depend on how (or from where) the paths were spelled: --check agrees with any spelling.
    directory = os.path.dirname(os.path.realpath(output))
    portable = ["bundle-pack", "dag-file", _portable_target(target, directory), *dags]
    portable += ["--output", os.path.basename(os.path.realpath(output))]
    content = render(
        read_bundle_document(target, dag_ids), f"(from this file's directory) {shlex.join(portable)}"
    )
    if check_only:
        result = check(path, content)
        if not result.in_step:
            sys.stdout.write(result.diff)
            command = shlex.join(["bundle-pack", "dag-file", target, *dags, "--output", output])
            _error(f"{output} is not what the bundle generates; regenerate it with: {command}")
            return 1
        click.echo(f"OK {output} is in step with {target}")
        return 0
    write(path, content, force=force)
    click.echo(f"Wrote DAG file {output}")
    return 0


def _portable_target(target: str, directory: str) -> str:
    """``target`` as seen from ``directory`` when it names a file (a source file, with its
    ``:attr`` unless it is the default, or a packed bundle); a ``package.module[:attr]`` target as
    it was written."""
    from bundle.target import DEFAULT_ATTR, is_file_target, split_target

    location, attr = split_target(target)
    if Path(target).exists():
        location, suffix = target, ""
    elif is_file_target(location):
        suffix = "" if attr == DEFAULT_ATTR else f":{attr}"  # "x.py:bundle" is "x.py"
    else:
        return target
    relative = os.path.relpath(os.path.realpath(location), directory)
    return (relative if "/" in relative else f"./{relative}") + suffix


def _failure_status(argv: Sequence[str] | None) -> int:
    """The exit status of a failure: 2 for ``dag-file`` (whose 1 means "out of step"), else 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    return 2 if args[:1] == ["dag-file"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the CLI and turn every failure into ``error: ...``, exit 1
    (2 for ``dag-file``)."""
    failed = _failure_status(argv)
    try:
        result: Any = cli.main(
            args=list(argv) if argv is not None else None, prog_name="bundle-pack", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        _error(f"{exc.format_message()} (see 'bundle-pack --help')")
        return failed
    except click.ClickException as exc:
        _error(exc.format_message())
        return failed
    except click.Abort:
        _error("aborted")
        return failed
    except PackError as exc:
        _error(str(exc))
        return failed
    except BrokenPipeError:  # `bundle-pack inspect X | head`: the reader left, nothing to report
        _silence_stdout()
        return failed
    except Exception as exc:  # a bug of ours: still one line and a defined status
        _error(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        return failed
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    """One ``error:`` line, whatever the message holds (line breaks in a path or id are escaped)."""
    click.echo(f"error: {''.join(c if c.isprintable() else repr(c)[1:-1] for c in message)}", err=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
