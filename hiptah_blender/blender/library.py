"""The asset library writer (bpy), for batches and for the personal library.

Every generation becomes the same asset (``mark_asset``): a collection holding the
model, marked as an asset with a preview, tags from the prompt plus format and
quality, the prompt as description, author "HiPtah", the catalog of its month
("HiPtah/2026-12", ``hiptah_blender.assets``) and custom metadata (job id, prompt,
format, quality, creation time) that the Asset Browser shows and searches; its
``instance_offset`` is the model's bottom centre, so a drag drops it at the mouse.

Two containers, one asset format:

* ``AssetLibrary`` (batches): one ``.blend`` with every batch result. Point a user
  asset library at the output folder and the results appear there.
* ``write_asset_file`` (the personal library, every imported generation): one small
  ``.blend`` per job in the library folder, written by ``bpy.data.libraries.write``
  (only the asset's own data-blocks, from the open file, without touching it) to a
  ``.part`` file and renamed over the job's file: never half-written, and a second
  save of the same job replaces its file instead of adding a duplicate.

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
import dataclasses
import datetime
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from mathutils import Vector

from .. import assets
from ..batch.tags import asset_name, prompt_tags
from ..jobs.records import JobRecord
from .importers import import_model
from .library_previews import (
    PreviewError,
    add_preview,
    gpu_context_possible,
    has_pixels,
    render_preview,
)

ROOT_COLLECTION = "HiPtah Assets"
AUTHOR = "HiPtah"
CATALOG_FILE = assets.CATALOG_FILE
GRID_SPACING = 4.0
GRID_COLUMNS = 8

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


class AssetLibrary:
    """Opens (or starts) the library file in this Blender session; add(), then save()."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        previews: bool = True,
        quiet: bool = True,
        log: Callable[[str], None] | None = None,
        personal_dir: str | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        # The user's personal library: each added model is also saved there (its own file),
        # finished (flush, rename, a preview where Blender drops it) on a worker thread.
        self.personal_dir = personal_dir
        self._finishing: list[Future[None]] = []
        self._pool: ThreadPoolExecutor | None = None
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
        self._root = root_collection()

    def save(self) -> None:
        """Write the .blend (Blender writes a temporary file and renames it); wait for the
        personal library's files to be finished."""
        self._wait_personal()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with quiet_stdout(self.quiet):
            bpy.ops.wm.save_as_mainfile(filepath=str(self.path), check_existing=False, compress=True)
        self.dirty = False

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
        mark_asset(coll, item)
        assets.ensure_catalogs(self.path.parent, [assets.catalog_path(item.created_at)])
        if self.previews:
            # stderr too: creating the offscreen GL context logs EGL warnings there.
            with quiet_stdout(self.quiet, fds=(1, 2)):
                self._preview(coll)
        self.dirty = True
        if self.personal_dir:
            self._save_personal(coll, item, offset)
        return str(coll.name)

    def _save_personal(self, coll: Any, item: LibraryItem, offset: Any) -> None:
        preview = coll.preview
        pixels = None
        if preview is not None and preview.image_size[0]:
            pixels = (int(preview.image_size[0]), preview.image_pixels_float[:])
        personal = dataclasses.replace(item, row_key=item.job_id or item.row_key)  # one file per job
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hiptah-library")
        pool = self._pool
        try:
            with quiet_stdout(self.quiet):
                write_asset_file(
                    str(self.personal_dir), list(coll.all_objects), personal,
                    anchor=(offset.x, offset.y, offset.z), preview=pixels,
                    finish=lambda work: self._finishing.append(pool.submit(work)),
                )
        except (OSError, LibraryError, PreviewError, RuntimeError) as exc:
            self._warn_personal(exc)

    def _wait_personal(self) -> None:
        finishing, self._finishing = self._finishing, []
        for future in finishing:
            problem = future.exception()
            if problem is not None:
                self._warn_personal(problem)

    def _warn_personal(self, exc: BaseException) -> None:
        self.log(f"warning: not saved to the personal asset library {self.personal_dir}: {exc}")

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

    # ------------------------------------------------------------------ previews
    def _preview(self, coll: Any) -> None:
        gpu = gpu_context_possible()
        if gpu:
            try:
                coll.asset_generate_preview()
                if has_pixels(coll):
                    return
            except (RuntimeError, AttributeError):
                pass
        for engine in ("BLENDER_WORKBENCH", "CYCLES") if gpu else ("CYCLES",):
            try:
                if render_preview(coll, engine) and has_pixels(coll):
                    return
            except RuntimeError:
                continue
        self._preview_failures += 1
        if self._preview_failures == 1:
            self.log("warning: asset previews could not be rendered here; the assets have none")


def root_collection() -> Any:
    """The library file's top collection holding every asset (made when missing)."""
    scene: Any = bpy.context.scene
    for coll in scene.collection.children:
        if coll.get("hiptah_root"):
            return coll
    coll = bpy.data.collections.new(ROOT_COLLECTION)
    coll["hiptah_root"] = True
    scene.collection.children.link(coll)
    return coll


def mark_asset(coll: Any, item: LibraryItem) -> None:
    """Make ``coll`` the generation's asset: the one set of fields every HiPtah asset has."""
    coll.asset_mark()
    data = coll.asset_data
    data.description = item.prompt
    data.author = AUTHOR
    catalog = assets.catalog_path(item.created_at)
    data.catalog_id = assets.catalog_id(catalog)
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
    data["hiptah_created"] = datetime.datetime.fromtimestamp(item.created_at, tz=datetime.UTC).isoformat(
        timespec="seconds"
    )


def write_asset_file(
    folder: str | os.PathLike[str],
    objects: list[Any],
    item: LibraryItem,
    *,
    anchor: tuple[float, float, float],
    preview: tuple[int, Any] | None = None,
    finish: Callable[[Callable[[], None]], Any] | None = None,
) -> Path:
    """Save ``objects`` (all of one model, children included, as placed in the open
    file) as the job's asset file in ``folder``; returns its path. ``anchor``: the
    model's bottom centre (the asset's instance offset); ``preview``: (side, RGBA
    floats) for its thumbnail; ``finish``: runs the flush-and-rename elsewhere (a
    worker), else it is done before returning. The open file is left as it was.
    Raises OSError or LibraryError; the job's earlier file, if any, stays whole."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    assets.sweep_partials(folder)
    final = assets.asset_file(folder, item.row_key)
    partial = assets.partial_file(final)
    coll = bpy.data.collections.new(asset_name(item.prompt))  # in no scene: only written
    try:
        for obj in objects:
            coll.objects.link(obj)
        coll.instance_offset = anchor
        coll["hiptah_row_key"] = item.row_key
        mark_asset(coll, item)
        if preview is not None and not PARTIAL_WRITE_DROPS_PREVIEWS:
            side, pixels = preview
            image: Any = coll.preview_ensure()
            image.image_size = (side, side)
            image.image_pixels_float.foreach_set(pixels)
        assets.ensure_catalogs(folder, [assets.catalog_path(item.created_at)])
        try:
            # ABSOLUTE: textures an importer left on disk still resolve from the library.
            bpy.data.libraries.write(str(partial), {coll}, path_remap="ABSOLUTE", fake_user=True, compress=False)
        except BaseException:
            _discard(partial)
            raise
    finally:
        coll.asset_clear()
        bpy.data.collections.remove(coll)

    def publish() -> None:
        try:
            if preview is not None and PARTIAL_WRITE_DROPS_PREVIEWS:
                add_preview(partial, item.row_key, preview)
            assets.publish(partial, final)
        except BaseException:
            _discard(partial)
            raise

    if finish is None:
        publish()
    else:
        finish(publish)
    return final


# Some Blenders' libraries.write copies each data-block first, and a collection's copy
# never keeps its preview: checked, 4.3.2 and 5.0.1 drop it, 4.2 and 4.5 write it. Where
# it is not known to be kept, a background Blender adds it (``add_preview``).
PARTIAL_WRITE_DROPS_PREVIEWS = tuple(bpy.app.version[:2]) not in {(4, 2), (4, 5)}

def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


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
