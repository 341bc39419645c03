"""HiptahClient.wait: the polling schedule, deadline, cancel and failures (fake clock, real HTTP)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.models import Job, JobStatus
from tests.unit.scripted_server import Reply, ScriptedServer

KEY = "sk_wait_0123456789abcdef"
PATH = "/v1/job/gen_1"


class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def job(status: str, **extra: object) -> Reply:
    return Reply.json(200, {"job_id": "gen_1", "status": status, **extra})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(server: ScriptedServer, ft: FakeTime) -> HiptahClient:
    return HiptahClient(KEY, server.base_url, sleep=ft.sleep, clock=ft.clock)


def poll_times(ft: FakeTime, start: float = 1000.0) -> tuple[list[float], list[Job], Callable[[Job], None]]:
    times: list[float] = []
    jobs: list[Job] = []

    def on_update(j: Job) -> None:
        times.append(round(ft.now - start, 3))
        jobs.append(j)

    return times, jobs, on_update


def test_first_poll_at_eta_then_every_interval(server: ScriptedServer, client: HiptahClient, ft: FakeTime) -> None:
    server.script("GET", PATH, job("queued"), job("processing", progress=50), job("completed", model_url="http://127.0.0.1:1/m.glb"))
    times, jobs, on_update = poll_times(ft)
    result = client.wait("gen_1", eta=30, on_update=on_update)
    assert result.status is JobStatus.COMPLETED
    assert times == [30.0, 32.0, 34.0]
    assert [j.status for j in jobs] == [JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED]


def test_without_eta_the_first_answer_sets_it(server: ScriptedServer, client: HiptahClient, ft: FakeTime) -> None:
    server.script("GET", PATH, job("queued", estimated_time_seconds=25), job("processing"), job("completed"))
    times, _, on_update = poll_times(ft)
    client.wait("gen_1", on_update=on_update)
    assert times == [0.0, 25.0, 27.0]


def test_intervals_grow_after_120_seconds_capped_at_30(server: ScriptedServer, client: HiptahClient, ft: FakeTime) -> None:
    server.default("GET", PATH, job("processing"))
    times, _, on_update = poll_times(ft)
    with pytest.raises(errors.JobTimeoutError) as info:
        client.wait("gen_1", poll_interval=2.0, deadline=400, on_update=on_update)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    early = [g for t, g in zip(times, gaps, strict=False) if t < 120]
    assert set(early) == {2.0}
    late = gaps[len(early):]
    assert late[:4] == [3.0, 4.5, 6.75, 10.125]
    assert max(gaps) == 30.0
    assert times[-1] == 400.0  # a last poll exactly at the deadline
    assert "400 s" in info.value.message and "processing" in info.value.message
    assert not errors.is_retryable(info.value)
    assert all(r.method == "GET" for r in server.requests)  # never a new job


def test_deadline_is_never_overslept(server: ScriptedServer, client: HiptahClient, ft: FakeTime) -> None:
    server.default("GET", PATH, job("queued"))
    with pytest.raises(errors.JobTimeoutError):
        client.wait("gen_1", eta=500, deadline=60)
    assert ft.now - 1000.0 == 60.0
    assert len(server.requests) == 1


def test_failed_job_raises_with_the_server_error(server: ScriptedServer, client: HiptahClient) -> None:
    server.script("GET", PATH, job("failed", error={"code": "unsafe_prompt", "message": "The prompt was rejected"}))
    with pytest.raises(errors.JobFailedError) as info:
        client.wait("gen_1")
    assert info.value.server_message == "The prompt was rejected"
    assert info.value.code == "unsafe_prompt"
    assert "gen_1" in info.value.message


def test_failed_job_with_odd_error_shapes(server: ScriptedServer, client: HiptahClient) -> None:
    server.script("GET", PATH, job("failed", error="out of GPUs"))
    with pytest.raises(errors.JobFailedError) as info:
        client.wait("gen_1")
    assert info.value.server_message == "out of GPUs"
    server.script("GET", PATH, job("FAILED", error={"code": 500}))
    with pytest.raises(errors.JobFailedError) as info:
        client.wait("gen_1")
    assert info.value.code == "500"


def test_transient_errors_do_not_end_the_wait(server: ScriptedServer, ft: FakeTime) -> None:
    client = HiptahClient(KEY, server.base_url, sleep=ft.sleep, clock=ft.clock, max_retries=1)
    server.script(
        "GET", PATH,
        Reply.json(500, {}), Reply.json(503, {}),  # get_job gives up after one retry...
        Reply(action="reset"), Reply.json(429, {}, headers={"Retry-After": "9"}),  # ...twice
        job("completed"),
    )
    assert client.wait("gen_1", deadline=300).status is JobStatus.COMPLETED
    assert len(server.requests) == 5
    assert 9.0 in ft.sleeps


def test_transient_errors_until_the_deadline_time_out(server: ScriptedServer, ft: FakeTime) -> None:
    client = HiptahClient(KEY, server.base_url, sleep=ft.sleep, clock=ft.clock, max_retries=2)
    server.default("GET", PATH, Reply.json(502, {"error": {"message": "gateway down"}}))
    with pytest.raises(errors.JobTimeoutError) as info:
        client.wait("gen_1", deadline=100)
    assert "gateway down" not in info.value.message or "last error" in info.value.message
    assert "last error" in info.value.message
    assert ft.now - 1000.0 <= 100.0


@pytest.mark.parametrize(("status", "error"), [(401, errors.AuthenticationError), (404, errors.NotFoundError)])
def test_permanent_errors_end_the_wait(
    server: ScriptedServer, client: HiptahClient, status: int, error: type[errors.HiptahError]
) -> None:
    server.default("GET", PATH, Reply.json(status, {}))
    with pytest.raises(error):
        client.wait("gen_1")
    assert len(server.requests) == 1


def test_cancel_callable_between_polls(server: ScriptedServer, client: HiptahClient) -> None:
    server.default("GET", PATH, job("processing"))
    polls: list[Job] = []
    with pytest.raises(errors.JobCancelledError):
        client.wait("gen_1", on_update=polls.append, cancel=lambda: len(polls) >= 3)
    assert len(server.requests) == 3


def test_cancel_event_wakes_a_real_wait_at_once(server: ScriptedServer) -> None:
    server.default("GET", PATH, job("processing"))
    client = HiptahClient(KEY, server.base_url)  # real clock and sleep
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(errors.JobCancelledError):
        client.wait("gen_1", poll_interval=30.0, cancel=stop)
    assert time.monotonic() - started < 5.0
    assert len(server.requests) == 1


def test_already_cancelled_makes_no_request(server: ScriptedServer, client: HiptahClient) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(errors.JobCancelledError):
        client.wait("gen_1", cancel=stop)
    assert server.requests == []
