"""How work reaches a thread and how its result comes back: the scheduler's worker side.

Threading rules (the scheduler relies on each):

- An operation (``do_submit``, ``do_poll``, ``do_download``) runs on a pool thread. It
  reads only its arguments, which are immutable, and its WorkerContext; it never
  touches a record or a Runtime. It never raises into the pool: the value or the
  exception goes into a ``Result`` posted to the result queue, which the main
  thread's ``tick`` drains.
- Running work is not interrupted (as with ``concurrent.futures``, only work not yet
  started could be cancelled). A paused job's operation is dropped instead: its token
  goes into ``abandoned`` (shared by reference between the scheduler, which is its
  only writer, and the workers, which only test membership: atomic under the GIL).
  A download checks it between chunks and stops; the other results are ignored when
  drained.
- There are two clocks: a Result's ``at`` comes from the scheduler's injected clock,
  while request deadlines use ``time.monotonic`` because the client measures them so.
- Before a job's first POST, the worker waits (on its own thread) until the store
  writer has the job's idempotency key on disk.

The Dispatcher owns both pools (API calls; downloads apart, so big files never delay
polls), the result queue, the wake-up event, and the count of operations handed out
per job (a job starts a new one only when it has none, stale ones included).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from ..client import errors
from .ops import Abandoned, Operation, Result, SchedulerConfig, SubmitSpec

if TYPE_CHECKING:
    from pathlib import Path

    from ..client.models import GenerateRequest, GenerateResponse, Job
    from .store import StoreWriter

log = logging.getLogger("hiptah")


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


class WorkerContext(Protocol):
    """All an operation may use besides its arguments."""

    @property
    def abandoned(self) -> AbstractSet[int]: ...

    def client(self) -> ClientLike: ...

    def post(self, result: Result) -> None: ...  # a finished operation: wakes run_until

    def report(self, result: Result) -> None: ...  # progress: no wake-up

    def now(self) -> float: ...  # the scheduler's clock

    def wait_saved(self, generation: int) -> bool: ...


# ---------------------------------------------------------------------- operations
def do_submit(
    ctx: WorkerContext, local_id: str, token: int, spec: SubmitSpec, budget: float, generation: int
) -> None:
    try:
        # The idempotency key must be on disk before the first POST carrying it:
        # after a crash the same key is sent again and no second job is charged.
        if generation and not ctx.wait_saved(generation):
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
        response = ctx.client().generate(
            request, idempotency_key=spec.idempotency_key, deadline=time.monotonic() + budget
        )
        ctx.post(Result(local_id, token, "submit", ctx.now(), value=response))
    except Exception as exc:
        ctx.post(Result(local_id, token, "submit", ctx.now(), error=exc))


def do_poll(ctx: WorkerContext, local_id: str, token: int, job_id: str, budget: float) -> None:
    try:
        job = ctx.client().get_job(job_id, deadline=time.monotonic() + budget)
        ctx.post(Result(local_id, token, "poll", ctx.now(), value=job))
    except Exception as exc:
        ctx.post(Result(local_id, token, "poll", ctx.now(), error=exc))


def do_download(
    ctx: WorkerContext,
    local_id: str,
    token: int,
    job_id: str,
    job: Job | None,
    dest: str,
    budget: float,
) -> None:
    """Fetch a fresh job first when ``job`` is None (the link may have expired)."""
    last = [0.0, -1]  # time and percent of the last progress report (throttle)

    def on_progress(done: int, total: int | None) -> None:
        if token in ctx.abandoned:
            # Paused (e.g. online access turned off): stop now; the client deletes
            # the partial file, and tick() drops this result.
            raise Abandoned("download abandoned: network work is paused")
        if not total:
            return
        percent = int(done * 100 / total)
        t = time.monotonic()
        if percent != last[1] and (t - last[0] >= 0.1 or percent >= 100):
            last[0], last[1] = t, percent
            ctx.report(Result(local_id, token, "progress", ctx.now(), value=percent))

    try:
        from ..client.models import JobStatus

        client = ctx.client()
        if job is None:
            job = client.get_job(job_id, deadline=time.monotonic() + budget)
        if job.status is not JobStatus.COMPLETED or not job.model_url:
            ctx.post(Result(local_id, token, "download", ctx.now(), value=(job, None, None)))
            return
        path = client.download(job, dest, on_progress=on_progress)
        size = os.path.getsize(path)
        ctx.post(Result(local_id, token, "download", ctx.now(), value=(job, path, size)))
    except Exception as exc:
        ctx.post(Result(local_id, token, "download", ctx.now(), error=exc))


# ---------------------------------------------------------------------- dispatcher
class Dispatcher:
    """Hands operations to the pools and their results back (a WorkerContext).

    ``spawn``, ``drained``, ``budgets``, ``resize`` and ``shutdown`` are called by the
    scheduler under its lock; the WorkerContext methods run on worker threads.
    """

    def __init__(
        self,
        client_factory: Callable[[], ClientLike],
        config: SchedulerConfig,
        clock: Callable[[], float],
        writer: StoreWriter | None,
        executor: Executor | None,
        download_executor: Executor | None,
    ) -> None:
        self._factory = client_factory
        self._client: ClientLike | None = None
        self._client_lock = threading.Lock()
        self.config = config
        self._clock = clock
        self._writer = writer
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.wakeup = threading.Event()  # set by workers: run_until reacts at once
        # Tokens of operations dropped by a pause (see the module docstring).
        self._abandoned: set[int] = set()
        self._own_pools = executor is None
        self._api_pool: Executor = executor or _new_pool(config.max_workers, "hiptah-api")
        self._dl_pool: Executor = download_executor or (
            executor if executor is not None else _new_pool(config.download_workers, "hiptah-dl")
        )
        self._api_outstanding = 0  # operations handed to the API pool, not yet drained
        self._dl_outstanding = 0
        # Operations handed to a pool per job, stale ones included (a job cancelled and
        # retried may still have its old operation running): a job starts a new one only
        # when this is zero, so it never has two at once (two downloads of one file).
        self.ops: dict[str, int] = {}

    # WorkerContext (worker threads)
    @property
    def abandoned(self) -> set[int]:
        return self._abandoned

    def client(self) -> ClientLike:
        with self._client_lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def post(self, result: Result) -> None:
        self.results.put(result)
        self.wakeup.set()

    def report(self, result: Result) -> None:
        self.results.put(result)

    def now(self) -> float:
        return self._clock()

    def wait_saved(self, generation: int) -> bool:
        writer = self._writer
        return writer is None or writer.wait_for(generation, self.config.store_flush_timeout)

    # The scheduler's side (under its lock)
    def run(self, operation: Operation, generation: int) -> None:
        """Hand ``operation`` to its pool (``generation``: the store's, for a submit)."""
        if operation.op == "submit":
            fn: Callable[..., None] = do_submit
            args = (*operation.args, generation)
        else:
            fn = do_download if operation.op == "download" else do_poll
            args = operation.args
        self.spawn(operation.op, operation.local_id, operation.token, fn, *args)

    def spawn(
        self, op: str, local_id: str, token: int, fn: Callable[..., None], *args: Any
    ) -> None:
        pool = self._dl_pool if op == "download" else self._api_pool
        try:
            # The context is bound first, so a pool sees fn(local_id, token, ...).
            pool.submit(functools.partial(fn, self), local_id, token, *args)
        except RuntimeError as exc:  # pool shut down under us: report it as a transient error
            self.results.put(
                Result(
                    local_id, token, op, self._clock(), error=errors.APIConnectionError(str(exc))
                )
            )
        if op == "download":
            self._dl_outstanding += 1
        else:
            self._api_outstanding += 1
        self.ops[local_id] = self.ops.get(local_id, 0) + 1

    def drained(self, result: Result) -> None:
        """Book a result taken off the queue (a finished operation frees its slots)."""
        if result.op == "progress":
            return
        if result.op == "download":
            self._dl_outstanding -= 1
        else:
            self._api_outstanding -= 1
        left = self.ops.get(result.local_id, 0) - 1
        if left > 0:
            self.ops[result.local_id] = left
        else:
            self.ops.pop(result.local_id, None)
        self._abandoned.discard(result.token)

    def abandon(self, token: int) -> None:
        self._abandoned.add(token)

    def budgets(self) -> tuple[int, int]:
        """How many more API calls and downloads may be handed to the pools now.

        Capped at twice each pool's threads: beyond that they would only queue inside
        the executor, and launching a burst of 100 due polls in one tick would cost
        milliseconds. The rest stay in the scheduler, due-ordered, for later ticks.
        """
        return (
            2 * self.config.max_workers - self._api_outstanding,
            2 * self.config.download_workers - self._dl_outstanding,
        )

    def set_factory(self, client_factory: Callable[[], ClientLike]) -> None:
        """Operations under way finish with the old client; the next one builds a new one."""
        with self._client_lock:
            self._factory = client_factory
            self._client = None

    def resize(self, config: SchedulerConfig) -> None:
        old, self.config = self.config, config
        if self._own_pools and old.max_workers != config.max_workers:
            self._api_pool.shutdown(wait=False)
            self._api_pool = _new_pool(config.max_workers, "hiptah-api")
        if self._own_pools and old.download_workers != config.download_workers:
            self._dl_pool.shutdown(wait=False)
            self._dl_pool = _new_pool(config.download_workers, "hiptah-dl")

    def shutdown(self, wait: bool) -> None:
        """Queued operations are dropped; injected executors are left to their owner."""
        if self._own_pools:
            self._api_pool.shutdown(wait=wait, cancel_futures=True)
            self._dl_pool.shutdown(wait=wait, cancel_futures=True)


def _new_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)


__all__ = ["ClientLike", "Dispatcher", "WorkerContext", "do_download", "do_poll", "do_submit"]
