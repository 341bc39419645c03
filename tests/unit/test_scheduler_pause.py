"""The scheduler's pause gate (Scheduler.set_paused): e.g. Blender's online access
turned off while jobs run. Nothing starts while paused, work under way is dropped,
and on resume the same jobs carry on: same server job ids, same idempotency keys."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.models import Job
from hiptah_blender.jobs.records import ErrorInfo, JobRecord, JobState
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from tests.unit.scripted_server import Reply, ScriptedServer
from tests.unit.test_client_download import glb_bytes

from .scheduler_fakes import FakeClient, FakeServer, RealClock, Rig, make_rig

OFFLINE = ErrorInfo.from_exception(errors.OnlineAccessDisabledError())


def _record(rig: Rig, local_id: str) -> JobRecord:
    record = rig.scheduler.get(local_id)
    assert record is not None
    return record


def test_offline_reason_is_the_errors_text_and_hint() -> None:
    assert OFFLINE.kind == "OnlineAccessDisabledError"
    assert OFFLINE.message == "Blender's online access is turned off."
    assert "Allow Online Access" in OFFLINE.hint


def test_pause_while_submitting_drops_the_answer_and_resends_the_same_key() -> None:
    rig = make_rig()
    record = rig.scheduler.submit("a red chair")
    rig.tick()  # the POST is handed to a worker
    rig.scheduler.set_paused(OFFLINE)
    assert rig.scheduler.paused == OFFLINE
    rig.executor.run_all()  # the server accepts it while we are paused
    rig.tick()
    held = _record(rig, record.local_id)
    assert held.state is JobState.SUBMITTING and held.job_id == "gen_0001"  # id remembered
    assert "paused: Blender's online access is turned off." in [t.what for t in held.timeline]
    rig.run_for(120)  # a long pause: nothing is sent
    assert len(rig.server.generate_calls) == 1 and rig.server.poll_calls == []
    assert rig.scheduler.has_active()

    rig.scheduler.set_paused(None)
    assert rig.scheduler.paused is None
    rig.run_for(35)
    done = _record(rig, record.local_id)
    assert done.state is JobState.DOWNLOADED and done.job_id == "gen_0001"
    assert rig.server.generate_calls == [record.idempotency_key, record.idempotency_key]
    assert len(rig.server.jobs) == 1  # no second server job
    assert "resumed (online again)" in [t.what for t in done.timeline]


def test_submit_while_paused_waits_until_resumed() -> None:
    rig = make_rig()
    rig.scheduler.set_paused(OFFLINE)
    record = rig.scheduler.submit("a lamp")
    rig.run_for(10)
    assert _record(rig, record.local_id).state is JobState.WAITING
    assert rig.server.generate_calls == []
    rig.scheduler.set_paused(None)
    rig.run_for(35)
    assert _record(rig, record.local_id).state is JobState.DOWNLOADED


def test_pause_stops_polls_and_moves_the_deadline() -> None:
    rig = make_rig(job_deadline=100)
    rig.server.duration = 50
    local_id = rig.scheduler.submit("a stone bridge").local_id
    rig.run_for(31)  # first poll at the ETA (30 s): processing
    polls = len(rig.server.poll_calls)
    assert polls == 1 and _record(rig, local_id).state is JobState.PROCESSING
    rig.tick()
    rig.scheduler.set_paused(OFFLINE)
    rig.run_for(300)  # far past the 100 s deadline, and the job completed on the server
    assert len(rig.server.poll_calls) == polls
    assert _record(rig, local_id).state is JobState.PROCESSING  # not timed out while paused

    rig.scheduler.set_paused(None)
    rig.run_for(3)
    done = _record(rig, local_id)
    assert done.state is JobState.DOWNLOADED and done.error is None
    assert len(rig.server.jobs) == 1 and len(rig.server.generate_calls) == 1


def test_poll_under_way_is_dropped_and_repeated_after_resume() -> None:
    rig = make_rig()
    local_id = rig.scheduler.submit("a cup").local_id
    rig.step()
    rig.clock.advance(30)
    rig.tick()  # the poll (which would say "completed") is handed to a worker
    rig.scheduler.set_paused(OFFLINE)
    rig.executor.run_all()
    rig.tick()
    assert _record(rig, local_id).state is JobState.QUEUED  # the answer was dropped
    assert rig.server.download_calls == []
    rig.scheduler.set_paused(None)
    rig.step()
    rig.step()
    assert _record(rig, local_id).state is JobState.DOWNLOADED
    assert len(rig.server.poll_calls) == 2


def _to_downloading(rig: Rig) -> str:
    local_id = rig.scheduler.submit("a wooden cart").local_id
    rig.step()
    rig.clock.advance(30)
    rig.tick()
    rig.executor.run_all()  # poll -> completed
    rig.tick()  # -> DOWNLOADING, the download is handed to a worker
    assert _record(rig, local_id).state is JobState.DOWNLOADING
    return local_id


def test_download_under_way_is_abandoned_and_fetched_again(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    local_id = _to_downloading(rig)
    rig.scheduler.set_paused(OFFLINE)
    rig.executor.run_all()  # its first progress report stops it
    rig.tick()
    held = _record(rig, local_id)
    assert held.state is JobState.DOWNLOADING and held.file_path is None and held.error is None
    assert list((tmp_path / "models").glob("*")) == []
    rig.run_for(20)
    assert len(rig.server.download_calls) == 1

    rig.scheduler.set_paused(None)
    rig.run_for(2)
    done = _record(rig, local_id)
    assert done.state is JobState.DOWNLOADED and done.file_path
    assert len(rig.server.generate_calls) == 1 and len(rig.server.download_calls) == 2


def test_download_that_finished_before_the_pause_is_kept(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    local_id = _to_downloading(rig)
    rig.executor.run_all()  # finishes...
    rig.scheduler.set_paused(OFFLINE)  # ...just before the pause: its result is not thrown away
    rig.tick()
    assert _record(rig, local_id).state is JobState.DOWNLOADED
    assert len(rig.server.download_calls) == 1


def test_pausing_twice_and_resuming_when_not_paused_are_harmless() -> None:
    rig = make_rig()
    rig.scheduler.set_paused(None)
    local_id = rig.scheduler.submit("a rock").local_id
    rig.step()
    rig.scheduler.set_paused(OFFLINE)
    other = ErrorInfo(kind="Paused", message="held for maintenance")
    rig.scheduler.set_paused(other)  # a new reason, same pause
    assert rig.scheduler.paused == other
    notes = [t.what for t in _record(rig, local_id).timeline]
    assert sum(n.startswith("paused:") for n in notes) == 1
    rig.scheduler.set_paused(None)
    rig.run_for(35)
    assert _record(rig, local_id).state is JobState.DOWNLOADED


def test_cancel_and_retry_while_paused() -> None:
    rig = make_rig()
    local_id = rig.scheduler.submit("a sword").local_id
    rig.step()
    rig.scheduler.set_paused(OFFLINE)
    rig.scheduler.cancel(local_id)
    rig.scheduler.retry(local_id)
    rig.run_for(40)
    assert rig.server.poll_calls == []
    rig.scheduler.set_paused(None)
    rig.run_for(3)
    assert _record(rig, local_id).state is JobState.DOWNLOADED
    assert len(rig.server.generate_calls) == 1


# --------------------------------------------------------------- a real streaming download


@pytest.fixture
def cdn() -> Iterator[ScriptedServer]:
    with ScriptedServer("127.0.0.2") as srv:
        yield srv


class _RealDownloads(FakeClient):
    """Fake API, but downloads go through HiptahClient's real streaming code, to a CDN."""

    def __init__(self, server: FakeServer, real: HiptahClient, url: str, on_chunk: Callable[[], None]) -> None:
        super().__init__(server)
        self.real, self.url, self.on_chunk = real, url, on_chunk

    def download(
        self,
        job: Job,
        dest_dir: str | os.PathLike[str],
        *,
        on_progress: Callable[[int, int | None], None] | None = None,
        filename: str | None = None,
    ) -> Path:
        self.server.download_calls.append(job.job_id)

        def progress(done: int, total: int | None) -> None:
            self.on_chunk()
            if on_progress is not None:
                on_progress(done, total)

        return self.real.download(job.model_copy(update={"model_url": self.url}), dest_dir, on_progress=progress)


def test_real_download_is_stopped_mid_stream_and_leaves_no_part_file(cdn: ScriptedServer, tmp_path: Path) -> None:
    data = glb_bytes(padding=4 * 1024 * 1024)  # several chunks
    cdn.script("GET", "/m.glb", Reply(200, data), Reply(200, data))
    clock = RealClock()
    server = FakeServer(clock, duration=0.0, eta=None)
    holder: dict[str, Scheduler] = {}
    chunks = [0]

    def on_chunk() -> None:
        chunks[0] += 1
        if chunks[0] == 1:  # the user turns online access off during the first download
            holder["s"].set_paused(OFFLINE)

    real = HiptahClient("sk_pause_0123456789", "http://127.0.0.1:9/v1", sleep=lambda _: None)
    client = _RealDownloads(server, real, cdn.url("/m.glb"), on_chunk)
    models = tmp_path / "models"
    sched = Scheduler(
        lambda: client,
        None,
        SchedulerConfig(download_dir=str(models), poll_interval=0.05, min_first_poll=0.0),
        clock=clock,
        wall_clock=clock.wall,
    )
    holder["s"] = sched
    try:
        local_id = sched.submit("a wooden cart").local_id
        end = time.monotonic() + 10
        # Step until the pause happened and the abandoned download came back (dropped).
        while time.monotonic() < end and not (sched.paused and chunks[0] and not sched._ops):
            sched.tick()
            time.sleep(0.02)
        sched.tick()
        held = sched.get(local_id)
        assert held is not None and held.state is JobState.DOWNLOADING and held.error is None
        assert sorted(p.name for p in models.iterdir()) == []  # no model, no .part
        assert chunks[0] == 1  # stopped at the first chunk after the pause

        chunks[0] = 10  # no more pausing
        sched.set_paused(None)
        (done,) = sched.run_until([local_id], timeout=10)
        assert done.state is JobState.DOWNLOADED and done.file_path
        assert Path(done.file_path).read_bytes() == data
        assert sorted(p.name for p in models.iterdir()) == [Path(done.file_path).name]
        assert len(server.generate_calls) == 1 and len(cdn.requests) == 2
    finally:
        sched.shutdown(wait=True)
