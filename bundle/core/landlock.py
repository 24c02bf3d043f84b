"""Shut a callback's process off from its ancestors' memory, descriptors and signals (Linux Landlock).

The proxy (``bundle.core.confinement``) is a callback's only channel to Airflow as long as the
callback cannot reach into another process of the same user: without a Linux security module
saying no, a process may ``ptrace``-access its parent (Yama's ``ptrace_scope`` 0, or no Yama), so
it could copy the runtime's supervisor socket out with ``pidfd_getfd``, or read the runtime's or
the supervisor's memory (which holds the task's token) through ``/proc/<pid>/mem`` or
``process_vm_readv``. A process that restricted itself with Landlock may not ptrace-access any
process outside its own Landlock domain, whatever its capabilities (root included), and from ABI
6 it may not signal one either (``LANDLOCK_SCOPE_SIGNAL``).

The ruleset must handle some access right to be created at all; it handles ``EXECUTE`` and allows
it beneath ``/``, so what the callback may open, write or run is unchanged (files on the callback's
own mounts keep their permissions; its network is not touched). ``PR_SET_NO_NEW_PRIVS`` comes with
it (Landlock needs it): a set-user-ID program the callback runs gets no extra privileges.

Loaded only in a callback's process (``ctypes`` is imported there anyway).
"""

from __future__ import annotations

import os
import sys

# landlock_create_ruleset, landlock_add_rule, landlock_restrict_self: one number for every
# architecture that has Landlock, except alpha (asm-generic/unistd.h and each syscall table).
_SYSCALLS = (444, 445, 446)
_ARCHES = frozenset(
    {
        "x86_64",
        "amd64",
        "i386",
        "i686",
        "aarch64",
        "arm64",
        "armv7l",
        "armv8l",
        "riscv64",
        "ppc64le",
        "ppc64",
        "s390x",
    }
)
_CREATE_RULESET_VERSION = 1 << 0
_ACCESS_FS_EXECUTE = 1 << 0
_RULE_PATH_BENEATH = 1
_SCOPE_SIGNAL = 1 << 1
_PR_SET_NO_NEW_PRIVS = 38

HOW_TO_CLOSE = "run on a Linux kernel with Landlock enabled (5.13+; 6.12+ also stops signals) or set kernel.yama.ptrace_scope=1"


def restrict_self() -> str | None:
    """Put this process in a Landlock domain of its own. Returns ``None`` when the ancestors'
    memory and descriptors are out of reach (Landlock, or Yama for a non-root user), else one line
    saying which route stays open and how to close it."""
    try:
        abi = _restrict()
    except _Unavailable as exc:
        if _yama_scope() >= 1 and os.geteuid() != 0:
            return None  # Yama already refuses a non-root process access to its ancestors
        return (
            f"this callback's process can still read the memory and copy the descriptors of the "
            f"runtime and the supervisor (ptrace, /proc/<pid>/mem; Landlock is unavailable: {exc}); "
            f"to close it, {HOW_TO_CLOSE}"
        )
    if abi < 6:
        return (
            f"this callback's process can still signal the runtime and the supervisor (Landlock ABI "
            f"{abi} < 6); to close it, run on Linux 6.12 or later"
        )
    return None


def abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none (or it is disabled)."""
    if not sys.platform.startswith("linux") or os.uname().machine.lower() not in _ARCHES:
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(
        ctypes.c_long(_SYSCALLS[0]), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return max(int(version), 0)


class _Unavailable(Exception):
    """Landlock cannot restrict this process (the reason is the message)."""


def _restrict() -> int:
    """Restrict this process; return the Landlock ABI used. Raises ``_Unavailable``."""
    if not sys.platform.startswith("linux"):
        raise _Unavailable(f"not Linux ({sys.platform})")
    machine = os.uname().machine.lower()
    if machine not in _ARCHES:
        raise _Unavailable(f"unknown system call numbers for {machine!r}")
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    create, add_rule, restrict = (ctypes.c_long(number) for number in _SYSCALLS)

    abi = syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if abi < 1:
        raise _Unavailable(f"the kernel says {os.strerror(ctypes.get_errno())}")

    class RulesetAttr(ctypes.Structure):
        _fields_ = [
            ("handled_access_fs", ctypes.c_uint64),
            ("handled_access_net", ctypes.c_uint64),
            ("scoped", ctypes.c_uint64),
        ]

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = RulesetAttr(_ACCESS_FS_EXECUTE, 0, _SCOPE_SIGNAL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8  # the struct as this ABI knows it
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _Unavailable(f"PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
    ruleset = syscall(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _Unavailable(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            rule = PathBeneathAttr(_ACCESS_FS_EXECUTE, root)
            if (
                syscall(
                    add_rule,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
                != 0
            ):
                raise _Unavailable(f"landlock_add_rule: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(root)
        if syscall(restrict, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise _Unavailable(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return int(abi)


def _yama_scope() -> int:
    """``kernel.yama.ptrace_scope``, 0 where Yama is absent."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope", "rb") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
