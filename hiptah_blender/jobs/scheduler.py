"""The job scheduler: state machine, poll timing, concurrency limit, worker threads.

Pure Python, no bpy. Blender's modal monitor calls :meth:`Scheduler.tick` every
0.1-0.25 s on the main thread; ``wait=True`` operators and the batch tool call
:meth:`Scheduler.run_until`. ``tick`` never blocks: all HTTP runs on worker
threads, which receive immutable inputs and hand results back through a
thread-safe queue that ``tick`` drains. Records are owned by the scheduler and
mutated only under its lock (in practice on the main thread); everyone else gets
copies. Persistence goes through :class:`StoreWriter`, whose thread does the JSON
encoding and fsync, so the main thread only files record copies.

See docs/scheduler.md for the behaviour in prose (scheduling, concurrency,
persistence and resume, cancel semantics).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..client import errors
from ..client.images import check_image_file
from ..client.validation import clean_format, clean_prompt, clean_quality
from . import timing
from .records import ErrorInfo, JobEvent, JobRecord, JobState
from .store import JobStore, StoreWriter

if TYPE_CHECKING:
    from pathlib import Path

    from ..client.models import GenerateRequest, GenerateResponse, Job

log = logging.getLogger("hiptah")

_INF = float("inf")


class ClientLike(Protocol):
    """What the scheduler needs from ``HiptahClient`` (tests pass fakes)."""

    def generate(
        self,
        request: GenerateRequest,
        idempotency_key: str | None = None,
        *,
        deadline: float | None = None,
    ) -> GenerateResponse: ...

    def get_job(self, job_id: str, *, deadline: float | None = None) -> Job: ...

    def download(
        self,
        job: Job,
        dest_dir: str | os.PathLike[str],
        *,
        on_progress: Callable[[int, int | None], None] | None = None,
        filename: str | None = None,
    ) -> Path: ...


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


# ---------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _SubmitSpec:
    """Immutable input of a submit operation (a worker never sees the record)."""

    prompt: str
    format: str
    quality: str
    image_path: str | None
    callback_url: str | None
    idempotency_key: str


@dataclass(frozen=True)
class _Result:
    local_id: str
    token: int
    op: str  # "submit" | "poll" | "download" | "progress"
    at: float  # scheduler clock when the operation ended
    value: Any = None
    error: BaseException | None = None


@dataclass
class _Runtime:
    """Per active job, in memory only (derived again on resume)."""

    seq: int  # FIFO position
    due: float = 0.0  # scheduler clock time of the next operation
    token: int = 0  # token of the outstanding operation (0: none)
    deadline: float = _INF  # scheduler clock time; then JobTimeoutError
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


_DEFINITIVE_REJECTIONS = (400, 401, 403, 422)


class _Abandoned(Exception):
    """Raised inside a download's progress callback to stop it (pause gate)."""


class Scheduler:
    """Runs HiPtah jobs: see the module docstring and docs/scheduler.md."""

    def __init__(
        self,
        client_factory: Callable[[], ClientLike],
        store: JobStore | None,
        config: SchedulerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        executor: Executor | None = None,
        download_executor: Executor | None = None,
    ) -> None:
        self._factory = client_factory
        self._client: ClientLike | None = None
        self._client_lock = threading.Lock()
        self.config = config or SchedulerConfig()
        self._policy = self.config.policy()
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.RLock()
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._wakeup = threading.Event()  # set by workers: run_until reacts at once
        self._tokens = itertools.count(1)
        self._seqs = itertools.count(1)

        self._own_pools = executor is None
        self._api_pool: Executor = executor or self._new_pool(self.config.max_workers, "hiptah-api")
        self._dl_pool: Executor = download_executor or (
            executor
            if executor is not None
            else self._new_pool(self.config.download_workers, "hiptah-dl")
        )
        self._closed = False

        self._records: dict[str, JobRecord] = {}
        self._rt: dict[str, _Runtime] = {}  # active jobs only
        self._waiting: list[tuple[int, str]] = []  # (seq, local_id), sorted: FIFO
        self._by_job_id: dict[str, str] = {}
        self._submit_pause_until = -_INF  # after a 429 on submit: no submission before this
        # The pause gate (set_paused): why all network work is held, and since when.
        self._pause: ErrorInfo | None = None
        self._paused_at = 0.0
        self._paused_wall = 0.0
        # Tokens of operations dropped by a pause. Workers read it (a set lookup is atomic
        # under the GIL) to abandon a download between chunks.
        self._abandoned: set[int] = set()
        self._api_outstanding = 0  # operations handed to the API pool, not yet drained
        self._dl_outstanding = 0
        # Operations handed to a pool per job, stale ones included (a job cancelled and
        # retried may still have its old operation running): a job starts a new one only
        # when this is zero, so it never has two at once (two downloads of one file).
        self._ops: dict[str, int] = {}
        self._events: list[JobEvent] = []
        self._progress_at: dict[str, int] = {}  # local_id -> index of its progress event
        self._dirty: set[str] = set()
        self._removed: list[str] = []

        self.store = store
        self.warning: str | None = None
        loaded = store.load() if store is not None else []
        if store is not None:
            self.warning = store.warning
        self._writer = StoreWriter(store, loaded) if store is not None else None
        for record in loaded:
            self._records[record.local_id] = record
            if record.job_id:
                self._by_job_id[record.job_id] = record.local_id
        self._resume(sorted(loaded, key=lambda r: r.created_at))
        self._persist()

    # ------------------------------------------------------------------ public API
    def submit(
        self,
        prompt: str = "",
        *,
        format: str = "glb",
        quality: str = "high",
        image_path: str | os.PathLike[str] | None = None,
        callback_url: str | None = None,
        meta: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> JobRecord:
        """Validate and queue a generation (WAITING). Raises HiptahError subclasses.

        ``idempotency_key``: the caller's own (a farm shard derives it from the batch and
        row, so a rerun on another worker gets the server's first job); default a uuid4.

        Validation is local and cheap: the prompt, format, quality and callback URL
        as the request model checks them, and the image's type from its first bytes.
        The image is read and encoded on a worker when the job is sent.
        """
        path = os.fspath(image_path) if image_path else None
        if path is not None:
            _check_image_file(path)
        text = clean_prompt(prompt, allow_empty=path is not None)
        fmt = clean_format(format)
        qual = clean_quality(quality)
        if callback_url:
            from ..client.models import clean_callback_url  # pydantic: imported only when needed

            callback_url = clean_callback_url(callback_url)
        with self._lock:
            if self._closed:
                raise RuntimeError("The scheduler is shut down.")
            record = JobRecord(
                prompt=text,
                format=fmt,
                quality=qual,
                image_path=os.path.abspath(path) if path else None,
                callback_url=callback_url or None,
                created_at=self._wall(),
                meta=dict(meta or {}),
            )
            if idempotency_key:
                record.idempotency_key = idempotency_key
            record.note("queued", at=record.created_at)
            self._records[record.local_id] = record
            rt = _Runtime(seq=next(self._seqs))
            self._rt[record.local_id] = rt
            bisect.insort(self._waiting, (rt.seq, record.local_id))
            self._event("state", record, None)
            # Persist now: the idempotency key must be on disk before the first POST.
            self._persist()
            log.info("job %s queued (%s, %s)", record.local_id, fmt, qual)
            self._wakeup.set()
            return record.copy()

    def tick(self, now: float | None = None) -> list[JobEvent]:
        """Apply worker results, start due work, persist changes; return the events.

        Never blocks: no network, no disk I/O (the store writer thread does that).
        """
        with self._lock:
            if now is None:
                now = self._clock()
            self._drain(now)
            launches = self._schedule(now) if not self._closed and self._pause is None else []
            generation = self._persist()
            for launch in launches:
                launch(generation)
            events, self._events = self._events, []
            self._progress_at.clear()
            return events

    def run_until(
        self,
        local_ids: Iterable[str],
        *,
        timeout: float | None = None,
        step: float = 0.05,
        on_events: Callable[[list[JobEvent]], None] | None = None,
    ) -> list[JobRecord]:
        """Tick until none of ``local_ids`` is active (or ``timeout`` passed).

        Blocking helper for ``wait=True`` and the batch tool. Wakes as soon as a worker
        posts a result, else at the next due time or after ``step`` seconds. Returns
        snapshots of the jobs (removed ones are left out); on timeout the caller sees
        the ones still active in their state. ``on_events`` receives every tick's events.
        """
        ids = list(local_ids)
        end = None if timeout is None else self._clock() + timeout
        while True:
            self._wakeup.clear()
            events = self.tick()
            if on_events is not None and events:
                on_events(events)
            with self._lock:
                if not any(
                    (r := self._records.get(i)) is not None and r.state.is_active for i in ids
                ):
                    break
                now = self._clock()
                if end is not None and now >= end:
                    break
                wait = step
                next_due = self._next_due()
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - now))
                if end is not None:
                    wait = min(wait, end - now)
            if wait > 0:
                self._wakeup.wait(wait)
        with self._lock:
            return [self._records[i].copy() for i in ids if i in self._records]

    def jobs(self) -> list[JobRecord]:
        """Snapshots of every job, newest first."""
        with self._lock:
            return sorted(
                (r.copy() for r in self._records.values()), key=lambda r: r.created_at, reverse=True
            )

    def get(self, local_id: str) -> JobRecord | None:
        with self._lock:
            record = self._records.get(local_id)
            return record.copy() if record is not None else None

    def transient_error(self, local_id: str) -> ErrorInfo | None:
        """The latest error an active job is retrying through (network down, 5xx, ...),
        or None once a request for it succeeded. Lets a blocking caller stop waiting
        on an unreachable server without failing (or forgetting) the job."""
        with self._lock:
            rt = self._rt.get(local_id)
            exc = rt.last_error if rt is not None else None
        return ErrorInfo.from_exception(exc) if exc is not None else None

    @property
    def paused(self) -> ErrorInfo | None:
        """Why network work is held (see :meth:`set_paused`), or None when it runs."""
        with self._lock:
            return self._pause

    def set_paused(self, reason: ErrorInfo | None) -> None:
        """Hold all network work (``reason``: what to tell the user) or let it go again (None).

        While paused no operation starts; operations under way are dropped when they
        return (a download stops at its next chunk and its partial file is removed), so
        nothing done while paused counts as a failure. Jobs keep their state, server job
        id and idempotency key: on resume they carry on where they were (re-sending with
        the same key, polling the same job, downloading again), and their deadlines move
        by the time spent paused. Submitting while paused queues the job (WAITING).
        """
        with self._lock:
            now, wall = self._clock(), self._wall()
            if reason is not None:
                if self._pause is None:
                    self._paused_at, self._paused_wall = now, wall
                    self._hold_all(now, wall, reason)
                self._pause = reason
                return
            if self._pause is None:
                return
            self._pause = None
            self._release_all(now, wall)
        self._wakeup.set()

    def find_by_job_id(self, job_id: str) -> JobRecord | None:
        with self._lock:
            local_id = self._by_job_id.get(job_id)
            return self.get(local_id) if local_id else None

    def has_active(self) -> bool:
        with self._lock:
            return bool(self._rt)

    def in_flight(self) -> int:
        """Jobs counting against the plan's concurrency limit right now."""
        with self._lock:
            return self._in_flight()

    def cancel(self, local_id: str) -> None:
        """Stop a job locally. WAITING: nothing was sent, nothing is charged. In flight:
        polling stops; the server may still finish (and charge) the job."""
        with self._lock:
            record = self._records[local_id]
            if not record.state.is_active:
                return
            previous = record.state
            self._drop_runtime(local_id)
            record.state = JobState.CANCELLED
            record.finished_at = self._wall()
            if previous is JobState.WAITING:
                record.note(
                    "cancelled before it was sent; nothing was charged", at=record.finished_at
                )
            elif previous is JobState.DOWNLOADING:
                record.note(
                    "cancelled during the download; retry downloads it again", at=record.finished_at
                )
            else:
                target = (
                    f"job {record.job_id}"
                    if record.job_id
                    else "the job (if the server accepted it)"
                )
                record.note(
                    f"cancelled locally; the server may still finish and charge {target}",
                    at=record.finished_at,
                )
            self._event("state", record, previous)
            log.info("job %s cancelled (was %s)", local_id, previous.value)

    def retry(self, local_id: str) -> JobRecord:
        """Make a FAILED or CANCELLED job active again, without generating twice.

        With a server job id: resume polling that job (or download its model again if
        the server had completed it), with a fresh deadline. Without one: queue it
        again under the same idempotency key (a new key only after a definitive 4xx
        rejection, when the server created nothing). An active job is left as it is.
        """
        with self._lock:
            record = self._records[local_id]
            if record.state.is_active:
                return record.copy()
            if record.state in (JobState.DOWNLOADED, JobState.IMPORTED) and record.file_path:
                raise ValueError(
                    f"Job {local_id} is already downloaded; there is nothing to retry."
                )
            now = self._clock()
            wall = self._wall()
            previous = record.state
            old_error = record.error
            record.error = None
            record.finished_at = None
            rt = _Runtime(seq=next(self._seqs), due=now)
            self._rt[local_id] = rt
            if record.job_id:
                rt.deadline = now + self.config.job_deadline
                record.deadline_at = wall + self.config.job_deadline
                rt.t0 = now - max(0.0, wall - (record.submitted_at or wall))
                if record.completed_at is not None or record.model_url:
                    record.state = JobState.DOWNLOADING
                    rt.refetch = True
                    record.progress = None
                    record.note(
                        f"retry: downloading job {record.job_id} again (no new generation)", at=wall
                    )
                else:
                    record.state = (
                        JobState.PROCESSING
                        if record.server_status == "processing"
                        else JobState.QUEUED
                    )
                    record.note(
                        f"retry: polling job {record.job_id} again (no new generation)", at=wall
                    )
            else:
                if old_error is not None and old_error.status in _DEFINITIVE_REJECTIONS:
                    # The server refused the request outright, so no job exists under the
                    # old key; a new key keeps the server from replaying the cached refusal.
                    record.idempotency_key = str(uuid.uuid4())
                    record.note(
                        "retry: queued again with a new idempotency key (the last attempt was refused)",
                        at=wall,
                    )
                else:
                    record.note("retry: queued again with the same idempotency key", at=wall)
                record.state = JobState.WAITING
                bisect.insort(self._waiting, (rt.seq, local_id))
            self._event("state", record, previous)
            log.info("job %s retried (%s -> %s)", local_id, previous.value, record.state.value)
            self._wakeup.set()
            return record.copy()

    def remove(self, local_id: str) -> None:
        """Forget a job (cancelling it first if active). The downloaded file is kept."""
        with self._lock:
            record = self._records.get(local_id)
            if record is None:
                return
            if record.state.is_active:
                self._drop_runtime(local_id)
            del self._records[local_id]
            if record.job_id and self._by_job_id.get(record.job_id) == local_id:
                del self._by_job_id[record.job_id]
            self._dirty.discard(local_id)
            self._removed.append(local_id)
            self._events.append(JobEvent("removed", record.copy(), record.state))

    def clear_finished(self) -> int:
        """Remove every finished job (downloaded, imported, failed, cancelled)."""
        with self._lock:
            finished = [i for i, r in self._records.items() if r.state.is_finished]
            for local_id in finished:
                self.remove(local_id)
            return len(finished)

    def mark_imported(self, local_id: str, object_names: list[str]) -> None:
        with self._lock:
            record = self._records[local_id]
            if record.state not in (JobState.DOWNLOADED, JobState.IMPORTED):
                raise ValueError(f"Job {local_id} is {record.state.value}, not downloaded.")
            previous = record.state
            record.state = JobState.IMPORTED
            record.meta["imported_objects"] = list(object_names)
            shown = ", ".join(object_names[:3]) + (" …" if len(object_names) > 3 else "")
            record.note(f"imported ({shown})" if object_names else "imported", at=self._wall())
            self._event("state", record, previous)

    def notify_completed(self, job_id: str, model_url: str | None = None) -> None:
        """A webhook said ``job_id`` finished: poll it now instead of at its next slot.

        The URL is not trusted as such: the poll fetches the job (and a fresh URL).
        Safe to call from any thread (a webhook receiver's).
        """
        del model_url
        with self._lock:
            local_id = self._by_job_id.get(job_id)
            rt = self._rt.get(local_id) if local_id is not None else None
            record = self._records.get(local_id) if local_id is not None else None
            if local_id is None or rt is None or record is None:
                log.debug("webhook for job %s ignored (not active here)", job_id)
                return
            if record.state in (JobState.QUEUED, JobState.PROCESSING, JobState.SUBMITTING):
                if rt.busy:
                    rt.poll_again = True
                else:
                    rt.due = min(rt.due, self._clock())
                record.note("webhook: job finished on the server", at=self._wall())
                self._dirty.add(local_id)
        self._wakeup.set()

    def reconfigure(
        self,
        client_factory: Callable[[], ClientLike] | None = None,
        config: SchedulerConfig | None = None,
    ) -> None:
        """New settings: the client is rebuilt lazily; new pools if the sizes changed.

        Operations under way finish with the old client; jobs keep their deadlines.
        """
        with self._lock:
            if client_factory is not None:
                with self._client_lock:
                    self._factory = client_factory
                    self._client = None
            if config is not None:
                old = self.config
                self.config = config
                self._policy = config.policy()
                if self._own_pools and old.max_workers != config.max_workers:
                    self._api_pool.shutdown(wait=False)
                    self._api_pool = self._new_pool(config.max_workers, "hiptah-api")
                if self._own_pools and old.download_workers != config.download_workers:
                    self._dl_pool.shutdown(wait=False)
                    self._dl_pool = self._new_pool(config.download_workers, "hiptah-dl")

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every change so far is on disk (tests, shutdown)."""
        with self._lock:
            self._persist()
        return self._writer.flush(timeout) if self._writer is not None else True

    def shutdown(self, wait: bool = False) -> None:
        """Stop: queued operations are dropped, the store is written and closed.

        Unfinished jobs stay in the store in their state and resume next time.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._persist()
        if self._own_pools:
            self._api_pool.shutdown(wait=wait, cancel_futures=True)
            self._dl_pool.shutdown(wait=wait, cancel_futures=True)
        if self._writer is not None:
            self._writer.close()

    # ------------------------------------------------------------------ pause gate
    def _hold_all(self, now: float, wall: float, reason: ErrorInfo) -> None:
        """Drop every outstanding operation (its result is ignored when it comes back)."""
        for local_id, rt in self._rt.items():
            record = self._records[local_id]
            if rt.busy:
                self._abandoned.add(rt.token)
                if record.state is JobState.DOWNLOADING:
                    rt.download_attempts = max(0, rt.download_attempts - 1)  # not a failed try
                    rt.refetch = True  # the link may expire while paused
                    record.progress = None  # the partial file is deleted
                rt.token = 0
                rt.due = now
            record.note(f"paused: {reason.message}", at=wall)
            self._dirty.add(local_id)

    def _release_all(self, now: float, wall: float) -> None:
        """Resume: deadlines move by the pause; held work is due at once."""
        held, held_wall = max(0.0, now - self._paused_at), max(0.0, wall - self._paused_wall)
        for local_id, rt in self._rt.items():
            record = self._records[local_id]
            if rt.deadline != _INF:
                rt.deadline += held
            if record.deadline_at is not None and record.state is not JobState.WAITING:
                record.deadline_at += held_wall
            record.note("resumed (online again)", at=wall)
            self._dirty.add(local_id)

    # ------------------------------------------------------------------ resume
    def _resume(self, records: list[JobRecord]) -> None:
        now = self._clock()
        wall = self._wall()
        for record in records:
            state = record.state
            if not state.is_active:
                continue
            if (
                state in (JobState.QUEUED, JobState.PROCESSING, JobState.DOWNLOADING)
                and not record.job_id
            ):
                if state is JobState.DOWNLOADING:
                    self._fail_record(
                        record, errors.UnexpectedResponseError("The stored job has no server id.")
                    )
                    continue
                state = record.state = (
                    JobState.SUBMITTING
                )  # accepted state without an id: ask again
            rt = _Runtime(seq=next(self._seqs), due=now)
            self._rt[record.local_id] = rt
            if state is JobState.WAITING:
                bisect.insort(self._waiting, (rt.seq, record.local_id))
                continue
            remaining = (
                (record.deadline_at - wall) if record.deadline_at else self.config.job_deadline
            )
            rt.deadline = now + remaining
            if record.submitted_at is not None:
                rt.t0 = now - max(0.0, wall - record.submitted_at)
            if state is JobState.SUBMITTING:
                what = "resumed after restart: sending again with the same idempotency key"
            elif state is JobState.DOWNLOADING:
                rt.refetch = True
                what = "resumed after restart: downloading again"
            else:
                what = "resumed after restart: polling"
            record.note(what, at=wall)
            self._dirty.add(record.local_id)
            log.info("job %s %s", record.local_id, what)

    # ------------------------------------------------------------------ tick internals
    def _drain(self, now: float) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            if result.op != "progress":
                if result.op == "download":
                    self._dl_outstanding -= 1
                else:
                    self._api_outstanding -= 1
                left = self._ops.get(result.local_id, 0) - 1
                if left > 0:
                    self._ops[result.local_id] = left
                else:
                    self._ops.pop(result.local_id, None)
            if result.op != "progress":
                self._abandoned.discard(result.token)
            record = self._records.get(result.local_id)
            rt = self._rt.get(result.local_id)
            if record is None:
                continue
            if rt is None or rt.token != result.token:
                if _finished_download(result) and rt is not None and not rt.busy and (
                    record.state is JobState.DOWNLOADING
                ):
                    # Completed before a pause could stop it: keep the file rather than
                    # fetch it again after the pause.
                    self._apply_download(record, rt, result, now)
                    continue
                self._stale(record, result)
                continue
            if result.op == "progress":
                self._apply_download_progress(record, result)
                continue
            rt.token = 0
            try:
                if result.op == "submit":
                    self._apply_submit(record, rt, result, now)
                elif result.op == "poll":
                    self._apply_poll(record, rt, result, now)
                elif result.op == "download":
                    self._apply_download(record, rt, result, now)
            except Exception as exc:  # a bug here must not stop every other job
                log.exception("job %s: could not apply a %s result", record.local_id, result.op)
                self._fail(record, exc)

    def _stale(self, record: JobRecord, result: _Result) -> None:
        """A result for an operation the job no longer waits for (cancelled, retried)."""
        if result.op == "submit" and result.error is None and record.job_id is None:
            # Cancelled while the POST was under way: remember the server's job, so a
            # retry polls it instead of generating again.
            response = result.value
            record.job_id = response.job_id
            self._by_job_id[response.job_id] = record.local_id
            record.note(
                f"the server had accepted it as job {response.job_id} (not polled)", at=self._wall()
            )
            self._dirty.add(record.local_id)
        elif (
            result.op == "download" and result.error is None and record.state is JobState.CANCELLED
        ):
            _job, path, _size = result.value
            if path and str(path) != record.file_path:
                with contextlib.suppress(OSError):
                    os.remove(path)  # a download the user cancelled: don't leave it behind

    def _schedule(self, now: float) -> list[Callable[[int], None]]:
        launches: list[Callable[[int], None]] = []
        # Operations handed to a pool are capped at twice its threads: beyond that they
        # would only queue inside the executor, and launching a burst of 100 due polls in
        # one tick would cost milliseconds. The rest stay here, due-ordered, for later ticks.
        api_budget = 2 * self.config.max_workers - self._api_outstanding
        dl_budget = 2 * self.config.download_workers - self._dl_outstanding
        # 1. Submissions, FIFO, while the plan's concurrency allows.
        if self._waiting and now >= self._submit_pause_until and api_budget > 0:
            free = min(self.config.max_concurrent - self._in_flight(), api_budget)
            index = 0
            while free > 0 and index < len(self._waiting):
                _, local_id = self._waiting[index]
                if local_id in self._ops:  # its old operation is still running
                    index += 1
                    continue
                self._waiting.pop(index)
                record = self._records[local_id]
                rt = self._rt[local_id]
                previous = record.state
                record.state = JobState.SUBMITTING
                rt.deadline = now + self.config.job_deadline
                record.deadline_at = self._wall() + self.config.job_deadline
                record.note("submitting", at=self._wall())
                self._event("state", record, previous)
                launches.append(self._launch_submit(record, rt))
                free -= 1
                api_budget -= 1
        # 2. Due operations of jobs already in progress: polls, re-sends, downloads.
        if api_budget <= 0 and dl_budget <= 0:
            return launches
        due = [
            (rt.due, i)
            for i, rt in self._rt.items()
            if rt.token == 0 and rt.due <= now and i not in self._ops
        ]
        due.sort()
        for _, local_id in due:
            record = self._records[local_id]
            rt = self._rt[local_id]
            state = record.state
            if state is JobState.DOWNLOADING:
                if dl_budget > 0:
                    launches.append(self._launch_download(record, rt, now))
                    dl_budget -= 1
                continue
            if api_budget <= 0 or state is JobState.WAITING:
                continue
            if state is JobState.SUBMITTING:
                launches.append(self._launch_submit(record, rt))
            else:  # QUEUED or PROCESSING
                launches.append(self._launch_poll(record, rt, now))
            api_budget -= 1
        return launches

    def _in_flight(self) -> int:
        return sum(1 for i in self._rt if self._records[i].state.in_flight)

    def _next_due(self) -> float | None:
        if self._pause is not None:
            return None  # nothing starts until set_paused(None) wakes the loop
        times = [
            rt.due
            for i, rt in self._rt.items()
            if not rt.busy and self._records[i].state is not JobState.WAITING
        ]
        if self._waiting:
            times.append(self._submit_pause_until)
        return min(times) if times else None

    # ------------------------------------------------------------------ launching work
    def _launch_submit(self, record: JobRecord, rt: _Runtime) -> Callable[[int], None]:
        rt.token = next(self._tokens)
        spec = _SubmitSpec(
            prompt=record.prompt,
            format=record.format,
            quality=record.quality,
            image_path=record.image_path,
            callback_url=record.callback_url,
            idempotency_key=record.idempotency_key,
        )
        token, local_id = rt.token, record.local_id
        budget = self.config.request_timeout

        def launch(generation: int) -> None:
            self._spawn("submit", local_id, token, self._do_submit, spec, generation, budget)

        return launch

    def _launch_poll(self, record: JobRecord, rt: _Runtime, now: float) -> Callable[[int], None]:
        rt.token = next(self._tokens)
        record.polls += 1
        token, local_id, job_id = rt.token, record.local_id, record.job_id or ""
        budget = max(
            1.0, min(self.config.request_timeout, rt.deadline - now + self.config.poll_interval)
        )

        def launch(generation: int) -> None:
            del generation
            self._spawn("poll", local_id, token, self._do_poll, job_id, budget)

        return launch

    def _launch_download(
        self, record: JobRecord, rt: _Runtime, now: float
    ) -> Callable[[int], None]:
        del now
        rt.token = next(self._tokens)
        rt.download_attempts += 1
        token, local_id, job_id = rt.token, record.local_id, record.job_id or ""
        job = None if rt.refetch else rt.job
        dest = self.config.download_dir
        budget = self.config.request_timeout

        def launch(generation: int) -> None:
            del generation
            self._spawn("download", local_id, token, self._do_download, job_id, job, dest, budget)

        return launch

    def _spawn(
        self, op: str, local_id: str, token: int, fn: Callable[..., None], *args: Any
    ) -> None:
        pool = self._dl_pool if op == "download" else self._api_pool
        try:
            pool.submit(fn, local_id, token, *args)
        except RuntimeError as exc:  # pool shut down under us: report it as a transient error
            self._results.put(
                _Result(
                    local_id, token, op, self._clock(), error=errors.APIConnectionError(str(exc))
                )
            )
        if op == "download":
            self._dl_outstanding += 1
        else:
            self._api_outstanding += 1
        self._ops[local_id] = self._ops.get(local_id, 0) + 1

    # ------------------------------------------------------------------ worker side
    # These run on worker threads. They read only their arguments (immutable) and
    # post a _Result; they never touch records or runtime state.
    def _get_client(self) -> ClientLike:
        with self._client_lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def _post(self, result: _Result) -> None:
        self._results.put(result)
        self._wakeup.set()

    def _do_submit(
        self, local_id: str, token: int, spec: _SubmitSpec, generation: int, budget: float
    ) -> None:
        try:
            # The idempotency key must be on disk before the first POST carrying it:
            # after a crash the same key is sent again and no second job is charged.
            writer = self._writer
            if (
                writer is not None
                and generation
                and not writer.wait_for(generation, self.config.store_flush_timeout)
            ):
                log.warning("job %s: job history not saved yet; sending anyway", local_id)
            from ..client.images import image_file_to_data_uri
            from ..client.models import GenerateRequest

            image = image_file_to_data_uri(spec.image_path) if spec.image_path else None
            request = GenerateRequest(
                prompt=spec.prompt,
                format=spec.format,
                quality=spec.quality,
                callback_url=spec.callback_url,
                image=image,
            )
            del image  # the payload lives only as long as this call
            response = self._get_client().generate(
                request, idempotency_key=spec.idempotency_key, deadline=time.monotonic() + budget
            )
            self._post(_Result(local_id, token, "submit", self._clock(), value=response))
        except Exception as exc:
            self._post(_Result(local_id, token, "submit", self._clock(), error=exc))

    def _do_poll(self, local_id: str, token: int, job_id: str, budget: float) -> None:
        try:
            job = self._get_client().get_job(job_id, deadline=time.monotonic() + budget)
            self._post(_Result(local_id, token, "poll", self._clock(), value=job))
        except Exception as exc:
            self._post(_Result(local_id, token, "poll", self._clock(), error=exc))

    def _do_download(
        self, local_id: str, token: int, job_id: str, job: Job | None, dest: str, budget: float
    ) -> None:
        last = [0.0, -1]  # time and percent of the last progress report (throttle)

        def on_progress(done: int, total: int | None) -> None:
            if token in self._abandoned:
                # Paused (e.g. online access turned off): stop now; the client deletes
                # the partial file, and tick() drops this result.
                raise _Abandoned("download abandoned: network work is paused")
            if not total:
                return
            percent = int(done * 100 / total)
            t = time.monotonic()
            if percent != last[1] and (t - last[0] >= 0.1 or percent >= 100):
                last[0], last[1] = t, percent
                self._results.put(
                    _Result(local_id, token, "progress", self._clock(), value=percent)
                )

        try:
            from ..client.models import JobStatus

            client = self._get_client()
            if job is None:
                job = client.get_job(job_id, deadline=time.monotonic() + budget)
            if job.status is not JobStatus.COMPLETED or not job.model_url:
                self._post(
                    _Result(local_id, token, "download", self._clock(), value=(job, None, None))
                )
                return
            path = client.download(job, dest, on_progress=on_progress)
            size = os.path.getsize(path)
            self._post(_Result(local_id, token, "download", self._clock(), value=(job, path, size)))
        except Exception as exc:
            self._post(_Result(local_id, token, "download", self._clock(), error=exc))

    # ------------------------------------------------------------------ applying results
    def _apply_submit(self, record: JobRecord, rt: _Runtime, result: _Result, now: float) -> None:
        wall = self._wall()
        if result.error is None:
            response = result.value
            previous = record.state
            record.job_id = response.job_id
            self._by_job_id[response.job_id] = record.local_id
            record.eta_seconds = response.estimated_time_seconds
            # Acceptance time: when the answer arrived, not when this tick noticed it.
            record.submitted_at = wall - max(0.0, now - result.at)
            record.deadline_at = record.submitted_at + self.config.job_deadline
            rt.t0 = result.at
            rt.deadline = result.at + self.config.job_deadline
            rt.errors = 0
            rt.last_error = None
            status = getattr(response.status, "value", str(response.status))
            record.server_status = status
            record.state = JobState.PROCESSING if status == "processing" else JobState.QUEUED
            if status in ("completed", "failed"):
                rt.due = now  # an idempotent replay of a finished job: look at once
            else:
                rt.due = result.at + timing.first_poll_delay(
                    response.estimated_time_seconds, self._policy
                )
            eta = (
                f", ETA {response.estimated_time_seconds:g} s"
                if response.estimated_time_seconds
                else ""
            )
            record.note(f"accepted as {response.job_id} ({status}{eta})", at=wall)
            self._event("state", record, previous)
            log.info("job %s accepted as %s", record.local_id, response.job_id)
            return
        exc = result.error
        if isinstance(exc, errors.RateLimitError):
            # Server-side concurrency (or request rate) is full: back to the head of the
            # queue, and hold all submissions until the server's Retry-After.
            rt.errors += 1
            delay = timing.error_backoff(
                rt.errors, base=self.config.poll_interval, retry_after=exc.retry_after
            )
            self._submit_pause_until = max(self._submit_pause_until, now + delay)
            previous = record.state
            record.state = JobState.WAITING
            bisect.insort(self._waiting, (rt.seq, record.local_id))
            record.note(f"rate limited by the server (429); waiting {delay:.0f} s", at=wall)
            self._event("state", record, previous)
            log.info("job %s: 429 on submit, waiting %.1f s", record.local_id, delay)
            return
        if _is_transient(exc) and not isinstance(exc, (errors.UnexpectedResponseError, ValueError)):
            rt.errors += 1
            rt.last_error = exc
            if now >= rt.deadline:
                self._fail(record, exc, note="gave up sending after the job deadline")
                return
            delay = timing.error_backoff(
                rt.errors, base=self.config.poll_interval, retry_after=_retry_after(exc)
            )
            rt.due = min(now + delay, rt.deadline)
            if rt.errors == 1 or rt.errors % 5 == 0:
                record.note(f"could not send ({_kind(exc)}); retrying with the same key", at=wall)
                self._dirty.add(record.local_id)
            log.info(
                "job %s: submit failed (%s), retry in %.1f s",
                record.local_id,
                _describe(exc),
                delay,
            )
            return
        if not isinstance(exc, errors.HiptahError):
            log.error("job %s: unexpected error while sending: %s", record.local_id, _describe(exc))
        self._fail(record, exc)

    def _apply_poll(self, record: JobRecord, rt: _Runtime, result: _Result, now: float) -> None:
        wall = self._wall()
        if result.error is not None:
            exc = result.error
            if isinstance(exc, errors.NotFoundError):
                self._fail(record, _job_gone(record, exc))
                return
            if _is_transient(exc):
                rt.errors += 1
                rt.last_error = exc
                if now >= rt.deadline:
                    self._timeout(record, last_error=exc)
                    return
                delay = max(
                    timing.interval_at(self._elapsed(rt, result.at), self._policy),
                    timing.error_backoff(
                        rt.errors, base=self.config.poll_interval, retry_after=_retry_after(exc)
                    ),
                )
                rt.due = min(result.at + delay, rt.deadline)
                if rt.errors == 1:
                    record.note(f"poll failed ({_kind(exc)}); retrying", at=wall)
                    self._dirty.add(record.local_id)
                log.info(
                    "job %s: poll failed (%s), retry in %.1f s",
                    record.local_id,
                    _describe(exc),
                    delay,
                )
                return
            self._fail(record, exc)
            return

        job = result.value
        if rt.errors:
            record.note(f"poll succeeded again after {rt.errors} failure(s)", at=wall)
            rt.errors = 0
            rt.last_error = None
            self._dirty.add(record.local_id)
        status = getattr(job.status, "value", str(job.status))
        previous = record.state
        progress_changed = job.progress is not None and job.progress != record.progress
        status_changed = status != record.server_status
        if job.progress is not None:
            record.progress = job.progress
        record.server_status = status
        if job.estimated_time_seconds is not None and record.eta_seconds is None:
            record.eta_seconds = job.estimated_time_seconds

        if status == "completed":
            record.completed_at = wall - max(0.0, now - result.at)
            record.model_url = job.model_url
            record.expires_at = job.expires_at.isoformat() if job.expires_at else None
            if self.config.auto_download:
                record.state = JobState.DOWNLOADING
                record.progress = None  # from here on: the download's percent
                rt.job = job
                rt.refetch = not job.model_url
                rt.download_attempts = 0
                rt.due = now
                record.note("completed on the server; downloading", at=wall)
            else:
                record.state = JobState.DOWNLOADED
                record.finished_at = wall
                self._finish_runtime(record.local_id)
                record.note("completed on the server (automatic download is off)", at=wall)
            self._event("state", record, previous)
            return
        if status == "failed":
            error = job.error
            self._fail(
                record,
                errors.JobFailedError(
                    server_message=(error.message if error else None),
                    code=(error.code if error else None),
                ),
            )
            return
        if status == "queued":
            record.state = JobState.QUEUED
        elif status == "processing":
            record.state = JobState.PROCESSING
        # Any other status: still running, state unchanged.
        if now >= rt.deadline or result.at >= rt.deadline:
            self._timeout(record)
            return
        if rt.poll_again:
            rt.poll_again = False
            rt.due = now
        else:
            elapsed = self._elapsed(rt, result.at)
            rt.due = result.at + timing.next_poll_delay(
                elapsed, self._policy, until_deadline=rt.deadline - result.at
            )
        if record.state is not previous:
            record.note(f"status {status}", at=wall)
            self._event("state", record, previous)
        elif progress_changed or status_changed:
            self._event("progress", record, previous)

    def _apply_download_progress(self, record: JobRecord, result: _Result) -> None:
        if record.state is JobState.DOWNLOADING and record.progress != result.value:
            record.progress = float(result.value)
            self._event("progress", record, record.state)

    def _apply_download(self, record: JobRecord, rt: _Runtime, result: _Result, now: float) -> None:
        wall = self._wall()
        previous = record.state
        if result.error is None:
            job, path, size = result.value
            if path is None:  # the re-fetched job is not (or no longer) completed
                status = getattr(job.status, "value", str(job.status))
                if status == "failed":
                    error = job.error
                    self._fail(
                        record,
                        errors.JobFailedError(
                            server_message=error.message if error else None,
                            code=error.code if error else None,
                        ),
                    )
                elif status == "completed":  # completed without a URL
                    self._fail(
                        record,
                        errors.DownloadError("The server reported no model URL for this job."),
                    )
                else:
                    record.state = JobState.PROCESSING
                    record.server_status = status
                    rt.due = now
                    record.note(f"server says {status}; polling again", at=wall)
                    self._event("state", record, previous)
                return
            record.model_url = job.model_url
            record.expires_at = job.expires_at.isoformat() if job.expires_at else record.expires_at
            record.file_path = os.fspath(path)
            record.file_size = size
            record.progress = 100.0
            record.state = JobState.DOWNLOADED
            record.finished_at = wall
            self._finish_runtime(record.local_id)
            record.note(f"downloaded {_size_text(size)}", at=wall)
            self._event("downloaded", record, previous)
            log.info("job %s downloaded (%s)", record.local_id, _size_text(size))
            return
        exc = result.error
        if isinstance(exc, errors.NotFoundError) and rt.refetch:
            self._fail(record, _job_gone(record, exc))
            return
        if (
            _is_transient(exc)
            and not isinstance(exc, errors.DownloadError)
            and (record.deadline_at is None or wall < record.deadline_at)
        ):
            # The API call for a fresh link failed (slow, 5xx, network): like a poll, that
            # is retried until the job's deadline and does not use up a download attempt.
            rt.download_attempts = max(0, rt.download_attempts - 1)
        if _download_retryable(exc) and rt.download_attempts <= self.config.download_retries:
            rt.errors += 1
            rt.refetch = True  # the URL may have expired meanwhile: ask for a fresh one
            delay = timing.error_backoff(
                rt.errors, base=self.config.poll_interval, retry_after=_retry_after(exc)
            )
            rt.due = now + delay
            record.note(f"download failed ({_kind(exc)}); retrying", at=wall)
            self._dirty.add(record.local_id)
            return
        self._fail(record, exc)

    # ------------------------------------------------------------------ helpers
    def _elapsed(self, rt: _Runtime, at: float) -> float:
        return 0.0 if rt.t0 is None else max(0.0, at - rt.t0)

    def _timeout(self, record: JobRecord, last_error: BaseException | None = None) -> None:
        extra = f" Last error: {_describe(last_error)}." if last_error is not None else ""
        self._fail(
            record,
            errors.JobTimeoutError(
                f"Job {record.job_id} did not finish within {self.config.job_deadline:g} s.{extra}"
            ),
        )

    def _fail(self, record: JobRecord, exc: BaseException, note: str | None = None) -> None:
        previous = record.state
        self._fail_record(record, exc, note)
        self._finish_runtime(record.local_id)
        self._event("failed", record, previous)
        log.warning("job %s failed: %s", record.local_id, _describe(exc))

    def _fail_record(self, record: JobRecord, exc: BaseException, note: str | None = None) -> None:
        record.error = ErrorInfo.from_exception(exc)
        record.state = JobState.FAILED
        record.finished_at = self._wall()
        record.note(
            note or f"failed: {record.error.kind}: {record.error.message}", at=record.finished_at
        )
        self._dirty.add(record.local_id)

    def _finish_runtime(self, local_id: str) -> None:
        self._rt.pop(local_id, None)

    def _drop_runtime(self, local_id: str) -> None:
        rt = self._rt.pop(local_id, None)
        if rt is not None:
            with contextlib.suppress(ValueError):
                self._waiting.remove((rt.seq, local_id))

    def _event(self, kind: str, record: JobRecord, previous: JobState | None) -> None:
        snapshot = record.copy()
        if kind != "progress":
            self._dirty.add(record.local_id)  # progress alone is not worth a disk write
        else:
            # One progress event per job per tick: the latest one.
            index = self._progress_at.get(record.local_id)
            if index is not None:
                self._events[index] = JobEvent(kind, snapshot, previous)
                return
            self._progress_at[record.local_id] = len(self._events)
        self._events.append(JobEvent(kind, snapshot, previous))

    def _persist(self) -> int:
        """Hand copies of changed records to the store writer; return its generation."""
        if self._writer is None:
            self._dirty.clear()
            self._removed.clear()
            return 0
        if not self._dirty and not self._removed:
            return 0
        changed = [self._records[i].copy() for i in self._dirty if i in self._records]
        removed, self._removed = self._removed, []
        self._dirty.clear()
        return self._writer.update(changed, removed)

    @staticmethod
    def _new_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)


# ---------------------------------------------------------------------------- functions


def _check_image_file(path: str) -> None:
    """Cheap checks on the main thread (size, magic bytes); encoding happens on a worker."""
    check_image_file(path)


def _finished_download(result: _Result) -> bool:
    return result.op == "download" and result.error is None and result.value[1] is not None


def _is_transient(exc: BaseException) -> bool:
    """Worth trying again later without the user: network, 5xx, 429, garbled answers."""
    if isinstance(exc, errors.HiptahError):
        return errors.is_retryable(exc) or isinstance(exc, errors.UnexpectedResponseError)
    # Not one of ours (a bug or an unexpected library error): retried until the
    # deadline for polls and downloads, which bounds it.
    return isinstance(exc, (OSError, ValueError))


def _job_gone(record: JobRecord, exc: errors.NotFoundError) -> errors.NotFoundError:
    """A 404 for a job the server had accepted: it was forgotten (restart, expiry).
    The error type's hint says why and what to do, so the message only says what."""
    return errors.NotFoundError(
        f"The server no longer knows job {record.job_id}.",
        status=exc.status,
        request_id=exc.request_id,
    )


def _download_retryable(exc: BaseException) -> bool:
    """Worth another automatic download attempt (with a fresh link)?

    The client reports every CDN problem as DownloadError: connection refused or cut,
    timeouts, truncated or corrupt bodies, a link refused twice. Those are the CDN's
    hiccups, so they get ``download_retries`` more attempts; a full or unwritable disk
    (StorageError) needs the user and fails at once (retryable by hand).
    """
    if isinstance(exc, errors.StorageError):
        return False
    return _is_transient(exc) or isinstance(exc, errors.DownloadError)


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, (int, float)) else None


def _kind(exc: BaseException) -> str:
    return exc.kind if isinstance(exc, errors.HiptahError) else type(exc).__name__


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return errors.redact(f"{_kind(exc)}: {exc}")


def _size_text(size: int | None) -> str:
    if size is None:
        return "?"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


__all__ = ["ClientLike", "Scheduler", "SchedulerConfig", "default_download_dir"]
