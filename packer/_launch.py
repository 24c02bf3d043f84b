"""pybundle launcher: runs the bundle embedded in this file with the interpreter that reads this.

This text is copied verbatim into every packed executable, after a two-line ``#!/bin/sh`` stub that
execs the interpreter (``exec`` keeps the PID, which Airflow's supervisor checks) with a one-line loader
that reads this text from the file and runs it. It is never imported by the packer at pack time, so it
may only use the standard library and must work on any worker with a bare ``python3 >= 3.10``.

What it does:

1. Finds the launcher region: the whole file, or ``[0, source_start)`` when the file ends with an
   ``AFBNDL01`` trailer. Its SHA-256 is the cache key: a warm start takes it from the trailer (a
   64-byte read, whatever the payload's size), a first start hashes the region and checks it against
   the trailer (a damaged file refuses to run); a file without a trailer is hashed every start.
2. Uses ``<cache>/<sha256 of that region>/`` as the extracted runtime, where ``<cache>`` is
   ``$PYBUNDLE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pybundle``, else ``~/.cache/pybundle``, else
   ``<tmp>/pybundle-<uid>`` (a default location that cannot be created or is not private is skipped).
   The cache directory must belong to the current user and must not be writable by group or others;
   every directory above it must belong to root or the current user and must not be writable by
   group or others unless it is sticky (``/tmp``); missing directories are created 0700;
   an entry is trusted only if its stamp names the same hash and every file still has its recorded
   size.
3. On a miss, extracts the ZIP that ends the region into a private temporary directory next to the
   entry, writes the stamp last, and renames the directory into place. ``rename`` is atomic, so
   concurrent first runs each extract and the first rename wins; the others use the winner's copy.
4. When the payload vendors compiled wheels, checks that this interpreter is what they were built for
   (CPython, the Python minor, a platform tag of every wheel; see :func:`check_requires`).
5. Puts the runtime and the vendored dependencies (``lib``) and the bundle's code (``app``) first on
   ``sys.path`` and serves the bundle in this process with the arguments it was given. The stub runs
   the interpreter with ``-I -S``: no site-packages (system or user), no ``.pth`` processing, no
   ``PYTHON*`` variables, no current directory on ``sys.path``, so the worker's installed packages can
   neither shadow nor stand in for the bundle's.

The cache stays bounded: a first start also removes leftovers of crashed extractions older than a day
and entries no start has used for 30 days; a warm start refreshes its entry's stamp at most daily.

What is trusted, and why: the security boundary is the cache directory's ownership and mode, not a
content hash. Everything extracted is created 0755/0644 whatever the umask (``__pycache__`` included),
so only this user (or root) can change an entry, and such a user could as well change the bundle
file or ``~/.bashrc``. A warm start therefore checks the stamp and every file's size (what a crashed
or interrupted extraction, a deleted or truncated file leaves behind; of vendored dependencies only
their top-level files, package ``__init__.py`` and ``METADATA``, see :func:`stamped`) but does not re-hash contents:
that would cost every start a read of the whole runtime and still not cover the ``.pyc`` files the
interpreter writes next to it. Everything read from the bundle file is bounded (the region is hashed
in chunks; an extraction checks the entry count and declared sizes first) and every failure before
the bundle runs is one ``error:`` line with exit status 1.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # the launcher imports nothing it does not need; annotations are strings
    from typing import Any

MIN_PYTHON = (3, 10)
TRAILER_SIZE = 64
MAGIC = b"AFBNDL01"
CACHE_ENV = "PYBUNDLE_CACHE_DIR"
CONFIG_NAME = "pybundle-launch.json"
VERIFY_IMPORTS_ENV = "PYBUNDLE_VERIFY_IMPORTS"  # set by ``bundle-pack verify`` only
STAMP_NAME = ".pybundle-entry.json"
STALE_SECONDS = 24 * 3600  # leftovers of crashed extractions older than this are removed
UNUSED_SECONDS = 30 * 24 * 3600  # entries not started for this long are removed (one per bundle build)
CHUNK_SIZE = 1 << 20
# Sanity bounds on the embedded runtime (the packer writes ~0.4 MiB in ~100 entries, plus the vendored
# dependencies: numpy alone is ~40 MiB in ~1,000 files): a damaged or crafted archive fails with an
# error line instead of exhausting memory or the disk.
MAX_REGION_BYTES = 1 << 30
MAX_ENTRIES = 100_000
MAX_UNPACKED_BYTES = 1 << 30
MAX_NAME_DEPTH = 64  # path components of one entry (the runtime's deepest is 4)
MAX_NAME_LENGTH = 1024  # bytes: well inside PATH_MAX once joined to the cache path


class LaunchError(Exception):
    """Reported as one ``error:`` line and exit status 1, never as a traceback."""


class BrokenEntry(Exception):
    """A cache entry that is present but incomplete or damaged; it gets replaced."""


def binary_region(path: str, verify: bool = True) -> tuple[int, str]:
    """The length of the launcher region of ``path`` and its SHA-256 (hex), verified against the
    trailer if any.

    With ``verify=False`` and a trailer, the trailer's recorded hash is returned unchecked: that is
    what a warm start uses as its cache key, so that it costs a 64-byte read and not a hash of the
    whole region (tens of MiB once dependencies are vendored). It is safe because the entry of that
    key can only hold bytes that hashed to it (an extraction verifies the region first, see
    :func:`install`), so a damaged file either finds the intact runtime it was built with or, on a
    miss, is refused; and Airflow's reader hashes the region before it ever runs the file.

    The region is hashed in chunks and never held whole: a trailer whose lengths are damaged can
    make the "region" most of an arbitrarily large file, and a warm start needs only the hash."""
    import struct

    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        end, expected = size, None
        if size >= TRAILER_SIZE:
            handle.seek(size - TRAILER_SIZE)
            trailer = handle.read(TRAILER_SIZE)
            if trailer[56:] == MAGIC:
                source_len, metadata_len, footer_ver = struct.unpack_from("<III", trailer)
                if footer_ver != 1:
                    raise LaunchError(f"{path}: unsupported bundle footer_ver {footer_ver}")
                if trailer[44:56] != bytes(12):
                    raise LaunchError(f"{path}: the bundle trailer's reserved bytes are not zero")
                end = size - TRAILER_SIZE - metadata_len - source_len
                if end <= 0:
                    raise LaunchError(f"{path}: the bundle trailer leaves no launcher region")
                expected = trailer[12:44]
                if not verify:
                    return end, expected.hex()
        handle.seek(0)
        digest = _sha256()
        left = end
        while left:
            chunk = handle.read(min(CHUNK_SIZE, left))
            if not chunk:
                raise LaunchError(f"{path} changed while it was being read")
            digest.update(chunk)
            left -= len(chunk)
    if expected is not None and digest.digest() != expected:
        raise LaunchError(
            f"{path} is corrupted: the SHA-256 of its launcher region does not match the bundle trailer"
        )
    return end, digest.hexdigest()


def _sha256():
    """A SHA-256 hasher. The builtin ``_sha256`` module loads in microseconds; ``hashlib`` goes
    through OpenSSL's ``_hashlib``, which costs every warm start milliseconds."""
    try:
        # typeshed has no _sha256 and has _sha2 only from 3.12 (mypy checks for 3.10)
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return sha256()


def read_region(path: str, end: int, key: str) -> bytes:
    """The launcher region, read for an extraction and checked against ``key`` once more, so an entry
    can only ever hold the bytes its name (the hash) promises, even if the file changed meanwhile."""
    if end > MAX_REGION_BYTES:
        raise LaunchError(
            f"{path}: the launcher region is {end} bytes, more than the {MAX_REGION_BYTES} a bundle runtime can be"
        )
    with open(path, "rb") as handle:
        region = handle.read(end)
    digest = _sha256()
    digest.update(region)
    if len(region) != end or digest.hexdigest() != key:
        raise LaunchError(f"{path} changed while it was being read")
    return region


def cache_roots() -> list[str]:
    """Candidate cache roots, best first; an explicit ``$PYBUNDLE_CACHE_DIR`` is the only candidate."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return [os.path.abspath(os.path.expanduser(override))]
    roots = []
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        roots.append(os.path.join(xdg, "pybundle"))
    else:
        home = os.path.expanduser("~")
        if os.path.isabs(home):
            roots.append(os.path.join(home, ".cache", "pybundle"))
    # the temporary directory, found without importing tempfile (it costs ~20 ms on every start)
    temp = next((os.environ[name] for name in ("TMPDIR", "TEMP", "TMP") if os.environ.get(name)), "/tmp")
    roots.append(os.path.join(temp, f"pybundle-{os.geteuid()}"))
    return roots


def check_private(path: str, st: os.stat_result) -> None:
    """Refuse a directory another user could have written to: its code would run as us."""
    import stat

    if not stat.S_ISDIR(st.st_mode):
        raise LaunchError(f"cache path {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise LaunchError(
            f"refusing cache directory {path}: it is owned by uid {st.st_uid}, not by the current user "
            f"(uid {os.geteuid()}); remove it or set {CACHE_ENV} to a private directory"
        )
    if st.st_mode & 0o022:
        raise LaunchError(
            f"refusing cache directory {path}: it is writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod go-w on it or set {CACHE_ENV}"
        )


def ancestors(path: str) -> list[str]:
    """The directories above ``path``, as spelled and once symlinks are resolved, each once."""
    found: list[str] = []
    for start in (path, os.path.realpath(path)):
        parent = os.path.dirname(start)
        while parent not in found:
            found.append(parent)
            if os.path.dirname(parent) == parent:
                break
            parent = os.path.dirname(parent)
    return found


def check_ancestors(root: str) -> None:
    """Refuse a cache root below a directory another user could change.

    Whoever can write to a directory above the cache can rename the cache away and put their own in
    its place (at best every start then fails, at worst their code runs as us). So every existing
    directory above the root, as spelled and as resolved, must belong to root or to us and must not
    be writable by group or others - unless its sticky bit is set, as on ``/tmp``: there others may
    add entries but not rename or remove ours. Missing directories are created private later."""
    euid = os.geteuid()
    for directory in ancestors(root):
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            continue
        if st.st_uid not in (0, euid):
            raise LaunchError(
                f"refusing cache directory {root}: {directory} above it is owned by uid {st.st_uid} "
                f"(neither root nor the current user); set {CACHE_ENV} to a private directory"
            )
        if st.st_mode & 0o022 and not st.st_mode & 0o1000:
            raise LaunchError(
                f"refusing cache directory {root}: {directory} above it is writable by group or others "
                f"without the sticky bit (mode {st.st_mode & 0o7777:04o}); set {CACHE_ENV} to a private directory"
            )


def make_private_dirs(path: str) -> None:
    """``os.makedirs`` with every missing component 0700, not only the last, whatever the umask
    (``makedirs`` gives the parents ``0777 & ~umask``: 0777 under ``umask 000``)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path:
            raise
        make_private_dirs(parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # a concurrent first start made it
            return
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask; an odd one could leave it unusable


def open_root() -> str:
    """Create (0700, with every missing parent) or validate the cache root.

    An explicit ``$PYBUNDLE_CACHE_DIR`` that is unusable or unsafe is an error. A default location
    that cannot be created or is not private (e.g. a ``$HOME`` shared with another user) is skipped
    in favour of the next one; it is never used."""
    explicit = bool(os.environ.get(CACHE_ENV))
    failures = []
    for root in cache_roots():
        try:
            check_ancestors(root)
            make_private_dirs(root)
            # A default location is checked without following a symlink: another user can plant
            # one at <tmp>/pybundle-<uid> (the sticky /tmp lets them) to point the cache at a
            # directory of ours, where the sweep would then delete files. An explicit one is the
            # user's own choice and may be a link.
            check_private(root, os.stat(root) if explicit else os.lstat(root))
        except OSError as exc:
            failures.append(f"{root}: {exc.strerror or exc}")
        except LaunchError as exc:
            if explicit:
                raise
            failures.append(str(exc))
        else:
            return root
    raise LaunchError("no usable cache directory (" + "; ".join(failures) + f"); set {CACHE_ENV}")


def read_entry(entry: str, key: str) -> dict | None:
    """The stamp of a complete entry, None if there is no entry; raises BrokenEntry if it is damaged."""
    import stat

    try:
        st = os.lstat(entry)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise BrokenEntry(entry)
    check_private(entry, st)
    try:
        with open(os.path.join(entry, STAMP_NAME), "rb") as handle:
            stamp = _json_loads(handle.read().decode("utf-8"))
        if stamp["sha256"] != key or not valid_config(stamp["config"]):
            raise BrokenEntry(entry)
        for name, size in stamp["files"].items():
            if os.stat(os.path.join(entry, *name.split("/"))).st_size != size:
                raise BrokenEntry(entry)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise BrokenEntry(entry) from None
    return stamp


class _ScannerContext:
    """What ``_json.make_scanner`` reads from a ``JSONDecoder``: the stock settings."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not valid in a stamp")


def _json_loads(text: str) -> Any:
    """``json.loads`` through the C scanner alone: importing ``json`` costs every warm start
    milliseconds, and the stamp is all a warm start parses. Anything the scanner does not take
    cleanly (its error path needs ``json`` itself) goes through ``json.loads`` for the error."""
    try:
        from _json import make_scanner

        # typeshed names the decoder class as the context's type; the scanner reads only these fields
        value, end = make_scanner(_ScannerContext())(text, 0)  # type: ignore[arg-type]
        if not text[end:].strip():
            return value
    except Exception:
        pass
    import json

    return json.loads(text)


def valid_config(config: object) -> bool:
    """Whether ``pybundle-launch.json`` says how to load the bundle in a form :func:`run` can use."""
    if not isinstance(config, dict) or not isinstance(config.get("attr"), str):
        return False
    if config.get("kind") == "file":
        path = config.get("path")
        return isinstance(path, str) and not path.startswith("/") and ".." not in path.split("/")
    return config.get("kind") == "module" and isinstance(config.get("module"), str)


def make_dir(path: str) -> None:
    """A directory others can read but never write, whatever the umask (0 is common in containers):
    the default mode 0777 would let any local user change the code this bundle runs."""
    os.mkdir(path, 0o755)


def write_file(path: str, data: bytes) -> None:
    """A new regular file, mode 0644 at most; never through an existing file or symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


RUNTIME_TOPS = ("bundle", "msgpack")


def stamped(parts: list[str]) -> bool:
    """Whether a warm start checks this file's size. Every file of pybundle's runtime and of the
    bundle's own code is checked; of a vendored dependency only its top-level entries, the
    ``__init__.py`` of a package and the ``METADATA`` of a distribution: a numpy-sized dependency set
    has over a thousand files, and stat-ing each would cost every warm start milliseconds for files
    the bundle may never import. A cleaner that deletes old cache files deletes those markers too."""
    if parts[0] != "lib" or len(parts) <= 2 or parts[1] in RUNTIME_TOPS:
        return True
    return len(parts) == 3 and parts[2] in ("__init__.py", "METADATA")


def unpack(region: bytes, directory: str, key: str) -> dict:
    """Extract the ZIP that ends ``region`` into ``directory`` and write the stamp last.

    Only regular files with relative, normalised names are written, each into a directory this
    function created (so no path can lead outside ``directory``); every directory holding Python
    code also gets its ``__pycache__`` created here with the same safe mode, since the interpreter
    would create it with the umask's. Any malformed archive is a LaunchError."""
    import io
    import json
    import stat
    import zipfile

    files = {}
    try:
        with zipfile.ZipFile(io.BytesIO(region)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ENTRIES or sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
                raise LaunchError(
                    f"the embedded runtime archive declares {len(infos)} entries and "
                    f"{sum(info.file_size for info in infos)} bytes, more than a bundle runtime can have"
                )
            config = json.loads(archive.read(CONFIG_NAME))
            if not valid_config(config):
                raise LaunchError(f"the embedded runtime's {CONFIG_NAME} is not a valid launch configuration")
            made, code_dirs = {directory}, set()
            for info in infos:
                name = info.filename
                if name.endswith("/"):
                    continue
                parts = name.split("/")
                if (
                    len(parts) > MAX_NAME_DEPTH
                    or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_LENGTH
                    or name.startswith("/")
                    or "\\" in name
                    or "\0" in name
                    or any(p in ("", ".", "..") for p in parts)
                ):
                    raise LaunchError(f"the embedded runtime has an unsafe entry name {name!r}")
                if info.create_system == 3 and stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG):
                    raise LaunchError(f"the embedded runtime entry {name!r} is not a regular file")
                parent = directory
                for part in parts[:-1]:
                    parent = os.path.join(parent, part)
                    if parent not in made:
                        make_dir(parent)
                        made.add(parent)
                data = archive.read(info)
                write_file(os.path.join(parent, parts[-1]), data)
                if stamped(parts):
                    files[name] = len(data)
                if name.endswith(".py"):
                    code_dirs.add(parent)
            for parent in sorted(code_dirs):
                if not os.path.lexists(os.path.join(parent, "__pycache__")):
                    make_dir(os.path.join(parent, "__pycache__"))
    except (LaunchError, OSError):
        raise
    except Exception as exc:  # BadZipFile, bad CRC, zlib.error, encrypted or unsupported entries...
        raise LaunchError(f"the embedded runtime archive is damaged: {type(exc).__name__}: {exc}") from None
    stamp = {"sha256": key, "config": config, "files": files}
    write_file(os.path.join(directory, STAMP_NAME), json.dumps(stamp, sort_keys=True).encode("utf-8"))
    return stamp


def discard(path: str) -> None:
    """Best-effort removal of a leftover; it never raises, so cleaning up can never be what makes a
    start fail (``rmtree`` raises RecursionError on a tree deeper than the recursion limit)."""
    import shutil

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except Exception:
        pass


def sweep(root: str, keep: str) -> None:
    """Bound the cache: drop leftovers of crashed runs and entries no run has used for 30 days.

    Runs only on a cache miss (a first start), so warm starts never pay for it. An entry is moved
    aside before it is deleted, so a concurrent first start of that bundle simply extracts it again."""
    import time

    try:
        names = os.listdir(root)
    except OSError:
        return
    now = time.time()
    for name in names:
        path = os.path.join(root, name)
        try:
            if name.startswith(".tmp-") or ".broken-" in name:
                if now - os.lstat(path).st_mtime > STALE_SECONDS:
                    discard(path)
            elif len(name) == 64 and name != keep and all(c in "0123456789abcdef" for c in name):
                if now - os.stat(os.path.join(path, STAMP_NAME)).st_mtime > UNUSED_SECONDS:
                    aside = f"{path}.broken-{os.getpid()}-unused"
                    os.rename(path, aside)
                    discard(aside)
        except Exception:  # a leftover that cannot be judged or removed is left alone
            pass


def mark_used(entry: str) -> None:
    """Refresh the stamp's mtime (at most daily) so that :func:`sweep` keeps entries still in use."""
    import time

    stamp = os.path.join(entry, STAMP_NAME)
    try:
        if time.time() - os.stat(stamp).st_mtime > STALE_SECONDS:
            os.utime(stamp)
    except OSError:
        pass


def install(path: str, end: int, root: str, key: str) -> tuple[str, dict]:
    """The cache entry for ``key``, extracting the region of ``path`` first if it is missing or damaged.

    A damaged entry in the way is moved aside and the fresh copy renamed in *before* the old one is
    deleted, so the entry path is missing only between two renames; a concurrent start that just
    returned this entry keeps finding its files."""
    entry = os.path.join(root, key)
    try:
        stamp = read_entry(entry, key)
        if stamp is not None:
            mark_used(entry)
            return entry, stamp
    except BrokenEntry:
        pass
    import errno  # a miss (first start) from here on: warm starts do not import these
    import tempfile

    if binary_region(path)[1] != key:  # the key came from the trailer unchecked: check it now
        raise LaunchError(f"{path} changed while it was being read")
    region = read_region(path, end, key)
    sweep(root, key)
    staging = tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=root)
    asides = []
    try:
        stamp = unpack(region, staging, key)
        del region
        os.chmod(staging, 0o755)
        for attempt in range(10):
            try:
                os.rename(staging, entry)
                return entry, stamp
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise
            try:  # someone else got there first: use theirs if it is complete
                current = read_entry(entry, key)
                if current is not None:
                    return entry, current
            except BrokenEntry:  # a damaged entry is in the way: move it aside, then retry
                aside = f"{entry}.broken-{os.getpid()}-{attempt}"
                try:
                    os.rename(entry, aside)
                except FileNotFoundError:
                    continue
                asides.append(aside)
        raise LaunchError(f"could not install the bundle runtime into {entry}")
    finally:
        for leftover in [staging, *asides]:
            if os.path.lexists(leftover):
                discard(leftover)


def run(path: str, args: list[str], entry: str, config: dict) -> int:
    """Serve the bundle from the extracted runtime, in this process (same PID as the exec'd file)."""
    sys.path[0:0] = [os.path.join(entry, "lib"), os.path.join(entry, "app")]
    sys.argv = [path, *args]
    if config["kind"] == "file":
        target = os.path.join(entry, *config["path"].split("/")) + ":" + config["attr"]
    else:
        target = config["module"] + ":" + config["attr"]
    import bundle  # noqa: F401  (its import keeps stdout clean for the dump modes, reading sys.argv)
    from bundle.serve import serve
    from bundle.target import TargetError, load_target

    try:
        provider = load_target(target)
    except TargetError as exc:
        sys.stderr.write(f"error: cannot load the bundle: {exc}\n")
        return 1
    return serve(provider, args, prog=os.path.basename(path))


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _glibc() -> tuple[int, int] | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
        if text is None:
            return None
        _, version = text.split()  # "glibc 2.36"
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except (AttributeError, OSError, ValueError, TypeError):
        return None


def platform_matches(tag: str, machine: str, glibc: tuple[int, int] | None) -> bool:
    """Whether a wheel platform tag runs here. Covers the tags a Linux worker meets (``linux_*``,
    ``manylinux*``, ``musllinux_*``) and macOS; anything else is taken literally."""
    if sys.platform.startswith("linux"):
        for legacy, version in _LEGACY_MANYLINUX.items():
            if tag.startswith(legacy + "_"):
                return tag[len(legacy) + 1 :] == machine and glibc is not None and glibc >= version
        parts = tag.split("_", 3)
        if len(parts) == 4 and parts[0] in ("manylinux", "musllinux") and parts[3] == machine:
            try:
                needed = (int(parts[1]), int(parts[2]))
            except ValueError:
                return False
            if parts[0] == "manylinux":
                return glibc is not None and glibc >= needed
            return glibc is None  # musl: not glibc (its version is not checked)
        return tag == f"linux_{machine}"
    if sys.platform == "darwin" and tag.startswith("macosx_"):
        arch = tag.split("_", 3)[-1]
        return arch in (machine, "universal2", "universal") or (arch == "intel" and machine == "x86_64")
    return False


def describe_interpreter(machine: str, glibc: tuple[int, int] | None) -> str:
    name = "CPython" if sys.implementation.name == "cpython" else sys.implementation.name
    libc = f"glibc {glibc[0]}.{glibc[1]}" if glibc else "no glibc"
    return f"{name} {sys.version_info[0]}.{sys.version_info[1]} {sys.platform}_{machine} ({libc}, {sys.executable})"


def check_requires(requires: object) -> None:
    """Refuse to run compiled wheels on an interpreter they were not built for.

    The packer writes ``requires`` into the launch configuration only when the payload vendors a
    compiled wheel: CPython, the Python minor (exact for a ``cpXY`` ABI, a minimum for ``abi3``), and
    per wheel the platform tags of which one must match. Without this check the bundle would fail
    later with an ``ImportError`` deep in a task; with it, it fails at once with one line."""
    if not isinstance(requires, dict):
        return
    machine = os.uname().machine
    glibc = _glibc()
    want = tuple(requires.get("python", ()))
    have = sys.version_info[:2]
    ok = sys.implementation.name == requires.get("implementation", "cpython")
    ok = ok and (have == want if requires.get("exact_python") else have >= want)
    ok = ok and all(
        any(platform_matches(tag, machine, glibc) for tag in tags) for tags in requires.get("platforms", [])
    )
    if not ok:
        raise LaunchError(
            f"this bundle was built for {requires.get('label')}; this interpreter is "
            f"{describe_interpreter(machine, glibc)}: run it with a matching interpreter (bundle-pack --python) "
            "or pack it for this one (bundle-pack --python-version/--platform)"
        )


def verify_imports(entry: str, names: str) -> int:
    """``bundle-pack verify``'s probe: import each comma-separated top-level module the way the bundle
    would (same interpreter, flags and ``sys.path``), print ``{"missing": {name: error}}``, and exit
    1 if any failed. The bundle itself is not loaded."""
    import json

    sys.path[0:0] = [os.path.join(entry, "lib"), os.path.join(entry, "app")]
    missing = {}
    for name in filter(None, names.split(",")):
        try:
            __import__(name)
        except BaseException as exc:  # any failure to import is what verify reports
            missing[name] = f"{type(exc).__name__}: {exc}"
    sys.stdout.write(json.dumps({"missing": missing}, sort_keys=True) + "\n")
    return 1 if missing else 0


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        found = sys.version.split()[0]
        sys.stderr.write(f"error: this bundle needs Python >= 3.10, but {sys.executable} is {found}\n")
        return 1
    if len(sys.argv) < 2:
        sys.stderr.write("error: pybundle launcher: run the bundle file itself, not this code\n")
        return 1
    path, args = sys.argv[1], sys.argv[2:]
    try:
        end, key = binary_region(path, verify=False)
        root = open_root()
        entry, stamp = install(path, end, root, key)
        check_requires(stamp["config"].get("requires"))
    except LaunchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"error: cannot prepare the bundle runtime: {exc}\n")
        return 1
    except Exception as exc:  # MemoryError or a bug: still one line, never a traceback
        sys.stderr.write(f"error: cannot prepare the bundle runtime: {type(exc).__name__}: {exc}\n")
        return 1
    if os.environ.get(VERIFY_IMPORTS_ENV):
        return verify_imports(entry, os.environ[VERIFY_IMPORTS_ENV])
    return run(path, args, entry, stamp["config"])


if __name__ == "__main__":
    sys.exit(main())
