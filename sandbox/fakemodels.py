"""Tiny, valid-looking model files for tests that do not care about geometry.

Only used with ``--models fake`` (or ``auto`` while ``sandbox.modelgen`` is not
importable). Each file has the right magic bytes and structure for its format and
is deterministic in its arguments; the real generator is ``sandbox.modelgen``.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile

_TRIANGLE = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def _scale(
    prompt: str, fmt: str, quality: str, image: bytes | None, seed: int
) -> tuple[float, str]:
    digest = hashlib.sha256(
        f"{prompt}|{fmt}|{quality}|{seed}".encode() + (image or b"")
    ).hexdigest()
    return 0.5 + int(digest[:4], 16) / 0xFFFF, digest[:12]


def _glb(scale: float, name: str) -> bytes:
    verts = [tuple(c * scale for c in v) for v in _TRIANGLE]
    binary = b"".join(struct.pack("<3f", *v) for v in verts)
    doc = {
        "asset": {"version": "2.0", "generator": "hiptah-sandbox fakemodels"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 3,
                "type": "VEC3",
                "min": [0.0, 0.0, 0.0],
                "max": [scale, scale, 0.0],
            }
        ],
        "bufferViews": [{"buffer": 0, "byteLength": len(binary)}],
        "buffers": [{"byteLength": len(binary)}],
    }
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(js), b"JSON")
        + js
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )


def _stl(scale: float, name: str) -> bytes:
    header = f"hiptah-sandbox fake {name}".encode().ljust(80, b" ")[:80]
    tri = (
        struct.pack("<3f", 0.0, 0.0, 1.0)
        + b"".join(struct.pack("<3f", *(c * scale for c in v)) for v in _TRIANGLE)
        + b"\0\0"
    )
    return header + struct.pack("<I", 1) + tri


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path, data in files.items():
            info = zipfile.ZipInfo(
                path, date_time=(2026, 1, 1, 0, 0, 0)
            )  # fixed: deterministic bytes
            zf.writestr(info, data)
    return buf.getvalue()


def _3mf(scale: float, name: str) -> bytes:
    v = "".join(
        f'<vertex x="{x * scale:.4f}" y="{y * scale:.4f}" z="{z:.4f}"/>' for x, y, z in _TRIANGLE
    )
    model = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        f'<resources><object id="1" type="model" name="{name}"><mesh><vertices>{v}</vertices>'
        '<triangles><triangle v1="0" v2="1" v3="2"/></triangles></mesh></object></resources>'
        '<build><item objectid="1"/></build></model>'
    )
    return _zip(
        {
            "[Content_Types].xml": (
                b'<?xml version="1.0" encoding="UTF-8"?>'
                b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                b'<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
                b"</Types>"
            ),
            "_rels/.rels": (
                b'<?xml version="1.0" encoding="UTF-8"?>'
                b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                b'<Relationship Target="/3D/3dmodel.model" Id="rel0" '
                b'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
            ),
            "3D/3dmodel.model": model.encode(),
        }
    )


def _usdz(scale: float, name: str) -> bytes:
    pts = ", ".join(f"({x * scale}, {y * scale}, {z})" for x, y, z in _TRIANGLE)
    usda = (
        '#usda 1.0\n(\n    defaultPrim = "Model"\n    upAxis = "Z"\n)\n\n'
        f'def Mesh "Model"\n{{\n    int[] faceVertexCounts = [3]\n    int[] faceVertexIndices = [0, 1, 2]\n'
        f"    point3f[] points = [{pts}]\n}}\n"
    )
    return _zip({f"{name}.usda": usda.encode()})


def _fbx(scale: float, name: str) -> bytes:
    # ASCII FBX header: the client's magic check accepts "; FBX"; geometry is minimal.
    return (
        "; FBX 7.4.0 project file\n; hiptah-sandbox fake model\n"
        "FBXHeaderExtension:  {\n    FBXVersion: 7400\n}\n"
        f'Objects:  {{\n    Geometry: 1, "Geometry::{name}", "Mesh" {{\n'
        f"        Vertices: *9 {{ a: 0,0,0,{scale},0,0,0,{scale},0 }}\n"
        "        PolygonVertexIndex: *3 { a: 0,1,-3 }\n    }\n}\n"
    ).encode()


_BUILDERS = {"glb": _glb, "stl": _stl, "3mf": _3mf, "usdz": _usdz, "fbx": _fbx}


def generate_model(
    prompt: str, fmt: str, quality: str, image: bytes | None = None, seed: int = 0
) -> bytes:
    """Same signature as ``sandbox.modelgen.generate_model``."""
    builder = _BUILDERS.get(fmt)
    if builder is None:
        raise NotImplementedError(f"fake models do not cover {fmt!r}")
    scale, name = _scale(prompt, fmt, quality, image, seed)
    return builder(scale, f"fake_{name}")
