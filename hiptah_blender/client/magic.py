"""Is this file really the model format we asked for? Magic-byte and structure checks.

A CDN, a captive portal or a proxy can answer a model URL with an HTML page, a
JSON error or a truncated file and still say 200. These checks catch that before
a file is handed to a Blender importer (which would fail with a confusing error,
or worse, half-import it). Pure stdlib, no bpy.

``looks_like`` needs only the first bytes (checked while streaming, so a wrong
file is refused after its first chunk); ``file_problem`` / ``verify_file`` read
the finished file for a deeper structural check.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile

from .errors import DownloadError

GLB_MAGIC = b"glTF"
GLB_JSON_CHUNK = 0x4E4F534A  # "JSON", the first chunk of every GLB
FBX_BINARY_MAGIC = b"Kaydara FBX Binary  \x00"
ZIP_MAGIC = b"PK\x03\x04"
STL_HEADER_BYTES = 84  # 80-byte header + uint32 triangle count
STL_TRIANGLE_BYTES = 50
_BOM = b"\xef\xbb\xbf"

# Bytes needed to decide ``looks_like`` for every format.
HEAD_BYTES = 84


def _text_head(head: bytes) -> bytes:
    return head.removeprefix(_BOM).lstrip()


def looks_like(fmt: str, head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) can start a ``fmt`` file.

    Unknown formats return False: a file we cannot check is not trusted.
    """
    fmt = (fmt or "").lower().lstrip(".")
    if fmt == "glb":
        return len(head) >= 8 and head[:4] == GLB_MAGIC and struct.unpack_from("<I", head, 4)[0] == 2
    if fmt == "fbx":
        return head.startswith(FBX_BINARY_MAGIC) or _text_head(head).startswith(b"; FBX")
    if fmt in ("usdz", "3mf"):
        return head.startswith(ZIP_MAGIC)
    if fmt == "stl":
        if _text_head(head)[:5].lower() == b"solid":
            return True
        # Binary STL has a free-form 80-byte header, so only an error page or a
        # JSON/XML body can be told apart here; file_problem checks the size rule.
        return len(head) >= STL_HEADER_BYTES and _text_head(head)[:1] not in (b"<", b"{", b"[")
    return False


def file_problem(fmt: str, path: str | os.PathLike[str]) -> str | None:
    """Why the finished file at ``path`` is not a valid ``fmt`` file, or None when it looks valid."""
    fmt = (fmt or "").lower().lstrip(".")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if not looks_like(fmt, head):
        return f"the file does not start like a {fmt.upper()} file"
    if fmt == "glb":
        if len(head) < 20:
            return "the GLB file is shorter than its header"
        declared = struct.unpack_from("<I", head, 8)[0]
        if declared != size:
            return f"the GLB header declares {declared} bytes but the file has {size}"
        if struct.unpack_from("<I", head, 16)[0] != GLB_JSON_CHUNK:
            return "the GLB file has no JSON chunk"
        return None
    if fmt in ("usdz", "3mf"):
        return _zip_problem(fmt, path)
    if fmt == "stl":
        return _stl_problem(path, head, size)
    if fmt == "fbx" and head.startswith(FBX_BINARY_MAGIC):
        return _fbx_problem(path, size)
    return None  # ASCII FBX: the magic is all that is checked


def verify_file(fmt: str, path: str | os.PathLike[str]) -> None:
    """Raise DownloadError when the finished file is not a valid ``fmt`` file."""
    problem = file_problem(fmt, path)
    if problem:
        raise DownloadError(f"The downloaded model is corrupt: {problem}.")


def _zip_problem(fmt: str, path: str | os.PathLike[str]) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        return f"the {fmt.upper()} archive cannot be read ({exc})"
    if fmt == "usdz":
        # A USDZ package's first entry is its root USD layer.
        if not names or not names[0].lower().endswith((".usd", ".usda", ".usdc")):
            return "the USDZ archive does not start with a USD layer"
        return None
    # 3MF: the model part is usually 3D/3dmodel.model; the spec allows another
    # name (found through _rels/.rels), so any *.model part under 3D/ is accepted.
    if not any(n.lower().startswith("3d/") and n.lower().endswith(".model") for n in names):
        return "the 3MF archive contains no 3D model part (3D/3dmodel.model)"
    return None


def _stl_problem(path: str | os.PathLike[str], head: bytes, size: int) -> str | None:
    if size >= STL_HEADER_BYTES:
        count = struct.unpack_from("<I", head, 80)[0]
        if size == STL_HEADER_BYTES + STL_TRIANGLE_BYTES * count:
            return None  # binary STL (its header may start with "solid" too)
    if _text_head(head)[:5].lower() == b"solid":
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 512))
            tail = fh.read()
        if b"endsolid" in tail.lower():
            return None
        return "the ASCII STL file ends before 'endsolid' (truncated)"
    return "the binary STL size does not match its triangle count (truncated)"


# ---------------------------------------------------------------------------- FBX
# Binary FBX is a tree of node records whose lengths are trusted by readers: Blender's
# importer allocates whatever a damaged length says (a cut or garbled file can exhaust
# memory and kill Blender). Walking the record headers checks every length against the
# file without decoding anything.
_FBX_SCALARS = {ord("Y"): 2, ord("C"): 1, ord("I"): 4, ord("F"): 4, ord("D"): 8, ord("L"): 8}
_FBX_ARRAYS = {ord("f"): 4, ord("d"): 8, ord("l"): 8, ord("i"): 4, ord("b"): 1}
_FBX_MAX_ARRAY_BYTES = 1 << 30  # decompressed size of one property array
_FBX_MAX_DEPTH = 64


class _FbxDamaged(Exception):
    pass


def _fbx_problem(path: str | os.PathLike[str], size: int) -> str | None:
    if size < 27 + 13:
        return "the FBX file is shorter than its header"
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        version = struct.unpack_from("<I", data, 23)[0]
        wide = version >= 7500  # 64-bit record offsets since FBX 7.5
        try:
            _fbx_records(data, 27, size, wide, 0)
        except _FbxDamaged as exc:
            return f"the FBX file is damaged ({exc})"
        except struct.error:
            return "the FBX file is damaged (a record runs past the end of the file)"
    return None


def _fbx_records(data: mmap.mmap, offset: int, end: int, wide: bool, depth: int) -> int:
    """Check the records from ``offset`` up to their closing empty record (or ``end``)."""
    if depth > _FBX_MAX_DEPTH:
        raise _FbxDamaged("records nested too deep")
    header = 25 if wide else 13
    while offset + header <= end:
        if wide:
            end_offset, count, props_len = struct.unpack_from("<QQQ", data, offset)
        else:
            end_offset, count, props_len = struct.unpack_from("<III", data, offset)
        name_len = data[offset + header - 1]
        if end_offset == 0 and count == 0 and props_len == 0 and name_len == 0:
            return offset + header  # the empty record that closes a list
        props = offset + header + name_len
        props_end = props + props_len
        if not props_end <= end_offset <= end:
            raise _FbxDamaged(f"a record at byte {offset} claims to end at byte {end_offset} (file: {end} bytes)")
        _fbx_properties(data, props, props_end, count)
        if props_end < end_offset:
            _fbx_records(data, props_end, end_offset, wide, depth + 1)
        offset = end_offset
    if depth > 0:
        raise _FbxDamaged(f"a nested list at byte {offset} is not closed")
    return offset  # top level: the file ended without the closing record (tolerated by readers)


def _fbx_properties(data: mmap.mmap, offset: int, end: int, count: int) -> None:
    for _ in range(count):
        if offset >= end:
            raise _FbxDamaged(f"more properties than fit in the record ending at byte {end}")
        kind = data[offset]
        offset += 1
        if kind in _FBX_SCALARS:
            offset += _FBX_SCALARS[kind]
        elif kind in _FBX_ARRAYS:
            length, encoding, stored = struct.unpack_from("<III", data, offset)
            wanted = length * _FBX_ARRAYS[kind]
            if encoding not in (0, 1) or wanted > _FBX_MAX_ARRAY_BYTES or (encoding == 0 and stored != wanted):
                raise _FbxDamaged(f"an array property at byte {offset} has impossible sizes")
            offset += 12 + stored
        elif kind in (ord("S"), ord("R")):
            offset += 4 + struct.unpack_from("<I", data, offset)[0]
        else:
            raise _FbxDamaged(f"unknown property type {kind!r} at byte {offset - 1}")
        if offset > end:
            raise _FbxDamaged(f"a property runs past its record's end (byte {end})")
    if offset != end:
        raise _FbxDamaged(f"the properties of a record end at byte {offset}, not {end}")
