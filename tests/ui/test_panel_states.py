"""Scenario: every state of the panel, at the default sidebar width and at a narrow one.

One Blender, driven as an artist would (prompt typed, Generate clicked, the sidebar's
edge dragged), against a sandbox whose ``hold`` fault keeps jobs processing until the
test ends them, so each state is reached on purpose, never by timing luck:
no key, key refused, queued, running with the server's progress, failed with its hint,
cancelled, downloading (the CDN slowed down), imported with its thumbnail, several
jobs; then the preferences (Creator, then Enterprise with its concurrent-job field).

For every state and both widths: a screenshot cropped to the sidebar
(``out/ui/every_panel_state_at_two_widths/<state>-<default|narrow>.png``; the README's
come from here) and a check of what the panel draws there: no line cut with "…" (each label measured with the UI
font against the room textfit gives it) and every error message drawn once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.jobsteps import WAIT, generate, record, status_line, wait_state
from tests.ui.panelshots import (
    assert_drawn_well,
    check_panel,
    select_job,
    set_sidebar_width,
    sidebar_shot,
)

pytestmark = pytest.mark.timeout(1200)

WRONG_KEY = "hp_wrong_key_0123456789abcdef"
NARROW = 220  # px: a sidebar dragged narrow (Blender's default here is ~290)


@pytest.fixture
def held_sandbox() -> Iterator[SandboxServer]:
    # ETA 20 s: the add-on's first poll comes then, so "queued" lasts long enough to see.
    server = SandboxServer(latency=20, models="auto", seed=0, webhook_backoff=0.1, webhook_timeout=2)
    try:
        yield server.start()
    finally:
        server.stop()


def set_pref(gui: GuiBlender, name: str, value: object) -> None:
    gui.call(f"bpy.context.preferences.addons[{ADDON!r}].preferences.{name} = {value!r}\nresult = 1")


class Shots:
    """Each state at both widths: screenshot + draw check; the panel must still be in
    ``state`` (the selected job's) after both, or the picture would lie."""

    def __init__(self, gui: GuiBlender) -> None:
        self.gui = gui
        self.default = gui.region()["width"]
        self.reports: dict[str, dict[str, Any]] = {}

    def capture(self, name: str, state: str | None = None) -> None:
        for width in (self.default, NARROW):
            actual = set_sidebar_width(self.gui, width)
            report = check_panel(self.gui)
            assert report["width"] == actual, report
            assert_drawn_well(report)
            sidebar_shot(self.gui, f"{name}-{'default' if width == self.default else 'narrow'}")
            self.reports[f"{name}-{width}"] = report
            if state is not None:
                assert check_panel(self.gui)["selected_state"] == state, (name, state)
        set_sidebar_width(self.gui, self.default)


def test_every_panel_state_at_two_widths(gui: GuiBlender, extension_zip: Path,
                                         held_sandbox: SandboxServer) -> None:
    sb = held_sandbox
    gui.start()
    # No region overlap: the sidebar has its own background, so a crop ends at the panels.
    gui.call("bpy.context.preferences.system.use_region_overlap = False\nresult = 1")
    setup_addon(gui, extension_zip, sb, api_key="")
    shots = Shots(gui)
    assert shots.default > NARROW + 40, shots.default

    # 1. No key: the status line says so and offers the preferences.
    assert status_line(gui)["problem"][0] == "MissingAPIKeyError"
    shots.capture("no-key")
    assert "No HiPtah API key is set." in shots.reports[f"no-key-{shots.default}"]["text"]

    # 2. A wrong key: the job fails; the refusal is on the status line, the detail box
    #    points to it instead of repeating it.
    set_pref(gui, "api_key", WRONG_KEY)
    places: dict[str, tuple[int, int]] = {}
    chair = generate(gui, places, "red wooden chair")
    failed = wait_state(gui, chair, "failed")
    assert status_line(gui)["refusal"][0] == "AuthenticationError"
    select_job(gui, chair)
    shots.capture("key-refused", "failed")
    text = shots.reports[f"key-refused-{shots.default}"]["text"]
    assert isinstance(text, str) and text.count(failed["error"]["message"]) == 1, text
    assert "Cause: the message at the top of the panel." in text

    # 3. The right key; jobs are held at "processing" until the test ends them.
    set_pref(gui, "api_key", sb.api_key)
    gui.wait_until(f"from {ADDON}.blender import account as _a\n"
                   f"from {ADDON}.blender.settings import read_settings as _rs\n"
                   "result = _a.current(_rs(bpy.context)) is None", timeout=30, describe="the refusal gone")
    sb.set_faults(hold=1)
    stool = generate(gui, places, "a small wooden stool with three legs")
    gui.wait_until(f"from {ADDON}.blender import runtime as _rt\n"
                   f"_j = _rt.peek().snapshots[{stool!r}]\nresult = _j.job_id is not None",
                   timeout=WAIT, describe="the stool accepted by the server")
    select_job(gui, stool)
    shots.capture("queued", "queued")

    gui.wait_until(f"from {ADDON}.blender import runtime as _rt\n"
                   f"_j = _rt.peek().snapshots[{stool!r}]\n"
                   "result = _j.state.value == 'processing' and _j.progress is not None",
                   timeout=WAIT, describe="the stool processing with the server's progress")
    shots.capture("running", "processing")

    # 4. A job the server fails: the detail box has the message and the hint, once.
    lamp = generate(gui, places, "a glass table lamp")
    lamp_id = gui.wait_until(f"from {ADDON}.blender import runtime as _rt\n"
                             f"result = _rt.peek().snapshots[{lamp!r}].job_id",
                             timeout=WAIT, describe="the lamp accepted")
    sb.fail(lamp_id)
    wait_state(gui, lamp, "failed")
    select_job(gui, lamp)
    shots.capture("failed", "failed")
    text = shots.reports[f"failed-{shots.default}"]["text"]
    assert "Try rephrasing the prompt" in str(text), text

    # 5. A job cancelled (its row's X: the operator the button runs).
    tower = generate(gui, places, "a stone tower")
    gui.wait_until(f"from {ADDON}.blender import runtime as _rt\n"
                   f"result = _rt.peek().snapshots[{tower!r}].job_id is not None",
                   timeout=WAIT, describe="the tower accepted")
    assert gui.call(f"result = invoke('hiptah.cancel_job', local_id={tower!r})") == ["FINISHED"]
    wait_state(gui, tower, "cancelled")
    select_job(gui, tower)
    shots.capture("cancelled", "cancelled")

    # 6. Downloading: the CDN waits 20 s before the first byte.
    select_job(gui, stool)
    sb.set_faults(hold=0, slow_rate=1.0, slow_seconds=20)
    sb.complete(record(gui, stool)["job_id"])
    wait_state(gui, stool, "downloading")
    shots.capture("downloading", "downloading")
    sb.set_faults(slow_rate=0.0)

    # 7. Imported, with the thumbnail drawn off the main thread.
    wait_state(gui, stool, "imported")
    gui.wait_until(f"from {ADDON}.blender import runtime as _rt, previews as _pv\n"
                   f"result = _pv.icon_for(_rt.peek().snapshots[{stool!r}]) > 0",
                   timeout=WAIT, describe="the stool's thumbnail")
    shots.capture("imported", "imported")

    # 8. Several jobs at once: two more running, the list shows all six.
    sb.set_faults(hold=1)
    key = generate(gui, places, "a brass key")
    barrel = generate(gui, places, "an oak barrel")
    gui.wait_until(f"from {ADDON}.blender import runtime as _rt\n"
                   f"_s = _rt.peek().snapshots\n"
                   f"result = all(_s[i].job_id and _s[i].state.value in ('queued', 'processing') "
                   f"for i in ({key!r}, {barrel!r}))",
                   timeout=WAIT, describe="the key and the barrel running on the server")
    select_job(gui, key)
    shots.capture("several")
    assert gui.call("result = len(bpy.context.window_manager.hiptah_jobs)") == 6
    sb.set_faults(hold=0)

    # 9. The preferences: one setting a line; the concurrent-job field only for Enterprise.
    gui.call(f"bpy.ops.preferences.addon_show(module={ADDON!r}); result = 1")
    gui.wait_until("result = len(bpy.context.window_manager.windows) == 2", timeout=20)
    prefs_shot(gui, "preferences")
    set_pref(gui, "plan", "ENTERPRISE")
    # Scrolled down (the wheel's step, 40 px, six times): Concurrent Jobs and Generation.
    gui.call("w = bpy.context.window_manager.windows[1]\n"
             "a = next(a for a in w.screen.areas if a.type == 'PREFERENCES')\n"
             "r = next(r for r in a.regions if r.type == 'WINDOW')\n"
             "with bpy.context.temp_override(window=w, area=a, region=r):\n"
             "    for _ in range(6):\n"
             "        bpy.ops.view2d.scroll_down()\n"
             "result = 1")
    prefs_shot(gui, "preferences-enterprise")


def prefs_shot(gui: GuiBlender, name: str) -> Path:
    """The preferences window, cropped to it with ImageMagick."""
    rect = gui.call("w = bpy.context.window_manager.windows[1]\n"
                    "result = dict(x=w.x, y=w.y, width=w.width, height=w.height, screen_height=0)")
    gui.call("for _w in bpy.context.window_manager.windows:\n"
             "    for _a in _w.screen.areas: _a.tag_redraw()\nresult = 1")
    time.sleep(0.5)
    gui.call("result = 1")
    full = gui.screenshot(name + "-full")
    path = gui.out_dir / f"{name}.png"
    top = gui.height - rect["y"] - rect["height"]
    gui.x("convert", str(full), "-crop", f"{rect['width']}x{rect['height']}+{rect['x']}+{max(0, top)}",
          "+repage", str(path))
    full.unlink()
    return path
