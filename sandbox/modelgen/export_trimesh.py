"""GLB, STL and 3MF writers (no bpy). All three are byte-deterministic.

The GLB writer is our own rather than trimesh's so that we control what goes in:
shared materials, split normals (hard edges stay hard), node names, bufferView
targets and no tool-specific extras. The validator test keeps it honest.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import trimesh
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .materials import Material
from .model import Model

SMOOTH_ANGLE = np.radians(35.0)  # faces meeting at a sharper angle get split normals

# Z-up (our build space, Blender, 3MF, STL) -> Y-up (glTF): (x, y, z) -> (x, z, -y).
Z_TO_Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)


@dataclass
class RenderMesh:
    positions: NDArray[np.float32]
    normals: NDArray[np.float32]
    uv: NDArray[np.float32] | None
    indices: NDArray[np.uint32]


def split_normals(mesh: trimesh.Trimesh, uv: NDArray[np.float64] | None = None,
                  angle: float = SMOOTH_ANGLE) -> RenderMesh:
    """Duplicate vertices along edges sharper than `angle` and give every vertex the
    angle-weighted normal of the faces it is smooth with."""
    faces = np.asarray(mesh.faces, dtype=np.int64)
    nf = len(faces)
    corners = faces.ravel()
    adj = np.asarray(mesh.face_adjacency, dtype=np.int64)
    smooth = np.asarray(mesh.face_adjacency_angles) < angle
    pairs, edges = adj[smooth], np.asarray(mesh.face_adjacency_edges, dtype=np.int64)[smooth]
    rows, cols = [], []
    for k in (0, 1):
        v = edges[:, k][:, None]
        rows.append(pairs[:, 0] * 3 + np.argmax(faces[pairs[:, 0]] == v, axis=1))
        cols.append(pairs[:, 1] * 3 + np.argmax(faces[pairs[:, 1]] == v, axis=1))
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(3 * nf, 3 * nf))
    _, labels = connected_components(graph, directed=False)
    # Number the new vertices in order of first use so output order is stable.
    uniq, first = np.unique(labels, return_index=True)
    order = np.empty(len(uniq), dtype=np.int64)
    order[np.argsort(first)] = np.arange(len(uniq))
    labels = order[labels]
    n = len(uniq)
    src = np.empty(n, dtype=np.int64)
    src[labels] = corners
    fnorm = np.asarray(mesh.face_normals, dtype=np.float64)
    weights = np.asarray(mesh.face_angles, dtype=np.float64).ravel()
    normals = np.zeros((n, 3))
    np.add.at(normals, labels, np.repeat(fnorm, 3, axis=0) * weights[:, None])
    length = np.linalg.norm(normals, axis=1)
    bad = length < 1e-12
    if bad.any():  # degenerate fans: fall back to a face normal, then to +Z
        first_corner = np.empty(n, dtype=np.int64)
        first_corner[labels[::-1]] = np.arange(3 * nf)[::-1]
        normals[bad] = fnorm[first_corner[bad] // 3]
        normals[np.linalg.norm(normals, axis=1) < 1e-12] = (0.0, 0.0, 1.0)
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    return RenderMesh(
        positions=np.asarray(mesh.vertices, dtype=np.float64)[src].astype(np.float32),
        normals=normals.astype(np.float32),
        uv=None if uv is None else np.asarray(uv)[src].astype(np.float32),
        indices=labels.reshape(-1, 3).astype(np.uint32),
    )


# ------------------------------------------------------------------------------ GLB


def _f(x: float) -> float:
    return round(float(x), 6)


def _gltf_material(mat: Material, texture: int | None) -> dict[str, object]:
    pbr: dict[str, object] = {
        "baseColorFactor": [_f(c) for c in mat.color],
        "metallicFactor": _f(mat.metallic),
        "roughnessFactor": _f(mat.roughness),
    }
    if texture is not None:
        pbr["baseColorTexture"] = {"index": texture}
    out: dict[str, object] = {"name": mat.name, "pbrMetallicRoughness": pbr}
    if any(mat.emissive):
        out["emissiveFactor"] = [_f(c) for c in mat.emissive]
    if mat.transparent:
        out["alphaMode"] = "BLEND"
    return out


class _Bin:
    """The GLB binary chunk: bufferViews appended 4-byte aligned."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict[str, object]] = []

    def add(self, raw: bytes, target: int | None = None) -> int:
        self.data += b"\x00" * (-len(self.data) % 4)
        view: dict[str, object] = {"buffer": 0, "byteOffset": len(self.data),
                                   "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.data += raw
        self.views.append(view)
        return len(self.views) - 1


def to_glb(model: Model) -> bytes:
    binary = _Bin()
    accessors: list[dict[str, object]] = []
    materials: list[dict[str, object]] = []
    mat_index: dict[tuple[Material, int | None], int] = {}
    images: list[dict[str, object]] = []
    textures: list[dict[str, object]] = []
    meshes: list[dict[str, object]] = []
    nodes: list[dict[str, object]] = [{"name": model.name, "children": []}]

    def accessor(arr: NDArray[np.generic], ctype: int, atype: str, target: int,
                 minmax: bool = False) -> int:
        acc: dict[str, object] = {"bufferView": binary.add(arr.tobytes(), target),
                                  "componentType": ctype, "count": len(arr), "type": atype}
        if minmax:
            acc["min"] = [float(x) for x in arr.min(axis=0)]
            acc["max"] = [float(x) for x in arr.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    for mp in model.parts:
        part = mp.part
        rm = split_normals(part.mesh, part.uv)
        pos = (rm.positions.astype(np.float64) @ Z_TO_Y_UP.T).astype(np.float32)
        nrm = (rm.normals.astype(np.float64) @ Z_TO_Y_UP.T).astype(np.float32)
        attrs: dict[str, int] = {
            "POSITION": accessor(pos, 5126, "VEC3", 34962, minmax=True),
            "NORMAL": accessor(nrm, 5126, "VEC3", 34962),
        }
        tex: int | None = None
        if rm.uv is not None and part.texture_png is not None:
            st = rm.uv.copy()
            st[:, 1] = 1.0 - st[:, 1]  # glTF's v runs downwards from the image's top
            attrs["TEXCOORD_0"] = accessor(np.ascontiguousarray(st), 5126, "VEC2", 34962)
            view = binary.add(part.texture_png)
            images.append({"bufferView": view, "mimeType": "image/png", "name": part.name})
            textures.append({"sampler": 0, "source": len(images) - 1})
            tex = len(textures) - 1
        if len(pos) < 65536:
            idx = accessor(rm.indices.astype(np.uint16).ravel(), 5123, "SCALAR", 34963)
        else:
            idx = accessor(rm.indices.ravel(), 5125, "SCALAR", 34963)
        key = (mp.material, tex)
        if key not in mat_index:
            mat_index[key] = len(materials)
            materials.append(_gltf_material(mp.material, tex))
        meshes.append({"name": part.name, "primitives": [
            {"attributes": attrs, "indices": idx, "material": mat_index[key], "mode": 4}]})
        nodes.append({"name": part.name, "mesh": len(meshes) - 1})
        nodes[0]["children"].append(len(nodes) - 1)  # type: ignore[attr-defined]

    gltf: dict[str, object] = {
        "asset": {"version": "2.0", "generator": "HiPtah sandbox modelgen"},
        "scene": 0,
        "scenes": [{"name": model.name, "nodes": [0]}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "accessors": accessors,
        "bufferViews": binary.views,
        "buffers": [{"byteLength": len(binary.data) + (-len(binary.data) % 4)}],
    }
    if images:
        gltf["images"] = images
        gltf["textures"] = textures
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9729,
                             "wrapS": 33071, "wrapT": 33071}]
    js = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * (-len(js) % 4)
    bin_chunk = bytes(binary.data) + b"\x00" * (-len(binary.data) % 4)
    total = 12 + 8 + len(js) + 8 + len(bin_chunk)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(js), b"JSON"), js,
        struct.pack("<I4s", len(bin_chunk), b"BIN\x00"), bin_chunk,
    ])


# ------------------------------------------------------------------------------ STL


def to_stl(model: Model) -> bytes:
    """Binary STL of all parts, Z-up, in metres (STL has no unit; Blender reads metres)."""
    tris = np.vstack([p.part.mesh.triangles for p in model.parts]).astype(np.float64)
    normals = np.vstack([p.part.mesh.face_normals for p in model.parts])
    rec = np.zeros(len(tris), dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)),
                                              ("attr", "<u2")]))
    rec["n"] = normals
    rec["v"] = tris
    header = f"HiPtah sandbox model: {model.name} (metres, Z up)".encode("ascii")[:80]
    return header.ljust(80, b" ") + struct.pack("<I", len(tris)) + rec.tobytes()


# ------------------------------------------------------------------------------ 3MF

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" '
    'ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>'
    "</Relationships>"
)
_NS_CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_NS_MAT = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"


def _num(x: float) -> str:
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def to_3mf(model: Model, title: str = "") -> bytes:
    """3MF core + basematerials (one per distinct material, with displaycolor) and, for
    image reliefs, a per-vertex colorgroup from the materials extension."""
    mats: list[Material] = []
    for mp in model.parts:
        if mp.material not in mats:
            mats.append(mp.material)
    out = io.StringIO()
    w = out.write
    w('<?xml version="1.0" encoding="UTF-8"?>\n')
    w(f'<model unit="meter" xml:lang="en-US" xmlns="{_NS_CORE}" xmlns:m="{_NS_MAT}">\n')
    w(f'<metadata name="Title">{escape(title or model.name)}</metadata>\n')
    w('<metadata name="Application">HiPtah sandbox modelgen</metadata>\n')
    w("<resources>\n<basematerials id=\"1\">")
    for m in mats:
        w(f"<base name={quoteattr(m.name)} displaycolor=\"{m.hex_rgba()}\"/>")
    w("</basematerials>\n")
    next_id = 2
    object_ids: list[int] = []
    for mp in model.parts:
        part = mp.part
        group_id = None
        if part.vertex_colors is not None:
            group_id = next_id
            next_id += 1
            w(f'<m:colorgroup id="{group_id}">')
            w("".join(f'<m:color color="#{r:02X}{g:02X}{b:02X}{a:02X}"/>'
                      for r, g, b, a in part.vertex_colors.tolist()))
            w("</m:colorgroup>\n")
        oid = next_id
        next_id += 1
        object_ids.append(oid)
        w(f'<object id="{oid}" type="model" name={quoteattr(part.name)} pid="1" '
          f'pindex="{mats.index(mp.material)}"><mesh><vertices>')
        w("".join(f'<vertex x="{_num(x)}" y="{_num(y)}" z="{_num(z)}"/>'
                  for x, y, z in part.mesh.vertices.tolist()))
        w("</vertices><triangles>")
        if group_id is None:
            w("".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>'
                      for a, b, c in part.mesh.faces.tolist()))
        else:
            w("".join(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="{group_id}" '
                      f'p1="{a}" p2="{b}" p3="{c}"/>' for a, b, c in part.mesh.faces.tolist()))
        w("</triangles></mesh></object>\n")
    w("</resources>\n<build>")
    w("".join(f'<item objectid="{oid}"/>' for oid in object_ids))
    w("</build>\n</model>\n")

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _RELS),
                           ("3D/3dmodel.model", out.getvalue())):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: determinism
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, text.encode("utf-8"))
    return buf.getvalue()
