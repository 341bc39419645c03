"""The Deadline Cloud template (farm/openjd/hiptah-batch.template.yaml) run for real by
``openjd run`` (openjd-cli, the Open Job Description reference runner): 3 shard tasks
and the merge task, each a real ``blender -b -c hiptah`` (Debian's Blender 4.3.2 in the
UI root, the built extension installed), against the sandbox. The result is one
library holding every row, and the server holds one job per row.

The runner executes the tasks of a step one after another in one local session; it
does not apply host requirements (the amount.hiptah.shards limit) and is no
scheduler: parallel shards and the plan limit across them are tested in
tests/farm/test_shards.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.harness import SandboxServer
from tests.ui.driver.session import UI_ENV
from tests.ui.test_cli_batch import blender, inspect_library

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "farm" / "openjd" / "hiptah-batch.template.yaml"
OPENJD = ROOT / ".venv" / "bin" / "openjd"
OBJECTS = ["chair", "table", "lamp", "vase", "cup", "sword", "tree"]


@pytest.fixture(scope="module")
def installed(extension_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bur = tmp_path_factory.mktemp("openjd-bur")
    proc = blender(bur, "-c", "extension", "install-file", "--repo", "user_default", "--enable", extension_zip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return bur


def test_openjd_check_passes() -> None:
    proc = subprocess.run([str(OPENJD), "check", str(TEMPLATE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "passes validation" in proc.stdout, proc.stdout + proc.stderr


def test_openjd_run_three_shards_and_merge(installed: Path, ui_sandbox: SandboxServer, tmp_path: Path) -> None:
    ui_sandbox.set_faults(latency=1)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a wooden {obj}\n" for obj in OBJECTS), encoding="utf-8")
    out = tmp_path / "farm-out"
    # What the farm's Blender command is on this machine: the root's blender, through bwrap.
    wrapper = tmp_path / "blender-in-root.sh"
    wrapper.write_text(f'#!/bin/bash\nexec bash {UI_ENV} run blender "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
        "BLENDER_USER_RESOURCES": str(installed),
        # The worker's environment holds the key: it is no job parameter.
        "HIPTAH_API_KEY": ui_sandbox.api_key, "HIPTAH_BASE_URL": ui_sandbox.base_url,
    }
    if os.environ.get("HIPTAH_UI_ROOT"):
        env["HIPTAH_UI_ROOT"] = os.environ["HIPTAH_UI_ROOT"]
    params = {"InputFile": str(prompts), "OutputDir": str(out), "ShardCount": 3, "ShardConcurrency": 2,
              "Plan": "creator", "Previews": "no-render", "BlenderCommand": str(wrapper), "JobLabel": "test"}
    cmd = [str(OPENJD), "run", str(TEMPLATE), "--step", "Merge", "--run-dependencies",
           "--job-param", json.dumps(params), "--output", "json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    log = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, log
    assert sandbox_key_absent(ui_sandbox.api_key, proc.stdout + proc.stderr)

    shards = sorted(p.name for p in (out / "shards").iterdir())
    assert shards == ["shard-1", "shard-2", "shard-3"], log
    sizes = [len(json.loads((out / "shards" / s / "hiptah_batch_state.json").read_text())["rows"]) for s in shards]
    assert sizes == [3, 2, 2]

    jobs = ui_sandbox.jobs()
    assert sorted(j["prompt"] for j in jobs) == sorted(f"a wooden {o}" for o in OBJECTS)  # one job per row
    assets = inspect_library(installed, out / "library" / "hiptah_assets.blend", tmp_path)
    assert len(assets) == len(OBJECTS) and len({a["row_key"] for a in assets}) == len(OBJECTS)
    assert {a["meta"]["hiptah_job_id"] for a in assets} == {j["job_id"] for j in jobs}
    assert all(a["meshes"] >= 1 for a in assets)

    # The whole job again, with shard 2's folder lost (a retry on a worker without the
    # shared state): no new server job, the same library.
    shutil.rmtree(out / "shards" / "shard-2")
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-3000:]
    assert len(ui_sandbox.jobs()) == len(OBJECTS)
    assert len(inspect_library(installed, out / "library" / "hiptah_assets.blend", tmp_path)) == len(OBJECTS)


def sandbox_key_absent(key: str, text: str) -> bool:
    return key not in text


def test_farm_submit_from_the_installed_extension(installed: Path, tmp_path: Path) -> None:
    """``blender -c hiptah farm-submit`` of the installed zip (Python 3.13, Blender's own
    requests) against the loopback Flamenco Manager of tests/farm."""
    from tests.farm.flamenco_manager import FakeManager

    proc = blender(installed, "-c", "hiptah", "--help")
    assert "merge" in proc.stdout and "farm-submit" in proc.stdout, proc.stdout
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a chair\na table\na lamp\n", encoding="utf-8")
    manager = FakeManager().start(tmp_path)
    try:
        proc = blender(installed, "-c", "hiptah", "farm-submit", prompts, "--manager", manager.url,
                       "--output-dir", "/farm/out", "--shards", "3", "--shard-concurrency", "5", "--plan", "creator")
    finally:
        manager.stop()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (job_id,) = manager.jobs
    assert job_id in proc.stdout.split()
    assert len(manager.compiled[job_id]["tasks"]) == 4
    assert "3 prompt(s) in 3 shard(s)" in proc.stderr
