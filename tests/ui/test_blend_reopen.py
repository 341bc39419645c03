"""Scenario: a job generated to imported, the .blend saved (File > Save As), File > New,
then the saved .blend opened again (File > Open): the job list is back in the panel with
the finished job, and clicking its Import Again button imports a second copy. Then the
same file is opened by a new Blender (same user folder, the file as argument): the list
is there again and Import Again works there too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import jobs, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.scenario import (
    assert_at_cursor,
    follow,
    imported_objects,
    job_detail,
    open_sidebar,
    slow_sandbox,
    type_prompt,
)

PROMPT = "a brass lantern"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    yield from slow_sandbox()


def listed(gui: GuiBlender) -> list[dict[str, Any]]:
    """The rows of the panel's list (the WindowManager mirror the UIList draws)."""
    return list(gui.call("result = [dict(local_id=i.local_id, state=i.state, label=i.label) "
                         "for i in bpy.context.window_manager.hiptah_jobs]"))


def roots(gui: GuiBlender, job_id: str) -> list[str]:
    return list(imported_objects(gui, job_id)["roots"])


def import_again(gui: GuiBlender, job_id: str, before: int) -> dict[str, Any]:
    """Click the finished job's Import Again button (row or details box) and wait for the copy."""
    gui.click_button("hiptah.import_job", columns=(0.08, 0.12, 0.85, 0.8))
    gui.wait_until(
        f"result = len([o for o in bpy.context.scene.objects if o.get('hiptah_job_id') == {job_id!r} "
        f"and o.parent is None]) == {before + 1}",
        timeout=60, describe="a second copy of the model after Import Again",
    )
    return imported_objects(gui, job_id)


def test_blend_save_new_open(gui: GuiBlender, gui_factory: Callable[..., GuiBlender], extension_zip: Path,
                             sandbox: SandboxServer, tmp_path: Path) -> None:
    blend = tmp_path / "lantern scene.blend"
    gui.start()
    setup_addon(gui, extension_zip, sandbox)
    type_prompt(gui, PROMPT)
    gui.click_button("hiptah.generate")
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30)
    (job,) = jobs(gui)
    local_id = job["local_id"]
    follow(gui, local_id, until="imported")
    job_id = job_detail(gui, local_id)["job_id"]
    assert len(roots(gui, job_id)) == 1

    # File > Save As, then File > New.
    gui.call(f"bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r}); result = 1")
    assert blend.is_file()
    gui.call("bpy.ops.wm.read_homefile(app_template=''); result = 1")
    gui.wait_until("result = bpy.data.filepath == '' and 'Cube' in bpy.data.objects", timeout=60,
                   describe="a new file")
    assert roots(gui, job_id) == []  # the new file has no model
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30,
                   describe="the job history in the new file's panel")
    open_sidebar(gui)
    gui.screenshot("new-file")

    # File > Open the saved file: its model, and the finished job in the panel.
    gui.call(f"bpy.ops.wm.open_mainfile(filepath={str(blend)!r}); result = 1")
    gui.wait_until(f"result = bpy.data.filepath == {str(blend)!r}", timeout=60, describe="the saved file open")
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30,
                   describe="the job list after File > Open")
    open_sidebar(gui)
    assert listed(gui) == [dict(local_id=local_id, state="imported", label=PROMPT)]
    assert [j["state"] for j in jobs(gui)] == ["imported"]
    before = roots(gui, job_id)
    assert len(before) == 1
    assert gui.call("result = bpy.context.scene.hiptah.prompt") == PROMPT  # saved with the scene
    gui.screenshot("reopened-job-listed")

    gui.call("bpy.context.scene.cursor.location = (-3.0, 2.0, 0.5); result = 1")
    again = import_again(gui, job_id, before=1)
    new = [name for name in again["roots"] if name not in before]
    assert len(new) == 1 and again["collections"] == ["HiPtah"], again
    assert_at_cursor(dict(box=gui.call(BOX_OF.format(name=new[0])), cursor=again["cursor"]))
    gui.screenshot("imported-again")
    assert sandbox.state()["generations_used"] == 1  # Import Again never generates

    # The same file in a new Blender with the same user folder.
    assert gui.quit() == 0
    second = gui_factory(name="second-blender", user_resources=gui.user_resources)
    second.start(blend=blend)
    second.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=60,
                      describe="the job list in a new Blender")
    open_sidebar(second)
    assert listed(second) == [dict(local_id=local_id, state="imported", label=PROMPT)]
    assert len(roots(second, job_id)) == 1  # saved before the second import
    second.screenshot("second-blender-job-listed")
    import_again(second, job_id, before=1)
    second.screenshot("second-blender-imported-again")
    assert sandbox.state()["generations_used"] == 1


# World bounding box of one top-level object and its children.
BOX_OF = """
import mathutils
def _tree(o):
    yield o
    for c in o.children:
        yield from _tree(c)
_pts = [x.matrix_world @ mathutils.Vector(c) for x in _tree(bpy.data.objects[{name!r}]) if x.type == 'MESH'
        for c in x.bound_box]
result = dict(lo=[min(p[i] for p in _pts) for i in range(3)], hi=[max(p[i] for p in _pts) for i in range(3)])
"""
