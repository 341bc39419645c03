"""A Blender session (the bpy module) for the kill-and-restart case, run as a subprocess.

    python -m tests.reliability.harness.blender_child submit   # queue jobs interactively, then keep stepping
    python -m tests.reliability.harness.blender_child resume   # start again: resume, step until done, report

Both read HIPTAH_API_KEY / HIPTAH_BASE_URL / BLENDER_USER_RESOURCES from the
environment (the same user folder in both: that is what a restart keeps). ``submit``
prints ``INFLIGHT {...}`` once a plan's worth of jobs is on the server and goes on
stepping (store writes keep happening) until the parent kills it with SIGKILL.
``resume`` prints ``RESULT {...}``: every job record, the step() timings and what is
in the scene.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402  isort: skip
import addon_utils  # noqa: E402  isort: skip  (Blender's module: importable once bpy is)

ADDON = "hiptah_blender"


def _start_blender() -> None:
    prefs = bpy.context.preferences
    assert prefs is not None
    prefs.system.use_online_access = True
    bpy.ops.wm.read_homefile(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    if ADDON not in {a.module for a in prefs.addons}:
        raise SystemExit("the add-on did not register (see the traceback above)")


def submit(count: int) -> None:
    _start_blender()
    from hiptah_blender.blender import runtime

    for i in range(count):
        result = bpy.ops.hiptah.generate(prompt=f"a clay pot number {i + 1}", wait=False)  # type: ignore[attr-defined]
        if result != {"FINISHED"}:
            raise SystemExit(f"generate returned {result}: {list(runtime.REPORTS)[-1:]}")
    rt = runtime.get(bpy.context)
    announced = False
    while True:  # stepped like the modal monitor; the parent kills us
        rt.step(bpy.context)
        records = rt.scheduler.jobs()
        accepted = [r for r in records if r.job_id]
        if not announced and len(accepted) >= min(count, 10):
            states = {r.local_id: r.state.value for r in records}
            print("INFLIGHT " + json.dumps(states), flush=True)
            announced = True
        time.sleep(0.02)


def resume(timeout: float) -> None:
    _start_blender()
    from hiptah_blender.blender import monitor, runtime

    monitor.resume(bpy.context)  # what the add-on's deferred timer does after a start
    rt = runtime.peek()
    if rt is None:
        raise SystemExit("no job history: nothing resumed")
    steps: list[float] = []
    plain: list[float] = [0.0]  # steps that imported nothing
    max_cpu = 0.0
    end = time.monotonic() + timeout
    while rt.has_active() and time.monotonic() < end:
        queued = bool(rt.import_queue)  # a step imports one queued model
        start, cpu = time.perf_counter(), time.thread_time()
        events = rt.step(bpy.context)
        steps.append(time.perf_counter() - start)
        max_cpu = max(max_cpu, time.thread_time() - cpu)
        if not queued and not any(e.kind == "downloaded" for e in events):
            plain.append(steps[-1])
        time.sleep(0.02)
    rt.scheduler.flush()
    ordered = sorted(steps) or [0.0]
    collection = bpy.data.collections.get("HiPtah")
    out: dict[str, Any] = {
        "records": [r.to_dict() for r in rt.scheduler.jobs()],
        "max_step_ms": ordered[-1] * 1000,
        "p99_step_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_plain_step_ms": max(plain) * 1000,
        "max_cpu_ms": max_cpu * 1000,
        "objects": len(collection.objects) if collection is not None else 0,
        "reports": [text for _level, text in runtime.REPORTS],
    }
    print("RESULT " + json.dumps(out), flush=True)
    rt.shutdown()


if __name__ == "__main__":
    phase = sys.argv[1] if len(sys.argv) > 1 else ""
    if phase == "submit":
        submit(int(os.environ.get("RELIABILITY_JOBS", "12")))
    elif phase == "resume":
        resume(float(os.environ.get("RELIABILITY_TIMEOUT", "180")))
    else:
        raise SystemExit("usage: python -m tests.reliability.harness.blender_child submit|resume")
