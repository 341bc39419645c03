"""Figure 4: batch throughput: N jobs of a fixed server time T at concurrency C.

The add-on's Scheduler (what ``wait=True`` and the batch command drive) against a sandbox
with ``--latency T --latency-spread 0`` (every job takes exactly T) and a plan limit of
C. Wall time runs from the first submit until every job is downloaded; the ideal is
ceil(N / C) x T (the server cannot do better). Pure Python: no bpy.

    python -m scripts.benchmarks.batch --jobs 60 --concurrency 10 --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .stats import emit, median


def one_round(sb: Any, jobs: int, concurrency: int, folder: Path) -> float:
    from hiptah_blender.client.http import HiptahClient
    from hiptah_blender.jobs.records import JobState
    from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
    from hiptah_blender.jobs.store import JobStore

    config = SchedulerConfig(max_concurrent=concurrency, poll_interval=2.0, download_dir=str(folder / "models"))
    scheduler = Scheduler(lambda: HiptahClient(sb.api_key, sb.base_url), JobStore(folder / "jobs.json"), config)
    try:
        t0 = time.monotonic()
        ids = [scheduler.submit(f"a stone pillar number {i}", format="glb", quality="draft").local_id for i in range(jobs)]
        records = scheduler.run_until(ids, timeout=3600.0)
        wall = time.monotonic() - t0
        bad = [r for r in records if r.state is not JobState.DOWNLOADED]
        if len(records) != jobs or bad:
            raise RuntimeError(f"{len(bad)} jobs did not end downloaded: {[r.state.value for r in bad][:5]}")
        return wall
    finally:
        scheduler.shutdown(wait=True)


def measure(jobs: int, concurrency: int, seconds: float, rounds: int) -> dict[str, Any]:
    from sandbox.harness import SandboxServer

    walls: list[float] = []
    with SandboxServer(models="fake", latency=seconds, latency_spread=0, concurrency=concurrency) as sb:
        for r in range(rounds):
            folder = Path(tempfile.mkdtemp(prefix="hiptah-bench-batch-"))
            try:
                walls.append(one_round(sb, jobs, concurrency, folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            sb.reset()
            print(f"[batch] round {r + 1}: {walls[-1]:.2f} s", flush=True)
    ideal = math.ceil(jobs / concurrency) * seconds
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "T": seconds,
        "rounds": rounds,
        "walls": walls,
        "wall_median": median(walls),
        "ideal": ideal,
        "ratio": median(walls) / ideal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="T: every job's server time")
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()
    emit(measure(ns.jobs, ns.concurrency, ns.seconds, ns.rounds))


if __name__ == "__main__":
    main()
