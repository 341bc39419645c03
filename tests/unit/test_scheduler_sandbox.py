"""End to end: the scheduler with the real HiptahClient against the local sandbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.magic import looks_like
from hiptah_blender.jobs.records import JobState
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def _scheduler(sb: Any, tmp_path: Path, **config: Any) -> Scheduler:
    config.setdefault("poll_interval", 0.25)
    cfg = SchedulerConfig(download_dir=str(tmp_path / "models"), **config)
    return Scheduler(
        lambda: HiptahClient(sb.api_key, sb.base_url, max_retries=2, timeout=10),
        JobStore(tmp_path / "jobs.json"),
        cfg,
    )


def _generate_posts(sb: Any) -> list[dict[str, Any]]:
    return [
        r for r in sb.requests_log() if r["method"] == "POST" and r["path"].endswith("/generate")
    ]


def test_five_jobs_concurrency_two_against_the_sandbox(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(latency=1.0)
    # The sandbox answers 429 if more than 2 of this key's jobs run at once.
    sb.set_plan(concurrency=2)
    sched = _scheduler(sb, tmp_path, max_concurrent=2)
    ids = [
        sched.submit(f"a wooden crate number {i}", format="glb", quality="draft").local_id
        for i in range(5)
    ]
    t0 = time.monotonic()
    records = sched.run_until(ids, timeout=120)
    took = time.monotonic() - t0
    sched.shutdown(wait=True)
    assert [r.state for r in records] == [JobState.DOWNLOADED] * 5, [
        (r.state, r.error) for r in records
    ]
    posts = _generate_posts(sb)
    assert [p["status"] for p in posts if p["status"] == 429] == []  # never over the limit
    jobs = {j["job_id"]: j for j in sb.jobs()}
    assert len(jobs) == 5  # one server job per local job
    for record in records:
        assert record.job_id in jobs
        assert jobs[record.job_id]["idempotency_key"] == record.idempotency_key
        assert record.file_path and looks_like("glb", Path(record.file_path).read_bytes()[:64])
    print(f"\n5 jobs of ~1 s at concurrency 2 against the sandbox: {took:.2f} s (ideal ~3 s)")


def test_sandbox_restart_gives_404_and_fails_the_job(make_sandbox: Any, tmp_path: Path) -> None:
    sb = make_sandbox(latency=30)
    sched = _scheduler(sb, tmp_path, poll_interval=0.2)
    local_id = sched.submit("a stone well").local_id
    sched.run_until([local_id], timeout=5, step=0.05)
    record = sched.get(local_id)
    assert record is not None and record.job_id and record.state.in_flight
    sb.forget()  # the server loses its jobs, as after a restart
    sched.notify_completed(record.job_id)  # poll now rather than at the 30 s ETA
    (record,) = sched.run_until([local_id], timeout=20)
    sched.shutdown()
    assert record.state is JobState.FAILED and record.error and record.error.kind == "NotFoundError"
    assert "no longer knows" in record.error.message


def test_crash_before_the_answer_resends_the_same_key(make_sandbox: Any, tmp_path: Path) -> None:
    """The POST reached the sandbox, the add-on died; the next start must not charge twice."""
    sb = make_sandbox(latency=0.5)
    sched = _scheduler(sb, tmp_path)
    local_id = sched.submit("a copper kettle").local_id
    deadline = time.monotonic() + 20
    while not sb.jobs() and time.monotonic() < deadline:
        sched.tick()
        time.sleep(0.01)
    sched.shutdown(wait=True)  # the answer is never applied: the store still says SUBMITTING
    (stored,) = JobStore(tmp_path / "jobs.json").load()
    assert stored.state in (JobState.SUBMITTING, JobState.QUEUED)
    again = _scheduler(sb, tmp_path)
    (record,) = again.run_until([local_id], timeout=60)
    again.shutdown(wait=True)
    assert record.state is JobState.DOWNLOADED
    assert len(sb.jobs()) == 1
    assert sb.state()["generations_used"] == 1
