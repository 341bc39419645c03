"""Format magic bytes and structural checks of finished files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hiptah_blender.client import errors, magic
from tests.unit.test_client_download import MODELS, glb_bytes, stl_bytes, zip_bytes


@pytest.mark.parametrize("fmt", sorted(MODELS))
def test_valid_files_pass(tmp_path: Path, fmt: str) -> None:
    assert magic.looks_like(fmt, MODELS[fmt][: magic.HEAD_BYTES])
    path = tmp_path / f"m.{fmt}"
    path.write_bytes(MODELS[fmt])
    assert magic.file_problem(fmt, path) is None
    magic.verify_file(fmt.upper(), path)


def test_looks_like_heads() -> None:
    assert magic.looks_like("glb", b"glTF\x02\x00\x00\x00")
    assert not magic.looks_like("glb", b"glTF\x01\x00\x00\x00")  # glTF 1.0 binary
    assert not magic.looks_like("glb", b"glTF")
    assert magic.looks_like("fbx", b"Kaydara FBX Binary  \x00\x1a\x00")
    assert magic.looks_like("fbx", b"\xef\xbb\xbf  ; FBX 7.4.0 project file")
    assert not magic.looks_like("fbx", b"Kaydara FBX Binary")
    assert magic.looks_like("usdz", b"PK\x03\x04rest") and magic.looks_like(".3MF", b"PK\x03\x04")
    assert not magic.looks_like("usdz", b"PK\x05\x06")  # an empty zip holds no model
    assert magic.looks_like("stl", b"solid cube\nfacet")
    assert magic.looks_like("stl", b"\x00" * 84)
    assert not magic.looks_like("stl", b"<html>" + b" " * 100)
    assert not magic.looks_like("stl", b"\x00" * 10)
    assert not magic.looks_like("obj", b"v 0 0 0")
    assert not magic.looks_like("", b"glTF\x02\x00\x00\x00")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_glb_length_must_match(tmp_path: Path) -> None:
    data = glb_bytes()
    assert "declares" in (magic.file_problem("glb", write(tmp_path, "a.glb", data + b"\x00" * 4)) or "")
    assert "declares" in (magic.file_problem("glb", write(tmp_path, "b.glb", data[:-4])) or "")
    no_json = data[:16] + struct.pack("<I", 0x004E4942) + data[20:]
    assert "JSON" in (magic.file_problem("glb", write(tmp_path, "c.glb", no_json)) or "")
    assert magic.file_problem("glb", write(tmp_path, "d.glb", data[:16])) is not None


def test_zip_checks(tmp_path: Path) -> None:
    assert "cannot be read" in (magic.file_problem("usdz", write(tmp_path, "a.usdz", b"PK\x03\x04junk")) or "")
    assert "USD layer" in (magic.file_problem("usdz", write(tmp_path, "b.usdz", zip_bytes(["a.png", "m.usdc"]))) or "")
    assert magic.file_problem("usdz", write(tmp_path, "c.usdz", zip_bytes(["m.usda"]))) is None
    assert "3D model" in (magic.file_problem("3mf", write(tmp_path, "d.3mf", zip_bytes(["_rels/.rels"]))) or "")
    assert magic.file_problem("3mf", write(tmp_path, "e.3mf", zip_bytes(["3D/Object.model"]))) is None
    full = zip_bytes(["3D/3dmodel.model"])
    assert magic.file_problem("3mf", write(tmp_path, "f.3mf", full[:-30])) is not None  # central directory cut


def test_stl_checks(tmp_path: Path) -> None:
    assert magic.file_problem("stl", write(tmp_path, "a.stl", stl_bytes(0))) is None
    assert magic.file_problem("stl", write(tmp_path, "b.stl", stl_bytes(4)[:-1])) is not None
    ascii_stl = b"solid cube\n facet normal 0 0 1\n endfacet\nendsolid cube\n"
    assert magic.file_problem("stl", write(tmp_path, "c.stl", ascii_stl)) is None
    assert "endsolid" in (magic.file_problem("stl", write(tmp_path, "d.stl", ascii_stl[:30])) or "")
    # A binary STL whose free-form header starts with "solid" is still binary.
    tricky = b"solid by some exporter".ljust(80, b" ") + struct.pack("<I", 2) + b"\x01" * 100
    assert magic.file_problem("stl", write(tmp_path, "e.stl", tricky)) is None


def test_verify_file_raises_download_error(tmp_path: Path) -> None:
    with pytest.raises(errors.DownloadError, match="corrupt"):
        magic.verify_file("fbx", write(tmp_path, "x.fbx", b"<html>nope</html>"))
