"""Scenario: Image to 3D from a file. Click the panel's Image toggle, click the image
file field and type the path of a small real PNG (Enter), click Generate: the monitor
takes the job to imported, the server got the image (and no prompt), the job is listed
as "image: <file name>"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, jobs, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.scenario import (
    assert_advanced,
    assert_at_cursor,
    follow,
    imported_objects,
    job_detail,
    slow_sandbox,
)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    yield from slow_sandbox()


def make_png(path: Path) -> Path:
    """A 96x96 sketch: a red disc on white, a real PNG (not just a name)."""
    image = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(image).ellipse((16, 16, 80, 80), fill=(200, 30, 30), outline="black", width=3)
    image.save(path, format="PNG")
    return path


def test_image_to_3d_from_file(gui: GuiBlender, extension_zip: Path, sandbox: SandboxServer,
                               tmp_path: Path) -> None:
    png = make_png(tmp_path / "red_disc_sketch.png")
    original = png.read_bytes()
    gui.start()
    setup_addon(gui, extension_zip, sandbox)
    gui.screenshot("panel-text-mode")

    # The source toggle is one enum drawn as two buttons: Text on the left, Image on the right.
    gui.click_button(".source", columns=(0.7,))
    gui.wait_until("result = bpy.context.scene.hiptah.source == 'IMAGE'", timeout=30,
                   describe="the panel in Image mode")
    assert gui.call("result = bpy.context.scene.hiptah.image_file") == ""
    # Generate is greyed out until an image is chosen (the panel's poll reason).
    problem = gui.call(
        f"from {ADDON}.blender.operators import panel_problem\n"
        "with bpy.context.temp_override(**sidebar()):\n"
        "    result = panel_problem(bpy.context, bpy.context.scene.hiptah)\n"
    )
    assert problem and "image" in problem.lower(), problem
    gui.screenshot("image-mode-empty")

    # The path typed into the file field, as a person pastes a path (the 🖼 file browser is
    # Blender's own and is not driven here).
    gui.click_button(".image_file", columns=(0.4,))
    gui.type(str(png))
    gui.key("Return")
    gui.wait_until(f"result = bpy.context.scene.hiptah.image_file == {str(png)!r}", timeout=30,
                   describe="the image file field to hold the path")
    time.sleep(0.5)  # the field's next redraw (the picture only; nothing is asserted on it)
    gui.screenshot("image-chosen")

    gui.click_button("hiptah.generate")
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30,
                   describe="the job in the panel's list")
    (job,) = jobs(gui)
    local_id = job["local_id"]
    samples = follow(gui, local_id, until="imported")
    done = job_detail(gui, local_id)
    assert_advanced(samples, done["timeline"])
    gui.screenshot("image-job-imported")

    record = gui.call(f"from {ADDON}.blender import runtime as _rt\n"
                      f"j = _rt.peek().scheduler.get({local_id!r})\n"
                      "result = dict(image_path=j.image_path, prompt=j.prompt, label=j.label(60),\n"
                      "    listed=[i.label for i in bpy.context.window_manager.hiptah_jobs])")
    assert record["image_path"] == str(png) and not record["prompt"], record
    assert record["label"].startswith("image: red_disc_sketch.png"), record

    server_job = sandbox.job(done["job_id"])
    assert server_job["has_image"] is True, server_job
    assert not server_job["prompt"], server_job
    assert sandbox.state()["generations_used"] == 1

    objects = imported_objects(gui, done["job_id"])
    assert objects["roots"] and objects["collections"] == ["HiPtah"], objects
    # No prompt: named after the image, as the list shows it (not "hiptah_image_model").
    assert [name.split(".")[0] for name in objects["roots"]] == ["red_disc_sketch"], objects
    assert_at_cursor(objects)
    # The user's image is never modified.
    assert png.read_bytes() == original
