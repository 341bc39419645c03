"""Scenario: type a prompt in the panel, click Generate; the add-on's modal monitor alone
takes the job through queued / processing / downloading to imported (the row's progress
bar is on screen meanwhile); the model is in the "HiPtah" collection at the 3D cursor;
one real Ctrl+Z over the viewport removes the import (the job stays listed) and
Ctrl+Shift+Z brings it back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import jobs, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.scenario import (
    assert_advanced,
    assert_at_cursor,
    follow,
    imported_objects,
    job_detail,
    monitor_running,
    slow_sandbox,
    type_prompt,
    viewport_centre,
)

PROMPT = "a small wooden stool"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    # "hold": past its due time a job stays processing until the test completes it, so
    # the first poll (at the server's ETA) always sees it processing.
    for server in slow_sandbox(latency=8):
        server.set_faults(hold=1)
        yield server


def test_generate_then_undo(gui: GuiBlender, extension_zip: Path, sandbox: SandboxServer) -> None:
    gui.start()
    setup_addon(gui, extension_zip, sandbox)
    # The model lands at the 3D cursor: put it somewhere other than the origin.
    gui.call("bpy.context.scene.cursor.location = (1.5, -2.0, 0.75); result = 1")
    gui.screenshot("panel-idle")

    type_prompt(gui, PROMPT)
    gui.click_button("hiptah.generate")
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30,
                   describe="the job in the panel's list")
    (job,) = jobs(gui)
    assert job["prompt"] == PROMPT, job
    local_id = job["local_id"]
    assert monitor_running(gui), "Generate did not start the job monitor"

    # The add-on's own monitor does everything from here; the test only watches.
    samples = follow(gui, local_id, until="processing", shot="job-queued")
    running = job_detail(gui, local_id)
    assert running["progress"] is not None, running  # the server's percent, on the row
    gui.screenshot("job-processing")
    sandbox.complete(running["job_id"])
    samples += follow(gui, local_id, until="imported", shot=None)
    done = job_detail(gui, local_id)
    assert "status processing" in done["timeline"], done["timeline"]
    assert_advanced(samples, done["timeline"])
    assert done["job_id"] and done["job_id"].startswith("gen_"), done
    gui.screenshot("job-imported")

    objects = imported_objects(gui, done["job_id"])
    assert objects["roots"], objects
    assert objects["collections"] == ["HiPtah"], objects
    assert_at_cursor(objects)
    assert sandbox.state()["generations_used"] == 1

    # One real Ctrl+Z over the viewport takes the whole import back.
    x, y = viewport_centre(gui)
    gui.move(x, y)
    gui.key("ctrl+z")
    gui.wait_until(
        f"result = not [o for o in bpy.context.scene.objects if o.get('hiptah_job_id') == {done['job_id']!r}]",
        timeout=30, describe="the imported objects to be undone",
    )
    after_undo = gui.call(
        "result = dict(objects=sorted(o.name for o in bpy.context.scene.objects),\n"
        "    hiptah='HiPtah' in bpy.data.collections, cursor=list(bpy.context.scene.cursor.location),\n"
        "    listed=[j.local_id for j in bpy.context.window_manager.hiptah_jobs])"
    )
    assert not any(name in after_undo["objects"] for name in objects["all"]), after_undo
    assert "Cube" in after_undo["objects"], after_undo  # only the import went, not the scene
    assert not after_undo["hiptah"], after_undo  # the collection the import made went too
    assert after_undo["listed"] == [local_id], after_undo
    # Only the import was taken back: the Generate step before it (the typed prompt) stays.
    assert gui.call("result = bpy.context.scene.hiptah.prompt") == PROMPT
    assert [j["state"] for j in jobs(gui)] == ["imported"]
    gui.screenshot("after-undo")

    gui.move(x, y)
    gui.key("ctrl+shift+z")
    gui.wait_until(
        f"result = bool([o for o in bpy.context.scene.objects if o.get('hiptah_job_id') == {done['job_id']!r}])",
        timeout=30, describe="the import to be redone",
    )
    redone = imported_objects(gui, done["job_id"])
    assert sorted(redone["all"]) == sorted(objects["all"]), redone
    assert redone["collections"] == ["HiPtah"], redone
    assert_at_cursor(redone)
    gui.screenshot("after-redo")
    # Nothing was generated twice.
    assert sandbox.state()["generations_used"] == 1
