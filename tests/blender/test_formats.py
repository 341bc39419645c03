"""Every format of the contract, end to end in Blender, on the interactive path (the
monitor imports; test_generate.py covers the blocking wait=True path per format),
and damaged files of every format leaving the scene exactly as it was.

Damage that the client's download checks would catch (wrong magic bytes, a cut
file) is written over the finished download, as a disk error or another program
would: the importer is the last line of defence. A corrupt CDN download is also
run through the sandbox's fault to show it never reaches the importer.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from mathutils import Vector

from .conftest import Addon, bpy
from .test_generate import hiptah_objects, roots_of, world_bounds

pytestmark = pytest.mark.blender

FORMATS = ["glb", "fbx", "usdz", "stl", "3mf"]
PROMPT = "a red wooden chair"
# Bytes a file of each format starts with: kept when the rest is replaced by garbage,
# so the damage passes the client's magic check (client/magic.py).
HEADER_BYTES = {"glb": 12, "fbx": 27, "usdz": 30, "stl": 84, "3mf": 30}


def data_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        attr: sorted(i.name for i in getattr(bpy.data, attr))
        for attr in ("objects", "meshes", "materials", "images", "collections", "textures", "node_groups")
    }
    layer = bpy.context.view_layer
    state["selected"] = sorted(o.name for o in layer.objects if o.select_get())
    state["active"] = layer.objects.active.name if layer.objects.active else None
    state["matrices"] = {o.name: [tuple(r) for r in o.matrix_world] for o in bpy.data.objects}
    return state


def garbage(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 17 + 7) % 256 for i in range(n))  # deterministic noise


def damage(path: str, how: str, fmt: str) -> None:
    with open(path, "rb") as fh:
        data = fh.read()
    if how == "garbage-after-header":
        head = data[: HEADER_BYTES[fmt]]
        blob = head + garbage(max(4096, len(data) // 4), 1)
    elif how == "truncated":  # the first half only
        blob = data[: len(data) // 2]
    else:  # "garbled-inside": same size, the zip directory intact, the compressed model garbled
        a, b = len(data) // 3, 2 * len(data) // 3
        blob = data[:a] + garbage(b - a, 5) + data[b:]
    with open(path, "wb") as fh:
        fh.write(blob)


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_imported_by_the_monitor_then_damaged_copies_change_nothing(addon: Addon, fmt: str) -> None:
    scene = bpy.context.scene
    scene.cursor.location = (-1.5, 2.0, 0.75)
    bpy.ops.mesh.primitive_cube_add(location=(4, 4, 0))  # selected + active before the import
    assert bpy.ops.hiptah.generate(prompt=PROMPT, format=fmt, quality="draft", wait=False) == {"FINISHED"}
    rt = addon.rt()
    record = rt.scheduler.jobs()[0]
    done = addon.step_until_done(record.local_id, timeout=90)
    assert done.state.value == "imported", (done.state, addon.reports()[-3:])
    assert done.file_path.endswith("." + fmt)

    # One undo step for the background import; placement, collection, provenance, selection.
    assert rt.undo_pushes == 1
    objects = hiptah_objects()
    assert objects and all(o.name in scene.collection.children["HiPtah"].objects for o in objects)
    roots = roots_of(objects)
    assert roots and all(r["hiptah_job_id"] == done.job_id and r["hiptah_format"] == fmt for r in roots)
    assert all(r["hiptah_prompt"] == PROMPT and r["hiptah_quality"] == "draft" for r in roots)
    lo, hi = world_bounds(objects)
    assert (Vector(((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, lo.z)) - scene.cursor.location).length < 1e-3
    assert set(bpy.context.selected_objects) == set(objects)
    assert bpy.context.view_layer.objects.active in roots
    assert any(o.type == "MESH" and len(o.data.vertices) for o in objects)

    # The same job's file, damaged two ways: ERROR, scene identical, job still importable later.
    # 3MF also garbled inside a structurally valid archive: caught by our reader, not the download checks.
    for how in ("garbage-after-header", "truncated", *(["garbled-inside"] if fmt == "3mf" else [])):
        with open(done.file_path, "rb") as fh:
            original = fh.read()
        damage(done.file_path, how, fmt)
        before = data_state()
        with pytest.raises(RuntimeError, match=r"could not be imported|is corrupt"):
            bpy.ops.hiptah.import_job(local_id=record.local_id)
        assert data_state() == before, how
        level, text = addon.reports()[-1]
        assert level == "ERROR", text
        assert os.path.basename(done.file_path) in text or "3MF member" in text, text
        assert record.local_id in rt.import_errors
        assert rt.undo_pushes == 1  # a failed import pushes no undo step
        with open(done.file_path, "wb") as fh:
            fh.write(original)
    # The intact file imports again (and clears the row's error).
    assert bpy.ops.hiptah.import_job(local_id=record.local_id) == {"FINISHED"}
    assert record.local_id not in rt.import_errors


def test_corrupt_download_from_the_cdn_never_reaches_the_importer(addon: Addon) -> None:
    """The sandbox garbles every download: the client's checks refuse it (after the
    scheduler's automatic retries); nothing is imported and the scene is unchanged."""
    addon.sandbox.set_faults(corrupt_rate=1.0)
    before = data_state()
    with pytest.raises(RuntimeError, match=r"corrupt|damaged|not a GLB") as info:
        bpy.ops.hiptah.generate(prompt=PROMPT, format="glb", quality="draft", wait=True)
    assert data_state() == before
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "failed" and record.error is not None
    assert record.error.kind == "DownloadError" and record.error.retryable
    level, text = addon.reports()[-1]
    assert level == "ERROR" and text in str(info.value)
    assert len(addon.sandbox.jobs()) == 1  # downloads were retried, the generation was not
