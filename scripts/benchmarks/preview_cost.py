"""What a model thumbnail costs Blender's main thread, in a Blender with its UI.

Run inside a UI Blender (here: Debian's 4.3.2 under Xvfb, see scripts/ui_env.sh):

    bash scripts/ui_env.sh run xvfb-run -a -s "-screen 0 1280x800x24" \
        blender --factory-startup -P scripts/benchmarks/preview_cost.py

For each of a few objects like an imported model (a subdivided monkey, ~8k faces) it
times ``Object.asset_generate_preview()`` (what the add-on calls after an import),
then watches a 10 ms timer while Blender renders the preview: the largest gap between
two timer calls is the longest main-thread stall, and the time until the preview has
pixels is how long the thumbnail takes to appear. Then the same for the add-on's own
thumbnail (hiptah_blender.blender.previews: mesh copy on the main thread, numpy drawing
on a worker). Prints figures, then quits.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import bpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the add-on's modules

OBJECTS = 5
TIMEOUT = 20.0
state: dict[str, Any] = {"phase": "wait", "objects": [], "i": 0, "rows": []}


def _make_object(index: int) -> Any:
    bpy.ops.mesh.primitive_monkey_add(location=(index * 3.0, 0.0, 0.0))
    obj: Any = bpy.context.active_object
    mod: Any = obj.modifiers.new("subsurf", "SUBSURF")
    mod.levels = 2
    with bpy.context.temp_override(object=obj, active_object=obj):
        bpy.ops.object.modifier_apply(modifier=mod.name)
    return obj


def _has_pixels(obj: Any) -> bool:
    preview = obj.preview
    if preview is None or not preview.image_size[0]:
        return False
    pixels = preview.image_pixels
    return any(pixels[i] for i in range(0, len(pixels), 97))


def tick() -> float | None:
    now = time.perf_counter()
    if state["phase"] == "wait":
        wm = bpy.context.window_manager
        if wm is None or not wm.windows:
            return 0.1
        state["objects"] = [_make_object(i) for i in range(OBJECTS)]
        state["phase"] = "request"
        return 0.5
    if state["phase"] == "request":
        obj = state["objects"][state["i"]]
        started = time.perf_counter()
        obj.asset_generate_preview()
        cost = (time.perf_counter() - started) * 1000
        state.update(phase="watch", started=started, cost=cost, last=time.perf_counter(), gap=0.0)
        return 0.01
    if state["phase"] == "watch":
        obj = state["objects"][state["i"]]
        state["gap"] = max(state["gap"], (now - state["last"]) * 1000)
        state["last"] = now
        started = time.perf_counter()
        icon = obj.preview.icon_id if obj.preview is not None else 0
        lookup = (time.perf_counter() - started) * 1e6
        done = _has_pixels(obj)
        if done or now - state["started"] > TIMEOUT:
            row = (state["cost"], state["gap"], (now - state["started"]) * 1000, done, icon, lookup)
            state["rows"].append(row)
            print(
                f"preview {state['i']}: request {row[0]:.2f} ms on the main thread, longest stall "
                f"{row[1]:.1f} ms, ready after {row[2]:.0f} ms ({'pixels' if done else 'TIMEOUT'}), "
                f"icon_id {icon}, icon lookup {lookup:.1f} us"
            )
            state["i"] += 1
            state["phase"] = "request" if state["i"] < OBJECTS else "report"
            return 0.2
        return 0.01
    if state["phase"] == "report":
        _report()
        state.update(phase="ours", i=0, gap=0.0, last=time.perf_counter())
        return 0.2
    if state["phase"] == "ours":
        return _ours(now)
    return None


def _ours(now: float) -> float | None:
    """The add-on's own thumbnail: copy on the main thread, draw on a worker."""
    from hiptah_blender.blender import previews

    state["gap"] = max(state["gap"], (now - state["last"]) * 1000)
    state["last"] = now
    if "warm" not in state:  # as the runtime does when the first job is submitted
        previews.warm_up()
        state["warm"] = True
        return 1.0
    if "ours_started" not in state:
        state["ours_started"] = now
        state["gap"] = 0.0
        state["ours_costs"] = [previews.request(f"obj{i}", [o]) for i, o in enumerate(state["objects"])]
        state["last"] = time.perf_counter()  # stalls from here on: the worker drawing
        return 0.01
    started = time.perf_counter()
    previews.collect()
    collect_ms = (time.perf_counter() - started) * 1000
    state["collect_max"] = max(state.get("collect_max", 0.0), collect_ms)
    icons = [previews.preview_for(f"obj{i}") for i in range(OBJECTS)]
    if all(p is not None for p in icons) or now - state["ours_started"] > TIMEOUT:
        costs = [c for c in state["ours_costs"] if c is not None]
        print(
            f"add-on thumbnail: request median {statistics.median(costs):.2f} ms, max {max(costs):.2f} ms "
            f"(main thread: mesh copy); collect max {state['collect_max']:.2f} ms; longest stall while "
            f"drawing {state['gap']:.1f} ms; all ready after {(now - state['ours_started']) * 1000:.0f} ms; "
            f"icon ids {[p.icon_id if p is not None else 0 for p in icons]}"
        )
        bpy.ops.wm.quit_blender()
        return None
    return 0.01


def _report() -> None:
    rows = state["rows"]
    costs = [r[0] for r in rows]
    print(
        f"preview_cost: Blender {bpy.app.version_string}, {len(rows)} objects of "
        f"{len(state['objects'][0].data.polygons)} faces: request median {statistics.median(costs):.2f} ms, "
        f"max {max(costs):.2f} ms; longest stall while rendering {max(r[1] for r in rows):.1f} ms; "
        f"ready after median {statistics.median(r[2] for r in rows):.0f} ms; "
        f"{sum(r[3] for r in rows)}/{len(rows)} rendered"
    )


bpy.app.timers.register(tick, first_interval=1.0)
