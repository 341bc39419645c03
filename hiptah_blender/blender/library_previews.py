"""Asset previews for the library writer (``library.py``): rendered for batch assets
(``collection.asset_generate_preview()``, else a Workbench or Cycles render of the
collection), and put into an already written asset file where Blender's partial
write drops them (4.3, 5.0, ...: ``add_preview``, a background Blender, off the UI's
thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import bpy
from mathutils import Vector


class PreviewError(RuntimeError):
    """A preview could not be put into an asset file."""


PREVIEW_SIZE = 128
# Read here, on the main thread: add_preview() runs on a worker, where bpy is off limits.
_BLENDER: str = bpy.app.binary_path  # "" in the bpy module: its Python runs the script


@functools.cache
def gpu_context_possible() -> bool:
    """Whether Blender can create an OpenGL context here. Background Blender on Linux
    makes one through EGL and *aborts the process* when libEGL cannot be loaded (a
    server without GL libraries): there only Cycles on the CPU can render a preview."""
    if not bpy.app.background or not sys.platform.startswith("linux"):
        return True
    try:
        ctypes.CDLL("libEGL.so.1")
    except OSError:
        return False
    return True


def has_pixels(coll: Any) -> bool:
    preview = coll.preview
    if preview is None or tuple(preview.image_size) == (0, 0):
        return False
    pixels = preview.image_pixels_float[:]
    return any(pixels[i] > 0.0 for i in range(3, len(pixels), 4))  # any opaque pixel


def render_preview(coll: Any, engine: str) -> bool:
    """Render ``coll`` alone into a temporary scene and copy the pixels into its preview."""
    objects = [o for o in coll.all_objects if o.type in {"MESH", "CURVE", "SURFACE", "FONT", "META"}]
    if not objects:
        return False
    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    lo = Vector([min(c[i] for c in corners) for i in range(3)])
    hi = Vector([max(c[i] for c in corners) for i in range(3)])
    centre = (lo + hi) / 2
    radius = max((hi - lo).length / 2, 1e-3)

    # Any: fake-bpy-module's types do not know engine-specific settings (cycles, energy).
    scene: Any = bpy.data.scenes.new("HiPtah preview")
    cam_data: Any = bpy.data.cameras.new("HiPtah preview camera")
    cam = bpy.data.objects.new("HiPtah preview camera", cam_data)
    light_data: Any = bpy.data.lights.new("HiPtah preview light", type="SUN")
    light = bpy.data.objects.new("HiPtah preview light", light_data)
    world = bpy.data.worlds.new("HiPtah preview world")
    fd, out_path = tempfile.mkstemp(prefix="hiptah-preview-", suffix=".png")
    os.close(fd)
    image: Any = None
    try:
        scene.collection.children.link(coll)
        scene.collection.objects.link(cam)
        scene.collection.objects.link(light)
        world.color = (0.05, 0.05, 0.05)
        scene.world = world
        light_data.energy = 3.0
        light.rotation_euler = (math.radians(50), 0.0, math.radians(30))
        direction = Vector((1.0, -1.2, 0.9)).normalized()
        fov = cam_data.angle
        distance = radius / math.sin(fov / 2) * 1.05
        cam.location = centre + direction * distance
        cam.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
        cam_data.clip_end = distance * 4
        scene.camera = cam
        scene.render.engine = engine
        scene.render.resolution_x = scene.render.resolution_y = PREVIEW_SIZE
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = True
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGBA"
        scene.render.filepath = out_path
        if engine == "CYCLES":
            scene.cycles.samples = 32
            scene.cycles.device = "CPU"
            # Builds without OpenImageDenoise (Debian's) fail the whole render with it on;
            # 32 samples at 128 px are clean enough without.
            scene.cycles.use_denoising = False
        bpy.ops.render.render(write_still=True, scene=scene.name)
        image = bpy.data.images.load(out_path, check_existing=False)
        preview = coll.preview_ensure()
        preview.image_size = tuple(image.size)
        preview.image_pixels_float = image.pixels[:]
        return True
    finally:
        if image is not None:
            bpy.data.images.remove(image)
        bpy.data.objects.remove(cam)
        bpy.data.objects.remove(light)
        bpy.data.cameras.remove(cam_data)
        bpy.data.lights.remove(light_data)
        bpy.data.worlds.remove(world)
        bpy.data.scenes.remove(scene)
        with contextlib.suppress(OSError):
            os.unlink(out_path)


_ADD_PREVIEW = """
import array, sys, bpy
path, raw, key, side = sys.argv[sys.argv.index("--") + 1:][:4]
bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
coll = next(c for c in bpy.data.collections if c.get("hiptah_row_key") == key)
pixels = array.array("f")
with open(raw, "rb") as handle:
    pixels.frombytes(handle.read())
image = coll.preview_ensure()
image.image_size = (int(side), int(side))
image.image_pixels_float.foreach_set(pixels)
bpy.ops.wm.save_as_mainfile(filepath=path, check_existing=False, compress=False)
"""


def add_preview(path: Path, row_key: str, preview: tuple[int, Any]) -> None:
    """Put the preview into the written asset file with a background Blender (the bpy
    module's Python when this is the bpy module): off the UI's thread, ~1-2 s."""
    import subprocess

    import numpy as np

    side, pixels = preview
    raw = path.with_name(path.name + ".rgba")
    try:
        raw.write_bytes(np.asarray(pixels, dtype=np.float32).tobytes())
        if _BLENDER:
            command = [_BLENDER, "-b", "--factory-startup", "--python-expr", _ADD_PREVIEW]
        else:
            command = [sys.executable, "-c", _ADD_PREVIEW]
        done = subprocess.run(
            [*command, "--", str(path), str(raw), row_key, str(side)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise PreviewError(f"the asset preview could not be added ({done.stderr.strip()[-300:]})")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(raw)


