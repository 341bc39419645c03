"""The personal asset library: every imported generation is also saved as an asset.

On by default (preferences: "Save to Asset Library", "Library Folder"). The first
save registers the folder as the Blender asset library "HiPtah" (Preferences > File
Paths > Asset Libraries) and saves the user preferences once, so the library appears
in every file. Each generation is one small ``.blend`` in the folder, written by the
batch's writer (``library.write_asset_file``): same fields, same catalogs.

Not freezing the UI: the import's step only notes the job. A later step, once the
job's thumbnail (drawn on a worker, ``previews``) is ready, writes the asset's
data-blocks with ``bpy.data.libraries.write`` to a ``.part`` file; a worker thread
then flushes it to disk and renames it over the job's file. Background Blender
(scripts, batches) saves at once, with a thumbnail drawn on the spot.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from .. import assets
from ..i18n import N_
from ..jobs.records import JobRecord, JobState
from . import importers, previews
from .library import LibraryError, LibraryItem, write_asset_file
from .settings import Settings

log = logging.getLogger("hiptah")

THUMBNAIL_WAIT = 5.0  # seconds a save waits for the job's thumbnail before saving without
# Main-thread milliseconds of each save, newest last (scripts/benchmarks/import_cost.py reads them).
COSTS: deque[float] = deque(maxlen=50)

_executor: ThreadPoolExecutor | None = None


def job_key(record: JobRecord) -> str:
    """A generation's identity in the library: its server job id (stable across Import
    Again, Retry and a crash-and-resume), else its local id."""
    return record.job_id or record.local_id


def item_for(record: JobRecord) -> LibraryItem:
    if not record.file_path:
        raise LibraryError(f"Job {record.local_id} has no downloaded file.")
    return LibraryItem(
        row_key=job_key(record),
        prompt=record.prompt or str(record.meta.get("image_name") or "image"),
        format=record.format,
        quality=record.quality,
        job_id=record.job_id or "",
        file_path=record.file_path,
        created_at=record.submitted_at or record.created_at,
    )


def _same_folder(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a.rstrip("/\\") or a)) == os.path.normcase(
        os.path.realpath(b.rstrip("/\\") or b)
    )


def ensure_registered(context: Any, folder: str) -> bool:
    """Register ``folder`` as the asset library "HiPtah" (or point it there) and save the
    user preferences once. True when it changed something."""
    libraries = context.preferences.filepaths.asset_libraries
    library = next((lib for lib in libraries if lib.name == assets.LIBRARY_NAME), None)
    if library is not None and _same_folder(str(library.path), folder):
        return False
    os.makedirs(folder, exist_ok=True)
    if library is None:
        library = libraries.new(name=assets.LIBRARY_NAME, directory=folder)
    else:
        library.path = folder
    try:
        bpy.ops.wm.save_userpref()
    except RuntimeError as exc:  # read-only configuration: the library still works this session
        log.warning("the user preferences could not be saved: %s", exc)
    return True


def _objects_of(roots: list[Any]) -> list[Any]:
    seen: dict[int, Any] = {}
    for root in roots:
        for obj in (root, *root.children_recursive):
            seen.setdefault(obj.as_pointer(), obj)
    return list(seen.values())


def _anchor(objects: list[Any]) -> tuple[float, float, float]:
    bounds = importers._world_bounds(objects)
    if bounds is None:
        return (0.0, 0.0, 0.0)
    lo, hi = bounds
    return ((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, lo.z)


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hiptah-library")
    return _executor


def save(
    context: Any,
    settings: Settings,
    record: JobRecord,
    roots: list[Any],
    *,
    preview: tuple[int, Any] | None = None,
    finish: Callable[[Callable[[], None]], Future[None]] | None = None,
) -> Path:
    """Save the imported ``roots`` of ``record`` as its asset (replacing an earlier save).
    ``finish``: runs the flush and rename (a worker); None: done here before returning.
    Raises OSError or LibraryError; the scene is never changed."""
    folder = settings.library_dir
    os.makedirs(folder, exist_ok=True)
    ensure_registered(context, folder)
    objects = _objects_of(roots)
    started = time.perf_counter()
    path = write_asset_file(folder, objects, item_for(record), anchor=_anchor(objects), preview=preview, finish=finish)
    COSTS.append((time.perf_counter() - started) * 1000.0)
    return path


@dataclass
class _Pending:
    record: JobRecord
    names: list[str]
    since: float = field(default_factory=time.monotonic)


class LibrarySaves:
    """Saves waiting for the main thread (the runtime steps them, one a step)."""

    def __init__(self) -> None:
        self.pending: dict[str, _Pending] = {}
        self.finishing: dict[str, Future[None]] = {}

    def request(self, context: Any, settings: Settings, record: JobRecord, roots: list[Any]) -> str | None:
        """After an import. Background Blender saves now; a UI waits for the thumbnail.
        Returns a warning for the user when the save failed (the import stands)."""
        if not settings.asset_library:
            return None
        if previews.enabled():
            self.pending[record.local_id] = _Pending(record, [o.name for o in _objects_of(roots)])
            return None
        try:
            save(context, settings, record, roots, preview=previews.draw_now(roots))
        except (OSError, LibraryError, RuntimeError) as exc:
            return failure_text(settings, exc)
        return None

    def busy(self) -> bool:
        return bool(self.pending) or any(not f.done() for f in self.finishing.values())

    def step(self, context: Any, settings: Settings) -> tuple[str, str] | None:
        """Save at most one pending job whose thumbnail is ready. Returns (local id,
        warning) when a save failed."""
        for local_id, future in list(self.finishing.items()):
            if future.done():
                del self.finishing[local_id]
                if future.exception() is not None:
                    return local_id, failure_text(settings, future.exception())
        now = time.monotonic()
        for local_id, item in list(self.pending.items()):
            if previews.pending(local_id) and now - item.since < THUMBNAIL_WAIT:
                continue
            del self.pending[local_id]
            objects: list[Any] = [o for o in (bpy.data.objects.get(n) for n in item.names) if o is not None]
            if not objects or not settings.asset_library:
                return None  # deleted (or undone) before it was saved: nothing to save
            roots = [o for o in objects if o.parent is None or o.parent not in objects]
            try:
                save(context, settings, item.record, roots, preview=previews.take_pixels(local_id), finish=self._finish(local_id))
            except (OSError, LibraryError, RuntimeError) as exc:
                return local_id, failure_text(settings, exc)
            return None
        return None

    def _finish(self, local_id: str) -> Callable[[Callable[[], None]], Future[None]]:
        def run(work: Callable[[], None]) -> Future[None]:
            future = _pool().submit(work)
            self.finishing[local_id] = future
            return future

        return run

    def wait(self, timeout: float = 10.0) -> None:
        """Block until the off-thread parts are done (tests, scripts, shutdown)."""
        for future in list(self.finishing.values()):
            future.exception(timeout=timeout)


def failure_text(settings: Settings, exc: BaseException | None) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return N_(  # "{reason}" is translated in turn (catalog._NESTED); the folder never is
        f"The model was imported but not saved to the HiPtah asset library ({reason}). "
        f"Check that the library folder {settings.library_dir} can be written (Preferences > Add-ons > "
        "HiPtah), then use Add Past Generations."
    )


def backfill(context: Any, settings: Settings, records: list[JobRecord], *, force: bool = False) -> tuple[int, list[str]]:
    """Save past generations whose model file is still on disk and that the library lacks
    (``force``: all of them). Each is imported into a temporary scene, saved and removed:
    the open scene is untouched. Returns (saved, problems)."""
    folder = settings.library_dir
    saved, problems = 0, []
    for record in records:
        if record.state not in (JobState.DOWNLOADED, JobState.IMPORTED):
            continue
        if not record.file_path or not os.path.isfile(record.file_path):
            continue
        if not force and assets.asset_file(folder, job_key(record)).exists():
            continue
        try:
            _save_from_file(context, settings, record)
            saved += 1
        except (importers.ModelImportError, OSError, LibraryError, RuntimeError) as exc:
            text = exc.user_text() if isinstance(exc, importers.ModelImportError) else str(exc)
            problems.append(f"{record.label(30)}: {text}")
    return saved, problems


def _save_from_file(context: Any, settings: Settings, record: JobRecord) -> None:
    before = importers._snapshot_ids()
    scene = bpy.data.scenes.new("HiPtah backfill")
    try:
        roots = importers.import_model(
            context, str(record.file_path), record.format, record=record, scene=scene,
            collection_name="HiPtah backfill", placement="ORIGIN", size=settings.size,
        )
        save(context, settings, record, roots, preview=previews.draw_now(roots))
    finally:
        created = importers._new_ids(before)
        importers._remove_ids(idb for ids in created.values() for idb in ids)
        bpy.data.scenes.remove(scene)


def shutdown() -> None:
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=True)
        _executor = None
