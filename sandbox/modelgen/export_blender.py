"""FBX and USDZ through Blender's own exporters (the `bpy` module).

bpy must run on the main thread of its process (operators from another thread
crash Blender), and the server calls us from a worker thread. So the bpy work
happens in a helper process (`bpy_worker`) whose main thread runs
`export_in_process`; `export` ships it plain arrays and gets bytes back.

Per request the helper starts from factory settings with an empty scene, builds
objects from the parts (foreach_set, no mesh operators), exports into a private
temp dir, reads the bytes and resets the scene again.

FBX determinism: Blender stamps the export time into the header
(CreationTimeStamp); `_pin_fbx_timestamp` rewrites it to 1970-01-01 00:00:00,
and texture paths naming the random temp dir are pinned to a fixed name, so the
same model gives the same bytes. USDZ: Blender writes sibling prims in a
per-run order, so bytes may differ while prims, points and materials do not.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .materials import Material
from .model import Model


@dataclass
class PartSpec:
    """One part as plain picklable data for the helper process."""

    name: str
    vertices: NDArray[np.float32]
    faces: NDArray[np.int32]
    material: Material
    uv: NDArray[np.float32] | None = None
    vertex_colors: NDArray[np.uint8] | None = None
    texture_png: bytes | None = None


def scene_spec(model: Model) -> list[PartSpec]:
    return [PartSpec(mp.part.name, np.asarray(mp.part.mesh.vertices, dtype=np.float32),
                     np.asarray(mp.part.mesh.faces, dtype=np.int32), mp.material,
                     None if mp.part.uv is None else np.asarray(mp.part.uv, dtype=np.float32),
                     mp.part.vertex_colors, mp.part.texture_png)
            for mp in model.parts]


SMOOTH_ANGLE = math.radians(35.0)  # same hard-edge threshold as the GLB writer


def _bpy() -> Any:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="modelgen-bur-"))
    import bpy

    return bpy


def _material(bpy: Any, part: PartSpec, tmp: Path, cache: dict[object, Any]) -> Any:
    m = part.material
    key = (m, part.name if part.texture_png else None)
    if key in cache:
        return cache[key]
    mat = bpy.data.materials.new(m.name)
    mat.diffuse_color = m.color
    mat.metallic = m.metallic
    mat.roughness = m.roughness
    if mat.node_tree is None:  # Blender < 5.0 creates the node tree on demand
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Base Color"].default_value = m.color
    bsdf.inputs["Metallic"].default_value = m.metallic
    bsdf.inputs["Roughness"].default_value = m.roughness
    if m.transparent:
        bsdf.inputs["Alpha"].default_value = m.color[3]
        if hasattr(mat, "surface_render_method"):
            mat.surface_render_method = "BLENDED"
    if any(m.emissive):
        bsdf.inputs["Emission Color"].default_value = (*m.emissive, 1.0)
        bsdf.inputs["Emission Strength"].default_value = 1.0
    if part.texture_png is not None:
        # The image as a file next to the export, so both exporters can pack it.
        png = tmp / f"{re.sub(r'[^A-Za-z0-9_]+', '_', part.name)}_basecolor.png"
        png.write_bytes(part.texture_png)
        img = bpy.data.images.load(str(png))
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = img
        if m.color[:3] != (1.0, 1.0, 1.0):
            mix = nodes.new("ShaderNodeMix")
            mix.data_type = "RGBA"
            mix.blend_type = "MULTIPLY"
            mix.inputs["Factor"].default_value = 1.0
            links.new(tex.outputs["Color"], mix.inputs["A"])
            mix.inputs["B"].default_value = m.color
            links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
        else:
            links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    cache[key] = mat
    return mat


def _mesh_object(bpy: Any, part: PartSpec, mat: Any) -> Any:
    verts, faces = part.vertices, part.faces
    me = bpy.data.meshes.new(part.name)
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.update(calc_edges=True)
    me.validate(clean_customdata=False)
    if part.uv is not None:
        layer = me.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", np.asarray(part.uv, dtype=np.float32)[faces.ravel()].ravel())
    if part.vertex_colors is not None:
        attr = me.color_attributes.new(name="Color", type="BYTE_COLOR", domain="POINT")
        attr.data.foreach_set("color_srgb",
                              (part.vertex_colors.astype(np.float32) / 255.0).ravel())
    me.shade_smooth()
    me.set_sharp_from_angle(angle=SMOOTH_ANGLE)
    me.materials.append(mat)
    return bpy.data.objects.new(part.name, me)


def _build_scene(bpy: Any, name: str, parts: list[PartSpec], tmp: Path) -> None:
    scene = bpy.context.scene
    scene.unit_settings.system = "METRIC"
    scene.unit_settings.scale_length = 1.0
    root = bpy.data.objects.new(name, None)
    scene.collection.objects.link(root)
    cache: dict[object, Any] = {}
    for part in parts:
        obj = _mesh_object(bpy, part, _material(bpy, part, tmp, cache))
        scene.collection.objects.link(obj)
        obj.parent = root


_FBX_STAMP = [b"Year", b"Month", b"Day", b"Hour", b"Minute", b"Second", b"Millisecond"]
_FBX_EPOCH = [1970, 1, 1, 0, 0, 0, 0]


def _pin_fbx_timestamp(data: bytes) -> bytes:
    """Overwrite CreationTimeStamp's int32 fields (name length byte, name, 'I', value)."""
    out = bytearray(data)
    anchor = out.find(b"CreationTimeStamp")
    if anchor < 0:
        return data
    for name, value in zip(_FBX_STAMP, _FBX_EPOCH, strict=True):
        needle = bytes([len(name)]) + name + b"I"
        at = out.find(needle, anchor)
        if at < 0 or at - anchor > 512:
            continue
        out[at + len(needle): at + len(needle) + 4] = struct.pack("<i", value)
    return bytes(out)


def export_in_process(name: str, parts: list[PartSpec], fmt: str) -> bytes:
    """FBX (binary 7.4) or USDZ bytes. Main thread of the process only (bpy)."""
    if fmt not in ("fbx", "usdz"):
        raise ValueError(f"export_blender handles fbx and usdz, not {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="modelgen-") as tmpdir:
        bpy = _bpy()
        tmp = Path(tmpdir)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        try:
            _build_scene(bpy, name, parts, tmp)
            out = tmp / f"{name}.{fmt}"
            if fmt == "fbx":
                with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress
                    bpy.ops.export_scene.fbx(
                        filepath=str(out), check_existing=False, use_selection=False,
                        object_types={"EMPTY", "MESH"}, apply_unit_scale=True,
                        axis_forward="-Z", axis_up="Y", mesh_smooth_type="FACE",
                        colors_type="SRGB", bake_anim=False, path_mode="COPY",
                        embed_textures=True, use_metadata=True,
                    )
                data = _pin_fbx_timestamp(out.read_bytes())
                # Texture paths name the random temp dir: pin it to a same-length
                # placeholder (equal length keeps every FBX length field valid).
                random_dir = str(tmp).encode()
                fixed = str(tmp.parent / ("modelgen-" + "0" * (len(tmp.name) - 9))).encode()
                if len(fixed) == len(random_dir):
                    data = data.replace(random_dir, fixed)
                return data
            bpy.ops.wm.usd_export(
                filepath=str(out), check_existing=False, selected_objects_only=False,
                export_animation=False, export_uvmaps=True, export_mesh_colors=True,
                export_normals=True, export_materials=True, generate_preview_surface=True,
                convert_orientation=True, export_global_forward_selection="NEGATIVE_Z",
                export_global_up_selection="Y", root_prim_path=f"/{name}",
                export_lights=False, export_cameras=False, relative_paths=True,
                convert_scene_units="METERS",
            )
            return out.read_bytes()
        finally:
            # Leave nothing behind (meshes, images pointing into the deleted temp dir).
            bpy.ops.wm.read_factory_settings(use_empty=True)


def export(model: Model, fmt: str) -> bytes:
    """FBX or USDZ bytes for `model`, from any thread (runs in the bpy helper process)."""
    if fmt not in ("fbx", "usdz"):
        raise ValueError(f"export_blender handles fbx and usdz, not {fmt!r}")
    from .bpy_worker import run

    return run(model.name, scene_spec(model), fmt)
