"""A thumbnail of each imported model, shown in the job's detail box.

Not Blender's own object preview: ``ID.asset_generate_preview()`` froze a UI Blender's
main thread for 0.8-6.6 s per object (scripts/benchmarks/preview_cost.py, Blender 4.3.2, software
GL), and in background Blender it renders synchronously (about 1-3 s). Instead, after
an import the main thread copies the meshes' vertices and triangles (``foreach_get``
on attributes: about 1 ms per 100k triangles; skipped above ``MAX_TRIANGLES``), one worker thread draws them
(``hiptah_blender.thumbnail``, numpy), and the next step puts the pixels into an
``ImagePreview`` of the add-on's own preview collection, which ``template_icon`` draws.
Background Blender has no icon system (icon ids stay 0), so nothing is requested
there (``IN_BACKGROUND`` turns it on for tests): no thumbnail, no error. Previews live
for the session.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..jobs.records import JobRecord

log = logging.getLogger("hiptah")

# Background Blender cannot show icons: no copying and drawing there (batch runs import
# hundreds of models), unless a test turns this on to check the pixels.
IN_BACKGROUND = False
MAX_TRIANGLES = 2_000_000  # faces; beyond this even the fast copy nears 50 ms of main thread
# Main-thread milliseconds of each request (copying the mesh), newest last.
COSTS: deque[float] = deque(maxlen=50)

_executor: ThreadPoolExecutor | None = None
_warm: Future[Any] | None = None  # numpy + thumbnail imported on the worker
_deferred: dict[str, list[str]] = {}  # local id -> object names, until the warm-up is done
_pending: dict[str, Future[Any]] = {}
_collection: Any = None  # bpy.utils.previews collection, created on first use
# Finished drawings (RGBA floats) the asset library has not taken yet, by local id.
_pixels: dict[str, Any] = {}


def _meshes(objects: Sequence[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for root in objects:
        for obj in (root, *getattr(root, "children_recursive", ())):
            if getattr(obj, "type", "") == "MESH" and obj.data is not None:
                seen.setdefault(obj.name, obj)
    return list(seen.values())


def copy_geometry(objects: Sequence[Any]) -> tuple[Any, Any, Any] | None:
    """World-space vertices, polygon corners and polygon sizes (None: all triangles) of
    the objects' meshes, for ``thumbnail.render_polygons`` (main thread). None when
    there is nothing to draw or it is too big to copy cheaply."""
    import numpy as np

    meshes = _meshes(objects)
    if sum(len(o.data.polygons) for o in meshes) > MAX_TRIANGLES:
        return None
    verts, corners, sizes, offset = [], [], [], 0
    for obj in meshes:
        mesh = obj.data
        co, corner, size = _mesh_arrays(mesh, np)
        matrix = np.array(obj.matrix_world, dtype=np.float32)
        verts.append(co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3])
        corners.append(corner + offset)
        sizes.append(size if size is not None else np.full(len(corner) // 3, 3, dtype=np.int32))
        offset += len(mesh.vertices)
    if not corners or offset == 0 or not sum(len(c) for c in corners):
        return None
    all_triangles = all(len(s) * 3 == len(c) for s, c in zip(sizes, corners, strict=True))
    return np.concatenate(verts), np.concatenate(corners), None if all_triangles else np.concatenate(sizes)


def _mesh_arrays(mesh: Any, np: Any) -> tuple[Any, Any, Any]:
    """Vertex positions, polygon corners and polygon sizes (None when all are triangles)
    of one mesh, from the "position" and ".corner_vert" attributes: ~1 ms per 100k
    triangles, where ``loop_triangles.foreach_get`` takes 20-30 ms. Imported models are
    triangulated (GLB, STL, 3MF); other meshes also copy each polygon's size (~10 ms per
    100k polygons) and are fanned into triangles on the worker."""
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    position = mesh.attributes.get("position")
    if position is not None and position.data_type == "FLOAT_VECTOR" and len(position.data) == len(mesh.vertices):
        position.data.foreach_get("vector", co)
    else:
        mesh.vertices.foreach_get("co", co)
    corner_attr = mesh.attributes.get(".corner_vert")
    corners = np.empty(len(mesh.loops), dtype=np.int32)
    if corner_attr is not None and len(corner_attr.data) == len(mesh.loops):
        corner_attr.data.foreach_get("value", corners)
    else:
        mesh.loops.foreach_get("vertex_index", corners)
    if len(corners) == 3 * len(mesh.polygons):
        return co, corners, None
    sizes = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", sizes)
    return co, corners, sizes


def enabled() -> bool:
    import bpy

    return IN_BACKGROUND or not bpy.app.background


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hiptah-thumb")
    return _executor


def warm_up() -> None:
    """Import numpy and the drawing code on the worker (once a job is submitted, well
    before its import): the first thumbnail would otherwise pay ~100 ms of imports."""
    import importlib

    global _warm
    if not enabled() or _warm is not None:
        return
    _warm = _pool().submit(importlib.import_module, f"{__package__.rpartition('.')[0]}.thumbnail")


def request(local_id: str, objects: Sequence[Any]) -> float | None:
    """Copy the imported meshes and start drawing their thumbnail on a worker. Returns
    the main-thread cost in ms, None when nothing was started. Never raises."""
    if not enabled():
        return None
    if _warm is not None and not _warm.done():
        # An import right after start-up: importing numpy here would wait for the
        # worker's import (~100 ms). Copy at a later step instead.
        _deferred[local_id] = [o.name for o in objects]
        return 0.0
    started = time.perf_counter()
    try:
        geometry = copy_geometry(objects)
    except (ImportError, AttributeError, ReferenceError, RuntimeError, ValueError) as exc:
        log.info("no thumbnail for job %s: %s", local_id, exc)  # a nicety: never fail an import
        return None
    if geometry is None:
        return None
    from .. import thumbnail

    _pending[local_id] = _pool().submit(thumbnail.render_polygons, *geometry)
    cost = (time.perf_counter() - started) * 1000.0
    COSTS.append(cost)
    return cost


def collect() -> bool:
    """Turn finished drawings into previews (main thread, from the runtime's step).
    True when one was added (the sidebar needs a redraw)."""
    global _collection
    if _deferred and (_warm is None or _warm.done()):
        import bpy

        for local_id, names in list(_deferred.items()):
            del _deferred[local_id]
            objects = [o for o in (bpy.data.objects.get(n) for n in names) if o is not None]
            if objects:
                request(local_id, objects)
    done = [local_id for local_id, future in _pending.items() if future.done()]
    for local_id in done:
        future = _pending.pop(local_id)
        if future.exception() is not None:
            log.info("thumbnail of job %s failed: %s", local_id, future.exception())
            continue
        pixels = future.result()
        if _collection is None:
            import bpy.utils.previews

            _collection = bpy.utils.previews.new()
        preview = _collection.get(local_id) or _collection.new(local_id)
        side = math.isqrt(len(pixels) // 4)
        preview.image_size = (side, side)
        preview.image_pixels_float.foreach_set(pixels)
        _pixels[local_id] = pixels
        while len(_pixels) > 64:  # never taken (library off): keep the newest only
            del _pixels[next(iter(_pixels))]
    return bool(done)


def pending(local_id: str) -> bool:
    """Whether the job's thumbnail is still being drawn (or waits for the warm-up)."""
    return local_id in _pending or local_id in _deferred


def take_pixels(local_id: str) -> tuple[int, Any] | None:
    """The job's finished drawing as (side, RGBA floats), once, for its asset preview."""
    pixels = _pixels.pop(local_id, None)
    if pixels is None:
        return None
    return math.isqrt(len(pixels) // 4), pixels


def draw_now(objects: Sequence[Any]) -> tuple[int, Any] | None:
    """Draw a thumbnail on this thread (background Blender, Add Past Generations)."""
    try:
        geometry = copy_geometry(objects)
    except (AttributeError, ReferenceError, RuntimeError, ValueError) as exc:
        log.info("no thumbnail: %s", exc)
        return None
    if geometry is None:
        return None
    from .. import thumbnail

    pixels = thumbnail.render_polygons(*geometry, size=128)  # the Asset Browser's preview size
    return 128, pixels


def busy() -> bool:
    """A thumbnail is waiting to be copied or drawn (the monitor keeps stepping)."""
    return bool(_pending or _deferred)


def wait(timeout: float = 10.0) -> None:
    """Block until the pending drawings are done, then collect them (tests, scripts)."""
    end = time.monotonic() + timeout
    if _warm is not None:
        _warm.exception(timeout=timeout)
    collect()  # starts deferred requests
    for future in list(_pending.values()):
        future.exception(timeout=max(0.0, end - time.monotonic()))
    collect()


def preview_for(local_id: str) -> Any:
    return _collection.get(local_id) if _collection is not None else None


def icon_for(record: JobRecord) -> int:
    """The icon id of the job's thumbnail, 0 when there is none (yet, or no UI). Cheap."""
    preview = preview_for(record.local_id)
    if preview is None or not preview.image_size[0]:
        return 0
    return int(preview.icon_id)


def clear() -> None:
    """Drop every thumbnail and the worker (unregister)."""
    global _collection, _executor, _warm
    _pending.clear()
    _deferred.clear()
    _pixels.clear()
    _warm = None
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)
        _executor = None
    if _collection is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_collection)
        _collection = None

