"""What ``bundle-run`` shows while tasks run (on stderr; the report goes to stdout).

* On a terminal, :class:`LiveProgress` keeps a table of every task (state, try, duration, retry
  countdown) up to date in place, a few times a second.
* Otherwise (CI logs, pipes), :class:`LineProgress` prints one plain line per state change, so the
  output is readable and diffable.

Both share :class:`TaskRow` bookkeeping; neither affects the run.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import TextIO

COLORS = {
    "success": "32",
    "failed": "31",
    "upstream_failed": "31",
    "removed": "31",
    "up_for_retry": "33",
    "up_for_reschedule": "33",
    "running": "36",
    "skipped": "35",
    "waiting": "2",
}
SYMBOLS = {
    "success": "✔",
    "failed": "✘",
    "upstream_failed": "✘",
    "removed": "✘",
    "up_for_retry": "↻",
    "up_for_reschedule": "⏲",
    "running": "▶",
    "skipped": "⤼",
    "waiting": "·",
}

LIVE_STATES = frozenset({"running", "up_for_retry", "up_for_reschedule"})  # kept on a full screen


def poke_again(when: float) -> str:
    """A rescheduled sensor's wait: how long, and the UTC time of its next poke."""
    at = time.strftime("%H:%M:%S", time.gmtime(when))
    return f"pokes again in {format_duration(max(0.0, when - time.time()))} (at {at} UTC)"


@dataclass
class TaskRow:
    """What the display knows about one task."""

    task_id: str
    max_tries: int
    state: str = "waiting"
    try_number: int = 0
    started: float | None = None
    duration: float | None = None
    note: str | None = None
    retry_at: float | None = None
    label: str | None = None
    """A mapped task instance's rendered ``map_index_template``."""

    @property
    def title(self) -> str:
        """The name shown: the task id (``task[i]`` for a mapped instance) and its label."""
        return f"{self.task_id} ({self.label})" if self.label else self.task_id

    def elapsed(self) -> float | None:
        """Running: time since the try started; otherwise the finished try's duration."""
        if self.state == "running" and self.started is not None:
            return time.monotonic() - self.started
        return self.duration


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal and never when ``NO_COLOR`` is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, state: str, color: bool) -> str:
    """``text`` in the colour of ``state`` (ANSI), or unchanged when colour is off."""
    code = COLORS.get(state)
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def format_duration(seconds: float | None) -> str:
    """``1.2s`` / ``2m05.0s``; empty for an unknown duration."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


class _Base:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.rows: dict[str, TaskRow] = {}
        self.title = ""
        self.started = time.monotonic()
        self.status_text: str | None = None

    def begin(self, dag_id: str, run_id: str, task_ids: list[str], max_tries: dict[str, int]) -> None:
        self.title = f"{dag_id} · {run_id}"
        self.rows = {t: TaskRow(t, max_tries.get(t, 1)) for t in task_ids}

    def update(
        self, task_id: str, state: str, try_number: int, duration: float | None, note: str | None
    ) -> None:
        row = self.rows[task_id]
        row.state, row.try_number, row.note = state, try_number, note
        if state == "running":
            row.started, row.duration, row.retry_at = time.monotonic(), None, None
        else:
            row.duration = duration
        self.changed(row)

    def retry_at(self, task_id: str, when: float) -> None:
        self.rows[task_id].retry_at = when

    def expanded(self, task_id: str, names: list[str]) -> None:
        """A mapped task became its task instances: their rows replace the task's, in place."""
        old = self.rows[task_id]
        rows: dict[str, TaskRow] = {}
        for key, row in self.rows.items():
            if key == task_id:
                rows.update((name, TaskRow(name, old.max_tries)) for name in names)
            else:
                rows[key] = row
        self.rows = rows
        self.expansion(task_id, len(names))

    def label(self, name: str, text: str | None) -> None:
        self.rows[name].label = text

    def expansion(self, task_id: str, count: int) -> None:
        pass

    def status(self, text: str | None) -> None:
        self.status_text = text

    def changed(self, row: TaskRow) -> None:
        pass

    def tick(self) -> None:
        pass

    def end(self) -> None:
        pass


class LineProgress(_Base):
    """One line per state change, for logs and pipes."""

    def status(self, text: str | None) -> None:
        super().status(text)
        if text:
            self._write(text)

    def changed(self, row: TaskRow) -> None:
        tries = f"try {row.try_number}/{row.max_tries}" if row.try_number else "not run"
        detail = [tries]
        if row.state != "running" and row.duration is not None:
            detail.append(format_duration(row.duration))
        line = f"{row.title}: {row.state} ({', '.join(detail)})"
        if row.state == "up_for_retry" and row.retry_at is not None:
            line += f", retrying in {format_duration(max(0.0, row.retry_at - time.time()))}"
        elif row.state == "up_for_reschedule" and row.retry_at is not None:
            line += f", {poke_again(row.retry_at)}"
        elif row.note and row.state in ("skipped", "upstream_failed", "failed"):
            line += f" - {row.note.splitlines()[0]}"
        self._write(line)

    def expansion(self, task_id: str, count: int) -> None:
        self._write(f"{task_id}: expanded into {count} mapped task instance{'s' if count != 1 else ''}")

    def _write(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - self.started:7.1f}s] {text}\n")
        self.stream.flush()


class LiveProgress(_Base):
    """A table redrawn in place on a terminal (cursor-up + clear-line; no curses)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.color = use_color(self.stream)
        self._drawn = 0
        self._last = 0.0

    def begin(self, dag_id: str, run_id: str, task_ids: list[str], max_tries: dict[str, int]) -> None:
        super().begin(dag_id, run_id, task_ids, max_tries)
        self._draw()

    def status(self, text: str | None) -> None:
        super().status(text)
        self._draw()

    def changed(self, row: TaskRow) -> None:
        self._draw()

    def expansion(self, task_id: str, count: int) -> None:
        self._draw()

    def tick(self) -> None:
        if time.monotonic() - self._last >= 0.2:
            self._draw()

    def end(self) -> None:
        self.status_text = None
        self._draw()

    def _lines(self) -> list[str]:
        columns, rows = shutil.get_terminal_size((100, 24))
        width = max(40, columns - 1)
        name_width = max([len(r.title) for r in self.rows.values()] + [4])
        lines = [f"bundle-run {self.title}  {format_duration(time.monotonic() - self.started)}"]
        shown = list(self.rows.values())
        if len(shown) + 3 > rows:
            # Cursor movement cannot reach above the screen: keep the live part, count the rest.
            shown = [r for r in shown if r.state in LIVE_STATES]
            counts: dict[str, int] = {}
            for row in self.rows.values():
                if row.state not in LIVE_STATES:
                    counts[row.state] = counts.get(row.state, 0) + 1
            lines.append("  " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        for row in shown:
            state = f"{SYMBOLS.get(row.state, ' ')} {row.state:<15}"
            tries = f"try {row.try_number}/{row.max_tries}" if row.try_number else ""
            extra = ""
            if row.state == "up_for_retry" and row.retry_at is not None:
                extra = f"retry in {format_duration(max(0.0, row.retry_at - time.time()))}"
            elif row.state == "up_for_reschedule" and row.retry_at is not None:
                extra = poke_again(row.retry_at)
            elif row.note and row.state in ("failed", "upstream_failed", "skipped"):
                extra = row.note.splitlines()[0]
            text = f"  {row.title:<{name_width}}  {state} {tries:<9} {format_duration(row.elapsed()):>7}  {extra}"
            lines.append(paint(text.rstrip()[:width], row.state, self.color))
        if self.status_text:
            lines.append(f"  {self.status_text}"[:width])
        return lines

    def _draw(self) -> None:
        if not self.rows and not self.status_text:
            return
        lines = self._lines()
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        out += [f"\x1b[2K{line}\n" for line in lines]
        if len(lines) < self._drawn:  # a status line went away: clear what is left below
            out += ["\x1b[2K\n"] * (self._drawn - len(lines))
            out.append(f"\x1b[{self._drawn - len(lines)}F")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(lines)
        self._last = time.monotonic()


def make_progress(stream: TextIO | None = None) -> _Base:
    """The live view on a terminal, plain lines otherwise."""
    target = stream or sys.stderr
    return LiveProgress(target) if target.isatty() else LineProgress(target)
