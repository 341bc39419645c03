"""GLB / STL / 3MF output of sandbox.modelgen: magic bytes, determinism, validators."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sandbox.modelgen import clear_cache, generate_model

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "node_modules" / "gltf-validator"
PROMPTS = ["wooden cart with iron wheels", "chair", "oak table", "tree", "house", "red car",
           "golden sword", "glass mug", "lamp", "robot", "rock", "stone tower",
           "a shimmering abstract idea"]


def _gltf_json(glb: bytes) -> dict:
    magic, version, total = struct.unpack("<4sII", glb[:12])
    assert (magic, version, total) == (b"glTF", 2, len(glb))
    length, kind = struct.unpack("<I4s", glb[12:20])
    assert kind == b"JSON"
    return json.loads(glb[20:20 + length])


def _png(alpha: bool) -> bytes:
    img = Image.new("RGBA", (96, 64), (30, 60, 200, 0 if alpha else 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse((10, 6, 86, 58), fill=(220, 40, 40, 255))
    draw.rectangle((36, 20, 60, 44), fill=(250, 240, 20, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------- basics


@pytest.mark.parametrize("fmt, magic", [("glb", b"glTF"), ("stl", None), ("3mf", b"PK\x03\x04")])
def test_magic_bytes(fmt: str, magic: bytes | None) -> None:
    data = generate_model("chair", fmt, "draft")
    if magic is not None:
        assert data.startswith(magic)
    else:  # binary STL: 80-byte header, count, 50 bytes per triangle
        (count,) = struct.unpack("<I", data[80:84])
        assert len(data) == 84 + 50 * count and count > 0
        assert not data.startswith(b"solid")  # would make readers guess ASCII


@pytest.mark.parametrize("fmt", ["glb", "stl", "3mf"])
def test_byte_deterministic(fmt: str) -> None:
    first = generate_model("wooden cart with iron wheels", fmt, "standard", seed=3)
    clear_cache()
    assert generate_model("wooden cart with iron wheels", fmt, "standard", seed=3) == first
    assert generate_model("wooden cart with iron wheels", fmt, "standard", seed=4) != first


def test_cache_returns_same_object_and_bad_inputs_raise() -> None:
    a = generate_model("lamp", "glb", "draft")
    assert generate_model("lamp", "glb", "draft") is a
    with pytest.raises(ValueError, match="format"):
        generate_model("lamp", "obj", "draft")
    with pytest.raises(ValueError, match="quality"):
        generate_model("lamp", "glb", "ultra")
    with pytest.raises(ValueError, match="image"):
        generate_model("lamp", "glb", "draft", image=b"not an image")


# ---------------------------------------------------------------------------- GLB


def test_glb_structure_materials_and_names() -> None:
    doc = _gltf_json(generate_model("wooden cart with iron wheels", "glb", "draft"))
    nodes = doc["nodes"]
    assert nodes[0]["name"] == "cart"
    names = {n["name"] for n in nodes[1:]}
    assert {"bed", "wheel_front_left", "handle_left", "axle_rear"} <= names
    mats = {m["name"]: m["pbrMetallicRoughness"] for m in doc["materials"]}
    assert mats["wood"]["metallicFactor"] == 0.0 and mats["wood"]["roughnessFactor"] >= 0.7
    assert mats["iron"]["metallicFactor"] == 1.0
    for mesh in doc["meshes"]:
        assert set(mesh["primitives"][0]["attributes"]) >= {"POSITION", "NORMAL"}
    # Y-up: the cart stands on y=0 and is taller than deep in glTF space.
    ymin = min(doc["accessors"][m["primitives"][0]["attributes"]["POSITION"]]["min"][1]
               for m in doc["meshes"])
    assert ymin == pytest.approx(0.0, abs=1e-5)


def _validate(paths: list[Path]) -> dict[str, dict]:
    node = shutil.which("node")
    if node is None or not VALIDATOR.exists():
        pytest.skip("node or node_modules/gltf-validator missing: run npm ci to validate GLBs")
    script = (
        "const v=require(process.argv[1]);const fs=require('fs');"
        "(async()=>{const out={};for(const f of process.argv.slice(2)){"
        "const r=await v.validateBytes(new Uint8Array(fs.readFileSync(f)));out[f]=r.issues;}"
        "console.log(JSON.stringify(out));})().catch(e=>{console.error(e);process.exit(2);});"
    )
    proc = subprocess.run([node, "-e", script, str(VALIDATOR), *map(str, paths)],
                          capture_output=True, text=True, timeout=240, check=True)
    return json.loads(proc.stdout)


def test_gltf_validator_reports_no_errors(tmp_path: Path) -> None:
    paths = []
    for i, prompt in enumerate(PROMPTS):
        p = tmp_path / f"m{i}.glb"
        p.write_bytes(generate_model(prompt, "glb", "draft"))
        paths.append(p)
    for quality in ("standard", "high"):
        p = tmp_path / f"cart_{quality}.glb"
        p.write_bytes(generate_model("wooden cart with iron wheels", "glb", quality))
        paths.append(p)
    for alpha in (True, False):
        p = tmp_path / f"image_{alpha}.glb"
        p.write_bytes(generate_model("", "glb", "draft", image=_png(alpha)))
        paths.append(p)
    report = _validate(paths)
    for path, issues in report.items():
        msgs = [(m["code"], m.get("pointer")) for m in issues["messages"]]
        assert issues["numErrors"] == 0, (path, msgs)
        assert issues["numWarnings"] == 0, (path, msgs)


# ---------------------------------------------------------------------------- STL


def test_stl_matches_model_geometry() -> None:
    import trimesh

    data = generate_model("robot", "stl", "draft")
    mesh = trimesh.load(io.BytesIO(data), file_type="stl")
    (count,) = struct.unpack("<I", data[80:84])
    assert len(mesh.faces) == count
    assert mesh.bounds[0][2] == pytest.approx(0.0, abs=1e-5)  # Z-up, on the ground
    assert 1.0 < mesh.bounds[1][2] < 1.6  # a ~1.3 m robot, in metres


# ---------------------------------------------------------------------------- 3MF


def _read_3mf(data: bytes):  # -> lib3mf model
    lib3mf = pytest.importorskip("lib3mf")
    model = lib3mf.get_wrapper().CreateModel()
    reader = model.QueryReader("3mf")
    reader.ReadFromBuffer(data)
    assert reader.GetWarningCount() == 0
    return lib3mf, model


def test_3mf_loads_with_lib3mf_objects_items_and_colours() -> None:
    lib3mf, model = _read_3mf(generate_model("wooden cart with iron wheels", "3mf", "draft"))
    assert model.GetUnit() == lib3mf.ModelUnit.Meter
    objects = model.GetMeshObjects()
    names, tris = [], 0
    while objects.MoveNext():
        obj = objects.GetCurrentMeshObject()
        names.append(obj.GetName())
        tris += obj.GetTriangleCount()
        assert obj.IsManifoldAndOriented(), obj.GetName()
    assert len(names) == 13 and "bed" in names and tris > 1000
    items = model.GetBuildItems()
    count = 0
    while items.MoveNext():
        count += 1
    assert count == 13
    groups = model.GetBaseMaterialGroups()
    assert groups.MoveNext()
    group = groups.GetCurrentBaseMaterialGroup()
    materials = {group.GetName(i): group.GetDisplayColor(i) for i in group.GetAllPropertyIDs()}
    assert set(materials) == {"wood", "iron"}
    wood = materials["wood"]
    assert wood.Red > wood.Blue  # brown


def test_3mf_zip_parts() -> None:
    with zipfile.ZipFile(io.BytesIO(generate_model("cup", "3mf", "draft"))) as z:
        assert set(z.namelist()) == {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"}
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())


# --------------------------------------------------------------------- image to 3D


@pytest.mark.parametrize("alpha", [True, False])
def test_image_to_3d(alpha: bool) -> None:
    image = _png(alpha)
    glb = generate_model("", "glb", "standard", image=image)
    assert glb == generate_model("", "glb", "standard", image=image)
    doc = _gltf_json(glb)
    assert doc["nodes"][1]["name"] == ("silhouette" if alpha else "relief")
    prim = doc["meshes"][0]["primitives"][0]
    assert "TEXCOORD_0" in prim["attributes"]
    mat = doc["materials"][prim["material"]]
    assert "baseColorTexture" in mat["pbrMetallicRoughness"]
    assert doc["images"][0]["mimeType"] == "image/png"

    from sandbox.modelgen import build_model

    model = build_model("", "standard", image=image)
    mesh = model.parts[0].part.mesh
    assert mesh.is_watertight and mesh.volume > 0
    ext = mesh.extents
    if alpha:
        # The silhouette (an ellipse) covers less than the full 96x64 rectangle.
        assert mesh.area_faces[mesh.face_normals[:, 2] < -0.99].sum() < 0.9 * ext[0] * ext[1]
    else:
        assert ext[0] / ext[1] == pytest.approx(96 / 64, rel=0.05)
    colours = model.parts[0].part.vertex_colors
    assert colours is not None and len(colours) == len(mesh.vertices)

    _, tmf = _read_3mf(generate_model("", "3mf", "draft", image=image))
    groups = tmf.GetColorGroups()
    assert groups.MoveNext()


def test_image_prompt_tints_and_jpeg_webp_decode() -> None:
    img = Image.new("RGB", (40, 30), (128, 128, 128))
    for fmt in ("JPEG", "WEBP"):
        buf = io.BytesIO()
        img.save(buf, fmt)
        glb = generate_model("golden", "glb", "draft", image=buf.getvalue())
        mat = _gltf_json(glb)["materials"][0]
        assert mat["name"] == "gold" and mat["pbrMetallicRoughness"]["metallicFactor"] == 1.0


def test_relief_heights_follow_luminance() -> None:
    from sandbox.modelgen import build_model

    img = Image.new("RGB", (64, 64), (0, 0, 0))
    ImageDraw.Draw(img).rectangle((0, 0, 31, 63), fill=(255, 255, 255))  # bright left half
    buf = io.BytesIO()
    img.save(buf, "PNG")
    mesh = build_model("", "draft", image=buf.getvalue()).parts[0].part.mesh
    v = mesh.vertices
    top = v[v[:, 2] > 1e-9]
    left, right = top[top[:, 0] < -0.1], top[top[:, 0] > 0.1]
    assert np.median(left[:, 2]) > np.median(right[:, 2]) + 0.04
