"""Bring a downloaded model into a scene: importer per format, collection,
placement, naming, provenance and selection, with a clean rollback on failure.

Placement: the imported top-level objects move together so that the bottom centre
of their combined world bounding box lands on the 3D cursor (or the world origin), or
beside the models placed just before (``spot``: the runtime's row, see
``hiptah_blender.placement``). Size and facing (``SizeChoice``): by default they are
only translated; on request they are turned about Z and scaled uniformly about that
bottom centre, so the model stands on the same spot.

Rollback: every ID datablock the importer created (objects, meshes, materials,
images, collections, ...) is found by diffing ``bpy.data`` before and after, and
removed on failure; selection and the active object are restored. The scene is
then exactly as before, and the file stays on disk.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import bpy
from mathutils import Matrix, Vector

from ..client import magic, validation
from ..client.errors import HiptahError
from ..jobs.records import JobRecord
from ..placement import SizeChoice, Vec3

# Where a model's bottom centre goes: (anchor, model width along X) -> position.
Spot = Callable[[Vec3, float], Vec3]

# bpy.data collections an importer may add to; those missing in a Blender version are skipped.
_ID_COLLECTIONS = (
    "objects",
    "meshes",
    "materials",
    "images",
    "textures",
    "node_groups",
    "collections",
    "cameras",
    "lights",
    "curves",
    "armatures",
    "actions",
    "worlds",
    "lattices",
    "metaballs",
    "fonts",
    "volumes",
    "pointclouds",
    "hair_curves",
    "particles",
    "shape_keys",
    "grease_pencils",
    "grease_pencils_v3",
    "speakers",
    "lightprobes",
    "cache_files",
)


class ModelImportError(HiptahError):
    default_message = "The model could not be imported."
    hint = "The file is kept: retry the job to download it again, or open the download folder."


def slug(prompt: str, *, width: int = 40) -> str:
    """A short object name from the prompt: "a medieval cart!" -> "a_medieval_cart"."""
    text = re.sub(r"[^\w]+", "_", prompt.lower()).strip("_")
    if len(text) > width:
        text = text[:width].rsplit("_", 1)[0] or text[:width]
    return text or "hiptah_model"


def object_name(record: Any) -> str:
    """The imported objects' name: from the prompt, else (an image job without one) from
    the image's name, as the job list shows it ("image: red_sketch.png" -> "red_sketch")."""
    if record.prompt:
        return slug(record.prompt)
    image = str(record.meta.get("image_name") or os.path.basename(record.image_path or ""))
    stem = os.path.splitext(image)[0] if image.lower().endswith((".png", ".jpg", ".jpeg", ".webp")) else image
    name = slug(stem)
    return "hiptah_image_model" if name == "hiptah_model" else name


def _import_gltf(path: str, record: JobRecord) -> None:
    bpy.ops.import_scene.gltf(filepath=path)


def _import_fbx(path: str, record: JobRecord) -> None:
    bpy.ops.import_scene.fbx(filepath=path)


def _import_stl(path: str, record: JobRecord) -> None:
    bpy.ops.wm.stl_import(filepath=path)


def _import_usd(path: str, record: JobRecord) -> None:
    bpy.ops.wm.usd_import(filepath=path)


def _import_3mf(path: str, record: JobRecord) -> None:
    try:
        from .threemf_import import import_3mf
    except ImportError:
        raise ModelImportError(
            "This version of the add-on cannot import 3MF files yet.",
            hint=f"The file is kept at {path}; import it with a 3MF add-on, or generate GLB instead.",
        ) from None
    context: Any = bpy.context
    collection = context.collection or context.scene.collection  # moved to the target later
    import_3mf(path, collection=collection, name_prefix=slug(record.prompt))


IMPORTERS: dict[str, Callable[[str, JobRecord], None]] = {
    "glb": _import_gltf,
    "gltf": _import_gltf,
    "fbx": _import_fbx,
    "stl": _import_stl,
    "usdz": _import_usd,
    "usd": _import_usd,
    "3mf": _import_3mf,
}


def _snapshot_ids() -> dict[str, set[int]]:
    return {
        name: {idb.as_pointer() for idb in getattr(bpy.data, name)}
        for name in _ID_COLLECTIONS
        if hasattr(bpy.data, name)
    }


def _new_ids(before: dict[str, set[int]]) -> dict[str, list[Any]]:
    return {
        name: [idb for idb in getattr(bpy.data, name) if idb.as_pointer() not in known]
        for name, known in before.items()
    }


def _remove_ids(ids: Iterable[Any]) -> None:
    items = [i for i in ids if i is not None]
    if items:
        bpy.data.batch_remove(items)


def target_collection(scene: Any, name: str) -> Any:
    """The collection ``name`` inside ``scene`` (created and linked when missing)."""
    for coll in scene.collection.children_recursive:
        if coll.name == name:
            return coll
    coll = bpy.data.collections.new(name)
    scene.collection.children.link(coll)
    return coll


_GEOMETRY_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "FONT", "META", "POINTCLOUD", "VOLUME", "CURVES"})


def _world_bounds(objects: Iterable[Any]) -> tuple[Vector, Vector] | None:
    """Combined world-space bounding box of the geometry (of the origins when there is none)."""
    objects = list(objects)
    geometry = [o for o in objects if o.type in _GEOMETRY_TYPES]
    points: list[Any] = []
    if geometry:
        for obj in geometry:
            points.extend(obj.matrix_world @ Vector(c) for c in obj.bound_box)
    else:
        points = [o.matrix_world.translation.copy() for o in objects]
    if not points:
        return None
    lo = Vector(tuple(min(p[i] for p in points) for i in range(3)))
    hi = Vector(tuple(max(p[i] for p in points) for i in range(3)))
    return lo, hi


def import_model(
    context: Any,
    path: str,
    fmt: str,
    *,
    record: JobRecord,
    scene: Any = None,
    collection_name: str = "HiPtah",
    placement: str = "CURSOR",
    size: SizeChoice | None = None,
    spot: Spot | None = None,
) -> list[Any]:
    """Import ``path`` into ``scene`` (default: the context's scene). Returns the new
    top-level objects. Raises ModelImportError with the scene left untouched."""
    fmt = (fmt or os.path.splitext(path)[1].lstrip(".")).lower()
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise ModelImportError(f"There is no importer for {fmt!r} files.")
    if not os.path.isfile(path):
        raise ModelImportError(
            f"The model file {path} is missing.",
            hint="Retry the job to download it again (while its link has not expired).",
        )
    _check_file(path, fmt)
    scene = scene or context.scene
    view_layer = context.view_layer
    selected = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active

    before = _snapshot_ids()
    try:
        importer(path, record)
        new = _new_ids(before)
        objects = new.get("objects", [])
        if not objects:
            raise ModelImportError(f"The file {os.path.basename(path)} contains no objects.")
        _check_geometry(objects, fmt, path)
        roots = _arrange(context, scene, objects, record, collection_name)
        _place(context, scene, objects, roots, placement, size or SizeChoice(), spot)
    except Exception as exc:
        # Undo whatever the importer managed to create, then restore the selection.
        created = _new_ids(before)
        _remove_ids(idb for ids in created.values() for idb in ids)
        _restore_selection(view_layer, selected, active)
        if isinstance(exc, HiptahError):
            raise
        detail = _error_detail(exc)
        raise ModelImportError(
            f"The {fmt.upper()} file {os.path.basename(path)} could not be imported"
            + (f" ({detail[:200]})" if detail else "")
            + ".",
            hint=f"The file is kept in {os.path.dirname(path)}. Retry the job to download it again.",
        ) from exc
    # Collections the importer made and left empty are noise in the outliner.
    for coll in new.get("collections", []):
        if not coll.objects and not coll.children:
            bpy.data.collections.remove(coll)
    return roots


def _check_file(path: str, fmt: str) -> None:
    """The download's structure checks again, right before importing: the file may have
    been damaged on disk since, and some importers trust a damaged length so far that
    they exhaust memory (FBX) instead of failing."""
    if fmt not in validation.FORMATS:
        return  # .gltf / .usd given by hand: no structure check for these
    try:
        problem = magic.file_problem(fmt, path)
    except OSError as exc:
        raise ModelImportError(f"The model file {path} cannot be read ({exc.strerror or exc}).") from None
    if problem is not None:
        raise ModelImportError(
            f"The {fmt.upper()} file {os.path.basename(path)} could not be imported: {problem}.",
            hint=f"The file is kept in {os.path.dirname(path)}. Retry the job to download it again.",
        )


def _error_detail(exc: BaseException) -> str:
    """The telling line of an importer's error: Blender wraps Python importers' failures
    as "Python: Traceback ..." whose last line names the actual problem."""
    lines = [re.sub(r"^Error: ", "", line.strip()) for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Location:")]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith(("Python: Traceback", "Traceback")) else lines[0]


def _check_geometry(objects: list[Any], fmt: str, path: str) -> None:
    """Some importers accept damaged files silently (STL: a mesh with no vertices, or
    garbage numbers). Refuse what cannot be a model rather than drop it in the scene."""
    import numpy as np

    meshes = [o.data for o in objects if o.type == "MESH" and o.data is not None]
    if not meshes or len(meshes) < len([o for o in objects if o.type in _GEOMETRY_TYPES]):
        return  # other geometry types (curves, points...): nothing cheap to check
    name = os.path.basename(path)
    if not any(len(m.vertices) for m in meshes):
        raise ModelImportError(
            f"The {fmt.upper()} file {name} could not be imported: it contains no geometry (damaged?)."
        )
    for mesh in meshes:
        coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", coords)
        if not np.isfinite(coords).all():
            raise ModelImportError(
                f"The {fmt.upper()} file {name} could not be imported: it has invalid coordinates (damaged?)."
            )


def _arrange(context: Any, scene: Any, objects: list[Any], record: JobRecord, collection_name: str) -> list[Any]:
    target = target_collection(scene, collection_name)
    for obj in objects:
        for coll in list(obj.users_collection):
            coll.objects.unlink(obj)
        target.objects.link(obj)

    new_set = set(objects)
    roots = [o for o in objects if o.parent not in new_set]
    target_layer = scene.view_layers[0] if scene != context.scene else context.view_layer
    target_layer.update()

    name = object_name(record)
    created = datetime.datetime.fromtimestamp(record.created_at, tz=datetime.UTC).isoformat(timespec="seconds")
    for root in roots:
        root.name = name
        root["hiptah_job_id"] = record.job_id or ""
        root["hiptah_prompt"] = record.prompt
        root["hiptah_format"] = record.format
        root["hiptah_quality"] = record.quality
        root["hiptah_created"] = created

    for obj in target_layer.objects:
        if obj.select_get(view_layer=target_layer):
            obj.select_set(False, view_layer=target_layer)
    for obj in objects:
        obj.select_set(True, view_layer=target_layer)
    target_layer.objects.active = roots[0]
    return roots


def _place(
    context: Any, scene: Any, objects: list[Any], roots: list[Any], placement: str, size: SizeChoice, spot: Spot | None
) -> None:
    """Turn and scale about the bottom centre, then move that bottom centre to its spot."""
    layer = scene.view_layers[0] if scene != context.scene else context.view_layer
    bounds = _world_bounds(objects)
    if bounds is None:
        return
    lo, hi = bounds
    pivot = Vector(((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, lo.z))
    factor = size.scale_for(hi.z - lo.z)
    if factor != 1.0 or size.turn:
        change = (
            Matrix.Translation(pivot.to_tuple())
            @ Matrix.Rotation(size.turn, 4, "Z")
            @ Matrix.Scale(factor, 4)
            @ Matrix.Translation((-pivot).to_tuple())
        )
        for root in roots:
            root.matrix_world = change @ root.matrix_world
        layer.update()
        bounds = _world_bounds(objects)
        if bounds is None:
            return
        lo, hi = bounds
    anchor = scene.cursor.location.copy() if placement == "CURSOR" else Vector((0.0, 0.0, 0.0))
    if spot is not None:
        anchor = Vector(spot((anchor.x, anchor.y, anchor.z), hi.x - lo.x))
    bottom_centre = Vector(((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, lo.z))
    offset = anchor - bottom_centre
    for root in roots:
        root.matrix_world.translation += offset
    layer.update()


def _restore_selection(view_layer: Any, selected: list[Any], active: Any) -> None:
    try:
        for obj in view_layer.objects:
            if obj is None:  # a removed object the view layer has not forgotten yet
                continue
            obj.select_set(obj in selected)
        view_layer.objects.active = active
    except ReferenceError:  # an object of the old selection was removed meanwhile
        pass
