"""``blender -b -c hiptah ...`` in a real Blender binary, as a user who installed the
extension runs it: Debian's Blender 4.3.2 (Python 3.13, the cp313 wheels) in the
cached trixie root (scripts/ui_env.sh), the built linux-x64 archive installed with
Blender's own ``blender -c extension install-file --enable``, and the sandbox on the
host's loopback (the root shares the host's network).

Skipped with the reason where the root cannot be built (``ui_root`` in conftest.py;
with CI=true that fails instead).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.ui.driver.session import inside

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first run may build the root

ROOT = Path(__file__).resolve().parents[2]

# Run by the root's Blender on the finished library: what the Asset Browser would read.
INSPECT = r"""
import json, sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[sys.argv.index("--") + 1], load_ui=False)
out = []
for coll in bpy.data.collections:
    data = coll.asset_data
    if data is None:
        continue
    preview = coll.preview
    pixels = preview.image_pixels_float[:] if preview is not None else []
    out.append({
        "row_key": coll.get("hiptah_row_key"),
        "meshes": sum(1 for o in coll.all_objects if o.type == "MESH"),
        "description": data.description,
        "tags": [t.name for t in data.tags],
        "meta": {k: data[k] for k in data.keys()},
        "preview_size": list(preview.image_size) if preview is not None else [0, 0],
        "preview_opaque": sum(1 for i in range(3, len(pixels), 4) if pixels[i] > 0),
    })
print("ASSETS=" + json.dumps(out))
"""


def blender_env(user_resources: Path, sandbox: SandboxServer | None = None) -> dict[str, str]:
    # Nothing of the test's venv (PYTHONPATH, VIRTUAL_ENV) may reach Blender's Python 3.13.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root", "LANG": "C.UTF-8",
           "BLENDER_USER_RESOURCES": str(user_resources)}
    if sandbox is not None:
        env.update(HIPTAH_API_KEY=sandbox.api_key, HIPTAH_BASE_URL=sandbox.base_url)
    return env


def blender(user_resources: Path, *args: str | Path, sandbox: SandboxServer | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(inside("blender", "-b", *map(str, args)), env=blender_env(user_resources, sandbox),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def installed(extension_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Blender user folder with the extension installed and enabled (saved in its prefs)."""
    bur = tmp_path_factory.mktemp("cli-bur")
    proc = blender(bur, "-c", "extension", "install-file", "--repo", "user_default", "--enable", extension_zip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (bur / "extensions" / "user_default" / "hiptah_blender" / "blender" / "commands.py").is_file()
    return bur


def test_help_lists_the_commands(installed: Path) -> None:
    proc = blender(installed, "-c", "hiptah", "--help")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "usage: blender -b -c hiptah" in proc.stdout
    for command in ("batch", "generate", "status", "version"):
        assert f"    {command} " in proc.stdout, proc.stdout

    proc = blender(installed, "-c", "hiptah", "batch", "--help")
    assert proc.returncode == 0 and "--template" in proc.stdout and "--out" in proc.stdout, proc.stdout

    proc = blender(installed, "-c", "hiptah", "version")
    assert proc.returncode == 0
    assert "Blender 4.3.2, Python 3.13" in proc.stdout, proc.stdout

    proc = blender(installed, "-c", "hiptah", "no-such-command")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr, proc.stdout + proc.stderr


def inspect_library(user_resources: Path, library: Path, tmp_path: Path) -> list[dict[str, Any]]:
    script = tmp_path / "inspect_library.py"
    script.write_text(INSPECT, encoding="utf-8")
    proc = blender(user_resources, "--factory-startup", "--python", script, "--", library)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ASSETS="))
    assets: list[dict[str, Any]] = json.loads(line.removeprefix("ASSETS="))
    return assets


def test_batch_of_three_builds_the_library_and_resumes(installed: Path, sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("color,object,quality\nred,chair,draft\nblue,table,\ngreen,lamp,standard\n",
                       encoding="utf-8")
    out = tmp_path / "out"
    args = ("-c", "hiptah", "batch", prompts, "--template", "a {color} wooden {object}", "--out", out,
            "--quality", "draft", "--concurrency", "2")

    proc = blender(installed, *args, sandbox=sandbox)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "3 done, 0 failed, 0 left of 3" in proc.stdout, proc.stdout[-3000:]

    jobs = sandbox.jobs()
    assert sorted(j["prompt"] for j in jobs) == ["a blue wooden table", "a green wooden lamp", "a red wooden chair"]
    assert {j["prompt"]: j["quality"] for j in jobs}["a green wooden lamp"] == "standard"  # the row's own
    manifest = json.loads((out / "hiptah_batch_state.json").read_text())["rows"]
    assert {e["status"] for e in manifest.values()} == {"imported"} and len(manifest) == 3
    assert len(list((out / "models").glob("*.glb"))) == 3

    assets = inspect_library(installed, out / "hiptah_assets.blend", tmp_path)
    assert sorted(a["row_key"] for a in assets) == sorted(manifest)
    for asset in assets:
        entry = manifest[asset["row_key"]]
        assert asset["meshes"] >= 1 and asset["description"] == entry["prompt"]
        assert asset["meta"]["hiptah_job_id"] == entry["job_id"]
        assert {"wooden", "glb", "hiptah"} <= set(asset["tags"])
        # No libEGL in the root: the preview comes from the Cycles fallback, not a crash.
        assert asset["preview_size"] == [128, 128] and asset["preview_opaque"] > 100, asset

    # The same command again: nothing new on the server, the library unchanged.
    again = blender(installed, *args, sandbox=sandbox)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert len(sandbox.jobs()) == 3
    assert len(inspect_library(installed, out / "hiptah_assets.blend", tmp_path)) == 3


def test_batch_failures_exit_non_zero(installed: Path, sandbox: SandboxServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,format\n<b>x</b>,glb\na chair,obj\n", encoding="utf-8")
    bad.with_name("one.txt").write_text("a chair\n", encoding="utf-8")
    proc = blender(installed, "-c", "hiptah", "batch", bad, "--out", tmp_path / "bad-out", sandbox=sandbox)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "row 2" in proc.stderr and "row 3" in proc.stderr, proc.stderr
    assert sandbox.jobs() == []  # a bad file sends nothing

    # Online access is off in this user folder: a non-loopback server is refused up front.
    proc = blender(installed, "-c", "hiptah", "batch", bad.with_name("one.txt"), "--out", tmp_path / "o",
                   "--base-url", "https://api.hiptah.example/v1", "--api-key", "hp_test_0123456789")
    assert proc.returncode == 2 and "online access is turned off" in proc.stderr, proc.stdout + proc.stderr
    assert "--online-mode" in proc.stderr

    # Every job fails on the server: the batch ends, non-zero.
    sandbox.set_faults(fail_rate=1.0)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a stone bridge\n", encoding="utf-8")
    proc = blender(installed, "-c", "hiptah", "batch", prompts, "--out", tmp_path / "out", "--no-render",
                   sandbox=sandbox)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 done, 1 failed" in proc.stdout


def test_generate_and_status(installed: Path, sandbox: SandboxServer, tmp_path: Path) -> None:
    proc = blender(installed, "-c", "hiptah", "status", "--check", sandbox=sandbox)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(sandbox)" in proc.stdout and "accepted" in proc.stdout, proc.stdout
    assert sandbox.api_key not in proc.stdout + proc.stderr

    scene = tmp_path / "chair.blend"
    proc = blender(installed, "-c", "hiptah", "generate", "a red wooden chair", "--quality", "draft",
                   "--out", scene, sandbox=sandbox)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "generate: imported job gen_" in proc.stdout and scene.is_file(), proc.stdout[-3000:]
    assert [j["prompt"] for j in sandbox.jobs()] == ["a red wooden chair"]

    # No key anywhere: a clear error and a non-zero exit, nothing sent.
    proc = blender(installed, "-c", "hiptah", "generate", "a chair")
    assert proc.returncode == 1 and "API key" in proc.stderr, proc.stdout + proc.stderr
    assert len(sandbox.jobs()) == 1
