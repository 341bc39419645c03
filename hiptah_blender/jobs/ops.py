"""The scheduler's plain data: its configuration, what a worker is given, what it
hands back, the per-job runtime, and the effects of a transition.

Data only, no behaviour beyond small properties: the other scheduler modules
(transitions, lifecycle, gate, table, workers, scheduler) import this one, and it
imports none of them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import timing
from .records import JobEvent, JobRecord, JobState

if TYPE_CHECKING:
    from ..client.models import Job

INF = float("inf")


def default_download_dir() -> str:
    # The Blender layer passes the extension's user folder; this is for scripts and tests.
    return os.path.join(tempfile.gettempdir(), "hiptah-models")


@dataclass
class SchedulerConfig:
    max_concurrent: int = 10  # plan limit: jobs in flight on the server
    poll_interval: float = 2.0
    job_deadline: float = 600.0  # seconds from submission until JobTimeoutError
    download_dir: str = field(default_factory=default_download_dir)
    max_workers: int = 8  # threads doing API calls (submit, poll)
    auto_download: bool = True
    download_workers: int = 4  # separate threads, so big downloads never delay polls
    backoff_after: float = 120.0  # contract: back off after 120 s
    backoff_factor: float = 1.5
    max_poll_interval: float = 30.0
    min_first_poll: float = 0.25
    request_timeout: float = 60.0  # budget for one API call including the client's retries
    download_retries: int = 2  # extra attempts after a transient download failure
    store_flush_timeout: float = 5.0  # a worker waits this long for the key to reach the disk

    def __post_init__(self) -> None:
        self.max_concurrent = max(1, int(self.max_concurrent))
        self.max_workers = max(1, int(self.max_workers))
        self.download_workers = max(1, int(self.download_workers))
        self.poll_interval = max(0.05, float(self.poll_interval))
        self.job_deadline = max(1.0, float(self.job_deadline))

    def policy(self) -> timing.PollPolicy:
        return timing.PollPolicy(
            poll_interval=self.poll_interval,
            min_first_delay=self.min_first_poll,
            backoff_after=self.backoff_after,
            backoff_factor=self.backoff_factor,
            max_interval=max(self.max_poll_interval, self.poll_interval),
            job_deadline=self.job_deadline,
        )


@dataclass(frozen=True)
class SubmitSpec:
    """Immutable input of a submit operation (a worker never sees the record)."""

    prompt: str
    format: str
    quality: str
    image_path: str | None
    callback_url: str | None
    idempotency_key: str


@dataclass(frozen=True)
class Operation:
    """One piece of work for a worker, built on the main thread from the record.

    ``args`` follow (local_id, token) in the worker function of ``op``
    (workers.do_submit, do_poll, do_download); a submit also gets the store
    generation holding its idempotency key, known only after the tick persisted.
    """

    op: str  # "submit" | "poll" | "download"
    local_id: str
    token: int
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Result:
    """What a worker hands back: ``value`` on success, else ``error``.

    ``value`` by op: submit -> GenerateResponse, poll -> Job, progress -> percent (int),
    download -> (Job, path or None, size or None); path None means the re-fetched job
    was not (or no longer) completed with a model URL.
    """

    local_id: str
    token: int
    op: str  # "submit" | "poll" | "download" | "progress"
    at: float  # scheduler clock when the operation ended
    value: Any = None
    error: BaseException | None = None

    @property
    def finished_download(self) -> bool:
        return self.op == "download" and self.error is None and self.value[1] is not None


@dataclass
class Runtime:
    """Per active job, in memory only (derived again on resume)."""

    seq: int  # FIFO position
    due: float = 0.0  # scheduler clock time of the next operation
    token: int = 0  # token of the outstanding operation (0: none)
    deadline: float = INF  # scheduler clock time; then JobTimeoutError
    t0: float | None = None  # scheduler clock time of acceptance (poll schedule origin)
    errors: int = 0  # consecutive transient errors
    job: Job | None = None  # the completed Job to download
    refetch: bool = False  # GET the job first (fresh model URL)
    download_attempts: int = 0
    poll_again: bool = False  # a webhook arrived while a poll was outstanding
    last_error: BaseException | None = None  # latest transient error (cleared on success)

    @property
    def busy(self) -> bool:
        return self.token != 0


@dataclass(frozen=True)
class Context:
    """What a transition may read besides the record: the times and the settings."""

    now: float  # scheduler clock
    wall: float  # time.time()
    config: SchedulerConfig
    policy: timing.PollPolicy


@dataclass
class Effects:
    """What a transition changed beyond its record and Runtime, for the scheduler to
    replay (in this order: finished, index, enqueue, pause, dirty, events). Events are
    snapshots taken when the transition emitted them."""

    events: list[JobEvent] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)  # local ids to write to disk
    finished: list[str] = field(default_factory=list)  # jobs no longer active (runtime dropped)
    index: dict[str, str] = field(default_factory=dict)  # server job id -> local id
    enqueue: list[tuple[int, str]] = field(default_factory=list)  # (seq, local id) to the FIFO
    submit_pause_until: float = -INF  # no submission before this (429 on submit)

    def event(self, kind: str, record: JobRecord, previous: JobState | None) -> None:
        self.events.append(JobEvent(kind, record.copy(), previous))


class Abandoned(Exception):
    """Raised inside a download's progress callback to stop it (pause gate)."""


__all__ = [
    "INF",
    "Abandoned",
    "Context",
    "Effects",
    "Operation",
    "Result",
    "Runtime",
    "SchedulerConfig",
    "SubmitSpec",
    "default_download_dir",
]
