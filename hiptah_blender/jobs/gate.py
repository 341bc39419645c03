"""The pause gate: while it is closed no network work starts (Scheduler.set_paused).

Closing drops every job's outstanding operation: the scheduler abandons its token,
so a download stops at its next chunk (and deletes its partial file) and any other
result is ignored when it comes back. Nothing done while closed counts as a failure.
Opening moves every deadline by the time spent closed, so a long pause never times a
job out; held work is due at once. Jobs keep their state, server job id and
idempotency key throughout. Pure: no threads or clocks of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .ops import INF, Runtime
from .records import ErrorInfo, JobRecord, JobState


class PauseGate:
    def __init__(self) -> None:
        self.reason: ErrorInfo | None = None  # why work is held (None: open)
        self._closed_at = 0.0  # scheduler clock
        self._closed_wall = 0.0

    def close(
        self,
        reason: ErrorInfo,
        now: float,
        wall: float,
        jobs: Iterable[tuple[JobRecord, Runtime]],
        abandon: Callable[[int], None],
    ) -> bool:
        """Hold all work of ``jobs`` (the active ones). False if it was closed already
        (then only the reason changes)."""
        was_open = self.reason is None
        self.reason = reason
        if not was_open:
            return False
        self._closed_at, self._closed_wall = now, wall
        for record, rt in jobs:
            if rt.busy:
                abandon(rt.token)
                if record.state is JobState.DOWNLOADING:
                    rt.download_attempts = max(0, rt.download_attempts - 1)  # not a failed try
                    rt.refetch = True  # the link may expire while paused
                    record.progress = None  # the partial file is deleted
                rt.token = 0
                rt.due = now
            record.note(f"paused: {reason.message}", at=wall)
        return True

    def open(self, now: float, wall: float, jobs: Iterable[tuple[JobRecord, Runtime]]) -> bool:
        """Let work go again. False if it was open already."""
        if self.reason is None:
            return False
        self.reason = None
        held, held_wall = max(0.0, now - self._closed_at), max(0.0, wall - self._closed_wall)
        for record, rt in jobs:
            if rt.deadline != INF:
                rt.deadline += held
            if record.deadline_at is not None and record.state is not JobState.WAITING:
                record.deadline_at += held_wall
            record.note("resumed (online again)", at=wall)
        return True


__all__ = ["PauseGate"]
