"""End to end: HiptahClient against the sandbox server (sandbox/harness.py), real HTTP on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hiptah_blender.client import errors, magic
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.models import GenerateRequest, JobStatus
from hiptah_blender.client.validation import FORMATS
from hiptah_blender.client.webhooks import verify_webhook
from sandbox.harness import SandboxServer
from tests.unit.scripted_server import Reply, ScriptedServer


def make_client(sandbox: SandboxServer, **kwargs: Any) -> HiptahClient:
    kwargs.setdefault("sleep", lambda _: None)
    return HiptahClient(sandbox.api_key, sandbox.base_url, **kwargs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_happy_path_for_every_format(sandbox: SandboxServer, tmp_path: Path, fmt: str) -> None:
    client = make_client(sandbox)
    try:
        submitted = client.generate(GenerateRequest(prompt="a red wooden chair", format=fmt, quality="draft"))
    except errors.UnsupportedFormatError:
        pytest.skip(f"this sandbox cannot produce {fmt} models")
    updates: list[JobStatus] = []
    job = client.wait(submitted.job_id, deadline=120, poll_interval=0.2, on_update=lambda j: updates.append(j.status))
    assert job.status is JobStatus.COMPLETED and updates[-1] is JobStatus.COMPLETED
    progress: list[int] = []
    path = client.download(job, tmp_path, on_progress=lambda done, total: progress.append(done))
    assert path == tmp_path / f"{submitted.job_id}.{fmt}"
    assert magic.file_problem(fmt, path) is None
    assert progress[-1] == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    state = sandbox.state()
    assert all(r["had_auth"] for r in state["requests"])
    assert state["cdn"] and not any(r["had_auth"] for r in state["cdn"])
    assert state["generations_used"] == 1


def test_a_lost_answer_to_generate_creates_exactly_one_job(sandbox: SandboxServer) -> None:
    sandbox.set_faults(drop_rate=1.0)  # the job is made, the answer is cut in half
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        sandbox.set_faults(drop_rate=0.0)

    client = make_client(sandbox, sleep=sleep)
    result = client.generate(GenerateRequest(prompt="a stone well"))
    state = sandbox.state()
    posts = [r for r in state["requests"] if r["path"] == "/v1/generate"]
    assert len(posts) == 2 and len(delays) == 1
    assert posts[0]["idempotency_key"] == posts[1]["idempotency_key"]
    assert [j["job_id"] for j in state["jobs"]] == [result.job_id]
    assert state["generations_used"] == 1


def test_generate_retried_after_a_500_creates_exactly_one_job(sandbox: SandboxServer) -> None:
    sandbox.set_faults(fault_rate=1.0)
    client = make_client(sandbox, sleep=lambda _: sandbox.set_faults(fault_rate=0.0))
    result = client.generate(GenerateRequest(prompt="a wooden barrel"))
    state = sandbox.state()
    assert [r["status"] for r in state["requests"]] == [500, 201]
    assert [j["job_id"] for j in state["jobs"]] == [result.job_id]


def test_expired_link_is_refreshed(sandbox: SandboxServer, tmp_path: Path) -> None:
    client = make_client(sandbox)
    job = client.wait(client.generate(GenerateRequest(prompt="a small cube", quality="draft")).job_id,
                      deadline=60, poll_interval=0.2)
    sandbox.expire(job.job_id)
    path = client.download(job, tmp_path)
    assert magic.file_problem("glb", path) is None
    statuses = [r["status"] for r in sandbox.state()["cdn"]]
    assert statuses[0] in (403, 410) and statuses[-1] == 200


def test_wrong_key_is_401(sandbox: SandboxServer) -> None:
    client = HiptahClient("sk_wrong_0000000000000000", sandbox.base_url, sleep=lambda _: None)
    with pytest.raises(errors.AuthenticationError) as info:
        client.generate(GenerateRequest(prompt="a cart"))
    assert info.value.status == 401 and info.value.request_id
    with pytest.raises(errors.AuthenticationError):
        client.check_connection()
    assert "accepted" in make_client(sandbox).check_connection()


def test_plan_limit_is_403(sandbox: SandboxServer) -> None:
    sandbox.set_plan(quota=1, used=1)
    with pytest.raises(errors.PlanLimitError) as info:
        make_client(sandbox).generate(GenerateRequest(prompt="a cart"))
    assert info.value.status == 403 and info.value.server_message
    assert len(sandbox.state()["requests"]) == 1  # not retried


def test_server_side_validation_maps_400_and_422(sandbox: SandboxServer) -> None:
    client = make_client(sandbox)
    # model_construct skips the local checks, to see what the server says.
    html = GenerateRequest.model_construct(prompt="<b>cart</b>", format="glb", quality="high")
    with pytest.raises(errors.InvalidPromptError) as bad:
        client.generate(html)
    assert bad.value.status == 400
    obj = GenerateRequest.model_construct(prompt="a cart", format="obj", quality="high")
    with pytest.raises(errors.UnsupportedFormatError) as unsupported:
        client.generate(obj)
    assert unsupported.value.status == 422
    assert sandbox.state()["jobs"] == []


def test_rate_limit_429_honours_retry_after(sandbox: SandboxServer) -> None:
    sandbox.set_faults(rate_limit_rate=1.0, retry_after=2)
    delays: list[float] = []
    client = make_client(sandbox, sleep=delays.append, max_retries=2)
    with pytest.raises(errors.RateLimitError) as info:
        client.get_job("gen_unknown")
    assert info.value.retry_after == 2.0 and delays == [2.0, 2.0]


def test_unknown_job_is_404(sandbox: SandboxServer) -> None:
    with pytest.raises(errors.NotFoundError):
        make_client(sandbox).wait("gen_doesnotexist", deadline=10)


def test_failed_job(sandbox: SandboxServer) -> None:
    sandbox.set_faults(latency=30)
    client = make_client(sandbox)
    job_id = client.generate(GenerateRequest(prompt="a lamp")).job_id
    sandbox.fail(job_id, code="unsafe_prompt", message="Rejected by the content filter")
    with pytest.raises(errors.JobFailedError) as info:
        client.wait(job_id, deadline=30, poll_interval=0.2)
    assert info.value.code == "unsafe_prompt"
    assert info.value.server_message == "Rejected by the content filter"


def test_webhook_deliveries_verify_with_the_registered_secret(sandbox: SandboxServer) -> None:
    with ScriptedServer() as receiver:
        receiver.default("POST", "/hook", Reply(204))
        client = make_client(sandbox)
        registration = client.register_webhook(receiver.url("/hook"), ["job.completed"])
        assert registration.secret and registration.webhook_id
        job = client.wait(client.generate(GenerateRequest(prompt="a cube", quality="draft")).job_id,
                          deadline=60, poll_interval=0.2)
        deadline = time.monotonic() + 20
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        (delivery,) = receiver.requests_to("/hook")
        event = verify_webhook(registration.secret, delivery.headers, delivery.body)
        assert event.event == "job.completed" and event.job_id == job.job_id
        with pytest.raises(errors.HiptahError):
            verify_webhook(registration.secret, delivery.headers, delivery.body + b" ")
