"""The batch command end to end against the sandbox, in subprocesses (as users run it), through
the development entry point scripts/batch.py (tests/ui/test_cli_batch.py runs the installed
extension's `blender -b -c hiptah batch` in a real Blender binary).

The asset library is checked by opening it in a fresh bpy process: what Blender's
Asset Browser would read, not what the writing session still holds in memory.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from hiptah_blender.client.webhooks import sign_webhook
from sandbox.harness import SandboxServer

pytestmark = pytest.mark.blender

ROOT = Path(__file__).resolve().parents[2]
BATCH = ROOT / "scripts" / "batch.py"
COLORS = ["red", "blue", "green", "yellow", "black", "white"]
OBJECTS = ["chair", "table", "lamp", "vase"]

INSPECT = r"""
import json, sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False)
out = []
for coll in bpy.data.collections:
    data = coll.asset_data
    if data is None:
        continue
    preview = coll.preview
    pixels = preview.image_pixels_float[:] if preview is not None else []
    out.append({
        "name": coll.name,
        "row_key": coll.get("hiptah_row_key"),
        "objects": len(coll.all_objects),
        "meshes": sum(1 for o in coll.all_objects if o.type == "MESH"),
        "description": data.description,
        "author": data.author,
        "catalog_id": data.catalog_id,
        "tags": [t.name for t in data.tags],
        "meta": {k: data[k] for k in data.keys()},
        "preview_size": list(preview.image_size) if preview is not None else [0, 0],
        "preview_opaque": sum(1 for i in range(3, len(pixels), 4) if pixels[i] > 0),
    })
print("ASSETS=" + json.dumps(out))
"""


def env_for(sb: SandboxServer) -> dict[str, str]:
    env = dict(os.environ)
    env["HIPTAH_BASE_URL"] = sb.base_url
    env["HIPTAH_API_KEY"] = sb.api_key
    env["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="hiptah-batch-bur-")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def batch_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, str(BATCH), *(str(a) for a in args)]


# A hang guard, not a speed check: scripts/test.sh runs this suite next to the others on
# the same cores, where a 24-job batch has taken over 120 s (bench.py measures speed).
def run_batch(sb: SandboxServer, *args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(batch_cmd(*args), env=env_for(sb), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def inspect_library(path: Path) -> list[dict[str, Any]]:
    env = dict(os.environ, BLENDER_USER_RESOURCES=tempfile.mkdtemp(prefix="hiptah-inspect-bur-"))
    proc = subprocess.run([sys.executable, "-c", INSPECT, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ASSETS="))
    assets: list[dict[str, Any]] = json.loads(line.removeprefix("ASSETS="))
    return assets


def write_csv(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "prompts.csv"
    path.write_text("color,object\n" + "".join(f"{c},{o}\n" for c, o in rows), encoding="utf-8")
    return path


def max_overlap(jobs: list[dict[str, Any]]) -> int:
    """Most jobs that were queued/processing on the server at the same instant."""
    marks: list[tuple[float, int]] = []
    for job in jobs:
        start = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).timestamp()
        end = datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00")).timestamp()
        marks += [(start, 1), (end, -1)]
    level = peak = 0
    for _t, delta in sorted(marks, key=lambda m: (m[0], m[1])):  # ends before starts at a tie
        level += delta
        peak = max(peak, level)
    return peak


def generate_posts(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests_log() if r["method"] == "POST" and r["path"].endswith("/generate")]


def test_csv_template_batch_builds_the_asset_library(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.set_plan(concurrency=3)  # a fourth job in flight would be answered 429
    sandbox.set_faults(latency=0.4)
    pairs = [(c, o) for c in COLORS for o in OBJECTS]  # 24 rows
    csv_path = write_csv(tmp_path, pairs)
    out = tmp_path / "out"

    dry = run_batch(sandbox, csv_path, "--template", "a {color} wooden {object}", "--out", out, "--dry-run",
                    "--quota-left", "20")
    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert "a red wooden chair" in dry.stdout and "refuse" in dry.stdout
    assert generate_posts(sandbox) == []

    proc = run_batch(sandbox, csv_path, "--template", "a {color} wooden {object}", "--out", out,
                     "--concurrency", "3", "--quality", "draft")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "24 done, 0 failed, 0 left of 24" in proc.stdout

    jobs = sandbox.jobs()
    assert len(jobs) == 24  # one server job per row
    posts = generate_posts(sandbox)
    assert [p for p in posts if p["status"] == 429] == []
    assert max_overlap(jobs) <= 3

    manifest = json.loads((out / "hiptah_batch_state.json").read_text())["rows"]
    assert len(manifest) == 24 and {e["status"] for e in manifest.values()} == {"imported"}
    assert len(list((out / "models").glob("*.glb"))) == 24

    assets = inspect_library(out / "hiptah_assets.blend")
    assert len(assets) == 24
    by_key = {a["row_key"]: a for a in assets}
    assert set(by_key) == set(manifest)
    for key, entry in manifest.items():
        asset = by_key[key]
        assert asset["meshes"] >= 1
        assert asset["description"] == entry["prompt"]
        assert asset["author"] == "HiPtah"
        color, _wooden, obj = entry["prompt"].split()[1:4]
        assert {color, "wooden", obj, "glb"} <= set(asset["tags"])
        assert "a" not in asset["tags"]
        assert asset["meta"]["hiptah_job_id"] == entry["job_id"]
        assert asset["meta"]["hiptah_prompt"] == entry["prompt"]
        assert (asset["meta"]["hiptah_format"], asset["meta"]["hiptah_quality"]) == ("glb", "draft")
        assert asset["preview_size"] == [128, 128] and asset["preview_opaque"] > 100
    assert len({a["catalog_id"] for a in assets}) == 1
    assert (out / "blender_assets.cats.txt").read_text().count(assets[0]["catalog_id"]) == 1

    # Same command again: nothing new on the server, nothing duplicated in the library.
    again = run_batch(sandbox, csv_path, "--template", "a {color} wooden {object}", "--out", out,
                      "--concurrency", "3", "--quality", "draft")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(sandbox.jobs()) == 24
    assert len(inspect_library(out / "hiptah_assets.blend")) == 24


def start_and_wait_for_jobs(sb: SandboxServer, args: tuple[str | Path, ...], jobs: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(batch_cmd(*args), env=env_for(sb), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(sb.jobs()) < jobs:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no jobs submitted in time: " + proc.communicate()[1][-3000:])
        time.sleep(0.05)
    return proc


def test_interrupted_and_killed_batch_resumes_without_generating_twice(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.set_faults(latency=1.0)
    pairs = [(c, o) for c in COLORS[:3] for o in OBJECTS]  # 12 rows
    csv_path = write_csv(tmp_path, pairs)
    out = tmp_path / "out"
    args = (csv_path, "--template", "a {color} {object}", "--out", out, "--concurrency", "3", "--no-render")

    # Ctrl-C: exit status 130, state saved. Every job the server accepted is tied to its
    # row by idempotency key (its id may not be known yet if the answer was in flight).
    proc = start_and_wait_for_jobs(sandbox, args, 2)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Interrupted: state saved" in stderr
    manifest = json.loads((out / "hiptah_batch_state.json").read_text())["rows"]
    assert {j["idempotency_key"] for j in sandbox.jobs()} <= {e["idempotency_key"] for e in manifest.values()}

    # kill -9 in the middle of the resumed run: no chance to save anything.
    proc = start_and_wait_for_jobs(sandbox, args, len(sandbox.jobs()) + 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    before = sandbox.jobs()
    assert 4 <= len(before) < 12

    resumed = run_batch(sandbox, *args)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    jobs = sandbox.jobs()
    assert len(jobs) == 12  # the jobs of the killed run were resumed, not generated again
    assert {j["job_id"] for j in before} <= {j["job_id"] for j in jobs}
    assert sorted(j["prompt"] for j in jobs) == sorted(f"a {c} {o}" for c, o in pairs)
    assert len({j["idempotency_key"] for j in jobs}) == 12
    assets = inspect_library(out / "hiptah_assets.blend")
    assert len(assets) == 12 and len({a["row_key"] for a in assets}) == 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ETA = 240  # the sandbox's latency in the webhook test: longer than the test may take


def test_webhooks_finish_jobs_and_forgeries_change_nothing(sandbox: SandboxServer, tmp_path: Path) -> None:
    # Jobs would take four minutes: only the webhooks of forced completions can finish
    # them sooner, and the first scheduled poll (at the ETA) never comes. (It was one
    # minute with a 45 s bound, which a loaded machine running the suites side by side
    # overran; the bound is about the ETA, not about speed.)
    sandbox.set_faults(latency=ETA)
    pairs = [(c, "lamp") for c in COLORS]  # 6 rows
    csv_path = write_csv(tmp_path, pairs)
    out = tmp_path / "out"
    port = free_port()
    hook_url = f"http://127.0.0.1:{port}/hooks"
    cmd = batch_cmd(csv_path, "--template", "a {color} {object}", "--out", out, "--concurrency", "3",
                    "--no-render", "--webhook-listen", f"127.0.0.1:{port}", "--public-url", hook_url)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env_for(sandbox), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(sandbox.jobs()) < 3:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        victim = sandbox.jobs()[0]["job_id"]

        # A forged completion (wrong secret) is refused and triggers nothing.
        body = json.dumps({"event": "job.completed", "job_id": victim, "model_url": "http://evil/x.glb"}).encode()
        fake_secret = "whsec_" + base64.b64encode(b"f" * 32).decode()
        stamp = int(time.time())
        forged = requests.post(hook_url, data=body, timeout=5, headers={
            "webhook-id": "msg_forged", "webhook-timestamp": str(stamp),
            "webhook-signature": sign_webhook(fake_secret, "msg_forged", stamp, body)})
        assert forged.status_code == 401
        unsigned = requests.post(hook_url, data=body, timeout=5)
        assert unsigned.status_code == 401

        # A correctly signed delivery replayed: acknowledged once, then ignored.
        registration = next(iter(json.loads((out / "hiptah_batch_webhooks.json").read_text()).values()))
        ghost = json.dumps({"event": "job.completed", "job_id": "gen_not_ours"}).encode()
        headers = {"webhook-id": "msg_replayed", "webhook-timestamp": str(stamp),
                   "webhook-signature": sign_webhook(registration["secret"], "msg_replayed", stamp, ghost)}
        first = requests.post(hook_url, data=ghost, headers=headers, timeout=5)
        replay = requests.post(hook_url, data=ghost, headers=headers, timeout=5)
        assert (first.status_code, replay.status_code) == (200, 200)
        assert "duplicate" in replay.text

        time.sleep(0.5)
        assert sandbox.job(victim)["status"] != "completed"
        assert sandbox.job(victim)["polls"] == 0  # the forgery did not even cause a poll

        # Finish each job on the server as it appears; its webhook does the rest.
        completed: set[str] = set()
        while proc.poll() is None:
            assert time.monotonic() < deadline + 30, "the batch did not finish from webhooks"
            for job in sandbox.jobs():
                if job["job_id"] not in completed and job["status"] in ("queued", "processing"):
                    sandbox.complete(job["job_id"])
                    completed.add(job["job_id"])
            time.sleep(0.1)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "6 done, 0 failed" in stdout

    jobs = sandbox.jobs()
    assert len(jobs) == 6
    # Fallback polling runs every 30 s; ETA polls would come at the ETA. Each job was polled
    # only when its webhook arrived: one poll, plus at most one per fallback interval.
    fallback_polls = int(elapsed // 30)
    assert all(j["polls"] <= 1 + fallback_polls for j in jobs), [j["polls"] for j in jobs]
    assert elapsed < ETA  # sooner than jobs polled at their ETA could have
    delivered = [d for d in sandbox.deliveries() if d["url"] == hook_url]
    assert len(delivered) == 6 and all(d["status"] == "delivered" for d in delivered)
    assert "Webhooks: 7 accepted, 1 duplicate(s) ignored, 2 rejected" in stdout
