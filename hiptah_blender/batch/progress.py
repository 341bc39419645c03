"""Terminal progress for a batch: a live bar on a TTY, plain lines otherwise, and a
summary table at the end.

On a terminal the bar is redrawn in place (``\\r`` + clear line) at most every
``interval`` seconds, and log lines are printed above it. When the output is a
file or a pipe (CI logs), redrawing would fill the log with carriage returns, so
one plain line is written whenever the counts change, throttled.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from ..jobs.records import JobState

_DONE = (JobState.DOWNLOADED, JobState.IMPORTED)
_FAILED = (JobState.FAILED, JobState.CANCELLED)
HEARTBEAT = 30.0  # seconds between plain lines when nothing changes

_RUNNING = (JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING, JobState.DOWNLOADING)


@dataclass(frozen=True)
class Counts:
    done: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.running + self.waiting

    @property
    def finished(self) -> int:
        return self.done + self.failed


def count_states(states: Iterable[JobState | None]) -> Counts:
    """Tally states; ``None`` (a row with no job yet) counts as waiting."""
    done = failed = running = waiting = 0
    for state in states:
        if state in _DONE:
            done += 1
        elif state in _FAILED:
            failed += 1
        elif state in _RUNNING:
            running += 1
        else:
            waiting += 1
    return Counts(done, failed, running, waiting)


def estimate_eta(
    counts: Counts,
    *,
    elapsed: float,
    finished_this_run: int,
    concurrency: int,
    job_seconds: float | None = None,
) -> float | None:
    """Seconds until every row is finished, or None when there is nothing to go on.

    Once jobs have finished in this run, throughput so far is the best guide (it
    includes queueing, downloads and imports). Before that, the server's per-job
    estimate spread over the concurrency limit is used.
    """
    remaining = counts.running + counts.waiting
    if remaining == 0:
        return 0.0
    if finished_this_run > 0 and elapsed > 0:
        return remaining * elapsed / finished_this_run
    if job_seconds:
        waves = -(-remaining // max(1, concurrency))  # ceil
        return waves * job_seconds
    return None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render_bar(counts: Counts, *, eta: float | None, elapsed: float, width: int = 24) -> str:
    total = max(1, counts.total)
    filled = round(width * counts.done / total)
    failed = round(width * counts.failed / total)
    failed = min(failed, width - filled)
    bar = "#" * filled + "x" * failed + "." * (width - filled - failed)
    return (
        f"[{bar}] {counts.finished}/{counts.total}  done {counts.done}  failed {counts.failed}  "
        f"running {counts.running}  waiting {counts.waiting}  "
        f"elapsed {format_duration(elapsed)}  ETA {format_duration(eta)}"
    )


class Progress:
    """Draws progress to ``stream``; call :meth:`update` often, it throttles itself."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        # A TTY redraw is cheap; a plain log line is not, so at most one a second.
        self.interval = interval if interval is not None else (0.2 if tty else 1.0)
        self.clock = clock
        self._last_draw = float("-inf")
        self._last_text = ""
        self._last_counts: Counts | None = None
        self._bar_shown = False

    def _width(self) -> int:
        return shutil.get_terminal_size((100, 20)).columns

    def _clear(self) -> None:
        if self._bar_shown:
            self.stream.write("\r\x1b[2K")
            self._bar_shown = False

    def log(self, line: str) -> None:
        """A permanent line (job finished, warning), printed above the bar."""
        self._clear()
        self.stream.write(line.rstrip("\n") + "\n")
        if self.tty and self._last_text:
            self._draw(self._last_text)
        self.stream.flush()

    def _draw(self, text: str) -> None:
        width = self._width()
        if len(text) >= width:
            text = text[: max(10, width - 2)] + "…"
        self.stream.write("\r\x1b[2K" + text)
        self._bar_shown = True

    def update(
        self, counts: Counts, *, eta: float | None, elapsed: float, force: bool = False
    ) -> None:
        now = self.clock()
        since = now - self._last_draw
        changed = counts != self._last_counts
        if self.tty:
            if not force and since < self.interval:
                return
        # A plain log gets a line when the counts changed (throttled), else a heartbeat.
        elif not (changed and (force or since >= self.interval)) and since < HEARTBEAT:
            return
        text = render_bar(counts, eta=eta, elapsed=elapsed)
        self._last_draw = now
        self._last_counts = counts
        self._last_text = text
        if self.tty:
            self._draw(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Leave the last bar on screen and move to a fresh line."""
        if self.tty and self._bar_shown:
            self.stream.write("\n")
            self._bar_shown = False
        self.stream.flush()


@dataclass(frozen=True)
class SummaryRow:
    source: str
    prompt: str
    status: str
    job_id: str
    detail: str  # file name when done, reason when not


def summary_table(rows: Sequence[SummaryRow], *, prompt_width: int = 40, detail_width: int = 60) -> str:
    """A fixed-width table, one line per row, for the end of a run."""

    def cut(text: str, width: int) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    headers = ("row", "prompt", "status", "job", "result")
    cells = [
        (r.source, cut(r.prompt, prompt_width), r.status, r.job_id or "-", cut(r.detail, detail_width))
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip() for cell in cells]
    return "\n".join(lines)
