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
    return None  # fbx: the magic is all that can be checked without a parser


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
