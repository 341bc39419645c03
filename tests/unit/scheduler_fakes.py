"""Test doubles for the scheduler: a controllable clock, a manual executor and a
fake HiPtah server/client with scripted behaviour. No network, no sleeps."""

from __future__ import annotations

import itertools
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiptah_blender.client import errors
from hiptah_blender.client.models import GenerateRequest, GenerateResponse, Job, JobError
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore

WALL0 = 1_750_000_000.0


class FakeClock:
    """Monotonic seconds you move by hand; ``wall`` is the matching time.time()."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def wall(self) -> float:
        with self._lock:
            return WALL0 + self.t

    def advance(self, dt: float) -> float:
        with self._lock:
            self.t += dt
            return self.t


class ManualExecutor(Executor):
    """Runs nothing until told: tests decide when (and in which order) workers finish."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.pending.append((lambda: fn(*args, **kwargs), args, future))
        return future

    def run_one(self, index: int = 0) -> None:
        call, _, future = self.pending.pop(index)
        try:
            future.set_result(call())
        except BaseException as exc:  # pragma: no cover - workers catch their own errors
            future.set_exception(exc)

    def run_all(self) -> int:
        """Run what is pending now (not what those runs enqueue)."""
        n = len(self.pending)
        for _ in range(n):
            self.run_one(0)
        return n

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.pending.clear()


@dataclass
class ServerJob:
    job_id: str
    key: str | None
    request: GenerateRequest
    created: float
    duration: float
    outcome: str = "completed"  # or "failed"
    cancelled: bool = False


@dataclass
class FakeServer:
    """The server side: jobs, idempotency keys, scripted faults. Time from ``clock``."""

    clock: FakeClock | RealClock
    duration: float = 30.0
    eta: float | None = 30.0
    jobs: dict[str, ServerJob] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    generate_calls: list[str | None] = field(default_factory=list)
    poll_calls: list[tuple[str, float]] = field(default_factory=list)
    download_calls: list[str] = field(default_factory=list)
    # Scripted exceptions, consumed one per call (None entries mean "succeed").
    generate_faults: list[BaseException | None] = field(default_factory=list)
    poll_faults: dict[str, list[BaseException | None]] = field(default_factory=dict)
    download_faults: list[BaseException | None] = field(default_factory=list)
    network_down: bool = False
    forget_all: bool = False  # the server was restarted: every job id is unknown (404)
    durations: dict[str, float] = field(default_factory=dict)  # prompt -> duration
    outcomes: dict[str, str] = field(default_factory=dict)  # prompt -> "failed"
    status_override: dict[str, str] = field(default_factory=dict)  # job id -> raw status
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, job: ServerJob) -> str:
        if self.clock() >= job.created + job.duration:
            return job.outcome
        return "processing" if self.clock() >= job.created + 1.0 else "queued"

    def running_count(self) -> int:
        return sum(1 for j in self.jobs.values() if self.status(j) in ("queued", "processing"))


class FakeClient:
    """Implements the scheduler's ClientLike over a FakeServer."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def _fault(self, faults: list[BaseException | None]) -> None:
        if self.server.network_down:
            raise errors.APIConnectionError()
        if faults:
            exc = faults.pop(0)
            if exc is not None:
                raise exc

    def generate(
        self,
        request: GenerateRequest,
        idempotency_key: str | None = None,
        *,
        deadline: float | None = None,
    ) -> GenerateResponse:
        s = self.server
        with s.lock:
            s.generate_calls.append(idempotency_key)
            self._fault(s.generate_faults)
            if idempotency_key in s.by_key:
                job = s.jobs[s.by_key[idempotency_key]]
            else:
                job_id = f"gen_{next(s._ids):04d}"
                duration = s.durations.get(request.prompt, s.duration)
                job = ServerJob(job_id, idempotency_key, request, s.clock(), duration)
                job.outcome = s.outcomes.get(request.prompt, "completed")
                s.jobs[job_id] = job
                if idempotency_key:
                    s.by_key[idempotency_key] = job_id
            return GenerateResponse(
                job_id=job.job_id, status=s.status(job), estimated_time_seconds=s.eta
            )

    def get_job(self, job_id: str, *, deadline: float | None = None) -> Job:
        s = self.server
        with s.lock:
            s.poll_calls.append((job_id, s.clock()))
            self._fault(s.poll_faults.get(job_id, []))
            if s.forget_all or job_id not in s.jobs:
                raise errors.NotFoundError(status=404)
            job = s.jobs[job_id]
            status = s.status_override.get(job_id) or s.status(job)
            data: dict[str, Any] = {"job_id": job_id, "status": status}
            if status == "processing":
                data["progress"] = int(100 * (s.clock() - job.created) / job.duration)
            if status == "completed":
                data["model_url"] = f"https://cdn.example/{job_id}.{job.request.format}"
                data["expires_at"] = "2030-01-01T00:00:00Z"
                data["format"] = job.request.format
            if status == "failed":
                data["error"] = JobError(code="generation_failed", message="mesh did not converge")
            return Job(**data)

    def download(
        self,
        job: Job,
        dest_dir: str | os.PathLike[str],
        *,
        on_progress: Callable[[int, int | None], None] | None = None,
        filename: str | None = None,
    ) -> Path:
        s = self.server
        with s.lock:
            s.download_calls.append(job.job_id)
            self._fault(s.download_faults)
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        fmt = job.format or "glb"
        path = dest / (filename or f"{job.job_id}.{fmt}")
        data = b"glTF" + b"\0" * 1020
        if on_progress:
            on_progress(512, len(data))
            on_progress(len(data), len(data))
        path.write_bytes(data)
        return path


@dataclass
class Rig:
    """A scheduler wired to fakes, with helpers to step it deterministically."""

    scheduler: Scheduler
    server: FakeServer
    clock: FakeClock
    executor: ManualExecutor
    store: JobStore | None
    events: list[Any] = field(default_factory=list)

    def tick(self) -> list[Any]:
        ev = self.scheduler.tick()
        self.events.extend(ev)
        return ev

    def step(self, dt: float = 0.0, *, rounds: int = 3) -> None:
        """Advance the clock, then tick/run workers until nothing new starts."""
        if dt:
            self.clock.advance(dt)
        for _ in range(rounds):
            self.tick()
            if not self.executor.run_all():
                break
        self.tick()

    def run_for(self, seconds: float, dt: float = 0.25) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            self.step(dt)

    def state(self, local_id: str) -> str:
        record = self.scheduler.get(local_id)
        assert record is not None
        return record.state.value


def make_rig(
    tmp_path: Path | None = None,
    *,
    store: bool = False,
    server: FakeServer | None = None,
    clock: FakeClock | None = None,
    seed: int | None = None,
    **config: Any,
) -> Rig:
    clock = clock or FakeClock()
    server = server or FakeServer(clock)
    executor = ManualExecutor()
    job_store = JobStore(tmp_path / "jobs.json") if store and tmp_path is not None else None
    config.setdefault(
        "download_dir", str(tmp_path / "models") if tmp_path else "/tmp/hiptah-test-models"
    )
    cfg = SchedulerConfig(**config)
    client = FakeClient(server)
    sched = Scheduler(
        lambda: client, job_store, cfg, clock=clock, wall_clock=clock.wall, executor=executor
    )
    if seed is not None:
        random.seed(seed)
    return Rig(sched, server, clock, executor, job_store)


class RealClock:
    """The real clocks, shaped like FakeClock, for tests with real threads."""

    def __call__(self) -> float:
        import time

        return time.monotonic()

    def wall(self) -> float:
        import time

        return time.time()
