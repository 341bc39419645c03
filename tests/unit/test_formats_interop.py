"""Models fetched through the sandbox's HTTP API and the client's download open in
other tools: the Khronos glTF validator (GLB, with and without an image), lib3mf
(3MF) and usd-core (USDZ, in a subprocess: a process that loaded bpy must never load
a second USD build). The generator's own output is validated in depth in
test_modelgen_formats.py / test_modelgen_blender.py; here the point is that what
arrives after HTTP, the CDN and the client is the same valid file.

Also: the binary-FBX structure walk of client/magic.py on hand-built files.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from hiptah_blender.client import magic
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.images import image_bytes_to_data_uri
from sandbox.harness import SandboxServer
from tests.unit.test_modelgen_formats import _validate


def fetch(sandbox: SandboxServer, folder: Path, fmt: str, *, image: bytes | None = None) -> Path:
    client = HiptahClient(sandbox.api_key, sandbox.base_url, sleep=lambda _: None)
    request: dict[str, Any] = {"prompt": "" if image else "a wooden cart with iron wheels", "format": fmt, "quality": "draft"}
    if image is not None:
        request["image"] = image_bytes_to_data_uri(image)
    submitted = client.generate(request)
    job = client.wait(submitted.job_id, deadline=120, poll_interval=0.1)
    path = client.download(job, folder)
    assert magic.file_problem(fmt, path) is None
    return path


def png_with_alpha() -> bytes:
    img = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((6, 4, 58, 44), fill=(200, 150, 20, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_downloaded_glb_passes_the_khronos_validator(sandbox: SandboxServer, tmp_path: Path) -> None:
    paths = [fetch(sandbox, tmp_path / "text", "glb"), fetch(sandbox, tmp_path / "image", "glb", image=png_with_alpha())]
    for path, issues in _validate(paths).items():
        messages = [(m["code"], m.get("pointer")) for m in issues["messages"]]
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, (path, messages)


def test_downloaded_3mf_loads_in_lib3mf(sandbox: SandboxServer, tmp_path: Path) -> None:
    lib3mf = pytest.importorskip("lib3mf")
    path = fetch(sandbox, tmp_path, "3mf")
    model = lib3mf.get_wrapper().CreateModel()
    reader = model.QueryReader("3mf")
    reader.ReadFromFile(str(path))
    assert reader.GetWarningCount() == 0
    objects = model.GetMeshObjects()
    count = 0
    while objects.MoveNext():
        obj = objects.GetCurrentMeshObject()
        assert obj.GetTriangleCount() > 0 and obj.IsManifoldAndOriented(), obj.GetName()
        count += 1
    assert count == 13  # the cart's parts, one object each


_USD_PROBE = r"""
import json, sys
from pxr import Usd, UsdGeom
stage = Usd.Stage.Open(sys.argv[1])
meshes = [p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
points = sum(len(UsdGeom.Mesh(p).GetPointsAttr().Get() or []) for p in meshes)
print(json.dumps({"meshes": len(meshes), "points": points, "up": UsdGeom.GetStageUpAxis(stage),
                  "mpu": UsdGeom.GetStageMetersPerUnit(stage)}))
"""


def test_downloaded_usdz_opens_with_usd_core(sandbox: SandboxServer, tmp_path: Path) -> None:
    pytest.importorskip("pxr")  # only finds the module; it is loaded in the subprocess
    path = fetch(sandbox, tmp_path, "usdz")
    proc = subprocess.run([sys.executable, "-c", _USD_PROBE, str(path)], capture_output=True, text=True,
                          timeout=120, check=True)
    info = json.loads(proc.stdout)
    assert info["meshes"] == 13 and info["points"] > 100
    assert info["up"] == "Y" and info["mpu"] == 1.0


# ---------------------------------------------------------------------------- FBX structure
def _record(name: bytes, props: list[bytes], children: list[bytes] | None = None, *, at: int) -> bytes:
    """One FBX 7.4 node record placed at byte ``at`` (end offsets are absolute)."""
    body = b"".join(props)
    header_len = 13 + len(name)
    nested = b""
    if children is not None:
        nested = b"".join(children) + b"\x00" * 13  # a nested list ends with an empty record
    end = at + header_len + len(body) + len(nested)
    return struct.pack("<IIIB", end, len(props), len(body), len(name)) + name + body + nested


def _fbx(*, damage: str = "") -> bytes:
    head = magic.FBX_BINARY_MAGIC + b"\x1a\x00" + struct.pack("<I", 7400)
    at = len(head)
    ints = struct.pack("<III", 3, 0, 12) + struct.pack("<3i", 1, 2, 3)
    leaf_props = [b"I" + struct.pack("<i", 7), b"S" + struct.pack("<I", 4) + b"name", b"i" + ints]
    # Children are laid out after the parent's header and properties: build them in place.
    parent_head = 13 + len(b"Objects")
    child = _record(b"Geometry", leaf_props, at=at + parent_head)
    if damage == "array":
        child = child.replace(struct.pack("<III", 3, 0, 12), struct.pack("<III", 3, 0, 4000))
    parent = _record(b"Objects", [], [child], at=at)
    data = head + parent + b"\x00" * 13 + b"footer" * 4
    if damage == "cut":
        data = data[: len(head) + 20]
    return data


@pytest.mark.parametrize(
    ("damage", "expected"),
    [("", None), ("cut", "claims to end at byte"), ("array", "impossible sizes")],
)
def test_fbx_structure_walk(tmp_path: Path, damage: str, expected: str | None) -> None:
    path = tmp_path / "m.fbx"
    path.write_bytes(_fbx(damage=damage))
    problem = magic.file_problem("fbx", path)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_fbx_garbage_after_the_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.fbx"
    path.write_bytes(_fbx()[:27] + bytes((i * 131 + 7) % 256 for i in range(4096)))
    assert "damaged" in (magic.file_problem("fbx", path) or "")
