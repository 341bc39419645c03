"""hiptah_blender.batch.runner against the sandbox (no Blender): concurrency, plan-limit stop and
resume without a second generation, library hand-off order."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hiptah_blender.batch.inputs import Row, load_rows
from hiptah_blender.batch.progress import Progress
from hiptah_blender.batch.runner import BatchRunner
from hiptah_blender.batch.state import PENDING, PLAN_LIMIT, BatchState
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.jobs.records import JobRecord, JobState
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore
from sandbox.harness import SandboxServer


def make_rows(tmp_path: Path, n: int) -> list[Row]:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(f"a small cube number {i}\n" for i in range(n)), encoding="utf-8")
    return load_rows(path, default_quality="draft")


def make_scheduler(sb: SandboxServer, state: BatchState, concurrency: int) -> Scheduler:
    config = SchedulerConfig(
        max_concurrent=concurrency, poll_interval=0.2, download_dir=str(state.models_dir), job_deadline=60
    )
    return Scheduler(lambda: HiptahClient(sb.api_key, sb.base_url), JobStore(state.store_path), config)


def run_batch(
    sb: SandboxServer, state: BatchState, rows: list[Row], concurrency: int, **kwargs: Any
) -> tuple[BatchRunner, Any]:
    scheduler = make_scheduler(sb, state, concurrency)
    try:
        runner = BatchRunner(rows, scheduler, state, concurrency=concurrency,
                             progress=Progress(io.StringIO(), tty=False), **kwargs)
        runner.prepare()
        return runner, runner.run()
    finally:
        scheduler.shutdown(wait=True)


def generate_posts(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests_log() if r["method"] == "POST" and r["path"].endswith("/generate")]


def test_plan_limit_stops_submitting_and_a_rerun_finishes_without_duplicates(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.set_plan(quota=5)
    sandbox.set_faults(latency=0.3)
    rows = make_rows(tmp_path, 9)
    state = BatchState(tmp_path / "out")

    _runner, result = run_batch(sandbox, state, rows, concurrency=2)
    assert result.stopped is not None and "monthly generation limit" in result.stopped
    assert not result.ok
    assert result.counts.done == 5
    statuses = [e.status for e in state.load_manifest().values()]
    assert statuses.count("downloaded") == 5
    # At most `concurrency` requests can be refused before the stop takes effect;
    # everything else stays pending, unsent.
    refused = statuses.count(PLAN_LIMIT)
    assert 1 <= refused <= 2
    assert statuses.count(PENDING) == 9 - 5 - refused
    # Rows sent = distinct idempotency keys (a retried POST reuses its key).
    assert len({p["idempotency_key"] for p in generate_posts(sandbox)}) == 5 + refused

    sandbox.set_plan(quota=100)
    _runner, result = run_batch(sandbox, state, rows, concurrency=2)
    assert result.ok and result.counts.done == 9
    jobs = sandbox.jobs()
    assert len(jobs) == 9  # one server job per row
    assert sorted(j["prompt"] for j in jobs) == sorted(r.prompt for r in rows)
    assert len({j["idempotency_key"] for j in jobs}) == 9


def test_never_more_than_concurrency_in_flight(sandbox: SandboxServer, tmp_path: Path) -> None:
    # The sandbox answers 429 to a fourth concurrent job: any would show in the log.
    sandbox.set_plan(concurrency=3)
    sandbox.set_faults(latency=0.4)
    rows = make_rows(tmp_path, 10)
    _runner, result = run_batch(sandbox, BatchState(tmp_path / "out"), rows, concurrency=3)
    assert result.ok
    posts = generate_posts(sandbox)
    assert len(posts) == 10
    assert all(p["status"] != 429 for p in posts)


class FakeLibrary:
    """Records calls; fails on one row; checks jobs are marked imported only after a save."""

    def __init__(self, scheduler_ref: list[Scheduler], fail_key: str | None = None) -> None:
        self.dirty = False
        self.items: dict[str, Any] = {}
        self.saved: dict[str, Any] = {}
        self.saves = 0
        self.fail_key = fail_key
        self.scheduler_ref = scheduler_ref

    def add(self, item: tuple[str, JobRecord]) -> str:
        key, record = item
        if key == self.fail_key:
            raise RuntimeError("cannot import this one")
        self.items[key] = record
        self.dirty = True
        return f"asset-{key}"

    def save(self) -> None:
        for record in self.items.values():
            current = self.scheduler_ref[0].get(record.local_id)
            assert current is not None and current.state is JobState.DOWNLOADED  # not yet marked
        self.saved.update(self.items)
        self.items.clear()
        self.saves += 1
        self.dirty = False

    def find(self, row_key: str) -> object:
        return self.saved.get(row_key)


def test_library_hand_off_marks_imported_after_saving(sandbox: SandboxServer, tmp_path: Path) -> None:
    rows = make_rows(tmp_path, 4)
    state = BatchState(tmp_path / "out")
    scheduler = make_scheduler(sandbox, state, 2)
    library = FakeLibrary([scheduler], fail_key=rows[1].key)
    try:
        runner = BatchRunner(rows, scheduler, state, concurrency=2, library=library,
                             item_factory=lambda key, record: (key, record), save_interval=0.0)
        runner.prepare()
        result = runner.run()
    finally:
        scheduler.shutdown(wait=True)
    assert set(library.saved) == {rows[0].key, rows[2].key, rows[3].key}
    assert result.counts.done == 3 and result.counts.failed == 1 and not result.ok
    by_key = {r.key: s for r, s in zip(rows, result.summary, strict=True)}
    assert by_key[rows[1].key].status == "import-failed"
    assert by_key[rows[0].key].status == "imported" and f"asset-{rows[0].key}" in by_key[rows[0].key].detail
    manifest = state.load_manifest()
    assert manifest[rows[0].key].asset == f"asset-{rows[0].key}"
    assert manifest[rows[1].key].status == "downloaded"  # kept: a re-run imports it again

    # A re-run retries the import only (no new generation); the library now accepts it.
    posts_before = len(generate_posts(sandbox))
    library.fail_key = None
    scheduler = make_scheduler(sandbox, state, 2)
    library.scheduler_ref[0] = scheduler
    try:
        runner = BatchRunner(rows, scheduler, state, concurrency=2, library=library,
                             item_factory=lambda key, record: (key, record))
        runner.prepare()
        assert runner.to_import == [rows[1].key] and runner.to_feed == []
        result = runner.run()
    finally:
        scheduler.shutdown(wait=True)
    assert result.ok and result.counts.done == 4
    assert len(generate_posts(sandbox)) == posts_before


def test_failed_jobs_are_reported_and_polled_again_on_rerun(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.set_faults(fail_rate=1.0)
    rows = make_rows(tmp_path, 2)
    state = BatchState(tmp_path / "out")
    _runner, result = run_batch(sandbox, state, rows, concurrency=2)
    assert result.counts.failed == 2 and result.stopped is None
    assert all(s.status == "failed" and s.job_id for s in result.summary)
    # The re-run asks about the same jobs (no new generation): they are still failed.
    _runner, result = run_batch(sandbox, state, rows, concurrency=2)
    assert result.counts.failed == 2
    assert len(sandbox.jobs()) == 2
