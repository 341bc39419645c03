"""Every fault flag has an observable effect, at runtime (admin) and from the command line."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.harness import SandboxError, SandboxServer
from tests.unit.sandbox_helpers import get_job, post, wait_done


def generate(sb: SandboxServer, fmt: str = "stl") -> requests.Response:
    return post(sb, {"prompt": "a cube", "format": fmt})


def completed_url(sb: SandboxServer, fmt: str = "stl") -> str:
    return str(wait_done(sb, generate(sb, fmt=fmt).json()["job_id"])["model_url"])


def test_fault_rate_answers_500_and_creates_nothing(sandbox):
    sandbox.set_faults(fault_rate=1.0)
    resp = generate(sandbox)
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "internal_error"
    assert resp.headers["X-Request-Id"]
    assert sandbox.state()["jobs"] == []
    assert sandbox.requests_log()[-1]["fault"] == "error"
    # Admin endpoints are never faulted.
    assert requests.get(f"{sandbox.admin_url}/health", timeout=10).status_code == 200


def test_rate_limit_rate_answers_429_with_retry_after(sandbox):
    sandbox.set_faults(rate_limit_rate=1.0, retry_after=3)
    resp = requests.get(f"{sandbox.base_url}/job/gen_x", headers=sandbox.auth_headers, timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json()["error"]["code"] == "rate_limited"


def test_slow_rate_delays_answers(sandbox):
    sandbox.set_faults(slow_rate=1.0, slow_seconds=0.6)
    start = time.monotonic()
    assert (
        requests.get(
            f"{sandbox.base_url}/job/gen_x", headers=sandbox.auth_headers, timeout=10
        ).status_code
        == 404
    )
    assert time.monotonic() - start >= 0.55
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{sandbox.base_url}/job/gen_x", headers=sandbox.auth_headers, timeout=0.2)


def test_drop_rate_cuts_the_response_after_the_job_was_created(sandbox):
    sandbox.set_faults(drop_rate=1.0)
    key = "drop-test-key-1"
    # Both ways a connection dies: reset before any byte, or cut mid-body.
    broken = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    with pytest.raises(broken):
        requests.post(
            f"{sandbox.base_url}/generate",
            json={"prompt": "a cube"},
            headers={**sandbox.auth_headers, "Idempotency-Key": key},
            timeout=10,
        )
    jobs = sandbox.state()["jobs"]
    assert len(jobs) == 1  # the server did the work; only the answer was lost
    for _ in range(12):
        with pytest.raises(broken):
            requests.get(
                f"{sandbox.base_url}/job/{jobs[0]['job_id']}",
                headers=sandbox.auth_headers,
                timeout=10,
            )
    assert {e["fault"] for e in sandbox.requests_log()} == {"drop-reset", "drop-partial"}
    sandbox.set_faults(drop_rate=0.0)
    retry = requests.post(
        f"{sandbox.base_url}/generate",
        json={"prompt": "a cube"},
        headers={**sandbox.auth_headers, "Idempotency-Key": key},
        timeout=10,
    )
    assert retry.status_code == 200 and retry.json()["job_id"] == jobs[0]["job_id"]
    assert sandbox.state()["generations_used"] == 1


def test_truncate_rate_sends_fewer_bytes_than_content_length(sandbox):
    url = completed_url(sandbox, "glb")
    sandbox.set_faults(truncate_rate=1.0)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10).content  # noqa: B018
    entry = sandbox.cdn_log()[-1]
    assert entry["fault"] == "truncate" and entry["bytes_sent"] < entry["content_length"]


def test_corrupt_rate_serves_garbage_of_the_right_length(sandbox):
    url = completed_url(sandbox, "glb")
    good = requests.get(url, timeout=10).content
    sandbox.set_faults(corrupt_rate=1.0)
    bad = requests.get(url, timeout=10)
    assert bad.status_code == 200 and int(bad.headers["Content-Length"]) == len(bad.content) == len(
        good
    )
    assert bad.content != good and not bad.content.startswith(b"glTF")


def test_fail_rate_flag_from_the_command_line(make_sandbox):
    sb = make_sandbox(fail_rate=1.0, fault_rate=0.0)
    data = wait_done(sb, generate(sb).json()["job_id"])
    assert data["status"] == "failed" and data["error"]["code"] == "generation_failed"


def test_seeded_faults_are_deterministic(make_sandbox):
    def pattern(sb: SandboxServer) -> list[int]:
        return [
            requests.get(
                f"{sb.base_url}/job/gen_x", headers=sb.auth_headers, timeout=10
            ).status_code
            for _ in range(30)
        ]

    a = make_sandbox(fault_rate=0.3, rate_limit_rate=0.2, seed=7)
    b = make_sandbox(fault_rate=0.3, rate_limit_rate=0.2, seed=7)
    first = pattern(a)
    assert first == pattern(b)
    assert {500, 429, 404} <= set(first)
    a.reset()  # reset re-seeds
    assert pattern(a) == first


def test_invalid_runtime_faults_are_refused(sandbox):
    for bad in ({"fault_rate": 2}, {"fault_rate": "x"}, {"nope": 1}, {"slow_seconds": -1}):
        with pytest.raises(SandboxError):
            sandbox.set_faults(**bad)
    assert sandbox.set_faults(latency=None)["latency"] is None


def test_hold_keeps_jobs_processing_until_the_admin_ends_them(sandbox):
    sandbox.set_faults(latency=0.2, hold=1)
    held, released = (generate(sandbox).json()["job_id"] for _ in range(2))
    time.sleep(0.5)  # past their due time
    for job_id in (held, released):
        data = get_job(sandbox, job_id).json()
        assert data["status"] == "processing" and data["progress"] == 99, data
        assert data["estimated_time_seconds"] == 0
    assert sandbox.complete(held)["status"] == "completed"
    assert get_job(sandbox, released).json()["status"] == "processing"
    sandbox.set_faults(hold=0)  # let go: the other one ends on its own
    assert wait_done(sandbox, released)["status"] == "completed"
