"""Farm shards end to end against the sandbox, in subprocesses (as farm workers run them),
through the development entry points scripts/batch.py and scripts/merge.py (bpy module).

What is counted is what the server saw: its jobs (one per row, never two) and its
POST /generate log (429s while shards together exceed the plan's concurrency).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer

pytestmark = [pytest.mark.blender, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BATCH = ROOT / "scripts" / "batch.py"
MERGE = ROOT / "scripts" / "merge.py"
OBJECTS = ["chair", "table", "lamp", "vase", "cup", "sword", "tree", "house", "rock", "tower", "car", "robot"]

INSPECT = r"""
import json, sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False)
out = []
for coll in bpy.data.collections:
    if coll.asset_data is None:
        continue
    preview = coll.preview
    pixels = preview.image_pixels_float[:] if preview is not None else []
    out.append({
        "row_key": coll.get("hiptah_row_key"),
        "job_id": coll.asset_data.get("hiptah_job_id"),
        "meshes": sum(1 for o in coll.all_objects if o.type == "MESH"),
        "slot": coll.get("hiptah_slot"),
        "preview_opaque": sum(1 for i in range(3, len(pixels), 4) if pixels[i] > 0),
    })
print("ASSETS=" + json.dumps(out))
"""


def env_for(sb: SandboxServer) -> dict[str, str]:
    env = dict(os.environ)
    env["HIPTAH_BASE_URL"] = sb.base_url
    env["HIPTAH_API_KEY"] = sb.api_key
    env["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="hiptah-farm-bur-")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def batch_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, str(BATCH), *(str(a) for a in args)]


def run(cmd: list[str], sb: SandboxServer, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env_for(sb), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def inspect_library(path: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "BLENDER_USER_RESOURCES": tempfile.mkdtemp(prefix="hiptah-farm-bur-")}
    proc = subprocess.run([sys.executable, "-c", INSPECT, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ASSETS="))
    assets: list[dict[str, Any]] = json.loads(line.removeprefix("ASSETS="))
    return assets


def prompts_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(f"a wooden {OBJECTS[i % len(OBJECTS)]} number {i}\n" for i in range(n)),
                    encoding="utf-8")
    return path


def posts(sb: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sb.requests_log() if r["method"] == "POST" and r["path"].endswith("/generate")]


def max_overlap(jobs: list[dict[str, Any]]) -> int:
    marks: list[tuple[float, int]] = []
    for job in jobs:
        start = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).timestamp()
        end = datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00")).timestamp()
        marks += [(start, 1), (end, -1)]
    level = peak = 0
    for _t, delta in sorted(marks, key=lambda m: (m[0], m[1])):
        level += delta
        peak = max(peak, level)
    return peak


def test_shards_at_once_over_the_plan_limit_then_merge(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Three shards run at once, each allowed 3 jobs in flight, against a plan that allows 4:
    they meet 429s, back off and finish; one server job per row; one merged library."""
    sandbox.set_plan(concurrency=4)
    sandbox.set_faults(latency=1.5)
    src = prompts_file(tmp_path, 12)
    shards = tmp_path / "shards"
    procs = [
        subprocess.Popen(batch_cmd(src, "--shard", f"{i}/3", "--out", shards / f"shard-{i}", "--concurrency", "3",
                                   *(() if i == 1 else ("--no-render",))),
                         env=env_for(sandbox), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for i in (1, 2, 3)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-2000:] + err[-3000:]
        assert "4 done, 0 failed, 0 left of 4" in out

    jobs = sandbox.jobs()
    assert len(jobs) == 12  # one server job per row, none charged twice
    assert sandbox.state()["generations_used"] == 12
    assert len({j["idempotency_key"] for j in jobs}) == 12
    refused = [p for p in posts(sandbox) if p["status"] == 429]
    assert refused, "the shards together never exceeded the plan's 4 jobs: the test proves nothing"
    assert max_overlap(jobs) <= 4

    merged = tmp_path / "library"
    proc = run([sys.executable, str(MERGE), "--out", str(merged), str(shards)], sandbox)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "12 asset(s) added" in proc.stdout
    assets = inspect_library(merged / "hiptah_assets.blend")
    assert len(assets) == 12 and len({a["row_key"] for a in assets}) == 12
    assert {a["job_id"] for a in assets} == {j["job_id"] for j in jobs}
    assert sorted(a["slot"] for a in assets) == list(range(12))  # one grid, no overlaps
    assert all(a["meshes"] >= 1 for a in assets)
    # Shard 1 rendered previews: the merge kept them (nothing re-rendered: the others have none).
    with_preview = [a for a in assets if a["preview_opaque"] > 100]
    assert len(with_preview) == 4
    assert (merged / "blender_assets.cats.txt").is_file()

    # A shard rerun into a fresh folder (its state file lost): the server answers with the
    # jobs it has; a second merge over every folder adds nothing and duplicates nothing.
    again = run(batch_cmd(src, "--shard", "2/3", "--out", tmp_path / "shard-2-again", "--no-render"), sandbox)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(sandbox.jobs()) == 12
    shutil.move(str(tmp_path / "shard-2-again"), str(shards / "shard-2-again"))
    proc = run([sys.executable, str(MERGE), "--out", str(merged), str(shards)], sandbox)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "4 row(s) finished in more than one shard: taken once" in proc.stdout
    assert "0 asset(s) added, 12 already there" in proc.stdout
    assert len(inspect_library(merged / "hiptah_assets.blend")) == 12


def start_and_wait_for_jobs(sb: SandboxServer, args: tuple[str | Path, ...], jobs: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(batch_cmd(*args), env=env_for(sb), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 90
    while len(sb.jobs()) < jobs:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no jobs submitted in time: " + proc.communicate()[1][-3000:])
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("state_file", ["kept", "lost"])
def test_shard_killed_and_rerun_costs_no_extra_job(sandbox: SandboxServer, tmp_path: Path, state_file: str) -> None:
    sandbox.set_faults(latency=2.0)
    src = prompts_file(tmp_path, 10)
    out = tmp_path / "shard-2"
    args = (src, "--shard", "2/2", "--out", out, "--concurrency", "2", "--no-render")
    proc = start_and_wait_for_jobs(sandbox, args, 2)
    os.killpg(proc.pid, signal.SIGKILL)  # a farm worker lost mid-task
    proc.communicate(timeout=30)
    before = {j["idempotency_key"]: j["job_id"] for j in sandbox.jobs()}
    assert 2 <= len(before) < 5

    if state_file == "lost":
        shutil.rmtree(out)  # the task retried on another worker, with no shared state
    rerun = run(batch_cmd(*args), sandbox)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    assert "5 done, 0 failed, 0 left of 5" in rerun.stdout

    jobs = sandbox.jobs()
    assert len(jobs) == 5  # the shard's 5 rows: no extra server job
    assert sandbox.state()["generations_used"] == 5
    after = {j["idempotency_key"]: j["job_id"] for j in jobs}
    assert all(after[k] == v for k, v in before.items())  # the killed run's jobs were reused
    replayed = Counter(p["idempotency_key"] for p in posts(sandbox) if p["status"] == 200)
    if state_file == "lost":
        # Without its state the rerun sent those rows again; the server replayed its jobs.
        assert set(before) <= set(replayed)
    manifest = json.loads((out / "hiptah_batch_state.json").read_text())["rows"]
    assert {e["status"] for e in manifest.values()} == {"imported"}
    assert {e["job_id"] for e in manifest.values()} == set(after.values())


def test_monthly_limit_mid_shard_then_rerun_sends_the_same_keys(sandbox: SandboxServer, tmp_path: Path) -> None:
    """403 (the plan's month used up) stops a shard with its rows pending; after the limit
    is lifted a rerun, here or on a worker without the state, finishes with one job per row,
    every job under the row's derived key."""
    from hiptah_blender.batch.inputs import load_rows
    from hiptah_blender.batch.shards import batch_identity, idempotency_key, parse_shard

    sandbox.set_plan(quota=3, used=0)
    sandbox.set_faults(latency=0.5)
    src = prompts_file(tmp_path, 12)
    out = tmp_path / "shard-1"
    args = (src, "--shard", "1/2", "--out", out, "--concurrency", "2", "--no-render", "--quota-left", "100")
    first = run(batch_cmd(*args), sandbox)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
    assert len(sandbox.jobs()) == 3
    assert any(p["status"] == 403 for p in posts(sandbox))

    sandbox.set_plan(quota=100)
    again = run(batch_cmd(*args), sandbox)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    elsewhere = run(batch_cmd(src, "--shard", "1/2", "--out", tmp_path / "elsewhere", "--no-render"), sandbox)
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]

    rows = load_rows(str(src))
    mine = parse_shard("1/2", len(rows)).take(rows)
    expected = {idempotency_key(batch_identity(rows), row) for row in mine}
    jobs = sandbox.jobs()
    assert len(jobs) == 6 and {j["idempotency_key"] for j in jobs} == expected
    assert sandbox.state()["generations_used"] == 6
