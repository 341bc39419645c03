"""Figure 1: main-thread cost of one monitor tick with N jobs in flight, in real bpy.

The measured call is ``monitor.on_timer(context)``: what the modal timer runs every
0.15 s (``scheduler.tick()`` + applying events to the UI job list + redraw tagging).
The sandbox answers with 20-30 s latency so every job stays in flight while ticks are
sampled; the submissions, acceptances and status changes of the first seconds are part
of the sample, as they are in real use. Import time would be reported apart, but no job
finishes inside the window.

    python -m scripts.benchmarks.monitor_tick --sizes 1,10,30,100 --seconds 15 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

from .stats import emit, summary

# 20-30 s per job: longer than a measurement window, like real generations (25-40 s).
LATENCY, SPREAD = 25.0, 5.0


def cpu_pressure() -> float | None:
    """Linux PSI: share of the last 5 minutes in which runnable tasks waited for a CPU."""
    try:
        with open("/proc/pressure/cpu") as fh:
            first = fh.readline().split()
        return float(dict(f.split("=") for f in first[1:])["avg300"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def first_batch(runtime: Any, monitor: Any, sb: Any, ctx: Any, jobs: int, seconds: float) -> dict[str, float]:
    """The session's first jobs: the scheduler's thread pools start their threads from
    the tick that launches the first requests (``Thread.start`` waits until each new
    thread runs). Measured apart; the figures below are for a session already running."""
    from . import addon

    rt = runtime.get(ctx)
    for i in range(jobs):
        rt.submit(ctx, f"a first crate number {i}", fmt="glb", quality="draft", auto_import=False)
    samples: list[float] = []
    end = time.monotonic() + min(seconds, 3.0)
    while time.monotonic() < end:
        t0 = time.perf_counter()
        monitor.on_timer(ctx)
        samples.append((time.perf_counter() - t0) * 1000.0)
        time.sleep(0.15)
    addon.clear_jobs(runtime)
    sb.reset()
    return {"jobs": float(jobs), "first_ms": samples[0], "max_ms": max(samples)}


def measure(sizes: list[int], seconds: float, rounds: int, interval: float) -> dict[str, Any]:
    import bpy

    from sandbox.harness import SandboxServer

    from . import addon

    results: dict[str, Any] = {"interval": interval, "seconds": seconds, "rounds": rounds, "sizes": {}}
    top = max(sizes)
    with SandboxServer(models="fake", latency=LATENCY, latency_spread=SPREAD, plan="enterprise") as sb:
        sb.set_plan("enterprise", concurrency=top + 10)
        runtime = addon.enable(sb, concurrent_limit=top + 10)
        monitor: Any = importlib.import_module(f"{addon.ADDON}.blender.monitor")
        importers: Any = importlib.import_module(f"{addon.ADDON}.blender.runtime")
        import_times: list[float] = []
        real_import = importers.import_model

        def timed_import(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return real_import(*args, **kwargs)
            finally:
                import_times.append(time.perf_counter() - t0)

        importers.import_model = timed_import  # the runtime calls it through its module global
        ctx: Any = bpy.context
        results["first_batch"] = first_batch(runtime, monitor, sb, ctx, min(10, top), seconds)
        for n in sizes:
            step_ms: list[float] = []
            cpu_ms: list[float] = []
            tick_ms: list[float] = []
            in_flight_min = n
            for _ in range(rounds):
                sb.set_plan("enterprise", concurrency=top + 10)
                rt = runtime.get(ctx)
                for i in range(n):
                    rt.submit(ctx, f"a wooden crate number {i}", fmt="glb", quality="draft", auto_import=False)
                sched = rt.scheduler
                real_tick = sched.tick
                tick_last = [0.0]

                def timed_tick(now: float | None = None, _real: Any = real_tick, _last: list[float] = tick_last) -> Any:
                    t0 = time.perf_counter()
                    events = _real(now)
                    _last[0] = time.perf_counter() - t0
                    return events

                sched.tick = timed_tick  # instance attribute: only this scheduler, only here
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    imports_before = len(import_times)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    monitor.on_timer(ctx)
                    dt = time.perf_counter() - t0
                    # CPU time of this thread: the tick's own cost. Wall minus CPU is waiting:
                    # for the GIL (worker threads) or for a CPU (a loaded machine).
                    cpu_ms.append((time.thread_time() - c0) * 1000.0)
                    # The importer's own time is reported apart (figure 6), not as tick cost.
                    dt -= sum(import_times[imports_before:])
                    step_ms.append(dt * 1000.0)
                    tick_ms.append(tick_last[0] * 1000.0)
                    time.sleep(interval)
                in_flight_min = min(in_flight_min, sched.in_flight())
                del sched.tick
                addon.clear_jobs(runtime)
                sb.reset()
            results["sizes"][str(n)] = {
                "step": summary(step_ms),
                "cpu": summary(cpu_ms),
                "tick": summary(tick_ms),
                "in_flight_at_end": in_flight_min,
            }
            print(f"[tick] {n} jobs: {summary(step_ms)}", flush=True)
        results["imports"] = len(import_times)
        results["import_ms"] = [t * 1000.0 for t in import_times]
        results["windows"] = len(ctx.window_manager.windows)
        results["cpu_pressure"] = cpu_pressure()
        runtime.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,10,30,100")
    parser.add_argument("--seconds", type=float, default=15.0, help="sampling window per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.15, help="pause between ticks (the monitor's)")
    ns = parser.parse_args()
    sizes = [int(s) for s in ns.sizes.split(",") if s.strip()]
    emit(measure(sizes, ns.seconds, ns.rounds, ns.interval))


if __name__ == "__main__":
    main()
