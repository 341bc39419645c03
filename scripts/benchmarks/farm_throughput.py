"""Figure 8: where one machine runs out: jobs per second one batch process finishes.

One ``scripts/batch.py`` process (the batch command, Blender 5.0 as a Python module)
runs N rows against a sandbox with no generation delay (``--latency 0``) whose every
job is one fixed model (bench.fixed_model_sandbox): the 101k-triangle GLB of figure 6,
or a typical sandbox model (the demo's cart). What is timed is everything the client
side does per job: submit, poll, download, import, preview (or not), library write.

    python -m bench.farm_throughput --jobs 24 --rounds 2

Per case: wall of the whole process for N rows, and of the same process with no rows
(start-up, library open); the rate is N / (wall - empty wall), the steady rate of a
running shard. From it: a plan with C concurrent ~30 s jobs finishes C / 30 jobs a
second, so one machine is outgrown at C = 30 x rate (docs/farm.md).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .import_cost import make_glb
from .stats import emit, median

ROOT = Path(__file__).resolve().parents[2]
JOB_SECONDS = 30.0


def typical_glb(path: str) -> int:
    import trimesh

    from sandbox.modelgen import generate_model

    data = generate_model("a medieval wooden cart with iron wheels", "glb", "high")
    Path(path).write_bytes(data)
    scene: Any = trimesh.load(io.BytesIO(data), file_type="glb")
    return int(sum(len(g.faces) for g in scene.geometry.values()))


def start_sandbox(model: str) -> tuple[subprocess.Popen[str], str, str]:
    cmd = [sys.executable, "-m", "scripts.benchmarks.fixed_model_sandbox", "--model", model, "--", "--latency", "0",
           "--plan", "enterprise", "--concurrency", "1000", "--quota", "1000000", "--port", "0",
           "--exit-with-parent", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    values: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            return proc, values["HIPTAH_BASE_URL"], values["HIPTAH_API_KEY"]
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = value
    raise RuntimeError("the benchmark sandbox did not start")


def run_batch(base: str, key: str, prompts: Path, out: Path, *, previews: bool, extra: list[str]) -> float:
    env = {**os.environ, "HIPTAH_BASE_URL": base, "HIPTAH_API_KEY": key, "PYTHONUNBUFFERED": "1",
           "BLENDER_USER_RESOURCES": tempfile.mkdtemp(prefix="hiptah-bench-farm-bur-")}
    cmd = [sys.executable, str(ROOT / "scripts" / "batch.py"), str(prompts), "--out", str(out),
           "--plan", "enterprise", "--concurrency", "10", "--poll-interval", "0.2", *extra]
    if not previews:
        cmd.append("--no-render")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    shutil.rmtree(env["BLENDER_USER_RESOURCES"], ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"batch failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return wall


def measure(jobs: int, rounds: int, triangles: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="hiptah-bench-farm-"))
    results: dict[str, Any] = {"jobs": jobs, "rounds": rounds, "job_seconds": JOB_SECONDS, "cases": {}}
    try:
        models = {"typical": folder / "typical.glb", "101k": folder / "statue.glb"}
        tris = {"typical": typical_glb(str(models["typical"])), "101k": make_glb(str(models["101k"]), triangles)}
        prompts = folder / "prompts.txt"
        prompts.write_text("".join(f"a bench model number {i}\n" for i in range(jobs)), encoding="utf-8")
        for name, model in models.items():
            sandbox, base, key = start_sandbox(str(model))
            try:
                run = 0
                empties: list[float] = []
                for _ in range(rounds):
                    run += 1
                    # Shard 2 of 2 of a one-row file: no rows at all (start-up and library only).
                    one = folder / "one.txt"
                    one.write_text("a bench model\n", encoding="utf-8")
                    empties.append(run_batch(base, key, one, folder / f"out-{name}-{run}", previews=False,
                                             extra=["--shard", "2/2"]))
                for previews in (False, True):
                    walls: list[float] = []
                    for _ in range(rounds):
                        run += 1
                        # A new batch id per run: fresh server jobs, never replays of the last run.
                        walls.append(run_batch(base, key, prompts, folder / f"out-{name}-{run}", previews=previews,
                                               extra=["--batch-id", f"bench-{name}-{run}"]))
                        print(f"[farm] {name} previews={previews}: {jobs} jobs in {walls[-1]:.1f} s", flush=True)
                    steady = median(walls) - median(empties)
                    rate = jobs / steady
                    results["cases"][f"{name}/{'previews' if previews else 'no-previews'}"] = {
                        "triangles": tris[name], "model_bytes": model.stat().st_size,
                        "wall": median(walls), "walls": walls, "empty_wall": median(empties),
                        "jobs_per_s": rate, "s_per_job": 1.0 / rate,
                        "outgrown_at_concurrency": JOB_SECONDS * rate,
                    }
            finally:
                sandbox.terminate()
                sandbox.wait(timeout=30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--triangles", type=int, default=100_000)
    ns = parser.parse_args()
    emit(measure(ns.jobs, ns.rounds, ns.triangles))


if __name__ == "__main__":
    main()
