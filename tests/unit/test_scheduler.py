"""Scheduler behaviour with a fake clock, a manual executor and a fake server.

Deterministic: no sleeps, no network; workers run only when the test says so.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from hiptah_blender.client import errors
from hiptah_blender.jobs.records import JobRecord, JobState
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore

from .scheduler_fakes import FakeClient, FakeClock, FakeServer, ManualExecutor, Rig, make_rig

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _submitted(rig: Rig, prompt: str = "a red chair", **kw: object) -> str:
    record = rig.scheduler.submit(prompt, **kw)  # type: ignore[arg-type]
    rig.step()
    return record.local_id


def _record(rig: Rig, local_id: str) -> JobRecord:
    record = rig.scheduler.get(local_id)
    assert record is not None
    return record


# ----------------------------------------------------------------------------- submit


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"prompt": ""}, errors.InvalidPromptError),
        ({"prompt": "   "}, errors.InvalidPromptError),
        ({"prompt": "x" * 501}, errors.InvalidPromptError),
        ({"prompt": "a <b>bold</b> chair"}, errors.InvalidPromptError),
        ({"prompt": "chair", "format": "obj"}, errors.UnsupportedFormatError),
        ({"prompt": "chair", "quality": "ultra"}, errors.InvalidQualityError),
        ({"prompt": "chair", "callback_url": "http://example.com/hook"}, errors.InvalidPromptError),
        ({"prompt": "", "image_path": "/nonexistent/picture.png"}, errors.InvalidImageError),
    ],
)
def test_submit_validates_before_queueing(kwargs: dict, error: type[Exception]) -> None:
    rig = make_rig()
    prompt = kwargs.pop("prompt")
    with pytest.raises(error):
        rig.scheduler.submit(prompt, **kwargs)
    assert rig.scheduler.jobs() == []
    assert rig.tick() == []


def test_submit_returns_a_waiting_copy_and_an_event() -> None:
    rig = make_rig()
    record = rig.scheduler.submit("  a red chair  ", format="GLB", meta={"row": 1})
    assert (
        record.state is JobState.WAITING
        and record.prompt == "a red chair"
        and record.format == "glb"
    )
    record.prompt = "mutated"  # a copy: the scheduler's record is unaffected
    assert _record(rig, record.local_id).prompt == "a red chair"
    # Reported by the next tick, with the SUBMITTING transition that tick starts.
    first, second = rig.tick()
    assert (first.kind, first.previous_state, first.job.state) == ("state", None, JobState.WAITING)
    assert second.previous_state is JobState.WAITING and second.job.state is JobState.SUBMITTING


def test_happy_path_events_and_timeline(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    local_id = _submitted(rig)
    record = _record(rig, local_id)
    assert (
        record.state is JobState.QUEUED and record.job_id == "gen_0001" and record.eta_seconds == 30
    )
    rig.run_for(35)
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED
    assert record.file_path and Path(record.file_path).read_bytes().startswith(b"glTF")
    assert record.file_size == 1024 and record.model_url and record.completed_at
    assert rig.server.poll_calls == [("gen_0001", 130.0)]  # one poll, at the ETA
    transitions = [(e.previous_state, e.job.state) for e in rig.events if e.kind != "progress"]
    assert transitions == [
        (None, JobState.WAITING),
        (JobState.WAITING, JobState.SUBMITTING),
        (JobState.SUBMITTING, JobState.QUEUED),
        (JobState.QUEUED, JobState.DOWNLOADING),
        (JobState.DOWNLOADING, JobState.DOWNLOADED),
    ]
    assert rig.events[-1].kind == "downloaded"
    notes = [t.what for t in record.timeline]
    assert notes[0] == "queued" and any("accepted as gen_0001" in n for n in notes)
    assert notes[-1].startswith("downloaded")
    assert not rig.scheduler.has_active()


def test_image_job_reads_the_file_in_the_worker(tmp_path: Path) -> None:
    image = tmp_path / "ref.png"
    image.write_bytes(PNG)
    rig = make_rig(tmp_path, store=True)
    local_id = _submitted(rig, "", image_path=str(image))
    job = rig.server.jobs["gen_0001"]
    assert job.request.image and job.request.image.startswith("data:image/png;base64,")
    assert _record(rig, local_id).image_path == str(image)
    rig.scheduler.flush()
    text = (tmp_path / "jobs.json").read_text()
    assert "base64" not in text and str(image) in text


def test_image_deleted_before_sending_fails_the_job(tmp_path: Path) -> None:
    image = tmp_path / "ref.png"
    image.write_bytes(PNG)
    rig = make_rig(tmp_path)
    record = rig.scheduler.submit("", image_path=str(image))
    image.unlink()
    rig.step()
    failed = _record(rig, record.local_id)
    assert (
        failed.state is JobState.FAILED
        and failed.error
        and failed.error.kind == "InvalidImageError"
    )
    assert rig.server.generate_calls == []


# ----------------------------------------------------------------------------- concurrency


def test_concurrency_limit_and_fifo() -> None:
    rig = make_rig(max_concurrent=3)
    rig.server.duration = 10
    rig.server.eta = 10
    ids = [rig.scheduler.submit(f"job {i}").local_id for i in range(8)]
    max_seen = 0
    order: list[str] = []
    for _ in range(400):
        rig.step(0.25)
        max_seen = max(max_seen, rig.scheduler.in_flight())
        for i in ids:
            if _record(rig, i).job_id and i not in order:
                order.append(i)
        if not rig.scheduler.has_active():
            break
    assert max_seen == 3
    assert order == ids  # first in, first sent
    assert all(_record(rig, i).state is JobState.DOWNLOADED for i in ids)
    assert len(rig.server.jobs) == 8


def test_downloads_do_not_count_against_the_limit() -> None:
    rig = make_rig(max_concurrent=1)
    rig.server.duration = rig.server.eta = 5
    a = rig.scheduler.submit("a").local_id
    b = rig.scheduler.submit("b").local_id
    rig.step()
    assert rig.state(b) == "waiting"
    rig.clock.advance(5)
    rig.tick()  # a's poll launched
    rig.executor.run_all()
    rig.tick()  # completed: download launched, and the freed slot is used in the same tick
    assert rig.state(a) == "downloading"
    assert rig.state(b) == "submitting"


# ----------------------------------------------------------------------------- poll timing


def test_poll_schedule_eta_interval_backoff_cap_and_deadline() -> None:
    rig = make_rig(job_deadline=600)
    rig.server.duration = 10_000
    local_id = _submitted(rig)
    t0 = rig.server.jobs["gen_0001"].created
    rig.run_for(700, dt=0.25)
    times = [t - t0 for _, t in rig.server.poll_calls]
    assert times[0] == 30  # first poll at the ETA
    gaps = [b - a for a, b in itertools.pairwise(times)]
    early = [g for a, g in zip(times, gaps, strict=False) if a < 120]
    assert all(g == pytest.approx(2.0, abs=0.26) for g in early)
    late = [g for a, g in zip(times, gaps, strict=False) if a >= 120][:-1]  # last one: clamped
    assert late[0] == pytest.approx(3.0, abs=0.26)
    assert all(b >= a - 0.26 for a, b in itertools.pairwise(late))  # growing
    assert max(gaps) <= 30.25 and max(gaps) >= 29.75  # capped at 30 s
    assert times[-1] == pytest.approx(600, abs=0.26)  # last look at the deadline
    record = _record(rig, local_id)
    assert record.state is JobState.FAILED
    assert record.error and record.error.kind == "JobTimeoutError" and record.error.retryable
    assert len(rig.server.generate_calls) == 1

    # retry() keeps polling the same server job with a fresh deadline, never a new job.
    polls = len(rig.server.poll_calls)
    rig.server.jobs["gen_0001"].duration = 720
    rig.scheduler.retry(local_id)
    rig.run_for(60)
    assert len(rig.server.poll_calls) > polls
    assert {j for j, _ in rig.server.poll_calls} == {"gen_0001"}
    assert _record(rig, local_id).state is JobState.DOWNLOADED
    assert len(rig.server.generate_calls) == 1


def test_job_without_eta_polls_every_interval() -> None:
    rig = make_rig()
    rig.server.eta = None
    rig.server.duration = 7
    _submitted(rig)
    rig.run_for(10)
    t0 = rig.server.jobs["gen_0001"].created
    assert [t - t0 for _, t in rig.server.poll_calls] == [2, 4, 6, 8]


def test_late_job_detected_within_one_interval() -> None:
    rig = make_rig()
    rig.server.eta = 20
    rig.server.duration = 23.1
    local_id = _submitted(rig)
    rig.run_for(30)
    record = _record(rig, local_id)
    t0 = rig.server.jobs["gen_0001"].created
    detected = rig.server.poll_calls[-1][1] - t0
    assert 23.1 <= detected < 23.1 + 2.0
    assert len(rig.server.poll_calls) == 3  # 20, 22, 24
    assert record.state is JobState.DOWNLOADED


def test_unknown_status_counts_as_running() -> None:
    rig = make_rig()
    rig.server.duration = 10_000
    local_id = _submitted(rig)
    rig.server.status_override["gen_0001"] = "warming_up"
    rig.run_for(40)
    record = _record(rig, local_id)
    assert record.state is JobState.QUEUED and record.server_status == "unknown"
    assert len(rig.server.poll_calls) >= 5
    rig.server.status_override.clear()
    rig.server.jobs["gen_0001"].duration = 1
    rig.run_for(3)
    assert rig.state(local_id) == "downloaded"


def test_progress_events() -> None:
    rig = make_rig()
    rig.server.eta = 2
    rig.server.duration = 10
    local_id = _submitted(rig)
    rig.run_for(12)
    progress = [
        e.job.progress
        for e in rig.events
        if e.kind == "progress" and e.job.state is JobState.PROCESSING
    ]
    assert progress == sorted(progress) and len(progress) >= 3
    assert _record(rig, local_id).state is JobState.DOWNLOADED


def test_tick_with_nothing_to_do_reports_nothing() -> None:
    rig = make_rig()
    _submitted(rig)
    rig.events.clear()
    for _ in range(10):
        assert rig.tick() == []


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "exc",
    [
        errors.PlanLimitError(status=403),
        errors.AuthenticationError(status=401),
        errors.InvalidPromptError(status=400),
        errors.UnsupportedFormatError(status=422),
    ],
)
def test_definitive_submit_errors_fail_without_retry(exc: errors.HiptahError) -> None:
    rig = make_rig()
    rig.server.generate_faults = [exc]
    local_id = _submitted(rig)
    rig.run_for(30)
    record = _record(rig, local_id)
    assert record.state is JobState.FAILED and record.error and record.error.kind == exc.kind
    assert record.error.hint and not record.error.retryable
    assert len(rig.server.generate_calls) == 1
    assert rig.events[-1].kind == "failed"


def test_429_on_submit_waits_for_retry_after_then_sends_same_key() -> None:
    rig = make_rig(max_concurrent=5)
    rig.server.generate_faults = [errors.RateLimitError(status=429, retry_after=12.0)]
    a = rig.scheduler.submit("a").local_id
    rig.step()
    assert rig.state(a) == "waiting"
    b = rig.scheduler.submit("b").local_id
    rig.run_for(11.5)
    assert rig.state(a) == "waiting" and rig.state(b) == "waiting"  # everyone holds
    assert len(rig.server.generate_calls) == 1
    rig.run_for(1.0)
    assert rig.state(a) == "queued" and rig.state(b) == "queued"
    key = _record(rig, a).idempotency_key
    assert rig.server.generate_calls[:2] == [key, key]
    assert any("429" in t.what for t in _record(rig, a).timeline)


def test_network_down_on_submit_keeps_the_job_and_the_key() -> None:
    rig = make_rig()
    rig.server.network_down = True
    local_id = _submitted(rig)
    rig.run_for(120)
    record = _record(rig, local_id)
    assert record.state is JobState.SUBMITTING and record.error is None
    calls = len(rig.server.generate_calls)
    assert 3 <= calls <= 15  # backed off, not hammering
    rig.server.network_down = False
    rig.run_for(70)  # the next attempt (backed off <= 30 s), then the job's 30 s
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED
    assert set(rig.server.generate_calls) == {record.idempotency_key}
    assert len(rig.server.jobs) == 1


def test_lost_answer_resend_returns_the_same_job() -> None:
    """The server created the job but the answer got lost: the re-send must not double-charge."""
    rig = make_rig()
    server = rig.server
    real = FakeClient.generate

    def lossy(self: FakeClient, request, idempotency_key=None, *, deadline=None):  # type: ignore[no-untyped-def]
        response = real(self, request, idempotency_key, deadline=deadline)
        if len(server.generate_calls) == 1:
            raise errors.APITimeoutError()
        return response

    FakeClient.generate = lossy  # type: ignore[method-assign]
    try:
        local_id = _submitted(rig)
        rig.run_for(40)
    finally:
        FakeClient.generate = real  # type: ignore[method-assign]
    assert len(server.generate_calls) == 2 and len(server.jobs) == 1
    assert rig.state(local_id) == "downloaded"


def test_submit_gives_up_at_the_deadline() -> None:
    rig = make_rig(job_deadline=60)
    rig.server.network_down = True
    local_id = _submitted(rig)
    rig.run_for(100)
    record = _record(rig, local_id)
    assert (
        record.state is JobState.FAILED
        and record.error
        and record.error.kind == "APIConnectionError"
    )
    assert record.error.retryable
    key = record.idempotency_key
    rig.server.network_down = False
    rig.scheduler.retry(local_id)
    rig.run_for(40)
    assert rig.state(local_id) == "downloaded"
    assert set(rig.server.generate_calls) == {key}  # never a new key


def test_network_down_while_polling_never_fails_before_deadline() -> None:
    rig = make_rig()
    rig.server.duration = 60
    local_id = _submitted(rig)
    rig.run_for(25)
    rig.server.network_down = True
    rig.run_for(100)
    record = _record(rig, local_id)
    assert record.state is JobState.QUEUED and record.error is None
    assert any("poll failed (APIConnectionError)" in t.what for t in record.timeline)
    rig.server.network_down = False
    rig.run_for(35)
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED
    assert any("succeeded again" in t.what for t in record.timeline)


def test_transient_poll_errors_do_not_fail_and_honour_retry_after() -> None:
    rig = make_rig()
    rig.server.duration = 31
    local_id = _submitted(rig)
    rig.server.poll_faults["gen_0001"] = [errors.RateLimitError(status=429, retry_after=9.0)]
    rig.run_for(45)
    t0 = rig.server.jobs["gen_0001"].created
    times = [t - t0 for _, t in rig.server.poll_calls]
    assert times[0] == 30 and times[1] == pytest.approx(39, abs=0.26)
    assert rig.state(local_id) == "downloaded"


def test_404_on_poll_fails_and_stops_polling() -> None:
    rig = make_rig()
    rig.server.duration = 100
    local_id = _submitted(rig)
    rig.server.forget_all = True  # the sandbox was restarted
    rig.run_for(40)
    record = _record(rig, local_id)
    assert record.state is JobState.FAILED and record.error and record.error.kind == "NotFoundError"
    assert "no longer knows job gen_0001" in record.error.message
    polls = len(rig.server.poll_calls)
    rig.run_for(100)
    assert len(rig.server.poll_calls) == polls == 1


def test_server_failure_becomes_job_failed_error() -> None:
    rig = make_rig()
    rig.server.outcomes["a broken chair"] = "failed"
    local_id = _submitted(rig, "a broken chair")
    rig.run_for(35)
    record = _record(rig, local_id)
    assert (
        record.state is JobState.FAILED and record.error and record.error.kind == "JobFailedError"
    )
    assert "mesh did not converge" in record.error.message
    assert rig.server.download_calls == []


def test_download_error_fails_retryably_and_retry_redownloads_without_regenerating() -> None:
    rig = make_rig()
    rig.server.download_faults = [errors.StorageError("disk full")]
    local_id = _submitted(rig)
    rig.run_for(35)
    record = _record(rig, local_id)
    assert record.state is JobState.FAILED and record.error and record.error.kind == "StorageError"
    assert record.error.retryable
    polls = len(rig.server.poll_calls)
    rig.scheduler.retry(local_id)
    rig.run_for(2)
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED and record.file_path
    assert len(rig.server.poll_calls) == polls + 1  # fetched a fresh URL first
    assert len(rig.server.generate_calls) == 1 and len(rig.server.download_calls) == 2


def test_transient_download_errors_are_retried_automatically() -> None:
    rig = make_rig()
    rig.server.download_faults = [errors.APIConnectionError(), errors.ServerError(status=502)]
    local_id = _submitted(rig)
    rig.run_for(60)
    assert rig.state(local_id) == "downloaded"
    assert len(rig.server.download_calls) == 3


def test_api_errors_while_refetching_a_link_do_not_use_up_download_attempts() -> None:
    # A cut download makes the scheduler ask the API for a fresh link; that API call
    # then times out several times (more often than download_retries). Like a poll, it
    # is retried until the deadline, and the job still downloads without regenerating.
    rig = make_rig()
    rig.server.download_faults = [errors.DownloadError("cut short")]
    local_id = _submitted(rig)
    job_id = _record(rig, local_id).job_id
    assert job_id
    rig.run_for(31)  # completed and first download attempt failed
    rig.server.poll_faults[job_id] = [errors.APITimeoutError() for _ in range(5)]
    rig.run_for(120)
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED, record.error
    assert len(rig.server.generate_calls) == 1 and len(rig.server.download_calls) == 2


def test_auto_download_off_finishes_with_the_url_only() -> None:
    rig = make_rig(auto_download=False)
    local_id = _submitted(rig)
    rig.run_for(35)
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED and record.file_path is None and record.model_url
    assert rig.server.download_calls == []
    rig.scheduler.reconfigure(
        config=SchedulerConfig(auto_download=True, download_dir=rig.scheduler.config.download_dir)
    )
    rig.scheduler.retry(local_id)  # downloads it now
    rig.run_for(2)
    assert _record(rig, local_id).file_path


# ----------------------------------------------------------------------------- cancel / retry / remove


def test_cancel_waiting_is_free() -> None:
    rig = make_rig(max_concurrent=1)
    a = _submitted(rig, "a")
    b = rig.scheduler.submit("b").local_id
    rig.step()
    assert rig.state(b) == "waiting"
    rig.scheduler.cancel(b)
    rig.run_for(40)
    record = _record(rig, b)
    assert record.state is JobState.CANCELLED and record.error is None
    assert "nothing was charged" in record.timeline[-1].what
    assert len(rig.server.generate_calls) == 1 and rig.state(a) == "downloaded"


def test_cancel_in_flight_stops_polling_and_retry_resumes_same_job() -> None:
    rig = make_rig()
    rig.server.duration = 50
    local_id = _submitted(rig)
    rig.run_for(32)
    rig.scheduler.cancel(local_id)
    events = rig.tick()
    assert [(e.kind, e.previous_state, e.job.state) for e in events] == [
        ("state", JobState.PROCESSING, JobState.CANCELLED)
    ]
    record = _record(rig, local_id)
    assert "server may still finish and charge job gen_0001" in record.timeline[-1].what
    assert record.error is None
    polls = len(rig.server.poll_calls)
    rig.run_for(40)
    assert len(rig.server.poll_calls) == polls
    rig.scheduler.retry(local_id)
    rig.run_for(2)
    assert rig.state(local_id) == "downloaded"
    assert len(rig.server.generate_calls) == 1


def test_cancel_while_submitting_keeps_the_server_job_id() -> None:
    rig = make_rig()
    record = rig.scheduler.submit("a")
    rig.tick()  # launches the POST
    rig.scheduler.cancel(record.local_id)
    rig.executor.run_all()  # the server accepts it anyway
    rig.tick()
    cancelled = _record(rig, record.local_id)
    assert cancelled.state is JobState.CANCELLED and cancelled.job_id == "gen_0001"
    rig.scheduler.retry(record.local_id)
    rig.run_for(35)
    assert rig.state(record.local_id) == "downloaded"
    assert len(rig.server.generate_calls) == 1


def test_cancel_during_download_discards_the_file(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    local_id = _submitted(rig)
    rig.clock.advance(30)
    rig.tick()
    rig.executor.run_all()  # poll -> completed
    rig.tick()  # -> DOWNLOADING, download launched
    assert rig.state(local_id) == "downloading"
    rig.scheduler.cancel(local_id)
    rig.executor.run_all()
    rig.tick()
    assert rig.state(local_id) == "cancelled"
    assert list((tmp_path / "models").glob("*.glb")) == []


def test_retry_of_refused_submission_uses_a_new_key_only_after_a_4xx() -> None:
    rig = make_rig()
    rig.server.generate_faults = [errors.PlanLimitError(status=403)]
    local_id = _submitted(rig)
    key = _record(rig, local_id).idempotency_key
    rig.scheduler.retry(local_id)
    rig.run_for(35)
    record = _record(rig, local_id)
    assert record.state is JobState.DOWNLOADED and record.idempotency_key != key


def test_retry_refuses_downloaded_and_ignores_active() -> None:
    rig = make_rig()
    local_id = _submitted(rig)
    assert rig.scheduler.retry(local_id).state is JobState.QUEUED  # active: unchanged
    rig.run_for(35)
    with pytest.raises(ValueError):
        rig.scheduler.retry(local_id)
    with pytest.raises(KeyError):
        rig.scheduler.retry("nope")


def test_remove_clear_finished_and_mark_imported() -> None:
    rig = make_rig(max_concurrent=1)
    done = _submitted(rig, "done")
    rig.run_for(35)
    active = _submitted(rig, "active")
    waiting = rig.scheduler.submit("waiting").local_id
    failed = rig.scheduler.submit("failed").local_id
    rig.scheduler.cancel(failed)
    with pytest.raises(ValueError):
        rig.scheduler.mark_imported(active, ["X"])
    rig.scheduler.mark_imported(done, ["Chair", "Chair.001"])
    record = _record(rig, done)
    assert record.state is JobState.IMPORTED and record.meta["imported_objects"] == [
        "Chair",
        "Chair.001",
    ]
    rig.events.clear()
    assert rig.scheduler.clear_finished() == 2
    rig.scheduler.remove(waiting)  # removing an active job cancels it first
    events = rig.tick()
    assert sorted(e.job.local_id for e in events if e.kind == "removed") == sorted(
        [done, failed, waiting]
    )
    assert [r.local_id for r in rig.scheduler.jobs()] == [active]
    rig.run_for(40)
    assert len(rig.server.generate_calls) == 2  # "waiting" was never sent
    rig.scheduler.remove("unknown")  # no error


def test_notify_completed_polls_now() -> None:
    rig = make_rig()
    rig.server.duration = 5
    local_id = _submitted(rig)  # ETA 30, but the job is done at 5 s
    rig.run_for(6)
    assert rig.server.poll_calls == []
    rig.scheduler.notify_completed("gen_0001", "https://cdn.example/x.glb")
    rig.step()
    rig.step()
    assert rig.state(local_id) == "downloaded"
    assert len(rig.server.poll_calls) == 1
    rig.scheduler.notify_completed("gen_unknown")  # ignored


def test_jobs_newest_first_and_copies() -> None:
    rig = make_rig()
    a = rig.scheduler.submit("a").local_id
    rig.clock.advance(1)
    b = rig.scheduler.submit("b").local_id
    jobs = rig.scheduler.jobs()
    assert [r.local_id for r in jobs] == [b, a]
    jobs[0].timeline.append(jobs[0].timeline[0])
    assert len(_record(rig, b).timeline) == 1
    assert rig.scheduler.get("nope") is None


def test_reconfigure_rebuilds_client_and_raises_limit() -> None:
    rig = make_rig(max_concurrent=1)
    ids = [rig.scheduler.submit(f"j{i}").local_id for i in range(3)]
    rig.step()
    assert rig.scheduler.in_flight() == 1
    built: list[FakeClient] = []

    def factory() -> FakeClient:
        built.append(FakeClient(rig.server))
        return built[-1]

    rig.scheduler.reconfigure(
        client_factory=factory,
        config=SchedulerConfig(max_concurrent=3, download_dir=rig.scheduler.config.download_dir),
    )
    rig.step()
    assert rig.scheduler.in_flight() == 3 and len(built) == 1
    rig.run_for(40)
    assert all(rig.state(i) == "downloaded" for i in ids)


def test_client_factory_error_fails_the_job_with_its_hint() -> None:
    clock = FakeClock()
    ex = ManualExecutor()

    def factory() -> FakeClient:
        raise errors.MissingAPIKeyError()

    sched = Scheduler(
        factory, None, SchedulerConfig(), clock=clock, wall_clock=clock.wall, executor=ex
    )
    local_id = sched.submit("a").local_id
    sched.tick()
    ex.run_all()
    sched.tick()
    record = sched.get(local_id)
    assert record and record.state is JobState.FAILED and record.error
    assert record.error.kind == "MissingAPIKeyError" and "API Keys" in record.error.hint


# ----------------------------------------------------------------------------- persistence and resume


def test_store_holds_no_secret(tmp_path: Path) -> None:
    key = "hk_live_SUPERSECRETKEY123"
    errors.register_secret(key)
    rig = make_rig(tmp_path, store=True)
    rig.server.generate_faults = [errors.AuthenticationError(f"key {key} refused", status=401)]
    _submitted(rig)
    rig.scheduler.flush()
    text = (tmp_path / "jobs.json").read_text()
    assert key not in text and "AuthenticationError" in text


def test_idempotency_key_is_on_disk_before_the_first_post(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, store=True)
    path = tmp_path / "jobs.json"
    seen_on_disk: list[bool] = []
    real = FakeClient.generate

    def spy(self: FakeClient, request, idempotency_key=None, *, deadline=None):  # type: ignore[no-untyped-def]
        stored = json.loads(path.read_text())["jobs"]
        seen_on_disk.append(any(j["idempotency_key"] == idempotency_key for j in stored))
        return real(self, request, idempotency_key, deadline=deadline)

    FakeClient.generate = spy  # type: ignore[method-assign]
    try:
        _submitted(rig)
    finally:
        FakeClient.generate = real  # type: ignore[method-assign]
    assert seen_on_disk == [True]


def test_crash_after_post_resends_same_key_and_gets_same_job(tmp_path: Path) -> None:
    clock = FakeClock()
    server = FakeServer(clock)
    rig = make_rig(tmp_path, store=True, server=server, clock=clock)
    local_id = rig.scheduler.submit("a").local_id
    rig.tick()  # SUBMITTING persisted, POST launched
    rig.executor.run_all()  # the server creates the job ...
    rig.scheduler.flush()
    rig.scheduler.shutdown()  # ... and Blender dies before the answer is applied
    stored = {r.local_id: r for r in JobStore(tmp_path / "jobs.json").load()}
    assert stored[local_id].state is JobState.SUBMITTING and stored[local_id].job_id is None

    rig2 = make_rig(tmp_path, store=True, server=server, clock=clock)
    rig2.run_for(35)
    record = _record(rig2, local_id)
    assert record.state is JobState.DOWNLOADED and record.job_id == "gen_0001"
    assert len(server.jobs) == 1
    assert server.generate_calls == [record.idempotency_key, record.idempotency_key]
    assert any("same idempotency key" in t.what for t in record.timeline)


def _stored(state: JobState, **kw: object) -> JobRecord:
    record = JobRecord(prompt=f"job {state.value}", **kw)  # type: ignore[arg-type]
    record.state = state
    return record


def test_resume_from_a_store_in_every_state(tmp_path: Path) -> None:
    clock = FakeClock()
    server = FakeServer(clock)
    client = FakeClient(server)
    from hiptah_blender.client.models import GenerateRequest

    # The server already knows three jobs (from before the restart).
    def make_server_job(prompt: str, key: str, duration: float) -> str:
        server.durations[prompt] = duration
        return client.generate(GenerateRequest(prompt=prompt), key).job_id

    wall = clock.wall()
    records = {
        "waiting": _stored(JobState.WAITING),
        "submitting": _stored(JobState.SUBMITTING),
        "queued": _stored(JobState.QUEUED, submitted_at=wall),
        "processing": _stored(JobState.PROCESSING, submitted_at=wall - 100),
        "downloading": _stored(JobState.DOWNLOADING, submitted_at=wall - 40),
        "downloaded": _stored(JobState.DOWNLOADED, file_path="/x.glb"),
        "imported": _stored(JobState.IMPORTED, file_path="/y.glb"),
        "failed": _stored(JobState.FAILED),
        "cancelled": _stored(JobState.CANCELLED),
    }
    records["queued"].job_id = make_server_job("job queued", records["queued"].idempotency_key, 20)
    records["processing"].job_id = make_server_job(
        "job processing", records["processing"].idempotency_key, 0
    )
    records["downloading"].job_id = make_server_job(
        "job downloading", records["downloading"].idempotency_key, 0
    )
    generated = len(server.generate_calls)
    JobStore(tmp_path / "jobs.json").save(records.values())

    rig = make_rig(tmp_path, store=True, server=server, clock=clock)
    ids = {name: r.local_id for name, r in records.items()}
    assert {n: rig.state(i) for n, i in ids.items()} == {n: n for n in ids}
    rig.step()
    # Polls and downloads start at once; the WAITING and SUBMITTING jobs are sent.
    assert rig.state(ids["processing"]) == "downloaded"
    assert rig.state(ids["downloading"]) == "downloaded"
    assert rig.state(ids["queued"]) == "queued"
    assert rig.state(ids["submitting"]) == "queued"
    assert rig.state(ids["waiting"]) == "queued"
    sent = server.generate_calls[generated:]
    assert sent == [
        records["waiting"].idempotency_key,
        records["submitting"].idempotency_key,
    ] or sent == [
        records["submitting"].idempotency_key,
        records["waiting"].idempotency_key,
    ]
    rig.run_for(40)
    for name in ("waiting", "submitting", "queued", "processing", "downloading"):
        assert rig.state(ids[name]) == "downloaded", name
    for name in ("downloaded", "imported", "failed", "cancelled"):
        assert rig.state(ids[name]) == name
    assert len(server.jobs) == 5  # no job generated twice
    resumed = _record(rig, ids["processing"])
    assert any("resumed after restart" in t.what for t in resumed.timeline)


def test_resume_past_the_deadline_polls_once_then_times_out(tmp_path: Path) -> None:
    clock = FakeClock()
    server = FakeServer(clock)
    server.duration = 10_000
    from hiptah_blender.client.models import GenerateRequest

    record = _stored(
        JobState.PROCESSING, submitted_at=clock.wall() - 900, deadline_at=clock.wall() - 300
    )
    record.job_id = (
        FakeClient(server).generate(GenerateRequest(prompt="x"), record.idempotency_key).job_id
    )
    JobStore(tmp_path / "jobs.json").save([record])
    rig = make_rig(tmp_path, store=True, server=server, clock=clock)
    rig.run_for(10)
    resumed = _record(rig, record.local_id)
    assert (
        resumed.state is JobState.FAILED
        and resumed.error
        and resumed.error.kind == "JobTimeoutError"
    )
    assert len(server.poll_calls) == 1


def test_corrupt_store_starts_empty_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text('{"version": 1, "jobs": [{"prompt": "trunc')
    rig = make_rig(tmp_path, store=True)
    assert rig.scheduler.jobs() == []
    assert rig.scheduler.warning and "renamed" in rig.scheduler.warning
    _submitted(rig)
    rig.scheduler.flush()
    assert len(JobStore(tmp_path / "jobs.json").load()) == 1


def test_every_change_is_persisted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, store=True)
    local_id = _submitted(rig)
    rig.run_for(35)
    rig.scheduler.mark_imported(local_id, ["Chair"])
    rig.scheduler.flush()
    (stored,) = JobStore(tmp_path / "jobs.json").load()
    assert stored.state is JobState.IMPORTED and stored.file_path and stored.job_id == "gen_0001"
    assert [t.what for t in stored.timeline] == [t.what for t in _record(rig, local_id).timeline]
    rig.scheduler.remove(local_id)
    rig.scheduler.flush()
    assert JobStore(tmp_path / "jobs.json").load() == []
    rig.scheduler.shutdown()


# ----------------------------------------------------------------------------- cost


def test_tick_cost_with_100_jobs_in_flight() -> None:
    """Print what tick() costs with 100 jobs polling (no timing assertion: machines vary)."""
    rig = make_rig(max_concurrent=100, max_workers=8)
    rig.server.duration = 10_000
    rig.server.eta = 1
    for i in range(100):
        rig.scheduler.submit(f"job {i}")
    for _ in range(20):  # at most 2 x max_workers operations are launched per tick
        rig.step()
    assert rig.scheduler.in_flight() == 100
    samples = []
    for _ in range(400):
        rig.clock.advance(0.1)
        t = time.perf_counter()
        rig.tick()
        samples.append(time.perf_counter() - t)
        rig.executor.run_all()
    samples.sort()
    p50, p99, worst = samples[len(samples) // 2], samples[int(len(samples) * 0.99)], samples[-1]
    print(
        f"\ntick() with 100 jobs in flight: p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, max {worst * 1e3:.3f} ms"
    )
