"""FBX and USDZ from sandbox.modelgen (Blender's exporters via the bpy module).

USDZ is checked with usd-core in a subprocess: bpy carries its own USD libraries,
and two USD builds in one process is asking for trouble.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sandbox.modelgen import clear_cache, generate_model

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

CART = "wooden cart with iron wheels"

_USD_PROBE = r"""
import hashlib, json, sys
from pxr import Usd, UsdGeom, UsdShade
out = {}
for path in sys.argv[1:]:
    stage = Usd.Stage.Open(path)
    meshes = {}
    for prim in stage.Traverse():
        if prim.IsA(UsdGeom.Mesh):
            pts = UsdGeom.Mesh(prim).GetPointsAttr().Get()
            mat = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()[0]
            meshes[prim.GetName()] = {
                "points": len(pts),
                "digest": hashlib.sha256(str(list(pts)).encode()).hexdigest(),
                "material": mat.GetPrim().GetName() if mat else None,
            }
    out[path] = {"up": UsdGeom.GetStageUpAxis(stage),
                 "mpu": UsdGeom.GetStageMetersPerUnit(stage), "meshes": meshes}
print(json.dumps(out))
"""


def _usd_probe(*paths: Path) -> dict:
    pytest.importorskip("pxr")
    proc = subprocess.run([sys.executable, "-c", _USD_PROBE, *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout)


def test_fbx_reimports_in_blender_and_is_deterministic(tmp_path: Path) -> None:
    data = generate_model(CART, "fbx", "draft")
    assert data.startswith(b"Kaydara FBX Binary  \x00")
    clear_cache()
    assert generate_model(CART, "fbx", "draft") == data, "timestamp pinned: same bytes"

    path = tmp_path / "cart.fbx"
    path.write_bytes(data)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        bpy.ops.import_scene.fbx(filepath=str(path))
        meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
        assert len(meshes) == 13
        names = {o.name for o in meshes}
        assert {"bed", "wheel_front_left", "handle_right"} <= names
        by_name = {o.name: o for o in meshes}
        assert by_name["bed"].active_material.name == "wood"
        assert by_name["wheel_front_left"].active_material.name == "iron"
        # Metres survive the round trip: the cart is ~1 m tall... in Blender's Z-up.
        top = max((o.matrix_world @ v.co).z for o in meshes for v in o.data.vertices)
        assert 0.6 < top < 0.8
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_usdz_opens_with_usd_core_and_is_geometry_deterministic(tmp_path: Path) -> None:
    first = generate_model("glass lamp", "usdz", "draft")
    assert first.startswith(b"PK\x03\x04")
    clear_cache()
    second = generate_model("glass lamp", "usdz", "draft")
    a, b = tmp_path / "a.usdz", tmp_path / "b.usdz"
    a.write_bytes(first)
    b.write_bytes(second)
    probe = _usd_probe(a, b)
    pa, pb = probe[str(a)], probe[str(b)]
    assert pa["up"] == "Y" and pa["mpu"] == pytest.approx(1.0)
    assert set(pa["meshes"]) == {"base", "stem", "bulb", "shade"}
    assert pa["meshes"]["shade"]["material"] == "glass"
    assert pa["meshes"]["bulb"]["material"] == "warm_light"
    assert pa == pb, "same prims, points and materials on every run"


def test_image_model_in_fbx_and_usdz(tmp_path: Path) -> None:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((4, 4, 60, 60), fill=(30, 200, 90, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    fbx = generate_model("", "fbx", "draft", image=buf.getvalue())
    usdz = generate_model("", "usdz", "draft", image=buf.getvalue())
    p = tmp_path / "relief.usdz"
    p.write_bytes(usdz)
    meshes = _usd_probe(p)[str(p)]["meshes"]
    assert list(meshes) == ["silhouette"]
    fp = tmp_path / "relief.fbx"
    fp.write_bytes(fbx)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        bpy.ops.import_scene.fbx(filepath=str(fp))
        obj = bpy.context.scene.objects["silhouette"]
        assert len(obj.data.color_attributes) == 1  # vertex colours sampled from the image
        assert len(obj.data.uv_layers) == 1
        assert any(i.packed_file is not None or i.has_data for i in bpy.data.images)
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_bpy_formats_work_from_a_worker_thread() -> None:
    result: dict[str, bytes | BaseException] = {}

    def work() -> None:
        try:
            result["fbx"] = generate_model("robot", "fbx", "draft", seed=7)
        except BaseException as exc:  # surfaced below
            result["fbx"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join(120)
    data = result["fbx"]
    assert isinstance(data, bytes) and data.startswith(b"Kaydara FBX Binary")
