"""Blender objects from the pure 3MF reader (``hiptah_blender.formats.threemf``).

One object per build item. Geometry is created with ``foreach_set`` from the
reader's numpy arrays (no per-vertex Python loops); the vertices already carry
the full 3MF world transform in metres, so objects keep an identity matrix.
Colours become Principled BSDF materials (sRGB ``displaycolor`` converted to
Blender's linear colour space), assigned per polygon.

On any error nothing stays behind: every object, mesh and material this module
created is removed before the exception propagates. Uses only APIs that are the
same in Blender 4.2 to 5.0.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import IO, Any

import bpy
import numpy as np
import numpy.typing as npt

from ..formats.threemf import (
    DEFAULT_LIMITS,
    ReadLimits,
    ThreeMFError,
    ThreeMFMaterial,
    ThreeMFMesh,
    read_3mf,
)

__all__ = ["ThreeMFError", "build_objects", "import_3mf", "srgb_to_linear"]


def srgb_to_linear(value: float) -> float:
    """One sRGB channel (0..1) to linear, as Blender's colour management expects."""
    if value <= 0.04045:
        return value / 12.92
    return float(((value + 0.055) / 1.055) ** 2.4)


class _Created:
    """Everything one import made, for rollback."""

    def __init__(self) -> None:
        self.objects: list[Any] = []
        self.meshes: list[Any] = []
        self.materials: list[Any] = []

    def remove_all(self) -> None:
        pairs: list[tuple[Any, list[Any]]] = [
            (bpy.data.objects, self.objects),
            (bpy.data.meshes, self.meshes),
            (bpy.data.materials, self.materials),
        ]
        for data, ids in pairs:
            for idb in reversed(ids):
                with contextlib.suppress(ReferenceError, RuntimeError):  # already gone
                    data.remove(idb, do_unlink=True)
        self.objects.clear()
        self.meshes.clear()
        self.materials.clear()


def _make_material(spec: ThreeMFMaterial, created: _Created) -> bpy.types.Material:
    mat = bpy.data.materials.new(spec.name or "3MF material")
    created.materials.append(mat)
    r, g, b, a = spec.rgba
    linear = (srgb_to_linear(r), srgb_to_linear(g), srgb_to_linear(b))
    mat.diffuse_color = (*linear, a)  # type: ignore[assignment]  # solid-mode viewport colour
    if mat.node_tree is None:  # Blender < 5.0: a new material has no node tree yet
        mat.use_nodes = True
    tree = mat.node_tree
    assert tree is not None
    bsdf = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
        out = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"), None)
        if out is None:
            out = tree.nodes.new("ShaderNodeOutputMaterial")
        tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = (*linear, 1.0)  # type: ignore[attr-defined]
    bsdf.inputs["Alpha"].default_value = a  # type: ignore[attr-defined]
    if a < 1.0:
        if hasattr(mat, "surface_render_method"):  # EEVEE Next (4.2+)
            mat.surface_render_method = "BLENDED"
        elif hasattr(mat, "blend_method"):
            mat.blend_method = "BLEND"
    return mat


def _int32(values: npt.ArrayLike) -> npt.NDArray[np.int32]:
    return np.ascontiguousarray(values, dtype=np.int32).reshape(-1)


def _make_mesh(
    data: ThreeMFMesh, name: str, materials: Sequence[bpy.types.Material]
) -> bpy.types.Mesh:
    nv, nt = len(data.vertices), len(data.triangles)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(nv)
    mesh.vertices.foreach_set(
        "co", np.ascontiguousarray(data.vertices, dtype=np.float32).reshape(-1)
    )
    mesh.loops.add(3 * nt)
    mesh.loops.foreach_set("vertex_index", _int32(data.triangles))
    mesh.polygons.add(nt)
    # Polygon sizes follow from the start offsets (Blender 4.0+ stores offsets only).
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * nt, 3, dtype=np.int32))
    for mat in materials:
        mesh.materials.append(mat)
    if materials and nt:
        mesh.polygons.foreach_set("material_index", _int32(data.material_indices))
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    mesh.update()
    return mesh


def _object_name(mesh: ThreeMFMesh, name_prefix: str, count: int) -> str:
    if not name_prefix:
        return mesh.name
    return name_prefix if count == 1 else f"{name_prefix}_{mesh.name}"


def build_objects(
    meshes: Sequence[ThreeMFMesh], *, name_prefix: str, collection: bpy.types.Collection
) -> list[bpy.types.Object]:
    """Create one mesh object per :class:`ThreeMFMesh`, linked into ``collection``.

    Names: ``name_prefix`` alone for a single mesh, ``f"{name_prefix}_{mesh.name}"``
    for several, the 3MF object name when the prefix is empty (Blender appends
    ".001" on clashes). Identical materials are shared between the objects of one
    import; nothing already in the file is reused or modified. On any exception
    everything created so far is removed and the exception re-raised.
    """
    created = _Created()
    try:
        by_spec: dict[ThreeMFMaterial, bpy.types.Material] = {}
        objects: list[bpy.types.Object] = []
        for data in meshes:
            name = _object_name(data, name_prefix, len(meshes))
            mats = []
            for spec in data.materials:
                mat = by_spec.get(spec)
                if mat is None:
                    mat = by_spec[spec] = _make_material(spec, created)
                mats.append(mat)
            mesh = _make_mesh(data, name, mats)
            created.meshes.append(mesh)
            obj = bpy.data.objects.new(name, mesh)
            created.objects.append(obj)
            obj["hiptah_3mf_object_id"] = int(data.object_id)
            if data.object_type != "model":
                obj["hiptah_3mf_object_type"] = data.object_type
            collection.objects.link(obj)
            objects.append(obj)
        return objects
    except BaseException:
        created.remove_all()
        raise


def import_3mf(
    filepath: str | os.PathLike[str] | IO[bytes],
    *,
    collection: bpy.types.Collection,
    name_prefix: str = "",
    limits: ReadLimits = DEFAULT_LIMITS,
) -> list[bpy.types.Object]:
    """Read a 3MF file and build its objects; :class:`ThreeMFError` for a bad file.

    The file is read completely (and checked) before anything is created, and
    on any later failure the scene is left exactly as it was.
    """
    meshes = read_3mf(filepath, limits=limits)
    return build_objects(meshes, name_prefix=name_prefix, collection=collection)
