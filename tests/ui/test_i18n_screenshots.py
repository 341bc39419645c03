"""The panel in Japanese and in Simplified Chinese, in the real UI: a job running, then
a refused key (status line, row and details). Screenshots (whole screen and the
sidebar cropped) go to out/ui/<test>/. The CJK text is drawn with Blender's own Noto
Sans CJK (Debian's package ships it among Blender's fonts): no font package is needed
in the root. The screenshots are the evidence of real glyphs; README shows one."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.jobsteps import generate, record, shot, wait_state

pytestmark = pytest.mark.timeout(900)

WRONG_KEY = "hp_wrong_key_0123456789abcdef"


def crop_sidebar(gui: GuiBlender, name: str) -> Path:
    """The last screenshot cut to the sidebar (the README's panel images)."""
    full = sorted(gui.out_dir.glob("[0-9][0-9]-*.png"))[-1]  # the numbered screenshots, not earlier crops
    rect = gui.region()  # X screen pixels, origin top-left
    out = gui.out_dir / f"{name}.png"
    gui.x("convert", str(full), "-crop", f"{rect['width']}x{rect['height']}+{rect['x']}+{rect['y']}", "+repage",
          str(out))
    return out


def test_panel_in_japanese_and_chinese(gui: GuiBlender, extension_zip: Path, ui_sandbox: SandboxServer) -> None:
    """One Blender session (the language is switched as a user does, no restart)."""
    ui_sandbox.set_faults(hold=1)  # a job stays "processing" until the test completes it
    gui.start()
    setup_addon(gui, extension_zip, ui_sandbox)
    places: dict[str, tuple[int, int]] = {}
    for lang, prompt in (("ja_JP", "a wooden chair"), ("zh_HANS", "a stone tower")):
        gui.call(f"v = bpy.context.preferences.view\nv.language = {lang!r}\n"
                 "v.use_translate_interface = v.use_translate_tooltips = v.use_translate_reports = True\nresult = 1")
        gui.call(f"bpy.context.preferences.addons[{ADDON!r}].preferences.api_key = {ui_sandbox.api_key!r}\n"
                 "result = 1")
        local_id = generate(gui, places, prompt)
        wait_state(gui, local_id, "processing")
        gui.wait_until(f"from {ADDON}.blender import runtime as _rt\n"
                       f"result = _rt.peek().snapshots[{local_id!r}].job_id is not None", timeout=60,
                       describe="the server's job id")
        gui.call("bpy.context.window_manager.hiptah_jobs_index = 0\nresult = 1")  # its details
        shot(gui, f"running-{lang}")
        crop_sidebar(gui, f"panel-running-{lang}")
        shown = gui.call(f"from {ADDON}.blender import panels as _p, runtime as _rt, i18n as _i\nimport time\n"
                         f"_j = _rt.peek().snapshots[{local_id!r}]\n"
                         "result = _i.iface(_p.status_text(_j, time.time(), 10))")
        assert shown.split(" ")[0] in ("処理中", "处理中"), shown
        ui_sandbox.complete(record(gui, local_id)["job_id"])
        wait_state(gui, local_id, "imported")

        gui.call(f"bpy.context.preferences.addons[{ADDON!r}].preferences.api_key = {WRONG_KEY!r}\nresult = 1")
        failed = generate(gui, places, "a red cup")
        wait_state(gui, failed, "failed")
        gui.call("bpy.context.window_manager.hiptah_jobs_index = 0\nresult = 1")  # the failed job's details
        shot(gui, f"error-{lang}")
        crop_sidebar(gui, f"panel-error-{lang}")
        # Real glyphs, not boxes: the refusal is shown translated, and the CJK font Blender
        # draws it with is among the fonts this Blender loads (a missing one shows boxes).
        facts = gui.call(
            f"from {ADDON}.blender import i18n as _i\nimport os\n"
            "text = _i.iface('The HiPtah API key was refused.')\n"
            "fonts = bpy.utils.system_resource('DATAFILES', path='fonts')\n"
            "result = dict(text=text, cjk=[f for f in os.listdir(fonts) if 'CJK' in f])")
        assert facts["text"] != "The HiPtah API key was refused.", facts
        assert facts["cjk"], facts
