"""Image-to-3D in Blender: from an image file or an Image datablock, through the
sandbox, to an imported model; what is sent for each kind of datablock; temporary
files; refusals before anything is uploaded; the panel's Image mode (recording layout).

Bad image *files* given by path (GIF, text, 11 MB, missing) are covered by
tests/reliability/test_bad_input.py; here they are only drawn in the panel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

from .conftest import Addon, bpy
from .test_generate import hiptah_objects, roots_of
from .test_panels import draw_main

pytestmark = pytest.mark.blender


# ---------------------------------------------------------------------- helpers
def picture(path: Path, *, alpha: bool, size: tuple[int, int] = (48, 32)) -> Path:
    """A small picture with a shape (and transparency around it when ``alpha``)."""
    img = PILImage.new("RGBA", size, (30, 60, 200, 0 if alpha else 255))
    ImageDraw.Draw(img).ellipse((4, 3, size[0] - 5, size[1] - 4), fill=(220, 40, 40, 255))
    if path.suffix == ".png":
        img.save(path)
    else:
        img.convert("RGB").save(path, quality=90)
    return path


def generated_image(name: str, *, size: int = 32, packed: bool = True) -> Any:
    """A datablock made in Blender (bpy.data.images.new) and painted with a disc."""
    image = bpy.data.images.new(name, size, size, alpha=True)
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), dtype=np.float32)
    rgba[inside] = (0.9, 0.7, 0.1, 1.0)
    image.pixels.foreach_set(rgba.ravel())
    if packed:
        image.pack()
    return image


def temp_folder(addon: Addon) -> Path:
    return Path(addon.rt().temp_folder())


def temp_files(addon: Addon) -> list[str]:
    folder = temp_folder(addon)
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def image_texture_nodes(objects: list[Any]) -> list[Any]:
    nodes = []
    for obj in objects:
        for slot in getattr(obj, "material_slots", []):
            mat = slot.material
            if mat is not None and mat.node_tree is not None:
                nodes += [n for n in mat.node_tree.nodes if n.type == "TEX_IMAGE" and n.image is not None]
    return nodes


def scene_counts() -> dict[str, int]:
    return {a: len(getattr(bpy.data, a)) for a in ("objects", "meshes", "materials", "images", "collections")}


def refused(addon: Addon, match: str, **kwargs: Any) -> str:
    """generate must fail before anything reaches the sandbox; returns the report."""
    before = scene_counts()
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.hiptah.generate(wait=True, **kwargs)
    assert addon.reports()[-1][0] == "ERROR"
    assert addon.sandbox.jobs() == []  # nothing uploaded, nothing charged
    assert scene_counts() == before
    assert temp_files(addon) == []  # a saved datablock is deleted again
    return addon.last_report()


# ---------------------------------------------------------------------- from files
@pytest.mark.parametrize(("filename", "alpha"), [("logo.png", True), ("photo.jpg", False)])
def test_image_file_to_glb_with_texture(addon: Addon, tmp_path: Path, filename: str, alpha: bool) -> None:
    path = picture(tmp_path / filename, alpha=alpha)
    assert bpy.ops.hiptah.generate(image_path=str(path), format="glb", quality="draft", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "imported" and record.image_path == str(path)
    assert record.label() == f"image: {filename}"
    assert addon.sandbox.jobs()[0]["has_image"] is True
    objects = hiptah_objects()
    # No prompt: the objects are named after the image, as the job list shows it.
    assert roots_of(objects)[0].name.startswith(filename.split(".")[0]), roots_of(objects)
    assert objects and image_texture_nodes(objects), "the GLB's base-colour texture did not arrive"
    assert os.path.isfile(path)  # the user's file is never touched or removed


# ---------------------------------------------------------------------- from datablocks
def test_generated_packed_image_via_the_panel_with_a_prompt(addon: Addon) -> None:
    """A painted, packed datablock chosen in the panel's Image mode: its packed PNG bytes
    are written to a temporary file, sent, and the file is gone once the model is in."""
    image = generated_image("Sketch")
    ui = bpy.context.scene.hiptah
    ui.source, ui.image, ui.prompt, ui.format, ui.quality = "IMAGE", image, "golden", "glb", "draft"
    with bpy.context.temp_override(hiptah_settings=ui):
        assert bpy.ops.hiptah.generate.poll()
    assert bpy.ops.hiptah.generate(wait=True) == {"FINISHED"}  # no arguments: the panel's choice
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "imported" and record.prompt == "golden"
    assert record.meta["image_name"] == "Sketch" and record.meta["temp_image"] is True
    assert record.label() == "image: Sketch · golden"
    assert record.image_path and os.path.dirname(record.image_path) == str(temp_folder(addon))
    assert not os.path.exists(record.image_path), "the temporary PNG outlived its job"
    assert temp_files(addon) == []
    assert image_texture_nodes(hiptah_objects())
    assert image.packed_file is not None and image.name == "Sketch"  # the user's image as it was
    # The job list and details show the image's name, never the temporary file.
    wm = bpy.context.window_manager
    assert wm.hiptah_jobs[0].label == "image: Sketch · golden"


def test_loaded_image_datablock_by_name_sends_its_own_file(addon: Addon, tmp_path: Path) -> None:
    path = picture(tmp_path / "loaded.png", alpha=True)
    image = bpy.data.images.load(str(path))
    assert bpy.ops.hiptah.generate(image_name=image.name, format="stl", quality="draft", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "imported" and record.image_path == str(path)
    assert "temp_image" not in record.meta and temp_files(addon) == []
    assert roots_of(hiptah_objects())[0]["hiptah_format"] == "stl"


def test_what_is_sent_for_each_kind_of_datablock(addon: Addon, tmp_path: Path) -> None:
    """No generation needed: prepare_datablock() decides, the files are checked with Pillow."""
    from hiptah_blender.blender import image_input

    folder = str(tmp_path / "tmp")
    png = picture(tmp_path / "a.png", alpha=True)
    PILImage.new("RGB", (20, 10), (10, 200, 30)).save(tmp_path / "b.bmp")

    loaded = bpy.data.images.load(str(png))
    sent = image_input.prepare_datablock(loaded, folder)
    assert (sent.path, sent.temp) == (str(png), False)  # unmodified PNG on disk: as it is

    # Edited in Blender (dirty): its pixels are saved, the user's image stays unsaved.
    loaded.pixels[0:4] = (0.0, 1.0, 0.0, 1.0)
    assert loaded.is_dirty
    sent = image_input.prepare_datablock(loaded, folder)
    assert sent.temp and sent.path.endswith(".png") and sent.name == loaded.name
    with PILImage.open(sent.path) as out:
        assert out.size == (48, 32) and out.mode == "RGBA"
        assert out.getpixel((0, 31)) == (0, 255, 0, 255)  # Blender's first pixel is bottom left
    assert loaded.is_dirty and loaded.filepath_raw == str(png)

    # Another file type (BMP): converted to PNG.
    bmp = bpy.data.images.load(str(tmp_path / "b.bmp"))
    sent = image_input.prepare_datablock(bmp, folder)
    with PILImage.open(sent.path) as out:
        assert out.format == "PNG" and out.size == (20, 10)
        assert out.convert("RGB").getpixel((5, 5)) == (10, 200, 30)
    assert bmp.file_format == "BMP"

    # Generated, never packed: saved as PNG.
    painted = generated_image("Painted", size=16, packed=False)
    sent = image_input.prepare_datablock(painted, folder)
    with PILImage.open(sent.path) as out:
        assert out.size == (16, 16) and out.getpixel((8, 8))[3] == 255 and out.getpixel((0, 0))[3] == 0

    assert len(os.listdir(folder)) == 3
    assert all(n.startswith(image_input.TEMP_PREFIX) for n in os.listdir(folder))


def test_failed_image_job_keeps_its_temp_file_until_removed(addon: Addon) -> None:
    """Retry may send the image again, so a failed job keeps it; removing the job deletes it."""
    addon.sandbox.set_faults(fail_rate=1.0)
    image = generated_image("Doodle")
    with pytest.raises(RuntimeError, match="failed"):
        bpy.ops.hiptah.generate(image_name=image.name, wait=True)
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "failed" and os.path.isfile(record.image_path)
    assert "image: Doodle" in addon.last_report()
    assert bpy.ops.hiptah.remove_job(local_id=record.local_id) == {"FINISHED"}
    assert not os.path.exists(record.image_path) and temp_files(addon) == []


def test_stray_temp_images_are_swept_when_the_runtime_starts(addon: Addon) -> None:
    from hiptah_blender.blender import image_input, settings

    folder = Path(settings.user_dir("tmp"))
    stray = folder / f"{image_input.TEMP_PREFIX}crashed.png"
    stray.write_bytes(b"\x89PNG\r\n\x1a\n")
    mine = folder / "not-ours.png"  # only files the add-on made are ever deleted
    mine.write_bytes(b"x")
    addon.rt()
    assert not stray.exists() and mine.exists()


# ---------------------------------------------------------------------- refusals
def test_unknown_image_name_is_refused(addon: Addon) -> None:
    assert "no image named 'Nope'" in refused(addon, "no image named", image_name="Nope")


def test_image_path_and_image_name_together_are_refused(addon: Addon, tmp_path: Path) -> None:
    image = generated_image("Both")
    path = picture(tmp_path / "a.png", alpha=False)
    refused(addon, "either image_path or image_name", image_path=str(path), image_name=image.name)


def test_image_whose_file_is_missing_is_refused(addon: Addon, tmp_path: Path) -> None:
    path = picture(tmp_path / "gone.png", alpha=False)
    image = bpy.data.images.load(str(path))
    os.remove(path)
    text = refused(addon, "has no pixels", image_name=image.name)
    assert "gone.png" in text and "is missing" in text


def test_datablock_too_large_as_png_is_refused_and_its_file_deleted(addon: Addon) -> None:
    size = 1900  # random noise does not compress: ~14 MB as an RGBA PNG
    image = bpy.data.images.new("Noise", size, size, alpha=True)
    image.pixels.foreach_set(np.random.default_rng(1).random(size * size * 4, dtype=np.float32))
    text = refused(addon, "the limit is 10 MB", image_name=image.name)
    assert "'Noise'" in text and "MB as PNG" in text and "Resize" in text


def test_panel_image_mode_without_an_image_is_refused(addon: Addon) -> None:
    ui = bpy.context.scene.hiptah
    ui.source, ui.prompt = "IMAGE", "golden"
    refused(addon, "Choose an image file or a Blender image")


# ---------------------------------------------------------------------- the panel, Image mode
def problem_line(layout: Any) -> Any:
    """The first label after the Generate button: the reason it is greyed out, if any."""
    (generate,) = layout.operators("hiptah.generate")
    calls = layout.root.calls
    start = next(i for i, c in enumerate(calls) if c is generate)
    labels = [c for c in calls[start + 1 :] if c.method == "label"]
    return labels[0] if labels else None


def can_generate(ui: Any) -> bool:
    with bpy.context.temp_override(hiptah_settings=ui):
        return bool(bpy.ops.hiptah.generate.poll())


def test_panel_image_mode_with_no_image(addon: Addon) -> None:
    ui = bpy.context.scene.hiptah
    ui.source = "IMAGE"
    layout = draw_main()
    props = [c.args[1] for c in layout.find("prop")]
    assert props[:2] == ["source", "image_file"] and "prompt" in props
    (picker,) = layout.operators("hiptah.pick_image")
    assert picker.args[0] == "hiptah.pick_image"
    (template,) = layout.find("template_ID")
    assert template.args[1] == "image" and template.args[0] == ui
    prompt = next(c for c in layout.find("prop") if c.args[1] == "prompt")
    assert "Optional" in prompt.kwargs["placeholder"]
    line = problem_line(layout)
    assert line.text.startswith("Choose an image file") and not line.layout.effective("alert")
    assert not can_generate(ui)
    assert bpy.ops.hiptah.pick_image.get_rna_type().properties["filter_glob"].default == "*.png;*.jpg;*.jpeg;*.webp"
    assert ui.bl_rna.properties["image_file"].subtype == "FILE_PATH"


def test_panel_image_mode_with_a_valid_file(addon: Addon, tmp_path: Path) -> None:
    ui = bpy.context.scene.hiptah
    ui.source, ui.image_file = "IMAGE", str(picture(tmp_path / "ok.png", alpha=True))
    layout = draw_main()
    assert any(t.startswith("PNG image, ") and t.endswith("KB") for t in layout.texts())
    assert problem_line(layout) is None  # nothing in the way
    assert can_generate(ui)
    ui.prompt = "<b>gold</b>"  # an optional prompt must still be valid
    assert "Remove the HTML" in problem_line(draw_main()).text
    assert not can_generate(ui)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"GIF89a" + b"\x00" * 64, "is not a PNG, JPEG or WebP image"),
        (b"\x89PNG\r\n\x1a\n", "the limit is 10 MB"),  # padded to 11 MB below (sparse: cheap)
        (None, "cannot be read"),
    ],
    ids=["wrong-type", "too-large", "missing"],
)
def test_panel_image_mode_with_an_invalid_file(addon: Addon, tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
        if expected.endswith("10 MB"):
            with open(path, "r+b") as fh:
                fh.truncate(11 * 1024 * 1024)
    ui = bpy.context.scene.hiptah
    ui.source, ui.image_file = "IMAGE", str(path)
    line = problem_line(draw_main())
    text = " ".join(c.text for c in line.layout.root.calls if c.method == "label" and c.layout is line.layout)
    assert expected in text and "bad.png" in text
    assert line.layout.effective("alert") and line.kwargs["icon"] == "ERROR"
    assert not can_generate(ui)


def test_panel_image_mode_with_a_datablock(addon: Addon, tmp_path: Path) -> None:
    ui = bpy.context.scene.hiptah
    ui.source = "IMAGE"
    ui.image_file = str(picture(tmp_path / "first.png", alpha=False))
    ui.image = generated_image("Painted")
    assert ui.image_file == ""  # one image at a time: the datablock replaced the file
    layout = draw_main()
    assert "Packed image: sent as stored in the .blend" in layout.texts()
    assert problem_line(layout) is None and can_generate(ui)

    path = picture(tmp_path / "gone.png", alpha=False)
    ui.image = bpy.data.images.load(str(path))
    assert "Sends its file gone.png" in draw_main().texts()
    os.remove(path)
    line = problem_line(draw_main())
    assert line.layout.effective("alert") and "is missing" in " ".join(draw_main().all_text().split())
    assert not can_generate(ui)

    ui.image_file = str(tmp_path / "first.png")
    assert ui.image is None  # and the other way round


def test_panel_checks_read_a_file_only_when_it_changed(addon: Addon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hiptah_blender.blender import image_input

    reads: list[str] = []
    real = image_input.images.check_image_file

    def counting(path: Any) -> str:
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(image_input.images, "check_image_file", counting)
    ui = bpy.context.scene.hiptah
    path = picture(tmp_path / "cached.png", alpha=False)
    ui.source, ui.image_file = "IMAGE", str(path)
    for _ in range(5):
        draw_main()
        can_generate(ui)
    assert len(reads) == 1  # header read once for ten draws/polls
    picture(path, alpha=True, size=(64, 40))  # the file changed on disk (size differs)
    draw_main()
    assert len(reads) == 2


def test_image_job_details_show_the_image_name(addon: Addon) -> None:
    from hiptah_blender.blender import runtime
    from hiptah_blender.jobs.records import JobRecord, JobState

    from .test_panels import draw_jobs

    record = JobRecord(prompt="", image_path="/tmp/hiptah-image-0123.png", meta={"image_name": "Sketch"})
    record.state = JobState.QUEUED
    rt = addon.rt()
    rt.snapshots = {record.local_id: record}
    runtime.sync_mirror([record])
    assert bpy.context.window_manager.hiptah_jobs[0].label == "image: Sketch"
    assert "image: Sketch" in draw_jobs().texts()
