"""Shared steps of the job scenarios (generate / undo, image, .blend reopen, restart).

Everything here drives or reads a real Blender through ``GuiBlender``; nothing steps
the add-on's runtime (its own modal monitor does the job work).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON
from tests.ui.driver.session import GuiBlender, GuiError

# Long enough that the job row is seen running (with its bar filling) however slow the
# machine is; the add-on's first poll is at the server's ETA (this latency).
SLOW_LATENCY = 12


def slow_sandbox(latency: float = SLOW_LATENCY) -> Iterator[SandboxServer]:
    server = SandboxServer(latency=latency, models="auto", seed=0, webhook_backoff=0.1, webhook_timeout=2)
    try:
        yield server.start()
    finally:
        server.stop()


def press(gui: GuiBlender, x: int, y: int) -> None:
    """Click a button whose place is known: hover first, as a hand does (Blender makes
    the button under the pointer active on motion; a click arriving with the motion
    can miss it)."""
    gui.move(x, y)
    time.sleep(0.4)
    gui.click(x, y)


def type_prompt(gui: GuiBlender, text: str, at: tuple[int, int] | None = None) -> tuple[int, int]:
    """Click the panel's prompt field (found by hovering, or at ``at`` from an earlier
    call), type, Enter: as a person does. Entering the field selects its old text, so
    typing replaces it. Returns where the field is."""
    if at is None:
        at = gui.click_button(".prompt")
    else:
        press(gui, *at)
    time.sleep(0.3)
    gui.type(text)
    gui.key("Return")
    gui.wait_until(f"result = bpy.context.scene.hiptah.prompt == {text!r}", timeout=30,
                   describe=f"the prompt field to hold {text!r}")
    return at


def job_detail(gui: GuiBlender, local_id: str) -> dict[str, Any]:
    """One job's record: state, ids, progress, file, imported objects and its timeline."""
    return dict(gui.call(
        f"from {ADDON}.blender import runtime as _rt\n"
        f"j = _rt.peek().scheduler.get({local_id!r})\n"
        "result = None if j is None else dict(state=j.state.value, job_id=j.job_id, progress=j.progress,\n"
        "    file_path=j.file_path, meta=dict(j.meta), timeline=[t.what for t in j.timeline])\n"
    ))


def wait_state(gui: GuiBlender, local_id: str, state: str, timeout: float = 180.0) -> dict[str, Any]:
    gui.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        f"j = _rt.peek().scheduler.get({local_id!r}) if _rt.peek() else None\n"
        f"result = j is not None and j.state.value == {state!r}\n",
        timeout=timeout, interval=0.3, describe=f"job {local_id} to be {state}",
    )
    return job_detail(gui, local_id)


def follow(gui: GuiBlender, local_id: str, *, until: str = "imported", timeout: float = 240.0,
           shot: str | None = "job-running") -> list[dict[str, Any]]:
    """Sample the job as the panel draws it (state, server progress, the bar's fraction)
    until it reaches ``until``; returns the distinct samples. The first time the bar is
    visibly filled while the job is active, a screenshot ``shot`` is taken."""
    code = (
        "import time as _t\n"
        f"from {ADDON}.blender import runtime as _rt\n"
        f"j = _rt.peek().scheduler.get({local_id!r})\n"
        "result = dict(state=j.state.value, progress=j.progress, fraction=j.estimated_fraction(_t.time()))\n"
    )
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sample = gui.call(code)
        if not seen or (sample["state"], sample["progress"]) != (seen[-1]["state"], seen[-1]["progress"]) \
                or (sample["fraction"] or 0) >= (seen[-1]["fraction"] or 0) + 0.1:
            seen.append(sample)
        if shot and sample["state"] in ("queued", "processing") and (sample["fraction"] or 0) >= 0.25:
            gui.screenshot(shot)
            shot = None
        if sample["state"] == until:
            return seen
        if sample["state"] in ("failed", "cancelled"):
            raise GuiError(f"job {local_id} ended {sample['state']}: {job_detail(gui, local_id)}")
        time.sleep(0.25)
    raise GuiError(f"job {local_id} did not reach {until} in {timeout:.0f} s: {seen}")


def assert_advanced(samples: list[dict[str, Any]], timeline: list[str]) -> None:
    """The job went queued -> (processing) -> downloading -> downloaded -> imported, with
    the progress bar filling while it ran. The first poll happens at the server's ETA
    (docs/client.md), so the row shows "queued" with an estimated bar until then, and
    "processing" (with the server's percent) only when the server overruns its ETA."""
    active = [s for s in samples if s["state"] in ("queued", "processing")]
    assert active and active[0]["state"] == "queued", samples
    fractions = [s["fraction"] for s in active if s["fraction"] is not None]
    assert len(fractions) >= 2 and fractions[-1] > fractions[0], samples
    keys = ["(queued", "completed on the server; downloading", "downloaded ", "imported"]
    positions = []
    for key in keys:
        hits = [i for i, t in enumerate(timeline) if key in t or t.startswith(key.strip())]
        assert hits, (key, timeline)
        positions.append(hits[0])
    assert positions == sorted(positions), timeline
    if any(s["state"] == "processing" for s in samples):
        assert "status processing" in timeline, timeline


def monitor_running(gui: GuiBlender) -> bool:
    return bool(gui.call(f"from {ADDON}.blender import monitor as _m\nresult = _m._MonitorState.alive()"))


# The objects the add-on imported for a job (its top-level ones and their children),
# with their collections and the combined world bounding box.
OBJECTS_CODE = """
import mathutils
def _tree(o):
    yield o
    for c in o.children:
        yield from _tree(c)
_roots = [o for o in bpy.context.scene.objects if o.get('hiptah_job_id') == {job_id!r}]
_all = [x for r in _roots for x in _tree(r)]
_pts = [x.matrix_world @ mathutils.Vector(c) for x in _all if x.type == 'MESH' for c in x.bound_box]
_box = None
if _pts:
    _lo = [min(p[i] for p in _pts) for i in range(3)]
    _hi = [max(p[i] for p in _pts) for i in range(3)]
    _box = dict(lo=_lo, hi=_hi)
result = dict(
    roots=[o.name for o in _roots],
    all=[x.name for x in _all],
    collections=sorted({{c.name for x in _roots for c in x.users_collection}}),
    box=_box,
    cursor=list(bpy.context.scene.cursor.location),
)
"""


def imported_objects(gui: GuiBlender, job_id: str) -> dict[str, Any]:
    return dict(gui.call(OBJECTS_CODE.format(job_id=job_id)))


def assert_at_cursor(objects: dict[str, Any], tol: float = 1e-3) -> None:
    """Bottom centre of the combined bounding box at the 3D cursor (docs/blender.md)."""
    box, cursor = objects["box"], objects["cursor"]
    assert box is not None, objects
    centre = [(box["lo"][i] + box["hi"][i]) / 2 for i in range(2)]
    assert abs(centre[0] - cursor[0]) < tol and abs(centre[1] - cursor[1]) < tol, objects
    assert abs(box["lo"][2] - cursor[2]) < tol, objects


def viewport_centre(gui: GuiBlender) -> tuple[int, int]:
    rect = gui.region("VIEW_3D", "WINDOW")
    return rect["x"] + rect["width"] // 2, rect["y"] + rect["height"] // 2


def open_sidebar(gui: GuiBlender, tab: str = "HiPtah") -> None:
    """A freshly loaded file may have the sidebar closed: press N over the viewport, as
    a person does, then pick the tab."""
    shown = "result = sidebar('VIEW_3D', 'WINDOW')['area'].spaces.active.show_region_ui"
    if not gui.call(shown):
        gui.move(*viewport_centre(gui))
        gui.key("n")
        gui.wait_until(shown, timeout=30, describe="the sidebar open after N")
        time.sleep(0.3)  # the region animates open
    gui.click_tab(tab)
