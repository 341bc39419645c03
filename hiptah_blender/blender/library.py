"""The asset library writer (bpy): one ``.blend`` with every batch result as an asset.

Each model goes into its own collection under "HiPtah Assets", marked as an asset
with a preview, tags from the prompt, the prompt as description, author "HiPtah",
a "HiPtah" catalog and custom metadata (job id, prompt, format, quality) that the
Asset Browser shows and searches. Point a user asset library at the output folder
(Preferences > File Paths > Asset Libraries) and the results appear there.

Identity is the row key (``collection["hiptah_row_key"]``): adding a row that is
already in the library replaces its contents in place, so re-runs and imports
repeated after a crash never duplicate an asset.

In the file itself the assets sit on a grid (so opening it shows them side by
side); each collection's ``instance_offset`` is its grid cell, so dragging the
asset into a scene puts the model at the drop point, not at its grid position.

Previews: ``collection.asset_generate_preview()`` renders the same thumbnail the
Asset Browser would, and works in background mode when an OpenGL context can be
created (software EGL suffices: checked with the bpy module). Where it cannot (or
produces a blank image) a 128 x 128 Workbench, then Cycles, render of the
collection is written into the preview's pixels instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import math
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from mathutils import Vector

from ..batch.tags import asset_name, prompt_tags
from ..jobs.records import JobRecord
from .importers import import_model

ROOT_COLLECTION = "HiPtah Assets"
AUTHOR = "HiPtah"
CATALOG_PATH = "HiPtah"
# Fixed, so every batch library (and re-runs) share one catalog.
CATALOG_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://hiptah.com/blender/catalog/hiptah"))
CATALOG_FILE = "blender_assets.cats.txt"
PREVIEW_SIZE = 128
GRID_SPACING = 4.0
GRID_COLUMNS = 8

_CATALOG_HEADER = """# This is an Asset Catalog Definition file for Blender.
#
# Empty lines and lines starting with `#` will be ignored.
# The first non-ignored line should be the version indicator.
# Other lines are of the format "UUID:catalog/path/for/assets:simple catalog name"

VERSION 1

"""


class LibraryError(RuntimeError):
    """A model could not be added to the library (the library itself is unchanged)."""


@dataclass(frozen=True)
class LibraryItem:
    row_key: str
    prompt: str
    format: str
    quality: str
    job_id: str
    file_path: str
    created_at: float

    @classmethod
    def from_record(cls, row_key: str, record: JobRecord) -> LibraryItem:
        if not record.file_path:
            raise LibraryError(f"Job {record.local_id} has no downloaded file.")
        return cls(
            row_key=row_key,
            prompt=record.prompt,
            format=record.format,
            quality=record.quality,
            job_id=record.job_id or "",
            file_path=record.file_path,
            created_at=record.submitted_at or record.created_at,
        )


def ensure_catalog(folder: Path) -> None:
    """Add the HiPtah catalog to the folder's catalog file, keeping any others."""
    path = folder / CATALOG_FILE
    line = f"{CATALOG_ID}:{CATALOG_PATH}:{CATALOG_PATH}\n"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if CATALOG_ID in text:
        return
    if not text.strip():
        text = _CATALOG_HEADER
    elif not text.endswith("\n"):
        text += "\n"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text + line, encoding="utf-8")
    os.replace(tmp, path)


class AssetLibrary:
    """Opens (or starts) the library file in this Blender session; add(), then save()."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        previews: bool = True,
        quiet: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.previews = previews
        self.quiet = quiet
        self.log = log or (lambda _line: None)
        self.dirty = False
        self._root: Any = None
        self._preview_failures = 0

    # ------------------------------------------------------------------ file
    def open(self) -> None:
        with quiet_stdout(self.quiet):
            if self.path.exists():
                bpy.ops.wm.open_mainfile(filepath=str(self.path), load_ui=False)
            else:
                # Factory startup data, but not read_factory_settings: that also resets the
                # preferences, which disables the installed add-on running this very batch.
                bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        self._root = self._root_collection()
        ensure_catalog(self.path.parent)

    def save(self) -> None:
        """Write the .blend (Blender writes a temporary file and renames it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with quiet_stdout(self.quiet):
            bpy.ops.wm.save_as_mainfile(filepath=str(self.path), check_existing=False, compress=True)
        self.dirty = False

    def _root_collection(self) -> Any:
        scene: Any = bpy.context.scene
        for coll in scene.collection.children:
            if coll.get("hiptah_root"):
                return coll
        coll = bpy.data.collections.new(ROOT_COLLECTION)
        coll["hiptah_root"] = True
        scene.collection.children.link(coll)
        return coll

    # ------------------------------------------------------------------ queries
    def find(self, row_key: str) -> Any:
        for coll in bpy.data.collections:
            if coll.get("hiptah_row_key") == row_key:
                return coll
        return None

    def assets(self) -> list[dict[str, Any]]:
        """What the library holds (for reports and tests)."""
        out = []
        for coll in bpy.data.collections:
            if coll.get("hiptah_row_key") and coll.asset_data is not None:
                data = coll.asset_data
                out.append(
                    {
                        "name": coll.name,
                        "row_key": coll["hiptah_row_key"],
                        "job_id": data.get("hiptah_job_id"),
                        "tags": [t.name for t in data.tags],
                        "objects": len(coll.all_objects),
                    }
                )
        return out

    # ------------------------------------------------------------------ add
    def add(self, item: LibraryItem) -> str:
        """Import ``item`` as an asset (replacing an earlier import of the same row);
        returns the collection's name. LibraryError leaves the library as it was."""
        if self._root is None:
            raise LibraryError("The library is not open.")
        existing = self.find(item.row_key)
        slot = (
            int(existing["hiptah_slot"])
            if existing is not None and existing.get("hiptah_slot") is not None
            else self._next_slot()
        )
        coll = bpy.data.collections.new(asset_name(item.prompt))
        self._root.children.link(coll)
        try:
            with quiet_stdout(self.quiet):
                objects = self._import_into(coll, item)
        except BaseException as exc:
            # Also on KeyboardInterrupt: never leave a half-imported asset to be saved.
            self._remove_collection(coll)
            if isinstance(exc, Exception) and not isinstance(exc, LibraryError):
                raise LibraryError(f"{os.path.basename(item.file_path)}: {exc}") from exc
            raise
        if existing is not None:
            self._remove_collection(existing)
            coll.name = asset_name(item.prompt)  # take the old name back now it is free
        coll["hiptah_row_key"] = item.row_key
        coll["hiptah_slot"] = slot
        offset = Vector(((slot % GRID_COLUMNS) * GRID_SPACING, -(slot // GRID_COLUMNS) * GRID_SPACING, 0.0))
        for obj in objects:
            if obj.parent is None:
                obj.matrix_world.translation += offset
        coll.instance_offset = offset
        view_layer: Any = bpy.context.view_layer
        view_layer.update()
        self._mark(coll, item)
        if self.previews:
            # stderr too: creating the offscreen GL context logs EGL warnings there.
            with quiet_stdout(self.quiet, fds=(1, 2)):
                self._preview(coll)
        self.dirty = True
        return str(coll.name)

    def _next_slot(self) -> int:
        slots = [int(c["hiptah_slot"]) for c in bpy.data.collections if c.get("hiptah_slot") is not None]
        return max(slots, default=-1) + 1

    def _import_into(self, coll: Any, item: LibraryItem) -> list[Any]:
        before = {o.as_pointer() for o in bpy.data.objects}
        record = JobRecord(
            prompt=item.prompt,
            format=item.format,
            quality=item.quality,
            job_id=item.job_id,
            created_at=item.created_at,
        )
        import_model(
            bpy.context, item.file_path, item.format, record=record,
            collection_name=coll.name, placement="ORIGIN",
        )
        new: list[Any] = [o for o in bpy.data.objects if o.as_pointer() not in before]
        if not new:
            raise LibraryError(f"{os.path.basename(item.file_path)} contains no objects.")
        for obj in new:
            # Objects the importer created outside ``coll`` (e.g. an importer's own collection).
            if coll.name not in {c.name for c in obj.users_collection}:
                for other in list(obj.users_collection):
                    other.objects.unlink(obj)
                coll.objects.link(obj)
        return new

    def _remove_collection(self, coll: Any) -> None:
        objects = list(coll.all_objects)
        children = list(coll.children_recursive)
        if objects:
            bpy.data.batch_remove(objects)
        for child in children:
            with contextlib.suppress(ReferenceError):
                bpy.data.collections.remove(child)
        bpy.data.collections.remove(coll)
        # Meshes, materials and images only the removed objects used.
        bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=False, do_recursive=True)

    def _mark(self, coll: Any, item: LibraryItem) -> None:
        coll.asset_mark()
        data = coll.asset_data
        data.description = item.prompt
        data.author = AUTHOR
        data.catalog_id = CATALOG_ID
        while data.tags:
            data.tags.remove(data.tags[0])
        for tag in [*prompt_tags(item.prompt), item.format, f"{item.quality} quality", "hiptah"]:
            if tag not in data.tags:
                data.tags.new(tag, skip_if_exists=True)
        data["hiptah_job_id"] = item.job_id
        data["hiptah_prompt"] = item.prompt
        data["hiptah_format"] = item.format
        data["hiptah_quality"] = item.quality
        data["hiptah_row_key"] = item.row_key
        data["hiptah_created"] = datetime.datetime.fromtimestamp(
            item.created_at, tz=datetime.UTC
        ).isoformat(timespec="seconds")

    # ------------------------------------------------------------------ previews
    def _preview(self, coll: Any) -> None:
        gpu = gpu_context_possible()
        if gpu:
            try:
                coll.asset_generate_preview()
                if _has_pixels(coll):
                    return
            except (RuntimeError, AttributeError):
                pass
        for engine in ("BLENDER_WORKBENCH", "CYCLES") if gpu else ("CYCLES",):
            try:
                if _render_preview(coll, engine) and _has_pixels(coll):
                    return
            except RuntimeError:
                continue
        self._preview_failures += 1
        if self._preview_failures == 1:
            self.log("warning: asset previews could not be rendered here; the assets have none")


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


def _has_pixels(coll: Any) -> bool:
    preview = coll.preview
    if preview is None or tuple(preview.image_size) == (0, 0):
        return False
    pixels = preview.image_pixels_float[:]
    return any(pixels[i] > 0.0 for i in range(3, len(pixels), 4))  # any opaque pixel


def _render_preview(coll: Any, engine: str) -> bool:
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


@contextlib.contextmanager
def quiet_stdout(enabled: bool = True, *, fds: tuple[int, ...] = (1,)) -> Iterator[None]:
    """Send ``fds`` to /dev/null: importers, saves and renders print chatter ("Saved: ...",
    glTF importer timings, EGL context warnings) from C and Python that would break the
    progress display. Errors still arrive as exceptions."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = [(fd, os.dup(fd)) for fd in fds]
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd, _copy in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
