"""What the add-on remembers about one generation: a plain, JSON-friendly record.

No pydantic and no bpy here: the panel draws these records on every redraw and
the store writes them to disk, so they must be cheap to copy and to serialise.
The scheduler owns the records; everyone else sees copies (snapshots).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class JobState(str, Enum):  # noqa: UP042  (StrEnum would change str() output)
    """Local life cycle of a job. Server statuses map onto QUEUED/PROCESSING."""

    WAITING = "waiting"  # in the local queue: not sent yet (plan concurrency limit)
    SUBMITTING = "submitting"  # POST /generate under way (retried with the same key)
    QUEUED = "queued"  # accepted by the server, not started
    PROCESSING = "processing"  # running on the server
    DOWNLOADING = "downloading"  # server finished; fetching the model file
    DOWNLOADED = "downloaded"  # model file on disk, not imported (yet)
    IMPORTED = "imported"  # imported into a scene (Blender layer marks this)
    FAILED = "failed"  # gave up; ``error`` says why and what to do
    CANCELLED = "cancelled"  # stopped by the user

    @property
    def is_active(self) -> bool:
        """Needs the scheduler (network work pending or running)."""
        return self in ACTIVE_STATES

    @property
    def in_flight(self) -> bool:
        """Counts against the plan's concurrent-job limit on the server."""
        return self in (JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING)

    @property
    def is_finished(self) -> bool:
        return self in (JobState.DOWNLOADED, JobState.IMPORTED, JobState.FAILED, JobState.CANCELLED)


ACTIVE_STATES = frozenset(
    {JobState.WAITING, JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING, JobState.DOWNLOADING}
)

# Where a retry takes a finished job: polled again, downloaded again, or queued again.
_RETRIED = frozenset({JobState.WAITING, JobState.QUEUED, JobState.PROCESSING, JobState.DOWNLOADING})
_RUNNING = frozenset({JobState.QUEUED, JobState.PROCESSING})
# From QUEUED or PROCESSING: completed (DOWNLOADED when automatic download is off),
# failed, cancelled; SUBMITTING when a stored job has no server id after a restart.
_SERVER_MOVES = frozenset(
    {JobState.DOWNLOADING, JobState.DOWNLOADED, JobState.SUBMITTING, JobState.FAILED, JobState.CANCELLED}
)

# Every move a job's state may make, in one table: the whole life cycle at a glance.
# The scheduler changes a state only through move(), which refuses anything else
# (staying in the same state is not a move). docs/scheduler.md tells the story.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # sent, or cancelled before (nothing charged); FAILED only if applying a result broke
    JobState.WAITING: frozenset({JobState.SUBMITTING, JobState.CANCELLED, JobState.FAILED}),
    # accepted (queued or processing), 429 back to the queue, refused or timed out
    JobState.SUBMITTING: _RUNNING | {JobState.WAITING, JobState.FAILED, JobState.CANCELLED},
    JobState.QUEUED: _SERVER_MOVES | {JobState.PROCESSING},
    JobState.PROCESSING: _SERVER_MOVES | {JobState.QUEUED},
    # PROCESSING: the re-fetched job was not completed after all (polled again)
    JobState.DOWNLOADING: frozenset(
        {JobState.DOWNLOADED, JobState.PROCESSING, JobState.FAILED, JobState.CANCELLED}
    ),
    # imported by the Blender layer; retried only when there is no file (download was off)
    JobState.DOWNLOADED: _RETRIED | {JobState.IMPORTED},
    JobState.IMPORTED: _RETRIED,
    JobState.FAILED: _RETRIED,
    JobState.CANCELLED: _RETRIED,
}


class IllegalTransition(ValueError):
    """A state change the life cycle does not allow: a bug in the scheduler."""


def move(record: JobRecord, state: JobState) -> None:
    """Set ``record.state`` to ``state`` if TRANSITIONS allows it (staying is allowed)."""
    if state is not record.state and state not in TRANSITIONS[record.state]:
        raise IllegalTransition(
            f"job {record.local_id}: {record.state.value} -> {state.value} is not a legal move"
        )
    record.state = state


@dataclass
class ErrorInfo:
    """A failure as shown to the user: from a HiptahError, without the exception object."""

    kind: str  # the HiptahError subclass name, e.g. "PlanLimitError"
    message: str
    hint: str = ""
    status: int | None = None
    request_id: str | None = None
    retryable: bool = False  # can "Retry" in the UI help without the user changing anything

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        from ..client.errors import HiptahError, is_retryable, redact

        if isinstance(exc, HiptahError):
            return cls(
                kind=exc.kind,
                message=exc.describe(),
                hint=exc.hint,
                status=exc.status,
                request_id=exc.request_id,
                retryable=is_retryable(exc) or exc.kind in ("JobTimeoutError", "DownloadError", "StorageError"),
            )
        return cls(kind=type(exc).__name__, message=redact(str(exc)) or type(exc).__name__, hint="")

    def user_text(self) -> str:
        from ..client.errors import sentence

        text = sentence(self.message)
        if self.hint:
            text += " " + self.hint
        return text


@dataclass
class TimelineEntry:
    at: float  # wall-clock seconds (time.time())
    what: str  # short description: "submitted", "status processing", "downloaded 1.2 MB" ...


@dataclass
class JobRecord:
    """Everything needed to show, resume, retry and import one job."""

    # The request, as validated (no image payload: ``image_path`` points at the file).
    prompt: str
    format: str = "glb"
    quality: str = "high"
    image_path: str | None = None
    callback_url: str | None = None

    # Identity. ``local_id`` is ours (stable before submission); ``idempotency_key`` is
    # generated once and reused on every retry of POST /generate so a retry never
    # creates (or charges) a second job; ``job_id`` is the server's.
    local_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    job_id: str | None = None

    state: JobState = JobState.WAITING
    server_status: str | None = None  # last raw status string from the server
    progress: float | None = None  # server's 0..100 when it sends one
    eta_seconds: float | None = None  # server's estimated_time_seconds
    polls: int = 0

    created_at: float = field(default_factory=time.time)
    submitted_at: float | None = None
    completed_at: float | None = None  # server reported completed
    finished_at: float | None = None  # reached a finished state locally
    # Wall-clock time after which the scheduler stops polling (JobTimeoutError); kept
    # so a restart honours it and retry() can extend it.
    deadline_at: float | None = None

    model_url: str | None = None
    expires_at: str | None = None  # ISO 8601 as the server sent it
    file_path: str | None = None  # downloaded model file (absolute path)
    file_size: int | None = None

    error: ErrorInfo | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)

    # Opaque to the scheduler: the Blender layer keeps scene name, placement,
    # imported object names here; batch keeps its row index.
    meta: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------------------
    def note(self, what: str, at: float | None = None) -> None:
        self.timeline.append(TimelineEntry(at=time.time() if at is None else at, what=what))

    def label(self, width: int = 40) -> str:
        if self.image_path:
            # A Blender image is sent through a temporary PNG: show the image's own name.
            name = str(self.meta.get("image_name") or os.path.basename(self.image_path))
            text = f"image: {name}" + (f" · {self.prompt}" if self.prompt else "")
        else:
            text = self.prompt or "(no prompt)"
        return text if len(text) <= width else text[: max(1, width - 1)] + "…"

    def elapsed(self, now: float | None = None) -> float:
        end = self.finished_at or (time.time() if now is None else now)
        return max(0.0, end - (self.submitted_at or self.created_at))

    def estimated_fraction(self, now: float | None = None) -> float | None:
        """0..1 for a progress bar: the server's progress, else elapsed time against the ETA."""
        if self.state in (JobState.DOWNLOADED, JobState.IMPORTED):
            return 1.0
        if self.progress is not None:
            return self.progress / 100.0
        if self.eta_seconds and self.submitted_at and self.state.in_flight:
            return min(0.99, self.elapsed(now) / self.eta_seconds)
        return None

    def remaining(self, now: float | None = None) -> float | None:
        if not (self.eta_seconds and self.submitted_at and self.state.in_flight):
            return None
        return max(0.0, self.eta_seconds - self.elapsed(now))

    def copy(self) -> JobRecord:
        # What dataclasses.replace would give (no __post_init__ here), ~6x faster: the
        # main thread copies every changed record per step, so this bounds a busy
        # step's cost (bench figure 1).
        new = object.__new__(JobRecord)
        new.__dict__.update(self.__dict__)
        new.error = dataclasses.replace(self.error) if self.error else None
        new.timeline = list(self.timeline)
        new.meta = dict(self.meta)
        return new

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        """Lenient: unknown keys are dropped, unknown states become FAILED with a note."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        raw_state = values.pop("state", JobState.WAITING.value)
        error = values.pop("error", None)
        timeline = values.pop("timeline", None) or []
        record = cls(**values)
        try:
            record.state = JobState(raw_state)
        except ValueError:
            record.state = JobState.FAILED
            error = error or {"kind": "UnexpectedResponseError", "message": f"Unknown stored state {raw_state!r}."}
        if isinstance(error, dict):
            ekeys = {f.name for f in dataclasses.fields(ErrorInfo)}
            record.error = ErrorInfo(**{k: v for k, v in error.items() if k in ekeys})
        record.timeline = [
            TimelineEntry(at=float(t.get("at", 0.0)), what=str(t.get("what", "")))
            for t in timeline
            if isinstance(t, dict)
        ]
        return record


@dataclass
class JobEvent:
    """What ``Scheduler.tick()`` reports: one change to one job, with a snapshot after it."""

    kind: str  # "state" | "progress" | "downloaded" | "failed" | "removed"
    job: JobRecord
    previous_state: JobState | None = None
