"""The machinery every fault case shares: a scheduler driven like Blender drives it,
and the bookkeeping that turns its jobs and the sandbox's state into table figures.

A :class:`Flow` is the add-on minus Blender: the real ``HiptahClient``, the real
``Scheduler`` with its ``JobStore`` on disk, stepped by ``tick()`` on the calling
thread (Blender's main thread in the product). Every tick is timed: the longest
one is the "main-thread stall" of the table.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.magic import file_problem
from hiptah_blender.jobs.records import JobRecord, JobState
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore

# Prompts for the jobs of a case: valid, varied (the fake generator keys its files on them).
NOUNS = (
    "wooden crate", "stone bridge", "clay pot", "brass key", "oak chair", "iron lantern",
    "glass bottle", "red mushroom", "leather boot", "marble column", "tin robot", "paper lamp",
)

# Every HiptahError subclass name: a failure of another kind is a bug, not a clear message.
OUR_ERROR_KINDS = frozenset(
    name for name in errors.__all__ if isinstance(getattr(errors, name), type)
)


@dataclass(frozen=True)
class Timing:
    """Time scale of a run. ``fast``: seconds scaled down so the suite fits in minutes;
    ``full``: the product's real settings (2 s polls, 30 s client timeout, 600 s deadline)."""

    name: str
    scale: float  # applied to fault durations ("network gone for 60 s" -> 60 * scale)
    poll_interval: float
    job_deadline: float
    client_timeout: float
    request_timeout: float
    latency: float | None  # sandbox job duration; None = realistic 25-40 s
    latency_spread: float
    jobs: int  # jobs per case (the 100-job case excepted)

    def seconds(self, real: float) -> float:
        return real * self.scale


FAST = Timing("fast", 0.1, poll_interval=0.25, job_deadline=120.0, client_timeout=1.0,
              request_timeout=20.0, latency=1.0, latency_spread=0.5, jobs=10)
FULL = Timing("full", 1.0, poll_interval=2.0, job_deadline=600.0, client_timeout=30.0,
              request_timeout=60.0, latency=None, latency_spread=0.0, jobs=20)


class HookedExecutor(Executor):
    """A thread pool that runs ``before(*args)`` on the worker right before each task.

    Used as the scheduler's download pool to act at the exact moment a download
    starts (expire its link, fill the disk). The scheduler's download tasks are
    ``_do_download(local_id, token, job_id, job, dest, budget)``, so ``args[2]`` is
    the server's job id.
    """

    def __init__(self, workers: int, before: Callable[..., None]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hiptah-dl-hooked")
        self._before = before

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            self._before(*args)
            return fn(*args, **kwargs)

        return self._pool.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class Flow:
    """One scheduler + client + job store against one API, stepped by hand."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        workdir: Path,
        timing: Timing,
        *,
        download_dir: Path | None = None,
        download_executor: Executor | None = None,
        ca_bundle: str | None = None,
        max_concurrent: int = 10,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.timing = timing
        self.ca_bundle = ca_bundle
        workdir.mkdir(parents=True, exist_ok=True)
        self.download_dir = download_dir or workdir / "models"
        self.store_path = workdir / "jobs.json"
        config = SchedulerConfig(
            max_concurrent=max_concurrent,
            poll_interval=timing.poll_interval,
            job_deadline=timing.job_deadline,
            download_dir=str(self.download_dir),
            request_timeout=timing.request_timeout,
        )
        self.scheduler = Scheduler(
            self._client, JobStore(self.store_path), config, download_executor=download_executor
        )
        self.ticks = 0
        self.max_stall = 0.0  # seconds: the longest tick()
        self.stalls: list[float] = []
        self.max_cpu = 0.0  # CPU time of the busiest tick: the tick's own work, without waits
        self.events: list[Any] = []

    def _client(self) -> HiptahClient:
        return HiptahClient(
            self.api_key, self.base_url, timeout=self.timing.client_timeout,
            ca_bundle=self.ca_bundle, user_agent="hiptah-reliability",
        )

    def submit(self, count: int, tag: str, *, fmt: str = "glb") -> list[str]:
        ids = []
        for i in range(count):
            prompt = f"a {NOUNS[i % len(NOUNS)]} number {i + 1} for {tag}"
            ids.append(self.scheduler.submit(prompt, format=fmt, quality="draft").local_id)
        return ids

    def tick(self) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        events = self.scheduler.tick()
        took = time.perf_counter() - start
        self.max_cpu = max(self.max_cpu, time.thread_time() - cpu)
        self.max_stall = max(self.max_stall, took)
        self.stalls.append(took)
        self.ticks += 1
        self.events.extend(events)

    def run(
        self, timeout: float, during: Callable[[float], None] | None = None, step: float = 0.02
    ) -> float:
        """Tick (as the modal monitor does) until no job is active; return the seconds taken.

        ``during(elapsed)`` runs between ticks: the case's fault script.
        """
        start = time.monotonic()
        while True:
            self.tick()
            elapsed = time.monotonic() - start
            if during is not None:
                during(elapsed)
            if not self.scheduler.has_active() or elapsed >= timeout:
                return elapsed
            time.sleep(step)

    def p99_stall(self) -> float:
        ordered = sorted(self.stalls)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def records(self) -> list[JobRecord]:
        return self.scheduler.jobs()

    def close(self) -> None:
        self.scheduler.flush(10.0)
        self.scheduler.shutdown(wait=True)


# ---------------------------------------------------------------------------- bookkeeping


@dataclass
class Outcome:
    """What became of a case's jobs, locally and on the server."""

    submitted: int = 0
    completed: int = 0
    failed_clear: int = 0
    lost: int = 0
    charged: int = 0  # generations the server created (and charged)
    distinct_keys: int = 0  # idempotency keys among them
    charged_twice: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # error kind -> jobs
    messages: dict[str, str] = field(default_factory=dict)  # error kind -> one user text
    problems: list[str] = field(default_factory=list)


def classify(records: Iterable[JobRecord], outcome: Outcome | None = None) -> Outcome:
    """Completed = a checked model file on disk; failed clearly = FAILED with one of our
    error types, a message and a hint; lost = everything else (still running, cancelled,
    a failure without words, a "downloaded" job without its file)."""
    out = outcome or Outcome()
    for record in records:
        out.submitted += 1
        if record.state in (JobState.DOWNLOADED, JobState.IMPORTED):
            problem = (
                file_problem(record.format, record.file_path) if record.file_path else "no file"
            )
            if problem is None:
                out.completed += 1
            else:
                out.lost += 1
                out.problems.append(f"job {record.local_id} downloaded but its file: {problem}")
        elif record.state is JobState.FAILED and record.error is not None:
            error = record.error
            if error.kind in OUR_ERROR_KINDS and error.message.strip() and error.hint.strip():
                out.failed_clear += 1
                out.failures[error.kind] += 1
                out.messages.setdefault(error.kind, error.user_text())
            else:
                out.lost += 1
                out.problems.append(
                    f"job {record.local_id} failed without a clear message: {error.kind}: {error.message!r}"
                )
        else:
            out.lost += 1
            out.problems.append(f"job {record.local_id} ended {record.state.value}")
    return out


def charge_count(server_jobs: Iterable[dict[str, Any]], outcome: Outcome) -> Outcome:
    """Charged twice = server jobs beyond one per idempotency key (plus any without a key:
    the client always sends one, so such a job could be a duplicate nobody can detect)."""
    jobs = [j for j in server_jobs if j.get("source") != "blob"]
    keys = Counter(j.get("idempotency_key") for j in jobs)
    outcome.charged = len(jobs)
    outcome.distinct_keys = len([k for k in keys if k])
    outcome.charged_twice = sum(n - 1 for k, n in keys.items() if k) + keys.get(None, 0)
    return outcome


def check_accounting(records: Iterable[JobRecord], server_jobs: list[dict[str, Any]],
                     outcome: Outcome) -> None:
    """Every server job must belong to a local job (same key); a local job with a job id
    must be the server's job for its key."""
    by_key = {j.get("idempotency_key"): j for j in server_jobs}
    local_keys = set()
    for record in records:
        local_keys.add(record.idempotency_key)
        server = by_key.get(record.idempotency_key)
        if record.job_id and server is not None and server["job_id"] != record.job_id:
            outcome.problems.append(
                f"job {record.local_id} tracks {record.job_id} but the server made {server['job_id']} for its key"
            )
    strangers = [j["job_id"] for j in server_jobs if j.get("idempotency_key") not in local_keys]
    if strangers:
        outcome.problems.append(f"server jobs no local job knows: {strangers[:5]}")
