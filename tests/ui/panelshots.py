"""The panel at a given sidebar width: resize the sidebar by dragging its edge, take a
screenshot cropped to the sidebar, and check what Blender would draw.

The check draws both panels inside the GUI Blender against the recording layout of
tests/blender (same draw code, the real region and UI font) and measures every label
that has a line to itself with ``blf``, against the width textfit allows for it there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from tests.ui.conftest import ADDON, ROOT
from tests.ui.driver.session import GuiBlender, GuiError

RECORDING_LAYOUT = ROOT / "tests" / "blender" / "recording_layout.py"
MARGIN = 6  # px kept below the last panel when cropping


def set_sidebar_width(gui: GuiBlender, width: int) -> int:
    """Drag the sidebar's left edge, as a person does, until the region is ``width`` px
    wide (within a few px); returns the width Blender reports. A grab that Blender did not
    take (the edge's action zone not active yet) is tried again at another height."""
    tries = [(1, 0.5), (2, 0.15), (0, 0.85), (1, 0.3), (2, 0.7), (1, 0.05)]
    for dx, fy in tries:
        rect = gui.region()
        if abs(rect["width"] - width) <= 3:
            return int(rect["width"])
        x0, y0 = rect["x"] + dx, rect["y"] + int(rect["height"] * fy)
        x1 = x0 + rect["width"] - width
        gui.move(x0 - 12, y0)  # arrive at the edge from the viewport, as a hand does
        time.sleep(0.15)
        gui.move(x0, y0)
        time.sleep(0.4)
        gui.x("xdotool", "mousedown", "1")
        time.sleep(0.1)
        steps = 8
        for i in range(1, steps + 1):
            gui.move(x0 + (x1 - x0) * i // steps, y0)
            time.sleep(0.04)
        time.sleep(0.1)
        gui.x("xdotool", "mouseup", "1")
        time.sleep(0.5)
    rect = gui.region()
    if abs(rect["width"] - width) > 3:
        raise GuiError(f"the sidebar is {rect['width']} px wide after dragging, not {width}")
    return int(rect["width"])


def sidebar_shot(gui: GuiBlender, name: str) -> Path:
    """A screenshot after a repaint, cropped with ImageMagick to the sidebar down to the
    last panel (the region has no overlap: below the panels is its plain background)."""
    rect = gui.region()
    # The pointer goes over the viewport in a few steps: no tooltip, and a report popup
    # (an operator's error shows one under the pointer) closes once it is left behind.
    for dx, dy in ((-120, 40), (-300, 200), (-500, 400), (-300, 300)):
        gui.move(rect["x"] + dx, rect["y"] + dy)
        time.sleep(0.05)
    gui.call("for _a in sidebar()['window'].screen.areas: _a.tag_redraw()\nresult = 1")
    time.sleep(0.3)
    gui.call("result = 1")  # two event-loop turns: the redraw happened
    full = gui.screenshot(name + "-full")
    path = gui.out_dir / f"{name}.png"
    gui.x("convert", str(full), "-crop", f"{rect['width']}x{rect['height']}+{rect['x']}+{rect['y']}",
          "+repage", str(path))
    bottom = _content_bottom(path)
    gui.x("convert", str(path), "-crop", f"{rect['width']}x{bottom}+0+0", "+repage", str(path))
    full.unlink()
    return path


def _content_bottom(path: Path) -> int:
    """The last pixel row of the panels (+ a margin), scanning up from the region's
    plain background, away from the tab strip on the right."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        width, height = rgb.size
        xs = range(4, max(5, width - 40), 2)
        background = rgb.getpixel((6, height - 3))
        for y in range(height - 1, 0, -1):
            if any(_differs(rgb.getpixel((x, y)), background) for x in xs):
                return min(height, y + 1 + MARGIN)
    return height


def _differs(a: Any, b: Any) -> bool:
    return bool(max(abs(int(p) - int(q)) for p, q in zip(a, b, strict=True)) > 6)


# Runs inside Blender: both panels drawn against the recording layout with the real
# sidebar region, then every label / bar / button text that has a line to itself measured.
CHECK_CODE = """
import importlib.util, sys, time
from types import SimpleNamespace
import blf
if 'hiptah_recording_layout' not in sys.modules:
    _spec = importlib.util.spec_from_file_location('hiptah_recording_layout', {layout_path!r})
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _mod
    _spec.loader.exec_module(_mod)
_rl = sys.modules['hiptah_recording_layout']
from {addon} import textfit as _tf
from {addon}.blender import panels as _p, ui_text as _ut, runtime as _rt
from {addon}.blender.settings import read_settings as _rs
_region = sidebar()['region']
_ctx = SimpleNamespace(scene=bpy.context.scene, window_manager=bpy.context.window_manager,
                       preferences=bpy.context.preferences, region=_region)
_scale = _ut.ui_scale(_ctx)
blf.size(0, round(_ut.font_points(_ctx) * _scale, 1))

def _alone(call):
    node = call.layout
    while node is not None:
        if node.kind in ('row', 'split') and sum(1 for c in node.root.calls if c.layout is node) > 1:
            return False
        node = node.parent
    return True

def _boxes(call):
    node, n = call.layout, 0
    while node is not None:
        n += node.kind == 'box'
        node = node.parent
    return n

_cut, _checked, _texts = [], 0, []
for _cls in (_p.VIEW3D_PT_hiptah, _p.VIEW3D_PT_hiptah_jobs):
    _fake = _rl.FakePanel()
    _cls.draw(_fake, _ctx)
    _texts.append(_fake.layout.all_text())
    for _c in _fake.layout.find('label') + _fake.layout.find('progress') + _fake.layout.operators():
        if not _c.text or not _alone(_c):
            continue
        _icon = _c.method != 'progress' and _c.kwargs.get('icon', 'NONE') != 'NONE'
        _room = _tf.label_width(_region.width, _scale, boxes=_boxes(_c), icon=_icon)
        _w = blf.dimensions(0, _c.text)[0]
        _checked += 1
        _dots = _c.text.rstrip('\\u2026') if _c.method == 'operator' else _c.text  # "Generate from List…"
        if _w > _room or '\\u2026' in _dots:
            _cut.append([_c.text, round(_w), round(_room)])
_r = _rt.peek()
_errors = []
if _r is not None:
    _shown = _p.status_error(_rs(bpy.context), _r)
    if _shown is not None:
        _errors.append(_shown[1])
    for _j in _r.snapshots.values():
        _e = _p.job_problem(_r, _j)
        if _e is not None:
            _errors.append(_e.message)
_wm = bpy.context.window_manager
_sel = _wm.hiptah_jobs[_wm.hiptah_jobs_index].local_id if 0 <= _wm.hiptah_jobs_index < len(_wm.hiptah_jobs) else None
result = dict(width=_region.width, checked=_checked, cut=_cut, text=' '.join(' '.join(_texts).split()),
              errors=sorted(set(_errors)), selected=_sel,
              selected_state=None if _sel is None or _r is None else _r.snapshots[_sel].state.value)
"""


def check_panel(gui: GuiBlender) -> dict[str, Any]:
    """What the panel draws at the sidebar's current width: ``cut`` lists every label that
    would not fit (text, its width, the room), ``text`` is all of the drawn text."""
    return dict(gui.call(CHECK_CODE.format(layout_path=str(RECORDING_LAYOUT), addon=ADDON)))


def assert_drawn_well(report: dict[str, Any]) -> None:
    """No line cut with "…", and each error message drawn at most once (the status line
    and the detail box never both show it)."""
    assert report["checked"] > 3, report
    assert report["cut"] == [], report["cut"]
    for message in report["errors"]:
        words = " ".join(message.split())
        assert report["text"].count(words) <= 1, (words, report["text"])


def select_job(gui: GuiBlender, local_id: str) -> None:
    """Select a job's row (what a click on it does): the detail box shows that job."""
    gui.call("wm = bpy.context.window_manager\n"
             f"wm.hiptah_jobs_index = [i.local_id for i in wm.hiptah_jobs].index({local_id!r})\nresult = 1")
