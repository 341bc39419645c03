"""The personal asset library in real Blender: every imported generation becomes an
asset file (fields, preview, catalog, instance offset), registered as the 'HiPtah'
library; saving the same job again replaces it; a crash mid-write leaves no broken
file; Add Past Generations back-fills; scaled and turned imports."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from mathutils import Vector

from .conftest import Addon, bpy

pytestmark = pytest.mark.blender

PROMPT = "a red rock"


def asset_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.blend"))


def read_asset(path: Path) -> dict[str, Any]:
    """Open an asset file in a fresh session of this process (the test's scene is
    rebuilt by the fixture) and read what the Asset Browser would show."""
    bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    colls = [c for c in bpy.data.collections if c.asset_data is not None]
    assert len(colls) == 1, [c.name for c in bpy.data.collections]
    coll = colls[0]
    data = coll.asset_data
    preview = coll.preview
    pixels = list(preview.image_pixels_float[:]) if preview is not None else []
    out = {
        "name": coll.name,
        "description": data.description,
        "author": data.author,
        "catalog_id": data.catalog_id,
        "tags": [t.name for t in data.tags],
        "job_id": data.get("hiptah_job_id"),
        "prompt": data.get("hiptah_prompt"),
        "created": data.get("hiptah_created"),
        "offset": tuple(coll.instance_offset),
        "objects": len(coll.all_objects),
        "preview_size": tuple(preview.image_size) if preview is not None else (0, 0),
        "opaque_pixels": sum(1 for i in range(3, len(pixels), 4) if pixels[i] > 0.0),
        "fake_user": coll.use_fake_user,
    }
    bpy.ops.wm.read_homefile(use_empty=True)
    return out


def test_generation_becomes_an_asset(addon: Addon) -> None:
    from hiptah_blender import assets

    scene = bpy.context.scene
    scene.cursor.location = (1.0, 2.0, 0.5)
    assert bpy.ops.hiptah.generate(prompt=PROMPT, format="glb", quality="draft", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    files = asset_files(addon.library)
    assert files == [assets.asset_file(addon.library, record.job_id)]
    assert not [p for p in addon.library.iterdir() if p.name.endswith(assets.PARTIAL_SUFFIX)]

    # Registered once as the 'HiPtah' asset library, so every file sees it.
    libraries = [lib for lib in bpy.context.preferences.filepaths.asset_libraries if lib.name == "HiPtah"]
    assert len(libraries) == 1 and Path(libraries[0].path).resolve() == addon.library.resolve()

    # The scene still holds the model and nothing else of the save.
    assert not [c for c in bpy.data.collections if c.asset_data is not None]
    roots = [o for o in bpy.data.collections["HiPtah"].objects if o.parent is None]

    info = read_asset(files[0])
    assert info["name"] == "Red rock"
    assert info["description"] == PROMPT and info["author"] == "HiPtah"
    assert {"red", "rock", "glb", "draft quality", "hiptah"} <= set(info["tags"])
    assert info["job_id"] == record.job_id and info["prompt"] == PROMPT
    assert info["created"].startswith(time.strftime("%Y-", time.gmtime(record.created_at)))
    month = assets.catalog_path(record.submitted_at or record.created_at)
    assert info["catalog_id"] == assets.catalog_id(month)
    catalogs = assets.read_catalogs(addon.library)
    assert catalogs[info["catalog_id"]] == month and "HiPtah" in catalogs.values()
    # Dragging drops the model's bottom centre at the mouse: the offset is where it stood.
    assert info["offset"] == pytest.approx((1.0, 2.0, 0.5), abs=1e-4)
    assert info["objects"] >= len(roots) >= 1
    assert info["preview_size"][0] >= 64 and info["opaque_pixels"] > 100, info
    assert info["fake_user"]


def test_second_save_replaces_the_asset(addon: Addon) -> None:
    assert bpy.ops.hiptah.generate(prompt=PROMPT, format="glb", quality="draft", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    first = asset_files(addon.library)
    assert len(first) == 1
    before = first[0].stat().st_mtime_ns
    bpy.context.scene.cursor.location = (5.0, 0.0, 0.0)
    assert bpy.ops.hiptah.import_job(local_id=record.local_id) == {"FINISHED"}  # Import Again
    again = asset_files(addon.library)
    assert again == first and again[0].stat().st_mtime_ns != before
    assert read_asset(again[0])["offset"][0] == pytest.approx(5.0, abs=1e-4)


def test_library_off_saves_nothing(addon: Addon) -> None:
    addon.prefs.asset_library = False
    assert bpy.ops.hiptah.generate(prompt=PROMPT, format="stl", quality="draft", wait=True) == {"FINISHED"}
    assert asset_files(addon.library) == []


def test_every_format_is_saved(addon: Addon) -> None:
    for fmt in ("fbx", "stl", "usdz", "3mf"):
        assert bpy.ops.hiptah.generate(prompt=f"a {fmt} chair", format=fmt, quality="draft", wait=True) == {"FINISHED"}
    files = asset_files(addon.library)
    assert len(files) == 4
    for path in files:
        info = read_asset(path)
        assert info["objects"] >= 1 and info["opaque_pixels"] > 0, (path, info)


def test_unwritable_library_keeps_the_import(addon: Addon, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    addon.prefs.asset_library_dir = str(blocker / "library")
    assert bpy.ops.hiptah.generate(prompt=PROMPT, format="glb", quality="draft", wait=True) == {"FINISHED"}
    assert addon.rt().scheduler.jobs()[0].state.value == "imported"
    assert bpy.data.collections["HiPtah"].objects
    warnings = [text for level, text in addon.reports() if level == "WARNING"]
    assert any("not saved to the HiPtah asset library" in t and "Add Past Generations" in t for t in warnings)


def test_add_past_generations(addon: Addon) -> None:
    addon.prefs.asset_library = False
    for prompt in ("a wooden chair", "a stone tower"):
        assert bpy.ops.hiptah.generate(prompt=prompt, format="glb", quality="draft", wait=True) == {"FINISHED"}
    assert asset_files(addon.library) == []
    objects_before = {o.name for o in bpy.data.objects}
    scenes_before = len(bpy.data.scenes)
    addon.prefs.asset_library = True
    assert bpy.ops.hiptah.add_past_generations() == {"FINISHED"}
    assert len(asset_files(addon.library)) == 2
    assert {o.name for o in bpy.data.objects} == objects_before and len(bpy.data.scenes) == scenes_before
    assert "added 2 past generations" in addon.last_report()
    assert bpy.ops.hiptah.add_past_generations() == {"FINISHED"}
    assert "added 0 past generations" in addon.last_report()  # already there: skipped
    assert len(asset_files(addon.library)) == 2


_CRASH_CHILD = textwrap.dedent(
    """
    import sys, time, bpy
    folder, model, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    from hiptah_blender.blender import library
    from hiptah_blender.blender.importers import import_model
    from hiptah_blender.jobs.records import JobRecord
    record = JobRecord(prompt="a red rock", format="glb", quality="draft", job_id="gen_crash", created_at=time.time())
    roots = import_model(bpy.context, model, "glb", record=record)
    objects = [o for r in roots for o in (r, *r.children_recursive)]
    item = library.LibraryItem("gen_crash", "a red rock", "glb", "draft", "gen_crash", model, time.time())
    if mode == "publish":
        import os
        library.assets.publish = lambda partial, final: os._exit(9)  # killed between write and rename
    print("ready", flush=True)
    while True:
        library.write_asset_file(folder, objects, item, anchor=(0.0, 0.0, 0.0))
    """
)


@pytest.mark.parametrize("mode", ["write", "publish"])
def test_crash_mid_write_leaves_the_old_asset(addon: Addon, tmp_path: Path, mode: str) -> None:
    from hiptah_blender import assets

    assert bpy.ops.hiptah.generate(prompt=PROMPT, format="glb", quality="draft", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    model = record.file_path
    folder = tmp_path / "lib"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for attempt in range(3 if mode == "write" else 1):
        child = subprocess.Popen(
            [sys.executable, "-c", _CRASH_CHILD, str(folder), model, mode],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )
        assert child.stdout is not None
        for line in child.stdout:  # the glTF importer logs first
            if line.strip() == "ready":
                break
        else:
            raise AssertionError("the child died before writing")
        if mode == "write":
            time.sleep(0.3 + 0.37 * attempt)  # somewhere inside one of the repeated writes
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        files = asset_files(folder)
        # Never a half-written .blend: either nothing yet, or a whole asset file.
        for path in files:
            info = read_asset(path)
            assert info["job_id"] == "gen_crash" and info["objects"] >= 1
        assert len(files) <= 1
    leftovers = [p for p in folder.iterdir() if p.name.endswith(assets.PARTIAL_SUFFIX)]
    if mode == "publish":
        assert leftovers and not asset_files(folder)  # died before the rename: nothing listed
    # The next save sweeps what the crash left and publishes a whole file.
    for path in leftovers:
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    from hiptah_blender.blender import library

    assert bpy.ops.hiptah.import_job(local_id=record.local_id) == {"FINISHED"}  # read_asset emptied the scene
    roots = [o for o in bpy.data.collections["HiPtah"].objects if o.parent is None]
    objects = [o for r in roots for o in (r, *r.children_recursive)]
    item = library.LibraryItem("gen_crash", PROMPT, "glb", "draft", "gen_crash", model, time.time())
    library.write_asset_file(folder, objects, item, anchor=(0.0, 0.0, 0.0))
    assert [p.name for p in asset_files(folder)] == ["hiptah_gen_crash.blend"]
    assert not [p for p in folder.iterdir() if p.name.endswith(assets.PARTIAL_SUFFIX)]


def test_scaled_import_is_the_target_height(addon: Addon) -> None:
    scene = bpy.context.scene
    scene.cursor.location = (0.0, 0.0, 0.0)
    result = bpy.ops.hiptah.generate(
        prompt="a wooden house", format="glb", quality="draft", size="HEIGHT", target_height=1.8, wait=True
    )
    assert result == {"FINISHED"}
    objects = [o for o in bpy.data.collections["HiPtah"].all_objects if o.type == "MESH"]
    points = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    lo = Vector(tuple(min(p[i] for p in points) for i in range(3)))
    hi = Vector(tuple(max(p[i] for p in points) for i in range(3)))
    assert hi.z - lo.z == pytest.approx(1.8, abs=1e-3)
    assert lo.z == pytest.approx(0.0, abs=1e-4)  # still standing on the cursor
    assert (lo.x + hi.x) / 2 == pytest.approx(0.0, abs=1e-3) and (lo.y + hi.y) / 2 == pytest.approx(0.0, abs=1e-3)
    record = addon.rt().scheduler.jobs()[0]
    assert record.meta["size"] == "HEIGHT" and record.meta["target_height"] == pytest.approx(1.8)


def test_facing_plus_y_turns_half_a_turn(addon: Addon) -> None:
    def roots() -> list[Any]:
        return sorted((o for o in bpy.data.collections["HiPtah"].objects if o.parent is None), key=lambda o: o.name)

    bpy.context.scene.cursor.location = (0.0, 0.0, 0.0)
    assert bpy.ops.hiptah.generate(prompt="a wooden chair", format="glb", quality="draft", wait=True) == {"FINISHED"}
    first = [o.matrix_world.to_quaternion() for o in roots()]
    bpy.ops.object.select_all(action="SELECT")
    bpy.ops.object.delete()
    result = bpy.ops.hiptah.generate(prompt="a wooden chair", format="glb", quality="draft", facing="POS_Y", wait=True)
    assert result == {"FINISHED"}
    turned = [o.matrix_world.to_quaternion() for o in roots()]
    assert len(turned) == len(first) >= 1
    for before, after in zip(first, turned, strict=True):
        difference = before.rotation_difference(after)
        assert difference.angle == pytest.approx(3.14159, abs=1e-3)
        assert abs(difference.axis.z) == pytest.approx(1.0, abs=1e-4)  # about Z only


def test_models_finishing_together_stand_side_by_side(addon: Addon) -> None:
    scene = bpy.context.scene
    scene.cursor.location = (1.0, 1.0, 0.0)
    rt = addon.rt()
    ids = []
    for prompt in ("a rock", "a house", "an anchor"):
        assert bpy.ops.hiptah.generate(prompt=prompt, format="glb", quality="draft", wait=False) == {"FINISHED"}
        ids.append(next(j.local_id for j in rt.scheduler.jobs() if j.prompt == prompt))
    for local_id in ids:
        addon.step_until_done(local_id)
    boxes = []
    for local_id in ids:
        names = rt.get(local_id).meta["imported_objects"]
        objs = [bpy.data.objects[n] for n in names]
        objs = [o for r in objs for o in (r, *r.children_recursive) if o.type == "MESH"]
        pts = [o.matrix_world @ Vector(c) for o in objs for c in o.bound_box]
        boxes.append((min(p.x for p in pts), max(p.x for p in pts), min(p.z for p in pts)))
    boxes.sort()
    for (_lo_a, hi_a, _), (lo_b, _hi_b, _) in itertools.pairwise(boxes):
        assert lo_b > hi_a, f"models overlap: {boxes}"  # beside, not inside each other
    assert boxes[0][0] <= 1.0 <= boxes[0][1]  # the row starts at the cursor
    assert all(z == pytest.approx(0.0, abs=1e-4) for _, _, z in boxes)

    # Moving the cursor starts a new row there.
    scene.cursor.location = (-10.0, 0.0, 0.0)
    record = rt.get(ids[0])
    assert bpy.ops.hiptah.import_job(local_id=record.local_id) == {"FINISHED"}
    roots = [bpy.data.objects[n] for n in rt.get(ids[0]).meta["imported_objects"]]
    objs = [o for r in roots for o in (r, *r.children_recursive) if o.type == "MESH"]
    pts = [o.matrix_world @ Vector(c) for o in objs for c in o.bound_box]
    assert (min(p.x for p in pts) + max(p.x for p in pts)) / 2 == pytest.approx(-10.0, abs=1e-3)



def test_batch_library_also_saves_to_the_personal_library(addon: Addon, tmp_path: Path) -> None:
    from hiptah_blender import assets
    from hiptah_blender.blender.library import AssetLibrary, LibraryItem

    assert bpy.ops.hiptah.generate(prompt="a blue vase", format="glb", quality="draft", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    personal = tmp_path / "personal"
    batch = AssetLibrary(tmp_path / "batch" / "library.blend", previews=False, personal_dir=str(personal))
    batch.open()
    for _ in range(2):  # a re-run replaces, never duplicates
        batch.add(LibraryItem.from_record("row-1", record))
    batch.save()
    assert asset_files(personal) == [assets.asset_file(personal, record.job_id)]
    info = read_asset(asset_files(personal)[0])
    assert info["job_id"] == record.job_id and info["description"] == "a blue vase"
    assert info["catalog_id"] == assets.catalog_id(assets.catalog_path(record.submitted_at or record.created_at))
    # Both libraries use the same month catalog.
    assert assets.read_catalogs(personal) == assets.read_catalogs(tmp_path / "batch")
