"""A failed task's exception as its task log shows it: the user's frames, with their source lines.

The record keeps structlog's dict-traceback shape (``exc_type``, ``exc_value``, ``is_cause``,
``frames`` of ``filename``/``lineno``/``name``, ...), which is what the released supervisor moves to
``error_detail`` and what Airflow's log view renders. Two things are added to make it debuggable:

* every frame carries ``line``, the stripped source line Python's own traceback prints (structlog's
  shape has no such field, so without it nobody downstream can show the code that raised);
* pybundle's own frames (``execution.py``, ``injection.py``, ... of the installed or extracted
  ``bundle`` package) are left out, so the traceback starts at the task function. Setting
  ``PYBUNDLE_TRACEBACK_INTERNAL=1`` keeps them; an exception raised entirely inside pybundle keeps
  them too, since leaving none would hide where the error came from.

``format_stacks`` turns that shape back into the text ``traceback.format_exception`` prints (root
cause first, Python's separators between chained exceptions), for readers that show text: the
bundle-run report, the go-plugin stderr log and ``bundle.testing``.

Imported only on the failure path (by whoever formats an exception), never at start-up.
"""

from __future__ import annotations

import os
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Iterator, Mapping
    from types import TracebackType
    from typing import Any

INTERNAL_FRAMES_ENV = "PYBUNDLE_TRACEBACK_INTERNAL"
MAX_CHAIN = 10
MAX_LINE_CHARS = 1000
CAUSE_SEPARATOR = "The above exception was the direct cause of the following exception:"
CONTEXT_SEPARATOR = "During handling of the above exception, another exception occurred:"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def show_internal_frames(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``PYBUNDLE_TRACEBACK_INTERNAL`` asks for pybundle's frames (read at each failure,
    so a test or a debugging session can flip it without restarting anything)."""
    value = (os.environ if environ is None else environ).get(INTERNAL_FRAMES_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def is_internal(filename: str) -> bool:
    """A frame of the ``bundle`` package itself: wherever it was imported from (site-packages, a
    checkout, a packed executable's extracted ``lib/``), its files share this module's package dir."""
    return bool(filename) and os.path.abspath(filename).startswith(_PACKAGE_DIR)


def exception_stacks(exc: BaseException, *, internal: bool | None = None) -> list[dict[str, Any]]:
    """structlog's dict-traceback shape, outermost exception first, cycles cut, plus source lines.

    ``internal`` keeps pybundle's frames; ``None`` means ``PYBUNDLE_TRACEBACK_INTERNAL`` decides."""
    keep_internal = show_internal_frames() if internal is None else internal
    return [_stack(current, is_cause, keep_internal) for current, is_cause in _chain(exc)]


def _chain(exc: BaseException) -> Iterator[tuple[BaseException, bool]]:
    """The exception, then its ``__cause__`` or unsuppressed ``__context__``, and so on, as Python
    walks them; ``is_cause`` tells a ``raise ... from`` link from an implicit one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    is_cause = False
    while current is not None and id(current) not in seen and len(seen) < MAX_CHAIN:
        seen.add(id(current))
        yield current, is_cause
        if current.__cause__ is not None:
            current, is_cause = current.__cause__, True
        elif not current.__suppress_context__:
            current, is_cause = current.__context__, False
        else:
            current = None


def _stack(exc: BaseException, is_cause: bool, keep_internal: bool) -> dict[str, Any]:
    return {
        "exc_type": type(exc).__name__,
        "exc_value": _safe_str(exc),
        "exc_notes": [_safe_str(note) for note in getattr(exc, "__notes__", None) or ()],
        "syntax_error": None,
        "is_cause": is_cause,
        "frames": _frames(exc.__traceback__, keep_internal),
        "is_group": False,
        "exceptions": [],
    }


def _frames(tb: TracebackType | None, keep_internal: bool) -> list[dict[str, Any]]:
    """The frames of one exception; pybundle's are dropped unless asked for or nothing else is left."""
    try:
        # reads the source lines through linecache
        summaries: list[traceback.FrameSummary] = traceback.extract_tb(tb)
    except Exception:  # a loader whose get_source raises must not lose the record
        summaries = _summaries_without_lines(tb)
    frames = [_frame(summary) for summary in summaries]
    if keep_internal:
        return frames
    user = [frame for frame in frames if not is_internal(frame["filename"])]
    return user or frames


def _summaries_without_lines(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The frames with no source looked up: the fallback when reading the source failed."""
    return list(traceback.StackSummary.extract(traceback.walk_tb(tb), lookup_lines=False))


def _frame(summary: traceback.FrameSummary) -> dict[str, Any]:
    try:
        line = summary.line or ""
    except Exception:
        line = ""
    if len(line) > MAX_LINE_CHARS:
        line = line[:MAX_LINE_CHARS] + "..."
    return {"filename": summary.filename, "lineno": summary.lineno or 0, "name": summary.name, "line": line}


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def format_stacks(stacks: object) -> list[str]:
    """The lines ``traceback.format_exception`` prints for the exception these stacks describe:
    root cause first, each chained exception after Python's separator, source under each frame.

    Accepts whatever a task log holds (it may come from another writer), never raises."""
    if not stacks:
        return []
    if not isinstance(stacks, list):
        return [str(stacks)]
    lines: list[str] = []
    for position in range(len(stacks) - 1, -1, -1):  # the root cause is the last stack
        stack = stacks[position]
        is_dict = isinstance(stack, dict)
        lines += _stack_lines(stack) if is_dict else [str(stack)]
        if position:  # this stack is the cause (or context) of the one printed next
            linked_by_cause = is_dict and stack.get("is_cause") is True
            lines += ["", CAUSE_SEPARATOR if linked_by_cause else CONTEXT_SEPARATOR, ""]
    return lines


def _stack_lines(stack: dict[str, Any]) -> list[str]:
    frames = [frame for frame in stack.get("frames") or () if isinstance(frame, dict)]
    lines = ["Traceback (most recent call last):"] if frames else []
    for frame in frames:
        lines.append(f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}')
        if frame.get("line"):
            lines.append(f"    {frame['line']}")
    exc_type, exc_value = stack.get("exc_type", "Exception"), stack.get("exc_value", "")
    lines.append(f"{exc_type}: {exc_value}" if exc_value else str(exc_type))
    lines += [str(note) for note in stack.get("exc_notes") or ()]
    return lines


def format_exception(exc: BaseException, *, internal: bool | None = None) -> str:
    """The traceback text of ``exc`` as the task log shows it (pybundle's frames left out)."""
    return "\n".join(format_stacks(exception_stacks(exc, internal=internal)))
