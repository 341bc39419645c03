"""Scenario, as an artist lives it: generate a model from the panel; File > New; open an
Asset Browser on the 'HiPtah' library, where the model is under its month's catalog with
its preview; drag it into the 3D Viewport with the mouse (xdotool mousedown, mousemove,
mouseup); the model stands where it was dropped (its bottom centre under the mouse)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, jobs, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.scenario import follow, job_detail, slow_sandbox, type_prompt

PROMPT = "a wooden treasure chest"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    yield from slow_sandbox(latency=4)


# The Properties editor (bottom right) becomes an Asset Browser on the HiPtah library,
# showing the month's catalog.
OPEN_BROWSER = """
window = bpy.context.window_manager.windows[0]
area = next(a for a in window.screen.areas if a.type == 'PROPERTIES')
area.ui_type = 'ASSETS'
result = dict(x=window.x + area.x, y=window.y + window.height - (area.y + area.height // 2), width=area.width)
"""
WIDEN = """
window = bpy.context.window_manager.windows[0]
area = next(a for a in window.screen.areas if a.ui_type == 'ASSETS')
with bpy.context.temp_override(window=window, screen=window.screen):
    bpy.ops.screen.area_move(x=area.x - 1, y=area.y + area.height // 2, delta=-450)
result = 1
"""
BROWSER_WIDTH = """
area = next(a for a in bpy.context.window_manager.windows[0].screen.areas if a.ui_type == 'ASSETS')
result = area.width
"""
SHOW_CATALOG = """
area = next(a for a in bpy.context.window_manager.windows[0].screen.areas if a.ui_type == 'ASSETS')
params = area.spaces.active.params
params.asset_library_reference = 'HiPtah'
params.catalog_id = {catalog!r}
params.display_type = 'THUMBNAIL'
area.tag_redraw()
result = dict(library=params.asset_library_reference, catalog=params.catalog_id)
"""
MAIN_REGION = """
area = next(a for a in bpy.context.window_manager.windows[0].screen.areas if a.ui_type == 'ASSETS')
window = bpy.context.window_manager.windows[0]
region = next(r for r in area.regions if r.type == 'WINDOW')
result = dict(x=window.x + region.x, y=window.y + window.height - (region.y + region.height),
              width=region.width, height=region.height)
"""
# The viewport seen from the top (orthographic): the point under the mouse has one X/Y.
TOP_VIEW = """
ctx = sidebar('VIEW_3D', 'WINDOW')
with bpy.context.temp_override(**ctx):
    bpy.ops.view3d.view_axis(type='TOP')
    rv3d = ctx['area'].spaces.active.region_3d
    rv3d.view_perspective = 'ORTHO'
    rv3d.view_distance = 5.0  # close enough to see a model of about half a metre
result = 1
"""
UNDER_MOUSE = """
from bpy_extras import view3d_utils
ctx = sidebar('VIEW_3D', 'WINDOW')
region, rv3d = ctx['region'], ctx['area'].spaces.active.region_3d
p = view3d_utils.region_2d_to_location_3d(region, rv3d, ({rx}, {ry}), bpy.context.scene.cursor.location)
result = [p.x, p.y, p.z]
"""
# What the drop added: the instanced (or appended) model's world bounding box.
DROPPED = """
import mathutils
def _corners(obj, matrix):
    return [matrix @ obj.matrix_world @ mathutils.Vector(c) for c in obj.bound_box] if obj.type == 'MESH' else []
pts, what = [], []
for o in bpy.context.scene.objects:
    coll = o.instance_collection
    if o.instance_type == 'COLLECTION' and coll is not None and coll.get('hiptah_row_key'):
        m = o.matrix_world @ mathutils.Matrix.Translation(-coll.instance_offset)
        what.append(('instance', o.name, coll.name, list(o.location)))
        for x in coll.all_objects:
            pts += _corners(x, m)
    elif o.get('hiptah_job_id') == {job_id!r}:
        what.append(('object', o.name))
        for x in [o, *o.children_recursive]:
            pts += _corners(x, mathutils.Matrix())
result = None if not pts else dict(
    what=what,
    lo=[min(p[i] for p in pts) for i in range(3)], hi=[max(p[i] for p in pts) for i in range(3)])
"""


def drag(gui: GuiBlender, start: tuple[int, int], end: tuple[int, int], steps: int = 12,
         shot: str | None = "dragging") -> None:
    """Press on ``start``, move in steps to ``end``, release: a hand's drag."""
    gui.move(*start)
    time.sleep(0.4)
    gui.x("xdotool", "mousedown", "1")
    time.sleep(0.3)
    for i in range(1, steps + 1):
        x = start[0] + (end[0] - start[0]) * i // steps
        y = start[1] + (end[1] - start[1]) * i // steps
        gui.move(x, y)
        time.sleep(0.05)
    time.sleep(0.6)  # Blender shows the drop preview at the final position
    if shot:
        gui.screenshot(shot)
    gui.x("xdotool", "mouseup", "1")


def test_generate_then_drag_from_the_asset_browser(gui: GuiBlender, extension_zip: Path,
                                                   sandbox: SandboxServer) -> None:
    gui.start()
    setup_addon(gui, extension_zip, sandbox)

    # 1. Generate from the panel.
    type_prompt(gui, PROMPT)
    gui.click_button("hiptah.generate")
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30)
    (job,) = jobs(gui)
    follow(gui, job["local_id"], until="imported", shot=None)
    detail = job_detail(gui, job["local_id"])
    job_id = detail["job_id"]
    library: dict[str, Any] = gui.call(
        "import os\n"
        f"from {ADDON} import assets\n"
        f"from {ADDON}.blender.settings import read_settings\n"
        "s = read_settings()\n"
        f"path = str(assets.asset_file(s.library_dir, {job_id!r}))\n"
        "libs = [(l.name, l.path) for l in bpy.context.preferences.filepaths.asset_libraries]\n"
        "result = dict(folder=s.library_dir, path=path, libraries=libs)\n"
    )
    gui.wait_until(f"import os\nresult = os.path.isfile({library['path']!r})", timeout=60,
                   describe="the asset file in the library")
    assert ("HiPtah", library["folder"]) in [tuple(x) for x in library["libraries"]], library
    gui.screenshot("generated")

    # 2. File > New.
    gui.call("bpy.ops.wm.read_homefile(app_template=''); result = 1")
    gui.wait_until("result = bpy.data.filepath == '' and 'Cube' in bpy.data.objects", timeout=60,
                   describe="a new file")
    assert gui.call(DROPPED.format(job_id=job_id)) is None  # nothing of the model in the new file

    # 3. An Asset Browser on the HiPtah library, the month's catalog selected.
    catalog = gui.call(
        f"from {ADDON} import assets\n"
        f"from {ADDON}.blender import runtime as _rt\n"
        f"j = _rt.peek().scheduler.get({job['local_id']!r})\n"
        "result = assets.catalog_id(assets.catalog_path(j.submitted_at or j.created_at))"
    )
    browser = gui.call(OPEN_BROWSER)
    # Widen it: the border between it and the viewport moves 450 px left (room for the
    # catalogs and the tiles). Blender's own operator, run with the pointer on the border
    # (it refuses while the pointer is over a region).
    gui.move(browser["x"] - 2, browser["y"])
    time.sleep(0.5)
    gui.call(WIDEN)
    gui.wait_until(f"{BROWSER_WIDTH}\nresult = result > {browser['width'] + 300}", timeout=15,
                   describe="the Asset Browser widened")
    time.sleep(1.0)  # the new editor draws once before its params exist
    shown = gui.call(SHOW_CATALOG.format(catalog=catalog))
    assert shown == dict(library="HiPtah", catalog=catalog), shown
    gui.call(TOP_VIEW)
    time.sleep(2.5)  # the library is read and the previews loaded in the background
    shown = gui.call(SHOW_CATALOG.format(catalog=catalog))  # again, now the catalogs are loaded
    time.sleep(1.0)
    gui.screenshot("asset-browser")

    # 4. Drag the first tile into the viewport, to the right of the cube.
    tiles = gui.call(MAIN_REGION)
    start = (tiles["x"] + 60, tiles["y"] + 60)
    view = gui.region("VIEW_3D", "WINDOW")
    end = (view["x"] + view["width"] // 2 + 260, view["y"] + view["height"] // 2 + 230)
    drag(gui, start, end)
    try:
        gui.wait_until(f"{DROPPED.format(job_id=job_id)}\nresult = result is not None", timeout=30,
                       describe="the dropped model in the scene")
    except Exception:
        scene = gui.call("result = [(o.name, o.type, o.instance_type, list(o.keys())) for o in bpy.context.scene.objects]")
        print("tiles", tiles, "start", start, "end", end, "scene", scene)
        raise
    gui.move(end[0] + 40, end[1] + 40)  # the pointer moves on: Blender redraws the viewport
    time.sleep(1.5)
    gui.screenshot("dropped")

    # 5. The model's bottom centre is under the mouse (top view: X and Y).
    dropped = gui.call(DROPPED.format(job_id=job_id))
    rx, ry = end[0] - view["x"], view["height"] - (end[1] - view["y"])
    target = gui.call(UNDER_MOUSE.format(rx=rx, ry=ry))
    centre = [(dropped["lo"][i] + dropped["hi"][i]) / 2 for i in range(2)]
    pixel = gui.call(UNDER_MOUSE.format(rx=rx + 1, ry=ry))[0] - target[0]  # metres per pixel
    tolerance = max(0.05, 4 * abs(pixel))
    assert abs(centre[0] - target[0]) < tolerance and abs(centre[1] - target[1]) < tolerance, (dropped, target)
    assert dropped["hi"][2] - dropped["lo"][2] > 0.05, dropped  # a real model, standing
