"""The job scheduler's front end: the public API, the lock and the main-thread tick.

Pure Python, no bpy. Blender's modal monitor calls :meth:`Scheduler.tick` every
0.1-0.25 s on the main thread; ``wait=True`` operators and the batch tool call
:meth:`Scheduler.run_until`. ``tick`` never blocks: all HTTP runs on worker
threads, which receive immutable inputs and hand results back through a
thread-safe queue that ``tick`` drains. Records are owned by the scheduler and
mutated only under its lock (in practice on the main thread); everyone else gets
copies. Persistence goes through :class:`StoreWriter`, whose thread does the JSON
encoding and fsync, so the main thread only files record copies.

The rest of the scheduler, one job per module (arrows: imports; nothing imports
this module but the callers of its public API)::

    scheduler -> lifecycle -> transitions -> failures, ops
    scheduler -> workers, table, gate -> ops

- ``ops``: the data (config, Operation, Result, Runtime, Context, Effects).
- ``failures``: how an error is classified (transient, worth another download, ...).
- ``transitions``: a finished operation applied to its record (pure; 429 on a poll...).
- ``lifecycle``: the record's half of send, cancel, retry, resume, webhook, import.
- ``gate``: the pause gate (online access off): hold and release, deadlines moved.
- ``workers``: how work reaches a thread: the operations and the Dispatcher.
- ``table``: the books: records, runtimes, FIFO, job-id index, pending changes.

A tick: drain results (``transitions.apply``; the table replays the Effects), pick
what is due (FIFO submissions within the plan's limit, then due polls and
downloads within the pools' budgets), persist, and only then launch: a submission's
worker waits until the store generation holding its idempotency key is on disk.

See docs/scheduler.md for the behaviour in prose (scheduling, concurrency,
persistence and resume, cancel semantics).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any

from ..client.images import check_image_file
from ..client.validation import clean_format, clean_prompt, clean_quality
from . import lifecycle, transitions, workers
from .gate import PauseGate
from .ops import Context, Effects, Operation, Runtime, SchedulerConfig
from .ops import default_download_dir as default_download_dir
from .records import ErrorInfo, JobEvent, JobRecord, JobState
from .store import JobStore, StoreWriter
from .table import JobTable
from .workers import ClientLike

log = logging.getLogger("hiptah")


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
        self.config = config or SchedulerConfig()
        self._policy = self.config.policy()
        self._clock = clock
        self._wall = wall_clock
        # Re-entrant: clear_finished calls remove, find_by_job_id calls get, holding it.
        self._lock = threading.RLock()
        self._tokens = itertools.count(1)
        self._seqs = itertools.count(1)
        self._closed = False

        self._gate = PauseGate()  # set_paused

        self.store = store
        self.warning: str | None = None
        loaded = store.load() if store is not None else []
        if store is not None:
            self.warning = store.warning
        self._writer = StoreWriter(store, loaded) if store is not None else None
        self._t = JobTable(self._writer)  # records, runtimes, FIFO, index, pending changes
        self._dispatch = workers.Dispatcher(
            client_factory, self.config, clock, self._writer, executor, download_executor
        )
        self._wakeup = self._dispatch.wakeup
        self._t.load(loaded)
        self._resume(sorted(loaded, key=lambda r: r.created_at))
        self._t.persist()

    @property
    def _ops(self) -> dict[str, int]:
        """Operations handed to a pool per job (see workers.Dispatcher.ops)."""
        return self._dispatch.ops

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
            check_image_file(path)  # cheap (size, magic bytes); encoding happens on a worker
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
            self._t.records[record.local_id] = record
            rt = Runtime(seq=next(self._seqs))
            self._t.rt[record.local_id] = rt
            bisect.insort(self._t.waiting, (rt.seq, record.local_id))
            self._t.event("state", record, None)
            # Persist now: the idempotency key must be on disk before the first POST.
            self._t.persist()
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
            launches = self._schedule(now) if not self._closed and self._gate.reason is None else []
            generation = self._t.persist()
            for launch in launches:
                launch(generation)
            return self._t.take_events()

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
                    (r := self._t.records.get(i)) is not None and r.state.is_active for i in ids
                ):
                    break
                now = self._clock()
                if end is not None and now >= end:
                    break
                wait = step
                next_due = self._t.next_due() if self._gate.reason is None else None
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - now))
                if end is not None:
                    wait = min(wait, end - now)
            if wait > 0:
                self._wakeup.wait(wait)
        with self._lock:
            return [self._t.records[i].copy() for i in ids if i in self._t.records]

    def jobs(self) -> list[JobRecord]:
        """Snapshots of every job, newest first."""
        with self._lock:
            return sorted(
                (r.copy() for r in self._t.records.values()),
                key=lambda r: r.created_at,
                reverse=True,
            )

    def get(self, local_id: str) -> JobRecord | None:
        with self._lock:
            record = self._t.records.get(local_id)
            return record.copy() if record is not None else None

    def transient_error(self, local_id: str) -> ErrorInfo | None:
        """The latest error an active job is retrying through (network down, 5xx, ...),
        or None once a request for it succeeded. Lets a blocking caller stop waiting
        on an unreachable server without failing (or forgetting) the job."""
        with self._lock:
            rt = self._t.rt.get(local_id)
            exc = rt.last_error if rt is not None else None
        return ErrorInfo.from_exception(exc) if exc is not None else None

    @property
    def paused(self) -> ErrorInfo | None:
        """Why network work is held (see :meth:`set_paused`), or None when it runs."""
        with self._lock:
            return self._gate.reason

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
            jobs = [(self._t.records[i], rt) for i, rt in self._t.rt.items()]
            if reason is not None:
                if self._gate.close(reason, now, wall, jobs, self._dispatch.abandon):
                    self._t.dirty.update(self._t.rt)
                return
            if not self._gate.open(now, wall, jobs):
                return
            self._t.dirty.update(self._t.rt)
        self._wakeup.set()

    def find_by_job_id(self, job_id: str) -> JobRecord | None:
        with self._lock:
            local_id = self._t.by_job_id.get(job_id)
            return self.get(local_id) if local_id else None

    def has_active(self) -> bool:
        with self._lock:
            return bool(self._t.rt)

    def in_flight(self) -> int:
        """Jobs counting against the plan's concurrency limit right now."""
        with self._lock:
            return self._t.in_flight()

    def cancel(self, local_id: str) -> None:
        """Stop a job locally. WAITING: nothing was sent, nothing is charged. In flight:
        polling stops; the server may still finish (and charge) the job."""
        with self._lock:
            record = self._t.records[local_id]
            if not record.state.is_active:
                return
            self._t.drop_runtime(local_id)
            fx = Effects()
            lifecycle.cancel(record, self._wall(), fx)
            self._t.replay(fx)

    def retry(self, local_id: str) -> JobRecord:
        """Make a FAILED or CANCELLED job active again, without generating twice.

        With a server job id: resume polling that job (or download its model again if
        the server had completed it), with a fresh deadline. Without one: queue it
        again under the same idempotency key (a new key only after a definitive 4xx
        rejection, when the server created nothing). An active job is left as it is.
        """
        with self._lock:
            record = self._t.records[local_id]
            if record.state.is_active:
                return record.copy()
            if record.state in (JobState.DOWNLOADED, JobState.IMPORTED) and record.file_path:
                raise ValueError(
                    f"Job {local_id} is already downloaded; there is nothing to retry."
                )
            ctx = self._context()
            rt = Runtime(seq=next(self._seqs), due=ctx.now)
            self._t.rt[local_id] = rt
            fx = Effects()
            lifecycle.retry(record, rt, ctx, fx)
            self._t.replay(fx)
            self._wakeup.set()
            return record.copy()

    def remove(self, local_id: str) -> None:
        """Forget a job (cancelling it first if active). The downloaded file is kept."""
        with self._lock:
            record = self._t.records.get(local_id)
            if record is None:
                return
            self._t.remove(record)

    def clear_finished(self) -> int:
        """Remove every finished job (downloaded, imported, failed, cancelled)."""
        with self._lock:
            finished = [i for i, r in self._t.records.items() if r.state.is_finished]
            for local_id in finished:
                self.remove(local_id)
            return len(finished)

    def mark_imported(self, local_id: str, object_names: list[str]) -> None:
        with self._lock:
            record = self._t.records[local_id]
            if record.state not in (JobState.DOWNLOADED, JobState.IMPORTED):
                raise ValueError(f"Job {local_id} is {record.state.value}, not downloaded.")
            fx = Effects()
            lifecycle.mark_imported(record, object_names, self._wall(), fx)
            self._t.replay(fx)

    def notify_completed(self, job_id: str, model_url: str | None = None) -> None:
        """A webhook said ``job_id`` finished: poll it now instead of at its next slot.

        The URL is not trusted as such: the poll fetches the job (and a fresh URL).
        Safe to call from any thread (a webhook receiver's).
        """
        del model_url
        with self._lock:
            local_id = self._t.by_job_id.get(job_id)
            rt = self._t.rt.get(local_id) if local_id is not None else None
            record = self._t.records.get(local_id) if local_id is not None else None
            if local_id is None or rt is None or record is None:
                log.debug("webhook for job %s ignored (not active here)", job_id)
                return
            if lifecycle.webhook(record, rt, self._clock(), self._wall()):
                self._t.dirty.add(local_id)
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
                self._dispatch.set_factory(client_factory)
            if config is not None:
                self.config = config
                self._policy = config.policy()
                self._dispatch.resize(config)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every change so far is on disk (tests, shutdown)."""
        with self._lock:
            self._t.persist()
        return self._writer.flush(timeout) if self._writer is not None else True

    def shutdown(self, wait: bool = False) -> None:
        """Stop: queued operations are dropped, the store is written and closed.

        Unfinished jobs stay in the store in their state and resume next time.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._t.persist()
        self._dispatch.shutdown(wait)
        if self._writer is not None:
            self._writer.close()

    # ------------------------------------------------------------------ resume
    def _resume(self, records: list[JobRecord]) -> None:
        """After a restart: active stored jobs carry on (see lifecycle.resume)."""
        ctx = self._context()
        for record in records:
            fx = Effects()
            rt = lifecycle.resume(record, self._seqs, ctx, fx)
            if rt is not None:
                self._t.rt[record.local_id] = rt
            self._t.replay(fx)

    # ------------------------------------------------------------------ tick internals
    def _drain(self, now: float) -> None:
        ctx: Context | None = None
        while True:
            try:
                result = self._dispatch.results.get_nowait()
            except queue.Empty:
                return
            self._dispatch.drained(result)
            record = self._t.records.get(result.local_id)
            rt = self._t.rt.get(result.local_id)
            if record is None:
                continue
            if ctx is None:
                ctx = Context(now, self._wall(), self.config, self._policy)
            fx = Effects()
            stale_file = transitions.apply(record, rt, result, ctx, fx)
            self._t.replay(fx)
            if stale_file is not None:
                with contextlib.suppress(OSError):
                    os.remove(stale_file)  # a download the user cancelled: don't leave it behind

    def _schedule(self, now: float) -> list[Callable[[int], None]]:
        launches: list[Callable[[int], None]] = []
        api_budget, dl_budget = self._dispatch.budgets()
        ops, config = self._dispatch.ops, self.config
        # 1. Submissions, FIFO, while the plan's concurrency allows.
        if self._t.waiting and now >= self._t.submit_pause_until and api_budget > 0:
            free = min(self.config.max_concurrent - self._t.in_flight(), api_budget)
            index = 0
            ctx = Context(now, self._wall(), self.config, self._policy)
            fx = Effects()
            while free > 0 and index < len(self._t.waiting):
                _, local_id = self._t.waiting[index]
                if local_id in ops:  # its old operation is still running
                    index += 1
                    continue
                self._t.waiting.pop(index)
                record = self._t.records[local_id]
                rt = self._t.rt[local_id]
                lifecycle.start_submit(record, rt, ctx, fx)
                launches.append(
                    self._launch(lifecycle.submit_op(record, rt, next(self._tokens), self.config))
                )
                free -= 1
                api_budget -= 1
            self._t.replay(fx)
        # 2. Due operations of jobs already in progress: polls, re-sends, downloads.
        if api_budget <= 0 and dl_budget <= 0:
            return launches
        due = [
            (rt.due, i)
            for i, rt in self._t.rt.items()
            if rt.token == 0 and rt.due <= now and i not in ops
        ]
        due.sort()
        for _, local_id in due:
            record = self._t.records[local_id]
            rt = self._t.rt[local_id]
            state = record.state
            if state is JobState.DOWNLOADING:
                if dl_budget > 0:
                    token = next(self._tokens)
                    launches.append(self._launch(lifecycle.download_op(record, rt, token, config)))
                    dl_budget -= 1
                continue
            if api_budget <= 0 or state is JobState.WAITING:
                continue
            token = next(self._tokens)
            if state is JobState.SUBMITTING:
                operation = lifecycle.submit_op(record, rt, token, config)
            else:  # QUEUED or PROCESSING
                operation = lifecycle.poll_op(record, rt, token, now, config)
            launches.append(self._launch(operation))
            api_budget -= 1
        return launches

    # ------------------------------------------------------------------ launching work
    def _launch(self, operation: Operation) -> Callable[[int], None]:
        """Run after the tick has persisted: a submission's worker gets the store
        generation holding its idempotency key, and waits for it to be on disk."""
        return functools.partial(self._dispatch.run, operation)

    # ------------------------------------------------------------------ helpers
    def _context(self) -> Context:
        return Context(self._clock(), self._wall(), self.config, self._policy)


__all__ = ["ClientLike", "Scheduler", "SchedulerConfig", "default_download_dir"]
