"""Figure 2: detection delay and polls per job, in real bpy with the add-on registered.

Delay = the moment the add-on shows a job as completed (the first monitor step after
which it has left submitting/queued/processing) minus the moment the sandbox marked
it completed (``completed_unix`` in /_sandbox/state, the same machine's wall clock).
Polls: the sandbox's count of GET /job for that job, against the fewest possible for
its duration: 1 when it finishes by its estimate (the first poll is at the ETA), else
1 + ceil((duration - ETA) / interval).

    python -m scripts.benchmarks.detection --jobs 12 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib
import math
import time
from typing import Any

from .stats import emit, median

# Short jobs (3-6 s) so a few rounds take well under a minute.
LATENCY, SPREAD = 4.5, 1.5
RUNNING = frozenset({"waiting", "submitting", "queued", "processing"})


def min_polls(duration: float, eta: float, interval: float) -> int:
    if duration <= eta:
        return 1
    return 1 + math.ceil((duration - eta) / interval)


def measure(jobs: int, rounds: int, poll_interval: float, tick_interval: float) -> dict[str, Any]:
    import bpy

    from sandbox.harness import SandboxServer

    from . import addon

    delays: list[float] = []
    extra_polls: list[int] = []
    polls: list[int] = []
    ctx: Any = bpy.context
    with SandboxServer(models="fake", latency=LATENCY, latency_spread=SPREAD) as sb:
        sb.set_plan("enterprise", concurrency=jobs + 10)
        runtime = addon.enable(sb, concurrent_limit=jobs + 10, poll_interval=poll_interval)
        monitor: Any = importlib.import_module(f"{addon.ADDON}.blender.monitor")
        for r in range(rounds):
            rt = runtime.get(ctx)
            ids = [
                rt.submit(ctx, f"a clay pot number {r}-{i}", fmt="glb", quality="draft", auto_import=False).local_id
                for i in range(jobs)
            ]
            shown: dict[str, float] = {}
            deadline = time.monotonic() + 60.0
            while len(shown) < jobs and time.monotonic() < deadline:
                monitor.on_timer(ctx)  # the monitor's step, at the monitor's cadence
                now = time.time()
                for local_id in ids:
                    record = rt.get(local_id)
                    if local_id not in shown and record is not None and record.state.value not in RUNNING:
                        shown[local_id] = now
                time.sleep(tick_interval)
            server = {j["job_id"]: j for j in sb.jobs()}
            for local_id in ids:
                record = rt.get(local_id)
                job = server.get(record.job_id or "") if record else None
                if record is None or job is None or local_id not in shown or job["status"] != "completed":
                    raise RuntimeError(f"job {local_id} did not complete ({record and record.state})")
                delays.append(shown[local_id] - job["completed_unix"])
                eta = float(record.eta_seconds or 0.0)
                least = min_polls(job["latency"], eta, poll_interval)
                polls.append(int(job["polls"]))
                extra_polls.append(int(job["polls"]) - least)
            addon.clear_jobs(runtime)
            sb.reset()
            print(f"[detect] round {r + 1}: median delay {median(delays):.2f} s", flush=True)
        runtime.shutdown()
    return {
        "jobs": jobs * rounds,
        "poll_interval": poll_interval,
        "tick_interval": tick_interval,
        "delay_median": median(delays),
        "delay_max": max(delays),
        "polls_median": median(polls),
        "polls_max": max(polls),
        "extra_polls_median": median(extra_polls),
        "extra_polls_max": max(extra_polls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=12, help="jobs per round, submitted together")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--tick-interval", type=float, default=0.15, help="the monitor's timer interval")
    ns = parser.parse_args()
    emit(measure(ns.jobs, ns.rounds, ns.poll_interval, ns.tick_interval))


if __name__ == "__main__":
    main()
