"""Figure 7 (issue 11): responsiveness of a real Blender's event loop while jobs run.

One Blender GUI process (Debian's 4.3.2 with its whole UI under Xvfb, tests/ui/driver/session.py),
the built extension installed and enabled, the sidebar open on the HiPtah tab, a
sandbox with real models and ~5 s jobs. Inside Blender a ``bpy.app.timers`` heartbeat
asks to run every 10 ms and records ``time.perf_counter()`` at each run; the gap between
two runs is how long the main loop was away (events, handlers, modal operators, redraws).

Windows, alternating, ``--rounds`` times (load first, so a baseline lasts as long as the
load before it):

- load: 10 prompts queued with ``hiptah.generate`` INVOKE_DEFAULT in the sidebar's
  context (what the Generate button does); the add-on's own modal monitor runs them
  until all are imported. The queueing call itself is timed apart (the heartbeat
  starts after it).
- baseline: the add-on enabled, no jobs, and a stand-in monitor: a modal operator with
  the same window timer (0.15 s) that tags the sidebar for redraw at the add-on's rate
  (``runtime.tag_redraw`` when ``_REDRAW_EVERY`` has passed, as ``Runtime.step`` does),
  and does nothing else. So the two windows differ by the add-on's work only.

Imports run on the main thread by design: ``runtime.import_model`` is wrapped (two
``perf_counter`` calls) and every gap that overlaps an import is reported on its own
line. The harness polls Blender every second in both windows through the agent's
channel; each poll records its own span and the gaps it overlaps are dropped from both
windows. Two more wrappers feed the profile (same cost in both windows): the HiPtah
panels' ``draw()`` and the monitor's ``on_timer()`` step, each timed with
``perf_counter`` (wall) and ``thread_time`` (CPU).

The sandbox's model generator runs before the measurement (the same prompts once, so
its cache holds them): a real server does not use the user's CPU.

    python -m scripts.benchmarks.ui_responsiveness --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from tests.ui.driver.archive import gui_archive

from .stats import emit, summary

ROOT = Path(__file__).resolve().parents[2]
ADDON = "bl_ext.user_default.hiptah_blender"
OUT = ROOT / "out" / "bench-ui"
LATENCY = 5.0
POLL_EVERY = 1.0  # seconds between the harness's state polls (both windows)
PROMPTS = (
    "a red wooden chair",
    "a blue ceramic mug",
    "a green glass bottle",
    "a small stone house",
    "a yellow rubber duck",
    "a brass table lamp",
    "an orange traffic cone",
    "a white porcelain vase",
    "a black leather sofa",
    "a silver metal robot",
)

# Runs once inside Blender (the agent's namespace keeps these names between calls).
SETUP = """
import time
import bpy
from ADDON.blender import monitor as _hmon, runtime as _hrt

_M = {"on": False, "beats": [], "polls": [], "imports": [], "import_jobs": [], "steps": [], "draws": [], "vp": [], "redraws": 0,
      "idle_stop": False, "idle_running": False}

def _m_beat():
    if not _M["on"]:
        return None
    _M["beats"].append((time.perf_counter(), time.thread_time(), time.process_time()))
    return 0.01

_m_real_import = _hrt.import_model
def _m_import(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _m_real_import(*args, **kwargs)
    finally:
        _M["imports"].append((t0, time.perf_counter()))
_hrt.import_model = _m_import  # Runtime.import_job calls it through the module global

_m_real_import_job = _hrt.Runtime.import_job
def _m_import_job(self, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _m_real_import_job(self, *args, **kwargs)
    finally:
        _M["import_jobs"].append((t0, time.perf_counter()))
_hrt.Runtime.import_job = _m_import_job  # import_model + mark_imported + undo push + list sync

_m_real_on_timer = _hmon.on_timer
def _m_on_timer(context):
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        return _m_real_on_timer(context)
    finally:
        _M["steps"].append((t0, time.perf_counter(), time.thread_time() - c0))
_hmon.on_timer = _m_on_timer  # the modal operator calls it through the module global

def _m_wrap_draw(cls):
    real = cls.draw
    def draw(self, context):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            real(self, context)
        finally:
            _M["draws"].append((t0, time.perf_counter(), time.thread_time() - c0))
    cls.draw = draw

def _m_viewport():
    _M["vp"].append(time.perf_counter())
_m_vp_handle = bpy.types.SpaceView3D.draw_handler_add(_m_viewport, (), "WINDOW", "POST_PIXEL")
_M["vp"].append(time.perf_counter())  # settle() waits from here

_m_panels = [c for c in bpy.types.Panel.__subclasses__() if getattr(c, "bl_category", "") == "HiPtah"]
for _c in _m_panels:
    _m_wrap_draw(_c)

class BENCH_OT_idle_monitor(bpy.types.Operator):
    '''The baseline's monitor: the add-on's timer and redraw rate, none of its work'''
    bl_idname = "bench.idle_monitor"
    bl_label = "Bench: idle monitor"
    _timer = None
    _beat = 0.0
    _redraw = 0.0

    def invoke(self, context, event):
        _M["idle_running"] = True
        self._timer = context.window_manager.event_timer_add(_hmon.TIMER_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if _M["idle_stop"]:
            context.window_manager.event_timer_remove(self._timer)
            _M["idle_running"] = False
            return {"FINISHED"}
        now = time.monotonic()
        if event.type != "TIMER" or now - self._beat < _hmon.TIMER_INTERVAL * 0.5:
            return {"PASS_THROUGH"}
        self._beat = now
        if now - self._redraw >= _hrt._REDRAW_EVERY:
            self._redraw = now
            _M["redraws"] += 1
            _hrt.tag_redraw()
        return {"PASS_THROUGH"}

bpy.utils.register_class(BENCH_OT_idle_monitor)

def _m_states():
    rt = _hrt.peek()
    return [] if rt is None else [j.state.value for j in rt.scheduler.jobs()]

def _m_poll():
    t0 = time.perf_counter()
    states = _m_states()
    _M["polls"].append((t0, time.perf_counter()))
    return states

def _m_start():
    for key in ("beats", "polls", "imports", "import_jobs", "steps", "draws", "vp"):
        _M[key] = []
    _M["redraws"] = 0
    _M["on"] = True
    bpy.app.timers.register(_m_beat, first_interval=0.01)

def _m_stop():
    _M["on"] = False
    _M["idle_stop"] = True
    return {key: _M[key] for key in ("beats", "polls", "imports", "import_jobs", "steps", "draws", "vp", "redraws")}

def _m_quiet():
    # Seconds since the 3D Viewport last drew (it redraws for seconds after a scene change);
    # 0 while the baseline's monitor has not ended yet.
    if _M["idle_running"]:
        return 0.0
    return time.perf_counter() - (_M["vp"][-1] if _M["vp"] else 0.0)

_m_keep = {o.name for o in bpy.data.objects}

def _m_clean():
    # Forget the finished jobs and delete what they imported: every round starts alike.
    rt = _hrt.peek()
    if rt is not None:
        rt.clear_finished()
    for obj in [o for o in bpy.data.objects if o.name not in _m_keep]:
        bpy.data.objects.remove(obj)
    bpy.data.orphans_purge(do_recursive=True)
    return _m_states()

result = [c.__name__ for c in _m_panels]
""".replace("ADDON", ADDON)

# --what-if one-import-per-step: NOT the add-on's behaviour. Patches the running add-on
# so that a monitor step imports at most one finished download (the others wait for the
# next steps, 0.15 s apart, with a redraw in between): how a proposed change would feel.
ONE_IMPORT_PER_STEP = """
_R = _hrt.Runtime
_wi_auto, _wi_step, _wi_active = _R._auto_import, _R.step, _R.has_active
_wi_pending = []

def _wi_auto_import(self, context, local_id, push_undo):
    _wi_pending.append((local_id, push_undo))

def _wi_step_fn(self, context=None, *, push_undo=True):
    events = _wi_step(self, context, push_undo=push_undo)
    if _wi_pending:
        local_id, undo = _wi_pending.pop(0)
        _wi_auto(self, context or bpy.context, local_id, undo)
        _hrt.tag_redraw()
    return events

def _wi_has_active(self):
    return bool(_wi_pending) or _wi_active(self)

_R._auto_import, _R.step, _R.has_active = _wi_auto_import, _wi_step_fn, _wi_has_active
result = 1
"""

QUEUE = """
_M["idle_stop"] = False
t0 = time.perf_counter()
outcomes = [invoke("hiptah.generate", prompt=p) for p in PROMPTS]
queue_ms = (time.perf_counter() - t0) * 1000.0
_m_start()
result = {"outcomes": outcomes, "queue_ms": queue_ms}
"""

BASELINE = """
_M["idle_stop"] = False
started = invoke("bench.idle_monitor")
_m_start()
result = started
"""


def classify(data: dict[str, Any]) -> dict[str, list[list[float]]]:
    """The heartbeat gaps by what they contain, first match wins: an import (the add-on's
    ``import_job``: importer, undo push, list update), a redraw of the 3D Viewport's main
    region (the scene changed), a poll of this harness (dropped), a redraw of the HiPtah
    panels ("redraw"), or none of these ("quiet"). Each gap is [wall ms, main-thread CPU
    ms, process CPU ms]; "clean" = redraw + quiet, the gaps the goal is about."""
    beats = data["beats"]
    marks = {
        "import": sorted((s[0], s[1]) for s in data["import_jobs"]),
        "viewport": sorted((t, t) for t in data["vp"]),
        "poll": sorted((s[0], s[1]) for s in data["polls"]),
        "redraw": sorted((s[0], s[1]) for s in data["draws"]),
    }
    out: dict[str, list[list[float]]] = {k: [] for k in (*marks, "quiet", "clean")}
    cursor = dict.fromkeys(marks, 0)
    for a, b in itertools.pairwise(beats):
        kind = "quiet"
        for name, spans in marks.items():
            j = cursor[name]
            while j < len(spans) and spans[j][1] < a[0]:
                j += 1
            cursor[name] = j
            if j < len(spans) and spans[j][0] <= b[0]:
                kind = name
                break
        gap = [(b[i] - a[i]) * 1000.0 for i in range(3)]
        out[kind].append(gap)
        if kind in ("redraw", "quiet"):
            out["clean"].append(gap)
    return out


def _wall(gaps: list[list[float]], col: int = 0) -> list[float]:
    return [g[col] for g in gaps]


def _overlaps(span: list[float], others: list[list[float]]) -> bool:
    return any(o[0] <= span[1] and span[0] <= o[1] for o in others)


def _ms(spans: list[list[float]], col: int | None = None) -> list[float]:
    if col is None:
        return [(s[1] - s[0]) * 1000.0 for s in spans]
    return [s[col] * 1000.0 for s in spans]


def build_zip(dist: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build.py"), "--platform", "linux-x64", "--offline",
         "--output", str(dist), "--stage-dir", str(dist.parent / "stage")],  # private: builds may run at once
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the extension failed:\n{proc.stdout}\n{proc.stderr}")
    return gui_archive(dist)


def warm_sandbox(sb: Any, prompts: tuple[str, ...], timeout: float = 300.0) -> float:
    """Have the sandbox generate (and cache) every prompt's model; returns the seconds."""
    import requests

    t0 = time.monotonic()
    for prompt in prompts:
        resp = requests.post(sb.base_url + "/generate", headers=sb.auth_headers,
                             json={"prompt": prompt, "format": "glb", "quality": "high"}, timeout=120)
        resp.raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(job["status"] in ("completed", "failed") for job in sb.jobs()):
            break
        time.sleep(0.5)
    sb.reset()  # forget the jobs (and their quota); the generator's cache stays
    return time.monotonic() - t0


def _setup_addon(gui: Any, zip_path: Path, sb: Any) -> list[str]:
    gui.call(
        "prefs = bpy.context.preferences\nprefs.system.use_online_access = True\n"
        f"assert 'FINISHED' in bpy.ops.extensions.package_install_files(filepath={str(zip_path)!r}, "
        "repo='user_default', enable_on_install=True)\n"
        f"p = prefs.addons[{ADDON!r}].preferences\n"
        f"p.api_key = {sb.api_key!r}\np.base_url = {sb.base_url!r}\n"
        "sidebar('VIEW_3D', 'WINDOW')['area'].spaces.active.show_region_ui = True\nresult = 1\n"
    )
    gui.click_tab("HiPtah")
    panels: list[str] = gui.call(SETUP)
    return panels


def _watch(gui: Any, until: float | None, timeout: float) -> list[str]:
    """Poll every POLL_EVERY s until ``until`` (monotonic) or, without it, until no job
    is active; returns the last states."""
    start = time.monotonic()
    states: list[str] = []
    while True:
        time.sleep(POLL_EVERY)
        states = list(gui.call("result = _m_poll()"))
        now = time.monotonic()
        if until is not None and now >= until:
            return states
        active = [s for s in states if s not in ("imported", "failed", "cancelled")]  # downloaded: import due
        if until is None and states and not active:
            return states
        if now - start > timeout:
            return states


def _cpu_s(proc: Any) -> float:
    """User + system CPU seconds of a process and its children (0 if it is gone)."""
    if proc is None:
        return 0.0
    try:
        procs = [proc, *proc.children(recursive=True)]
        return float(sum(p.cpu_times().user + p.cpu_times().system for p in procs))
    except psutil.Error:
        return 0.0


def settle(gui: Any, quiet: float = 2.0, timeout: float = 90.0) -> float:
    """Wait until the 3D Viewport has not redrawn for ``quiet`` seconds (after a scene
    change Blender redraws it for seconds: temporal anti-aliasing, in software GL)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if float(gui.call("result = _m_quiet()")) >= quiet:
            break
        time.sleep(0.5)
    return time.monotonic() - t0


def measure(rounds: int, timeout: float, what_if: str = "", out: Path = OUT) -> dict[str, Any]:
    from sandbox.harness import SandboxServer
    from tests.ui.driver.session import GuiBlender, ui_env_problem

    problem = ui_env_problem()
    if problem is not None:
        return {"skipped": problem}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ui_env.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"skipped": f"the UI root could not be built: {(proc.stderr or proc.stdout).strip()[-300:]}"}

    tmp = Path(tempfile.mkdtemp(prefix="hiptah-bench-ui-"))
    result: dict[str, Any] = {"rounds": [], "latency": LATENCY, "jobs": len(PROMPTS)}
    try:
        zip_path = build_zip(tmp / "dist")
        result["archive"] = zip_path.name
        shutil.rmtree(out, ignore_errors=True)
        with SandboxServer(latency=LATENCY, models="real", seed=0) as sb, \
                GuiBlender(out, user_resources=tmp / "bur") as gui:
            result["warm_s"] = warm_sandbox(sb, PROMPTS)
            print(f"[ui] sandbox cache warm in {result['warm_s']:.1f} s", file=sys.stderr, flush=True)
            gui.start()
            result["panels"] = _setup_addon(gui, zip_path, sb)
            gui.call(f"PROMPTS = {list(PROMPTS)!r}\nresult = 1")
            if what_if == "one-import-per-step":
                gui.call(ONE_IMPORT_PER_STEP)
            result["what_if"] = what_if
            sandbox_proc = psutil.Process(sb.proc.pid) if sb.proc is not None else None

            def window(code: str, until_s: float | None) -> tuple[dict[str, Any], list[str]]:
                """One measured window: start it, poll until done, stop it; the sandbox's
                CPU seconds meanwhile ride along (a real server's are not on this machine)."""
                cpu0 = _cpu_s(sandbox_proc)
                started = gui.call(code)
                states = _watch(gui, None if until_s is None else time.monotonic() + until_s, timeout)
                data: dict[str, Any] = gui.call("result = _m_stop()")
                data["sandbox_cpu_s"] = _cpu_s(sandbox_proc) - cpu0
                data["started"] = started
                return data, states

            for r in range(rounds):
                sb.reset()
                settle(gui)
                t0 = time.monotonic()
                load, states = window(QUEUE, None)
                load_s = time.monotonic() - t0
                queued = load.pop("started")
                if r == rounds - 1:
                    gui.screenshot("load-end")
                settled = [settle(gui)]
                listed, _ = window(BASELINE, load_s)  # the 10 finished jobs still listed in the panel
                left = gui.call("result = _m_clean()")
                settled.append(settle(gui))
                base, _ = window(BASELINE, load_s)
                if r == rounds - 1:
                    gui.screenshot("baseline-end")
                result["rounds"].append({
                    "load_s": load_s, "queue": queued, "final_states": states, "left_after_clean": left,
                    "settle_s": settled, "load": load, "listed": listed, "baseline": base,
                })
                p99 = {w: summary(_wall(classify(d)["clean"]))["p99"] for w, d in
                       (("load", load), ("listed", listed), ("baseline", base))}
                print(f"[ui] round {r + 1}: load {load_s:.1f} s, {len(load['imports'])} imports; clean-gap p99 "
                      + ", ".join(f"{w} {v:.1f} ms" for w, v in p99.items()), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Every sample, for a closer look (the printed figures pool the rounds).
    (out / "raw.json").write_text(json.dumps(result))
    return figures(result)


WINDOWS = ("load", "listed", "baseline")


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """Pool the rounds into the reported figures (raw samples: out/bench-ui/raw.json)."""
    kinds = ("clean", "quiet", "redraw", "import", "viewport", "poll")
    pooled: dict[str, dict[str, list[list[float]]]] = {w: {k: [] for k in kinds} for w in WINDOWS}
    draw_ms: dict[str, list[float]] = {w: [] for w in WINDOWS}
    seconds = dict.fromkeys(WINDOWS, 0.0)
    blender_cpu = dict.fromkeys(WINDOWS, 0.0)
    sandbox_cpu = dict.fromkeys(WINDOWS, 0.0)
    redraw_tags = dict.fromkeys(WINDOWS, 0)
    steps: list[float] = []
    steps_cpu: list[float] = []
    import_ms: list[float] = []
    import_job_ms: list[float] = []
    per_round: list[dict[str, float]] = []
    imported = 0
    for rnd in raw["rounds"]:
        row: dict[str, float] = {}
        for w in WINDOWS:
            data = rnd[w]
            parts = classify(data)
            for k in kinds:
                pooled[w][k] += parts[k]
            draw_ms[w] += _ms(data["draws"])
            redraw_tags[w] += data["redraws"]
            if len(data["beats"]) > 1:
                seconds[w] += data["beats"][-1][0] - data["beats"][0][0]
                blender_cpu[w] += data["beats"][-1][2] - data["beats"][0][2]
            sandbox_cpu[w] += data.get("sandbox_cpu_s", 0.0)
            row[w] = summary(_wall(parts["clean"]))["p99"]
        for step in rnd["load"]["steps"]:
            if not _overlaps(step, rnd["load"]["import_jobs"]):  # importing steps: the imports line
                steps.append((step[1] - step[0]) * 1000.0)
                steps_cpu.append(step[2] * 1000.0)
        import_ms += _ms(rnd["load"]["imports"])
        import_job_ms += _ms(rnd["load"]["import_jobs"])
        imported += sum(1 for s in rnd["final_states"] if s == "imported")
        per_round.append(row)

    def opt(values: list[float]) -> dict[str, float] | None:
        return summary(values) if values else None

    out: dict[str, Any] = {k: v for k, v in raw.items() if k != "rounds"}
    out.update({
        "n_rounds": len(raw["rounds"]),
        "imported": imported,
        "load_s": [r["load_s"] for r in raw["rounds"]],
        "settle_s": [r["settle_s"] for r in raw["rounds"]],
        "queue_ms": [r["queue"]["queue_ms"] for r in raw["rounds"]],
        "queue_outcomes": [r["queue"]["outcomes"] for r in raw["rounds"]],
        "per_round_p99": per_round,
        "step": opt(steps),
        "step_cpu": opt(steps_cpu),
        "imports": {
            "n": len(import_job_ms),
            "importer": opt(import_ms),
            "import_job": opt(import_job_ms),
            "gaps": opt(_wall(pooled["load"]["import"])),
            "viewport_gaps": opt(_wall(pooled["load"]["viewport"])),
        },
    })
    for w in WINDOWS:
        p = pooled[w]
        redraw = p["redraw"]
        out[w] = {
            "gaps": summary(_wall(p["clean"])),
            # The main thread's own CPU time per gap: what the loop did, without the time
            # it waited for a CPU (2 shared cores: the same redraw takes 65-180 ms of wall).
            "gaps_main_cpu": summary(_wall(p["clean"], 1)),
            "quiet": opt(_wall(p["quiet"])),
            "redraw": opt(_wall(redraw)),
            # Where a redraw's time goes: Blender's main thread, or other threads of the
            # process (llvmpipe's rasterisers, the add-on's workers); the rest is waiting.
            "redraw_main_cpu": opt(_wall(redraw, 1)),
            "redraw_process_cpu": opt(_wall(redraw, 2)),
            "counts": {k: len(v) for k, v in p.items()},
            "seconds": seconds[w],
            "sidebar_redraws_per_s": len(redraw) / seconds[w] if seconds[w] else 0.0,
            # CPUs busy on average (1.0 = one core): all of Blender's threads; the sandbox.
            "blender_cpus": blender_cpu[w] / seconds[w] if seconds[w] else 0.0,
            "sandbox_cpus": sandbox_cpu[w] / seconds[w] if seconds[w] else 0.0,
            "panel_draw_ms": opt(draw_ms[w]),
        }
        if w != "load":
            out[w]["redraw_tags"] = redraw_tags[w]
    out["p99_delta_ms"] = out["load"]["gaps"]["p99"] - out["baseline"]["gaps"]["p99"]
    out["p50_delta_ms"] = out["load"]["gaps"]["median"] - out["baseline"]["gaps"]["median"]
    out["p99_cpu_delta_ms"] = out["load"]["gaps_main_cpu"]["p99"] - out["baseline"]["gaps_main_cpu"]["p99"]
    out["p99_delta_listed_ms"] = out["load"]["gaps"]["p99"] - out["listed"]["gaps"]["p99"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="load + baseline pairs")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a load may take at most")
    parser.add_argument("--what-if", choices=("one-import-per-step",), default="",
                        help="an experiment, not the add-on: patch the running add-on to import "
                             "at most one model per monitor step")
    parser.add_argument("--out", type=Path, default=OUT, help="screenshots, Blender's log, raw.json")
    ns = parser.parse_args()
    emit(measure(ns.rounds, ns.timeout, ns.what_if, ns.out))


if __name__ == "__main__":
    main()
