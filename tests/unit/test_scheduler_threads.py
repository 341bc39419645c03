"""The scheduler with real worker threads and real clocks (small timeouts, fake server)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hiptah_blender.jobs.records import JobEvent, JobState
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore

from .scheduler_fakes import FakeClient, FakeServer, RealClock

pytestmark = pytest.mark.timeout(60)


def _scheduler(tmp_path: Path, server: FakeServer, **config: object) -> Scheduler:
    config.setdefault("poll_interval", 0.1)
    config.setdefault("min_first_poll", 0.05)
    cfg = SchedulerConfig(download_dir=str(tmp_path / "models"), **config)  # type: ignore[arg-type]
    client = FakeClient(server)
    return Scheduler(lambda: client, JobStore(tmp_path / "jobs.json"), cfg)


def test_run_until_with_real_threads(tmp_path: Path) -> None:
    server = FakeServer(RealClock(), duration=0.3, eta=0.3)
    sched = _scheduler(tmp_path, server, max_concurrent=2)
    ids = [sched.submit(f"job {i}").local_id for i in range(5)]
    events: list[JobEvent] = []
    t0 = time.monotonic()
    records = sched.run_until(ids, timeout=20, on_events=events.extend)
    took = time.monotonic() - t0
    assert [r.state for r in records] == [JobState.DOWNLOADED] * 5
    assert all(r.file_path and Path(r.file_path).is_file() for r in records)
    assert len(server.jobs) == 5
    # 3 waves of 0.3 s at concurrency 2: ideal 0.9 s.
    # A figure, not a timed assertion (shared, noisy machines): bench.py measures throughput.
    print(f"\n5 jobs x 0.3 s at concurrency 2: {took:.2f} s (ideal 0.90 s)")
    assert sum(1 for e in events if e.kind == "downloaded") == 5
    sched.shutdown(wait=True)
    stored = JobStore(tmp_path / "jobs.json").load()
    assert sorted(r.local_id for r in stored) == sorted(ids)
    assert all(r.state is JobState.DOWNLOADED for r in stored)


def test_run_until_timeout_returns_active_jobs(tmp_path: Path) -> None:
    server = FakeServer(RealClock(), duration=30, eta=30)
    sched = _scheduler(tmp_path, server)
    local_id = sched.submit("slow").local_id
    t0 = time.monotonic()
    (record,) = sched.run_until([local_id], timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 2
    assert record.state is JobState.QUEUED
    sched.shutdown()


def test_shutdown_then_resume_finishes_the_job(tmp_path: Path) -> None:
    server = FakeServer(RealClock(), duration=0.5, eta=0.5)
    sched = _scheduler(tmp_path, server)
    local_id = sched.submit("resume me").local_id
    sched.run_until([local_id], timeout=0.2)
    assert sched.get(local_id).state is JobState.QUEUED  # type: ignore[union-attr]
    sched.shutdown()
    again = _scheduler(tmp_path, server)
    (record,) = again.run_until([local_id], timeout=10)
    assert record.state is JobState.DOWNLOADED and len(server.jobs) == 1
    again.shutdown()


def test_notify_completed_from_another_thread(tmp_path: Path) -> None:
    server = FakeServer(RealClock(), duration=0.2, eta=20)  # ETA far too pessimistic
    sched = _scheduler(tmp_path, server)
    local_id = sched.submit("webhook").local_id
    sched.run_until([local_id], timeout=0.1)
    job_id = sched.get(local_id).job_id  # type: ignore[union-attr]
    assert job_id

    def webhook() -> None:
        time.sleep(0.3)
        sched.notify_completed(job_id)

    threading.Thread(target=webhook).start()
    t0 = time.monotonic()
    (record,) = sched.run_until([local_id], timeout=10)
    assert record.state is JobState.DOWNLOADED
    assert time.monotonic() - t0 < 2  # not the 20 s ETA
    sched.shutdown()


def test_tick_cost_with_30_jobs_and_real_threads(tmp_path: Path) -> None:
    """Print tick() cost with 30 jobs in flight polled by real workers (no timing assertion)."""
    server = FakeServer(RealClock(), duration=1000, eta=0.1)
    sched = _scheduler(tmp_path, server, max_concurrent=30, poll_interval=0.1)
    for i in range(30):
        sched.submit(f"job {i}")
    end = time.monotonic() + 0.5
    while time.monotonic() < end and sched.in_flight() < 30:
        sched.tick()
        time.sleep(0.01)
    samples = []
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        t = time.perf_counter()
        sched.tick()
        samples.append(time.perf_counter() - t)
        time.sleep(0.01)
    samples.sort()
    polls = len(server.poll_calls)
    sched.shutdown()
    p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    print(
        f"\ntick() with 30 jobs in flight, real threads ({len(samples)} ticks, {polls} polls): "
        f"p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, max {samples[-1] * 1e3:.3f} ms"
    )
    assert polls > 100
