"""--state-file: a real stop and start on the same ports keeps jobs, model URLs,
idempotency keys and quota use (without it, a restart forgets every job)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import requests

from tests.unit.sandbox_helpers import get_job, post, wait_done


def _png() -> bytes:
    # The smallest valid PNG the sandbox's image check accepts (1x1, RGBA).
    return base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )


def test_state_file_is_written_at_a_clean_stop_and_keeps_image_jobs(make_sandbox, tmp_path: Path):
    path = tmp_path / "sandbox-state.json"
    sb = make_sandbox(latency=0, state_file=str(path))
    image_body = {"prompt": "", "format": "stl",
                  "image": "data:image/png;base64," + base64.b64encode(_png()).decode()}
    image_job = post(sb, image_body).json()["job_id"]
    url = wait_done(sb, image_job)["model_url"]
    before = requests.get(url, timeout=30).content
    sb.stop()  # SIGTERM: a clean stop writes the file
    saved = json.loads(path.read_text())
    assert [j["job_id"] for j in saved["jobs"]] == [image_job]
    sb.start()  # the same flags, ports and file
    # The model is made again from the kept image: the same bytes at the same URL.
    assert get_job(sb, image_job).json()["model_url"] == url
    assert requests.get(url, timeout=30).content == before


def test_state_file_restart_serves_the_same_jobs(make_sandbox, tmp_path: Path):
    path = tmp_path / "sandbox-state.json"
    sb = make_sandbox(latency=0, state_file=str(path))
    body = {"prompt": "a cube", "format": "stl"}
    first = post(sb, body, idem="state-file-key-1")
    done = first.json()["job_id"]
    url = wait_done(sb, done)["model_url"]
    model = requests.get(url, timeout=30).content
    sb.set_faults(latency=3)
    running = post(sb, {"prompt": "a cone", "format": "stl"}).json()["job_id"]
    ports = (sb.base_url, sb.cdn_url)

    sb.restart()  # stop (the file is written) and start on the same ports (it is read)
    assert (sb.base_url, sb.cdn_url) == ports and path.exists()
    # The finished job: same status, and its model URL (same token) still downloads.
    again = get_job(sb, done).json()
    assert again["status"] == "completed" and again["model_url"] == url
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200 and resp.content == model
    # The one still running when the server stopped finishes afterwards.
    assert wait_done(sb, running)["status"] == "completed"
    # The idempotency key replays the first answer: no second job, no second charge.
    replay = post(sb, body, idem="state-file-key-1")
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    state = sb.state()
    assert sorted(j["job_id"] for j in state["jobs"]) == sorted([done, running])
    assert state["generations_used"] == 2
