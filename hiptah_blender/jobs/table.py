"""The scheduler's books: every record, the runtimes of active jobs, the local FIFO,
the server-job-id index, and what changed since the last tick (events to report,
records to write, records removed).

Only the scheduler uses it, under its lock. It replays a transition's Effects and
hands changed records to the store writer; it decides nothing about a job.
"""

from __future__ import annotations

import bisect
import contextlib

from .ops import INF, Effects, Runtime
from .records import JobEvent, JobRecord, JobState
from .store import StoreWriter


class JobTable:
    def __init__(self, writer: StoreWriter | None) -> None:
        self.records: dict[str, JobRecord] = {}
        self.rt: dict[str, Runtime] = {}  # active jobs only
        self.waiting: list[tuple[int, str]] = []  # (seq, local_id), sorted: FIFO
        self.by_job_id: dict[str, str] = {}
        self.submit_pause_until = -INF  # after a 429 on submit: no submission before this
        self.events: list[JobEvent] = []
        self._progress_at: dict[str, int] = {}  # local_id -> index of its progress event
        self.dirty: set[str] = set()
        self.removed: list[str] = []
        self._writer = writer

    def load(self, records: list[JobRecord]) -> None:
        for record in records:
            self.records[record.local_id] = record
            if record.job_id:
                self.by_job_id[record.job_id] = record.local_id

    def remove(self, record: JobRecord) -> None:
        """Forget a job (and its runtime): the store drops it at the next write."""
        local_id = record.local_id
        if record.state.is_active:
            self.drop_runtime(local_id)
        del self.records[local_id]
        if record.job_id and self.by_job_id.get(record.job_id) == local_id:
            del self.by_job_id[record.job_id]
        self.dirty.discard(local_id)
        self.removed.append(local_id)
        # Not through add_event: a removed record is not written, only dropped.
        self.events.append(JobEvent("removed", record.copy(), record.state))

    def replay(self, fx: Effects) -> None:
        """Apply what a transition changed outside its record, in its order."""
        for local_id in fx.finished:
            self.rt.pop(local_id, None)
        self.by_job_id.update(fx.index)
        for item in fx.enqueue:
            bisect.insort(self.waiting, item)
        if fx.submit_pause_until > self.submit_pause_until:
            self.submit_pause_until = fx.submit_pause_until
        self.dirty |= fx.dirty
        for event in fx.events:
            self.add_event(event)

    def drop_runtime(self, local_id: str) -> None:
        """The job is no longer active (cancelled, removed): out of the FIFO too."""
        rt = self.rt.pop(local_id, None)
        if rt is not None:
            with contextlib.suppress(ValueError):
                self.waiting.remove((rt.seq, local_id))

    def event(self, kind: str, record: JobRecord, previous: JobState | None) -> None:
        self.add_event(JobEvent(kind, record.copy(), previous))

    def add_event(self, event: JobEvent) -> None:
        local_id = event.job.local_id
        if event.kind != "progress":
            self.dirty.add(local_id)  # progress alone is not worth a disk write
        else:
            # One progress event per job per tick: the latest one.
            index = self._progress_at.get(local_id)
            if index is not None:
                self.events[index] = event
                return
            self._progress_at[local_id] = len(self.events)
        self.events.append(event)

    def take_events(self) -> list[JobEvent]:
        events, self.events = self.events, []
        self._progress_at.clear()
        return events

    def in_flight(self) -> int:
        """Jobs counting against the plan's concurrency limit right now."""
        return sum(1 for i in self.rt if self.records[i].state.in_flight)

    def next_due(self) -> float | None:
        """When the next operation (or queued submission) may start, if any."""
        times = [
            rt.due
            for i, rt in self.rt.items()
            if not rt.busy and self.records[i].state is not JobState.WAITING
        ]
        if self.waiting:
            times.append(self.submit_pause_until)
        return min(times) if times else None

    def persist(self) -> int:
        """Hand copies of changed records to the store writer; return its generation."""
        if self._writer is None:
            self.dirty.clear()
            self.removed.clear()
            return 0
        if not self.dirty and not self.removed:
            return 0
        changed = [self.records[i].copy() for i in self.dirty if i in self.records]
        removed, self.removed = self.removed, []
        self.dirty.clear()
        return self._writer.update(changed, removed)


__all__ = ["JobTable"]
