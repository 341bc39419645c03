"""A safe, pure-Python 3MF reader (stdlib + numpy; no bpy, no lxml).

What it reads (3MF core spec 1.3, plus parts of the materials and production
extensions):

* the OPC package: ``_rels/.rels`` StartPart relationship (falling back to
  ``3D/3dmodel.model``), and further model parts referenced with the production
  extension's ``p:path`` attribute;
* ``<model unit=...>`` (micron, millimeter, centimeter, inch, foot, meter);
* ``<basematerials>``/``<base displaycolor>`` and ``<m:colorgroup>``/``<m:color>``;
  other property groups (textures, composites, multiproperties) are accepted
  but give no colour;
* ``<object>`` with ``<mesh>`` or ``<components>``, object ``pid``/``pindex``
  and per-triangle ``pid``/``p1`` overrides (``p2``/``p3`` are ignored: one
  material per triangle);
* ``<build><item objectid transform>``.

Output: one :class:`ThreeMFMesh` per build item. Components are resolved
recursively and merged into the item's mesh. **Vertices are in metres with the
full world transform (components, build item, unit) already applied**, so a
Blender object built from it needs an identity matrix; this keeps shears and
non-uniform scales of nested components exact, which an object matrix could
not. When a transform mirrors (negative determinant) the triangle winding is
reversed so normals keep pointing outwards.

Safety: the file is only ever read in memory (no extraction, no file names
from the archive touch the filesystem); member names with absolute paths,
``..`` segments, backslashes or drive letters are refused; sizes are checked
before and while decompressing (total, per part, compression ratio); XML with
a DOCTYPE, entity declarations or external entities is refused; vertex,
triangle, object and material counts are capped (see :class:`ReadLimits`);
every reference (objects, property groups, indices) is checked; component
cycles and non-finite numbers are errors. Every failure is a
:class:`ThreeMFError` with a message and a hint.

Speed: ``<vertices>`` and ``<triangles>`` blocks written in the usual uniform
way (every element with the same attributes in the same order, as every
exporter does) are parsed with numpy over the raw bytes; the rest of the
document (with those blocks cut out) goes through expat. Anything unusual falls
back to a full expat parse with the same results.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import unquote
from xml.parsers import expat

import numpy as np
import numpy.typing as npt

from ..client.errors import HiptahError

log = logging.getLogger(__name__)

CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
MATERIAL_NS = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
PRODUCTION_NS = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
START_PART_TYPE = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
DEFAULT_MODEL_PART = "3D/3dmodel.model"
RELS_PART = "_rels/.rels"

#: metres per model unit
UNITS: dict[str, float] = {
    "micron": 1e-6,
    "millimeter": 1e-3,
    "centimeter": 1e-2,
    "inch": 0.0254,
    "foot": 0.3048,
    "meter": 1.0,
}

# Extensions whose "required" flag we can honour (we read what matters of them).
_SUPPORTED_REQUIRED = {CORE_NS, MATERIAL_NS, PRODUCTION_NS}

_GENERIC_HINT = (
    "The file may be damaged or not a 3MF model; download it again or re-export it "
    "from the program that made it."
)
_LIMIT_HINT = (
    "The file exceeds the importer's safety limits; if you trust it, simplify or split "
    "the model and try again."
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ThreeMFError(HiptahError):
    """The 3MF file cannot be read (corrupt, unsafe, unsupported or over a limit)."""

    default_message = "The 3MF file could not be read."
    hint = _GENERIC_HINT


@dataclass(frozen=True)
class ReadLimits:
    """Safety limits; the defaults allow any realistic model."""

    max_total_uncompressed: int = 1 << 30  # sum of all members' declared sizes
    max_part_bytes: int = 1 << 30  # one model part (XML)
    max_small_part_bytes: int = 4 << 20  # relationships / content types
    max_ratio: float = 200.0  # uncompressed / compressed size ...
    ratio_min_bytes: int = 1 << 20  # ... checked for members at least this big
    max_members: int = 10_000
    max_vertices: int = 50_000_000  # total in the output (after instancing)
    max_triangles: int = 50_000_000
    max_objects: int = 1_000_000
    max_build_items: int = 100_000
    max_component_depth: int = 64
    max_materials: int = 4_096  # distinct materials per output mesh


DEFAULT_LIMITS = ReadLimits()


@dataclass(frozen=True)
class ThreeMFMaterial:
    """A colour from ``<base>`` or ``<m:color>``: ``rgba`` is sRGB, 0..1, as in the file."""

    name: str
    rgba: tuple[float, float, float, float]


@dataclass
class ThreeMFMesh:
    """One build item, flattened.

    ``vertices``: float32 (N, 3), metres, world transform applied.
    ``triangles``: int32 (M, 3), indices into ``vertices``, outward winding.
    ``material_indices``: int32 (M,), indices into ``materials``. When the item
    has no colour at all, ``materials`` is empty and every index is 0; when only
    some triangles have one, the others use an added grey "3MF default" material.
    """

    name: str
    vertices: npt.NDArray[np.float32]
    triangles: npt.NDArray[np.int32]
    material_indices: npt.NDArray[np.int32]
    materials: list[ThreeMFMaterial]
    object_type: str = "model"
    object_id: int = 0
    part: str = DEFAULT_MODEL_PART


DEFAULT_MATERIAL = ThreeMFMaterial("3MF default", (0.8, 0.8, 0.8, 1.0))


# --------------------------------------------------------------------------- XML safety


def _refuse_dtd(*_args: object) -> None:
    raise ThreeMFError(
        "The 3MF file contains an XML DOCTYPE or entity declaration, which is not allowed.",
        hint="3MF files never need DTDs; this file may be malicious (entity expansion attack).",
    )


def _refuse_external(*_args: object) -> int:
    _refuse_dtd()
    return 0


def _new_parser() -> Any:
    """An expat parser with namespaces and every DTD feature refused."""
    p = expat.ParserCreate(namespace_separator=" ")
    p.StartDoctypeDeclHandler = _refuse_dtd
    p.EntityDeclHandler = _refuse_dtd
    p.UnparsedEntityDeclHandler = _refuse_dtd
    p.NotationDeclHandler = _refuse_dtd
    p.ExternalEntityRefHandler = _refuse_external
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.buffer_text = True
    return p


def _xml_error(part: str, exc: expat.ExpatError) -> ThreeMFError:
    return ThreeMFError(
        f"The 3MF part {part!r} is not well-formed XML ({expat.ErrorString(exc.code)} "
        f"at line {exc.lineno}, column {exc.offset}).",
    )


def _parse_xml(part: str, data: bytes | bytearray, parser: Any) -> None:
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise _xml_error(part, exc) from None
    except RecursionError:
        raise ThreeMFError(f"The 3MF part {part!r} is nested too deeply.") from None


# --------------------------------------------------------------------------- package


_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name(name: str) -> bool:
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return True
    if _DRIVE.match(name):
        return True
    return any(seg in ("..", ".") for seg in name.split("/"))


def _part_name(target: str, where: str) -> str:
    """Normalise an OPC part reference ("/3D/x.model", "3D/x.model", percent-encoded)."""
    name = unquote(target.strip()).lstrip("/")
    if _unsafe_name(name) or name.endswith("/"):
        raise ThreeMFError(
            f"The 3MF file refers to an unsafe or invalid part name {target!r} ({where}).",
            hint="The file may be malicious or damaged; it was not imported.",
        )
    return name


class _Package:
    """The zip, read in memory under the limits."""

    def __init__(self, source: str | os.PathLike[str] | IO[bytes], limits: ReadLimits) -> None:
        self.limits = limits
        try:
            self.zf = zipfile.ZipFile(source)
        except OSError as exc:
            raise ThreeMFError(
                f"The 3MF file cannot be opened ({exc.strerror or exc}).",
                hint="Check the path and permissions; the download may have been moved or deleted.",
            ) from None
        except (zipfile.BadZipFile, EOFError, ValueError, struct.error, OverflowError) as exc:
            raise ThreeMFError(
                f"The file is not a valid 3MF package (not a readable zip archive: {exc}).",
                hint="A 3MF file is a zip archive; this one is damaged, truncated or of another type. Download it again.",
            ) from None
        infos = self.zf.infolist()
        if len(infos) > limits.max_members:
            raise ThreeMFError(
                f"The 3MF archive has {len(infos)} members (limit {limits.max_members}).",
                hint=_LIMIT_HINT,
            )
        self.members: dict[str, zipfile.ZipInfo] = {}
        lower: dict[str, list[str]] = {}
        total = 0
        for info in infos:
            name = info.filename
            if _unsafe_name(name):
                raise ThreeMFError(
                    f"The 3MF archive contains a member with an unsafe path: {name!r}.",
                    hint="Absolute paths, '..' and backslashes never occur in valid 3MF files; the file may be malicious.",
                )
            if name in self.members:
                raise ThreeMFError(f"The 3MF archive contains the member {name!r} twice.")
            self.members[name] = info
            lower.setdefault(name.lower(), []).append(name)
            total += info.file_size
        if total > limits.max_total_uncompressed:
            raise ThreeMFError(
                f"The 3MF archive would expand to {total / 2**20:.0f} MiB "
                f"(limit {limits.max_total_uncompressed / 2**20:.0f} MiB).",
                hint="This looks like a zip bomb or an extremely large model; it was not imported.",
            )
        self._lower = lower
        self._budget = limits.max_total_uncompressed

    def find(self, name: str) -> zipfile.ZipInfo | None:
        info = self.members.get(name)
        if info is None:  # OPC part names compare case-insensitively
            names = self._lower.get(name.lower(), [])
            if len(names) == 1:
                info = self.members[names[0]]
        return info

    def read(self, info: zipfile.ZipInfo, cap: int) -> bytearray:
        lim = self.limits
        name = info.filename
        if info.flag_bits & 0x1:
            raise ThreeMFError(
                f"The 3MF member {name!r} is encrypted.",
                hint="Encrypted 3MF files are not supported; export the model without encryption.",
            )
        size = info.file_size
        if size > cap:
            raise ThreeMFError(
                f"The 3MF part {name!r} is {size / 2**20:.0f} MiB (limit {cap / 2**20:.0f} MiB).",
                hint=_LIMIT_HINT,
            )
        if size >= lim.ratio_min_bytes and size > lim.max_ratio * max(info.compress_size, 1):
            raise ThreeMFError(
                f"The 3MF part {name!r} is compressed {size / max(info.compress_size, 1):.0f}:1, "
                f"which is suspicious (limit {lim.max_ratio:.0f}:1).",
                hint="This looks like a zip bomb; it was not imported.",
            )
        if size > self._budget:
            raise ThreeMFError(
                "The 3MF parts expand beyond the total size limit.",
                hint="This looks like a zip bomb or an extremely large model; it was not imported.",
            )
        buf = bytearray(size)
        view = memoryview(buf)
        pos = 0
        try:
            with self.zf.open(info) as fh:
                assert isinstance(fh, zipfile.ZipExtFile)
                while pos < size:
                    n = fh.readinto(view[pos : min(size, pos + (1 << 22))])
                    if not n:
                        break
                    pos += n
                if fh.read(1):  # more data than the directory declared
                    raise ThreeMFError(
                        f"The 3MF member {name!r} is larger than its declared size.",
                        hint="The archive is damaged or crafted to evade size checks; it was not imported.",
                    )
        except ThreeMFError:
            raise
        except NotImplementedError as exc:
            raise ThreeMFError(
                f"The 3MF member {name!r} uses an unsupported compression method ({exc}).",
                hint="Re-export the file with standard (deflate) compression.",
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
            raise ThreeMFError(
                f"The 3MF member {name!r} is corrupt ({exc}).",
                hint="The download may be truncated or damaged; download it again.",
            ) from None
        finally:
            view.release()
        if pos != size:
            raise ThreeMFError(
                f"The 3MF member {name!r} is truncated ({pos} of {size} bytes).",
                hint="The download may be incomplete; download it again.",
            )
        self._budget -= size
        return buf

    def start_part(self) -> str:
        rels = self.find(RELS_PART)
        if rels is not None:
            data = self.read(rels, self.limits.max_small_part_bytes)
            targets: list[str] = []

            def start(name: str, attrs: dict[str, str]) -> None:
                if (
                    name == f"{RELS_NS} Relationship"
                    and attrs.get("Type", "").strip() == START_PART_TYPE
                    and attrs.get("TargetMode", "Internal") == "Internal"
                    and "Target" in attrs
                ):
                    targets.append(attrs["Target"])

            parser = _new_parser()
            parser.StartElementHandler = start
            _parse_xml(RELS_PART, data, parser)
            for target in targets:
                name = _part_name(target, "package relationships")
                if self.find(name) is not None:
                    return name
        if self.find(DEFAULT_MODEL_PART) is not None:
            return DEFAULT_MODEL_PART
        raise ThreeMFError(
            "The 3MF package has no 3D model part (no StartPart relationship and no 3D/3dmodel.model).",
        )


# --------------------------------------------------------------------------- fast path

_WS = b" \t\r\n"
_WS_RUN = re.compile(rb"[ \t\r\n]*")
_BLOCK_OPEN = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?)(vertices|triangles)((?:[ \t\r\n][^<>]*)?)>")
_ATTR_NAME = re.compile(rb"[ \t\r\n]+([A-Za-z_][\w.:-]*)[ \t\r\n]*=[ \t\r\n]*\"\"")


@dataclass
class _FastBlock:
    count: int
    columns: dict[str, npt.NDArray[Any]]


def _fast_block(
    body: bytes | bytearray,
    prefix: bytes,
    tag: bytes,
    allowed: frozenset[str],
    required: frozenset[str],
    dtype: type[np.float64] | type[np.int64],
) -> _FastBlock | None:
    """Parse a uniform run of ``<tag a="…" b="…"/>`` with numpy, or return None.

    Accepts only content that is unambiguously well-formed: every element has
    the same attributes in the same order and the same spacing, values are one
    token without '<', '&' or whitespace, no comments/CDATA/other elements.
    """
    if b"&" in body or b"'" in body:  # entity references / single quotes: generic path
        return None
    a = np.frombuffer(body, dtype=np.uint8)
    q = np.flatnonzero(a == 0x22)
    if q.size == 0:
        return _FastBlock(0, {}) if not body.strip(_WS) else None
    if q.size % 2:
        return None
    opens, closes = q[0::2], q[1::2]
    lengths = closes - opens - 1
    if lengths.min() < 1:  # empty value
        return None
    marks = np.zeros(a.size + 1, dtype=np.int8)
    marks[opens + 1] = 1
    marks[closes] = -1
    inside = np.cumsum(marks[:-1], dtype=np.int8).view(np.bool_)
    skel = a[~inside].tobytes()
    lead = _WS_RUN.match(skel)
    assert lead is not None
    tail = len(skel)
    while tail and skel[tail - 1] in _WS:
        tail -= 1
    end = skel.find(b"/>", lead.end())
    if end < 0:
        return None
    end += 2
    sep_m = _WS_RUN.match(skel, end)
    assert sep_m is not None
    core, sep = skel[lead.end() : end], skel[end : sep_m.end()]
    head = b"<" + prefix + tag
    if not core.startswith(head):
        return None
    attrs_txt = core[len(head) : -2].rstrip(_WS)
    names_b = _ATTR_NAME.findall(attrs_txt)
    if not names_b or b"".join(m.group(0) for m in _ATTR_NAME.finditer(attrs_txt)) != attrs_txt:
        return None
    names = [n.decode("ascii") for n in names_b]
    if len(set(names)) != len(names) or not set(names) <= allowed or not required <= set(names):
        return None
    k = len(names)
    if q.size % (2 * k):
        return None
    n = q.size // (2 * k)
    unit = core + sep
    if tail - lead.end() + len(sep) != len(unit) * n:
        return None
    if skel[lead.end() : tail] + sep != unit * n:
        return None
    # The skeleton is exact; now the values: '<' only in the skeleton, and only
    # digits (ints) or no whitespace (floats) inside the quotes.
    if body.count(b"<") != n:
        return None
    if dtype is np.int64:
        digits = b"0123456789"
        in_values = _count(body, digits) - _count(skel, digits)
        if in_values != int(lengths.sum()):
            return None
    elif _count(body, _WS) != _count(skel, _WS):
        return None
    if dtype is np.int64:
        nums = _parse_digit_runs(a, closes, lengths)
        if nums is None:
            return None
    else:
        text = np.where(inside, a, np.uint8(0x20)).tobytes()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                nums = np.fromstring(text, dtype=np.float64, sep=" ")  # type: ignore[call-overload]
            except (ValueError, DeprecationWarning, OverflowError):
                return None
        if nums.size != n * k:
            return None
    table = nums.reshape(n, k)
    return _FastBlock(n, {name: table[:, i] for i, name in enumerate(names)})


def _parse_digit_runs(
    a: npt.NDArray[np.uint8], closes: IntArray, lengths: IntArray
) -> IntArray | None:
    """Vectorised int() of runs of ASCII digits ending before ``closes``."""
    longest = int(lengths.max())
    if longest > 12:  # beyond any valid index; let the generic path report it
        return None
    out = np.zeros(len(closes), dtype=np.int64)
    power = 1
    for k in range(longest):
        digit = a[np.maximum(closes - 1 - k, 0)].astype(np.int64) - 0x30
        out += np.where(lengths > k, digit, 0) * power
        power *= 10
    return out


def _count(data: bytes | bytearray, chars: bytes) -> int:
    """How many bytes of ``data`` are in ``chars`` (one C pass)."""
    return len(data) - len(data.translate(None, chars))


_VERTEX_ATTRS = frozenset({"x", "y", "z"})
_TRIANGLE_ATTRS = frozenset({"v1", "v2", "v3", "p1", "p2", "p3", "pid"})
_TRIANGLE_REQUIRED = frozenset({"v1", "v2", "v3"})


def _cut_blocks(data: bytearray) -> tuple[bytes | bytearray, dict[int, _FastBlock]]:
    """Cut uniform <vertices>/<triangles> bodies out of ``data`` and parse them with numpy.

    Returns the remaining document and the parsed blocks keyed by the byte
    offset of their start tag in that remaining document.
    """
    pieces: list[bytes | bytearray] = []
    blocks: dict[int, _FastBlock] = {}
    pos = 0  # copied up to here
    out_len = 0
    search = 0
    while True:
        m = _BLOCK_OPEN.search(data, search)
        if m is None:
            break
        search = m.end()
        if m.group(0).endswith(b"/>"):
            continue
        prefix, tag = m.group(1), m.group(2)
        close = b"</" + prefix + tag
        end = data.find(close, m.end())
        if end < 0:
            break
        after = _WS_RUN.match(data, end + len(close))
        assert after is not None
        if data[after.end() : after.end() + 1] != b">":
            continue
        body = data[m.end() : end]
        if tag == b"vertices":
            block = _fast_block(body, prefix, b"vertex", _VERTEX_ATTRS, _VERTEX_ATTRS, np.float64)
        else:
            block = _fast_block(
                body, prefix, b"triangle", _TRIANGLE_ATTRS, _TRIANGLE_REQUIRED, np.int64
            )
        del body
        if block is None:
            continue
        pieces.append(data[pos : m.end()])
        out_len += m.end() - pos
        blocks[out_len - (m.end() - m.start())] = block
        pos = end
        search = end
    if not blocks:
        return data, {}
    pieces.append(data[pos:])
    return b"".join(pieces), blocks


# --------------------------------------------------------------------------- model part


def _c(local: str) -> str:
    return f"{CORE_NS} {local}"


def _m(local: str) -> str:
    return f"{MATERIAL_NS} {local}"


E_MODEL, E_RESOURCES, E_BUILD, E_ITEM = _c("model"), _c("resources"), _c("build"), _c("item")
E_OBJECT, E_MESH, E_COMPONENTS, E_COMPONENT = (
    _c("object"),
    _c("mesh"),
    _c("components"),
    _c("component"),
)
E_VERTICES, E_VERTEX, E_TRIANGLES, E_TRIANGLE = (
    _c("vertices"),
    _c("vertex"),
    _c("triangles"),
    _c("triangle"),
)
E_BASEMATERIALS, E_BASE = _c("basematerials"), _c("base")
E_COLORGROUP, E_COLOR = _m("colorgroup"), _m("color")
_OTHER_GROUPS = {
    _m("texture2dgroup"),
    _m("compositematerials"),
    _m("multiproperties"),
    _m("texture2d"),
}
A_PATH = f"{PRODUCTION_NS} path"

_CHUNK = 1 << 16
_MAX_ID = (1 << 31) - 1  # ids and indices are 32-bit in every 3MF implementation


@dataclass
class _Object:
    id: int
    type: str
    name: str
    pid: int
    pindex: int
    vertices: FloatArray | None = None
    triangles: IntArray | None = None
    tri_pid: IntArray | None = None
    tri_p1: IntArray | None = None
    components: list[tuple[str, int, FloatArray]] = field(default_factory=list)


@dataclass
class _Group:
    kind: str  # "base", "color", "other"
    names: list[str] = field(default_factory=list)
    colors: list[tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class _Item:
    path: str
    objectid: int
    transform: FloatArray


@dataclass
class _Part:
    name: str
    unit: float = 1e-3
    objects: dict[int, _Object] = field(default_factory=dict)
    groups: dict[int, _Group] = field(default_factory=dict)
    items: list[_Item] = field(default_factory=list)


def _int_attr(attrs: dict[str, str], key: str, where: str, default: int | None = None) -> int:
    raw = attrs.get(key)
    if raw is None:
        if default is None:
            raise ThreeMFError(f"The 3MF {where} has no {key!r} attribute.")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ThreeMFError(f"The 3MF {where} has an invalid {key} {raw[:40]!r}.") from None
    if not 0 <= value <= _MAX_ID:
        raise ThreeMFError(f"The 3MF {where} has an out-of-range {key} ({raw[:40]}).")
    return value


def parse_transform(text: str | None, where: str) -> FloatArray:
    """A 3MF transform ("m00 m01 m02 m10 … m32", row vectors) as a 4x4 column-vector matrix.

    3MF multiplies row vectors: ``p' = p · M`` with the translation in the last
    row (m30 m31 m32). The returned matrix acts on column vectors (``M @ p``),
    the convention numpy and Blender use, i.e. it is the transpose.
    """
    out = np.eye(4)
    if text is None:
        return out
    try:
        vals = [float(v) for v in text.split()]
    except ValueError:
        vals = []
    if len(vals) != 12 or not all(math.isfinite(v) for v in vals):
        raise ThreeMFError(f"The 3MF {where} has an invalid transform {text[:120]!r}.")
    out[:3, :4] = np.array(vals).reshape(4, 3).T
    return out


def parse_color(text: str | None) -> tuple[float, float, float, float] | None:
    """``#RRGGBB`` or ``#RRGGBBAA`` → sRGB floats, or None if malformed."""
    if not text:
        return None
    s = text.strip()
    if not s.startswith("#") or len(s) not in (7, 9):
        return None
    try:
        vals = [int(s[i : i + 2], 16) / 255.0 for i in range(1, len(s), 2)]
    except ValueError:
        return None
    if len(vals) == 3:
        vals.append(1.0)
    return (vals[0], vals[1], vals[2], vals[3])


class _Accumulator:
    """Collects numeric attribute strings and converts them in chunks (bounded memory)."""

    def __init__(self, conv: Callable[[str], Any], dtype: type) -> None:
        self.conv = conv
        self.dtype = dtype
        self.buf: list[str] = []
        self.chunks: list[npt.NDArray[Any]] = []

    def flush(self) -> None:
        if self.buf:
            self.chunks.append(np.array([self.conv(v) for v in self.buf], dtype=self.dtype))
            self.buf = []

    def result(self) -> npt.NDArray[Any]:
        self.flush()
        if not self.chunks:
            return np.zeros(0, dtype=self.dtype)
        return np.concatenate(self.chunks)


class _ModelParser:
    """Expat handlers for one model part."""

    def __init__(
        self, part: _Part, blocks: dict[int, _FastBlock], limits: ReadLimits, is_root: bool
    ) -> None:
        self.part = part
        self.blocks = blocks
        self.used_blocks = 0
        self.limits = limits
        self.is_root = is_root
        self.stack: list[str] = []
        self.ns_decls: dict[str, str] = {}
        self.obj: _Object | None = None
        self.group: _Group | None = None
        self.nverts = 0
        self.ntris = 0
        self.parser = _new_parser()
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.StartNamespaceDeclHandler = self.ns_decl
        self.verts: _Accumulator | None = None
        self.tris: _Accumulator | None = None
        self.tri_pid: list[int] = []
        self.tri_p1: list[int] = []
        self.tri_has_props = False

    def run(self, data: bytes | bytearray) -> None:
        _parse_xml(self.part.name, data, self.parser)
        if self.used_blocks != len(self.blocks):
            raise _Reparse()

    def ns_decl(self, prefix: str | None, uri: str) -> None:
        self.ns_decls[prefix or ""] = uri

    def where(self) -> str:
        obj = f" object {self.obj.id}" if self.obj is not None else ""
        return f"part {self.part.name!r}{obj}"

    # -- element handlers ---------------------------------------------------------

    def start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        parent = stack[-1] if stack else ""
        if " " not in name:  # documents without a namespace: treat as core
            name = f"{CORE_NS} {name}"
        stack.append(name)
        if parent == E_VERTICES:
            if name == E_VERTEX and self.verts is not None:
                try:
                    self.verts.buf += (attrs["x"], attrs["y"], attrs["z"])
                except KeyError:
                    raise ThreeMFError(f"A vertex in {self.where()} lacks x, y or z.") from None
                if len(self.verts.buf) >= 3 * _CHUNK:
                    self._count_vertices(len(self.verts.buf) // 3)
                    self.verts.flush()
            return
        if parent == E_TRIANGLES:
            if name == E_TRIANGLE and self.tris is not None:
                try:
                    self.tris.buf += (attrs["v1"], attrs["v2"], attrs["v3"])
                except KeyError:
                    raise ThreeMFError(
                        f"A triangle in {self.where()} lacks v1, v2 or v3."
                    ) from None
                pid = attrs.get("pid")
                p1 = attrs.get("p1")
                if pid is not None or p1 is not None:
                    self.tri_has_props = True
                    self.tri_pid.append(
                        _int_attr(attrs, "pid", f"triangle in {self.where()}", -1)
                        if pid is not None
                        else -1
                    )
                    self.tri_p1.append(
                        _int_attr(attrs, "p1", f"triangle in {self.where()}", -1)
                        if p1 is not None
                        else -1
                    )
                else:
                    self.tri_pid.append(-1)
                    self.tri_p1.append(-1)
                if len(self.tris.buf) >= 3 * _CHUNK:
                    self._count_triangles(len(self.tris.buf) // 3)
                    self.tris.flush()
            return
        if not parent:
            if name != E_MODEL:
                raise ThreeMFError(
                    f"The 3MF part {self.part.name!r} is not a 3MF model (root element {name.split(' ')[-1]!r})."
                )
            self._model(attrs)
        elif parent == E_MODEL:
            pass
        elif parent == E_RESOURCES:
            self._resource(name, attrs)
        elif parent == E_MESH and self.obj is not None:
            if name == E_VERTICES:
                self._begin_block(True)
            elif name == E_TRIANGLES:
                self._begin_block(False)
        elif parent == E_COMPONENTS and self.obj is not None and name == E_COMPONENT:
            where = f"component in {self.where()}"
            oid = _int_attr(attrs, "objectid", where)
            path = attrs.get(A_PATH)
            part = _part_name(path, where) if path else self.part.name
            self.obj.components.append((part, oid, parse_transform(attrs.get("transform"), where)))
        elif parent == E_BASEMATERIALS and name == E_BASE and self.group is not None:
            color = parse_color(attrs.get("displaycolor"))
            if color is None:
                log.warning(
                    "3MF: base material with invalid displaycolor %r", attrs.get("displaycolor")
                )
                color = DEFAULT_MATERIAL.rgba
            self.group.names.append(attrs.get("name", "") or f"Material {len(self.group.names)}")
            self.group.colors.append(color)
        elif parent == E_COLORGROUP and name == E_COLOR and self.group is not None:
            color = parse_color(attrs.get("color"))
            if color is None:
                log.warning("3MF: colour with invalid value %r", attrs.get("color"))
                color = DEFAULT_MATERIAL.rgba
            self.group.colors.append(color)
        elif parent == E_BUILD and name == E_ITEM:
            if not self.is_root:
                return  # build sections of non-root parts are ignored (production spec)
            if len(self.part.items) >= self.limits.max_build_items:
                raise ThreeMFError(
                    f"The 3MF model has more than {self.limits.max_build_items} build items.",
                    hint=_LIMIT_HINT,
                )
            where = "build item"
            oid = _int_attr(attrs, "objectid", where)
            path = attrs.get(A_PATH)
            part = _part_name(path, where) if path else self.part.name
            self.part.items.append(_Item(part, oid, parse_transform(attrs.get("transform"), where)))

    def end(self, name: str) -> None:
        if " " not in name:
            name = f"{CORE_NS} {name}"
        self.stack.pop()
        if name == E_VERTICES and self.obj is not None and self.verts is not None:
            self._count_vertices(len(self.verts.buf) // 3)
            if len(self.verts.buf) % 3:
                raise ThreeMFError(f"Broken vertex list in {self.where()}.")
            try:
                vals = self.verts.result()
            except (ValueError, OverflowError):
                raise ThreeMFError(
                    f"A vertex coordinate in {self.where()} is not a number."
                ) from None
            self._set_vertices(vals.reshape(-1, 3))
            self.verts = None
        elif name == E_TRIANGLES and self.obj is not None and self.tris is not None:
            self._count_triangles(len(self.tris.buf) // 3)
            try:
                vals = self.tris.result()
            except (ValueError, OverflowError):
                raise ThreeMFError(
                    f"A triangle index in {self.where()} is not an integer."
                ) from None
            pid = p1 = None
            if self.tri_has_props:
                pid = np.array(self.tri_pid, dtype=np.int64)
                p1 = np.array(self.tri_p1, dtype=np.int64)
            self._set_triangles(vals.reshape(-1, 3), pid, p1)
            self.tris = None
            self.tri_pid, self.tri_p1, self.tri_has_props = [], [], False
        elif name == E_OBJECT:
            self.obj = None
        elif name in (E_BASEMATERIALS, E_COLORGROUP):
            self.group = None

    # -- pieces ---------------------------------------------------------------------

    def _model(self, attrs: dict[str, str]) -> None:
        unit = attrs.get("unit", "millimeter").strip()
        if unit not in UNITS:
            raise ThreeMFError(
                f"The 3MF model uses an unknown unit {unit[:40]!r}.",
                hint="Valid units are micron, millimeter, centimeter, inch, foot and meter.",
            )
        self.part.unit = UNITS[unit]
        for prefix in attrs.get("requiredextensions", "").split():
            uri = self.ns_decls.get(prefix)
            if uri is None:
                raise ThreeMFError(
                    f"The 3MF model requires an undeclared extension prefix {prefix!r}."
                )
            if uri not in _SUPPORTED_REQUIRED:
                raise ThreeMFError(
                    f"The 3MF model requires the extension {uri!r}, which this importer does not support.",
                    hint="Export the model without that extension (plain meshes), or import it in a slicer.",
                )

    def _resource(self, name: str, attrs: dict[str, str]) -> None:
        if name == E_OBJECT:
            where = f"object in part {self.part.name!r}"
            oid = _int_attr(attrs, "id", where)
            if oid in self.part.objects or oid in self.part.groups:
                raise ThreeMFError(
                    f"The 3MF part {self.part.name!r} defines resource id {oid} twice."
                )
            if len(self.part.objects) >= self.limits.max_objects:
                raise ThreeMFError(
                    f"The 3MF model has more than {self.limits.max_objects} objects.",
                    hint=_LIMIT_HINT,
                )
            pid = _int_attr(attrs, "pid", f"object {oid}", -1) if "pid" in attrs else -1
            pindex = _int_attr(attrs, "pindex", f"object {oid}", -1) if "pindex" in attrs else -1
            self.obj = _Object(
                id=oid,
                type=attrs.get("type", "model"),
                name=attrs.get("name", "") or f"Object {oid}",
                pid=pid,
                pindex=pindex,
            )
            self.part.objects[oid] = self.obj
            return
        kind = {E_BASEMATERIALS: "base", E_COLORGROUP: "color"}.get(name)
        if kind is None and name not in _OTHER_GROUPS:
            return
        gid = _int_attr(attrs, "id", f"property group in part {self.part.name!r}")
        if gid in self.part.groups or gid in self.part.objects:
            raise ThreeMFError(f"The 3MF part {self.part.name!r} defines resource id {gid} twice.")
        group = _Group(kind or "other")
        self.part.groups[gid] = group
        if kind is not None:
            self.group = group

    def _begin_block(self, vertices: bool) -> None:
        block = self.blocks.get(self.parser.CurrentByteIndex)
        if block is not None:
            self.used_blocks += 1
            cols = block.columns
            if vertices:
                self._count_vertices(block.count)
                if block.count:
                    self._set_vertices(np.stack([cols["x"], cols["y"], cols["z"]], axis=1))
                else:
                    self._set_vertices(np.zeros((0, 3)))
            else:
                self._count_triangles(block.count)
                if block.count:
                    tris = np.stack([cols["v1"], cols["v2"], cols["v3"]], axis=1)
                    pid, p1 = cols.get("pid"), cols.get("p1")
                    for col, label in ((pid, "pid"), (p1, "p1")):
                        if col is not None and (col.min() < 0 or col.max() > _MAX_ID):
                            raise ThreeMFError(
                                f"The 3MF {self.where()} has an out-of-range triangle {label}."
                            )
                    self._set_triangles(tris, pid, p1)
                else:
                    self._set_triangles(np.zeros((0, 3), np.int64), None, None)
            return  # the block's body was cut out: expat sees an empty element
        if vertices:
            self.verts = _Accumulator(float, np.float64)
        else:
            self.tris = _Accumulator(int, np.int64)

    def _count_vertices(self, n: int) -> None:
        if self.nverts + n > self.limits.max_vertices:
            raise ThreeMFError(
                f"The 3MF model has more than {self.limits.max_vertices:,} vertices.",
                hint=_LIMIT_HINT,
            )
        self.nverts += n

    def _count_triangles(self, n: int) -> None:
        if self.ntris + n > self.limits.max_triangles:
            raise ThreeMFError(
                f"The 3MF model has more than {self.limits.max_triangles:,} triangles.",
                hint=_LIMIT_HINT,
            )
        self.ntris += n

    def _set_vertices(self, verts: FloatArray) -> None:
        assert self.obj is not None
        if self.obj.vertices is not None:
            raise ThreeMFError(f"The 3MF {self.where()} has two vertex lists.")
        if not np.isfinite(verts).all():
            raise ThreeMFError(
                f"The 3MF {self.where()} has a vertex coordinate that is not a finite number (NaN or infinity).",
            )
        self.obj.vertices = np.ascontiguousarray(verts, dtype=np.float64)

    def _set_triangles(self, tris: IntArray, pid: IntArray | None, p1: IntArray | None) -> None:
        assert self.obj is not None
        if self.obj.triangles is not None:
            raise ThreeMFError(f"The 3MF {self.where()} has two triangle lists.")
        if tris.size and tris.min() < 0:
            raise ThreeMFError(f"The 3MF {self.where()} has a negative triangle index.")
        self.obj.triangles = np.ascontiguousarray(tris, dtype=np.int64)
        self.obj.tri_pid = None if pid is None else np.asarray(pid, dtype=np.int64)
        self.obj.tri_p1 = None if p1 is None else np.asarray(p1, dtype=np.int64)


class _Reparse(Exception):
    """Internal: fast-path blocks did not line up with the XML structure."""


def _parse_part(name: str, data: bytearray, limits: ReadLimits, is_root: bool) -> _Part:
    skeleton, blocks = _cut_blocks(data)
    part = _Part(name)
    try:
        _ModelParser(part, blocks, limits, is_root).run(skeleton)
    except _Reparse:
        log.debug("3MF: fast path misaligned in %s, parsing generically", name)
        part = _Part(name)
        _ModelParser(part, {}, limits, is_root).run(data)
    return part


# --------------------------------------------------------------------------- assembly


class _Reader:
    def __init__(self, pkg: _Package, limits: ReadLimits) -> None:
        self.pkg = pkg
        self.limits = limits
        self.parts: dict[str, _Part] = {}
        self.out_vertices = 0
        self.out_triangles = 0
        self.root = DEFAULT_MODEL_PART

    def part(self, name: str, is_root: bool = False) -> _Part:
        got = self.parts.get(name)
        if got is not None:
            return got
        info = self.pkg.find(name)
        if info is None:
            raise ThreeMFError(f"The 3MF file refers to a model part {name!r} that is missing.")
        data = self.pkg.read(info, self.limits.max_part_bytes)
        part = _parse_part(info.filename, data, self.limits, is_root)
        del data
        self.parts[name] = part
        return part

    def obj(self, path: str, oid: int, where: str) -> _Object:
        obj = self.part(path).objects.get(oid)
        if obj is None:
            raise ThreeMFError(
                f"The 3MF {where} refers to object {oid}, which does not exist"
                + (f" in part {path!r}." if path != self.root else ".")
            )
        return obj

    def read(self) -> list[ThreeMFMesh]:
        self.root = self.pkg.start_part()
        root = self.part(self.root, is_root=True)
        meshes: list[ThreeMFMesh] = []
        scale = np.diag([root.unit, root.unit, root.unit, 1.0])
        for n, item in enumerate(root.items, 1):
            obj = self.obj(item.path, item.objectid, f"build item {n}")
            leaves: list[tuple[_Part, _Object, FloatArray]] = []
            self._collect(item.path, obj, scale @ item.transform, leaves, [])
            mesh = self._merge(obj, item, leaves)
            if mesh is not None:
                meshes.append(mesh)
        if not meshes:
            raise ThreeMFError(
                "The 3MF file contains no mesh to import (its build section places no triangles).",
            )
        return meshes

    def _collect(
        self,
        path: str,
        obj: _Object,
        matrix: FloatArray,
        leaves: list[tuple[_Part, _Object, FloatArray]],
        chain: list[tuple[str, int]],
    ) -> None:
        key = (path, obj.id)
        if key in chain:
            cycle = " → ".join(str(oid) for _, oid in [*chain[chain.index(key) :], key])
            raise ThreeMFError(
                f"The 3MF components form a cycle (objects {cycle}).",
                hint="The file is invalid: an object contains itself. Re-export it.",
            )
        if len(chain) >= self.limits.max_component_depth:
            raise ThreeMFError(
                f"The 3MF components are nested more than {self.limits.max_component_depth} levels deep.",
                hint=_LIMIT_HINT,
            )
        chain.append(key)
        if obj.vertices is not None or obj.triangles is not None:
            nv = 0 if obj.vertices is None else len(obj.vertices)
            nt = 0 if obj.triangles is None else len(obj.triangles)
            self.out_vertices += nv
            self.out_triangles += nt
            if (
                self.out_vertices > self.limits.max_vertices
                or self.out_triangles > self.limits.max_triangles
            ):
                raise ThreeMFError(
                    "The 3MF model places its meshes so many times that it exceeds "
                    f"{self.limits.max_vertices:,} vertices or {self.limits.max_triangles:,} triangles.",
                    hint=_LIMIT_HINT,
                )
            leaves.append((self.part(path), obj, matrix))
        for cpath, cid, ctrans in obj.components:
            child = self.obj(cpath, cid, f"component of object {obj.id}")
            self._collect(cpath, child, matrix @ ctrans, leaves, chain)
        chain.pop()

    def _materials(
        self, part: _Part, obj: _Object, ntri: int
    ) -> tuple[IntArray, list[ThreeMFMaterial | None]]:
        """Per-triangle index into a local list; None entries mean "no material"."""
        eff_pid: IntArray = np.full(ntri, obj.pid, dtype=np.int64)
        eff_idx: IntArray = np.full(ntri, obj.pindex, dtype=np.int64)
        if obj.tri_pid is not None:
            eff_pid = np.where(obj.tri_pid >= 0, obj.tri_pid, eff_pid)
        if obj.tri_p1 is not None:
            eff_idx = np.where(obj.tri_p1 >= 0, obj.tri_p1, eff_idx)
        eff_idx = np.where((eff_pid >= 0) & (eff_idx < 0), 0, eff_idx)
        eff_idx = np.where(eff_pid < 0, -1, eff_idx)
        keys = eff_pid * (1 << 31) + eff_idx
        uniq, inverse = np.unique(keys, return_inverse=True)
        if len(uniq) > self.limits.max_materials:
            raise ThreeMFError(
                f"The 3MF object {obj.id} uses {len(uniq)} different materials/colours "
                f"(limit {self.limits.max_materials}).",
                hint="Per-triangle colouring with that many colours is not supported; reduce the colours.",
            )
        mats: list[ThreeMFMaterial | None] = []
        for key in uniq.tolist():
            pid, idx = divmod(int(key), 1 << 31)
            if key < 0:
                mats.append(None)
                continue
            group = part.groups.get(pid)
            if group is None:
                raise ThreeMFError(
                    f"The 3MF object {obj.id} refers to property group {pid}, which does not exist.",
                )
            if group.kind == "other":
                mats.append(None)  # textures etc.: no colour
                continue
            if idx >= len(group.colors):
                raise ThreeMFError(
                    f"The 3MF object {obj.id} uses index {idx} of property group {pid}, "
                    f"which has only {len(group.colors)} entries.",
                )
            if group.kind == "base":
                mats.append(ThreeMFMaterial(group.names[idx], group.colors[idx]))
            else:
                r, g, b, a = group.colors[idx]
                hexa = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
                if a < 1.0:
                    hexa += f"{round(a * 255):02X}"
                mats.append(ThreeMFMaterial(f"Color {hexa}", group.colors[idx]))
        return inverse.reshape(-1).astype(np.int64), mats

    def _merge(
        self, top: _Object, item: _Item, leaves: list[tuple[_Part, _Object, FloatArray]]
    ) -> ThreeMFMesh | None:
        verts_out: list[FloatArray] = []
        tris_out: list[IntArray] = []
        mat_out: list[IntArray] = []
        slots: dict[ThreeMFMaterial | None, int] = {}
        offset = 0
        for part, obj, matrix in leaves:
            verts = obj.vertices if obj.vertices is not None else np.zeros((0, 3))
            tris = obj.triangles if obj.triangles is not None else np.zeros((0, 3), np.int64)
            if tris.size and tris.max() >= len(verts):
                bad = int(tris.max())
                raise ThreeMFError(
                    f"The 3MF object {obj.id} has a triangle using vertex {bad}, but it has only "
                    f"{len(verts)} vertices.",
                )
            if not len(tris):
                continue
            world = verts @ matrix[:3, :3].T + matrix[:3, 3]
            if not np.isfinite(world).all():
                raise ThreeMFError(
                    f"The 3MF object {obj.id} is transformed to non-finite coordinates."
                )
            if np.linalg.det(matrix[:3, :3]) < 0:
                tris = tris[:, ::-1]
            local, mats = self._materials(part, obj, len(tris))
            remap = np.array([slots.setdefault(m, len(slots)) for m in mats], dtype=np.int64)
            verts_out.append(world)
            tris_out.append(tris + offset)
            mat_out.append(remap[local] if len(remap) else np.zeros(len(tris), np.int64))
            offset += len(verts)
        if not tris_out:
            return None
        if len(slots) > self.limits.max_materials:
            raise ThreeMFError(
                f"The 3MF build item for object {top.id} uses {len(slots)} materials "
                f"(limit {self.limits.max_materials}).",
                hint=_LIMIT_HINT,
            )
        mat_idx = np.concatenate(mat_out)
        ordered = sorted(slots, key=slots.__getitem__)
        if all(m is None for m in ordered):
            materials: list[ThreeMFMaterial] = []
            mat_idx = np.zeros_like(mat_idx)
        else:
            materials = [m if m is not None else DEFAULT_MATERIAL for m in ordered]
        return ThreeMFMesh(
            name=top.name,
            vertices=np.concatenate(verts_out).astype(np.float32),
            triangles=np.concatenate(tris_out).astype(np.int32),
            material_indices=mat_idx.astype(np.int32),
            materials=materials,
            object_type=top.type,
            object_id=top.id,
            part=item.path,
        )


def read_3mf(
    source: str | os.PathLike[str] | IO[bytes], *, limits: ReadLimits = DEFAULT_LIMITS
) -> list[ThreeMFMesh]:
    """Read a 3MF file (path or binary file object) into one mesh per build item.

    Raises :class:`ThreeMFError` for every problem with the file.
    """
    pkg = _Package(source, limits)
    try:
        return _Reader(pkg, limits).read()
    except ThreeMFError:
        raise
    except MemoryError:
        raise ThreeMFError(
            "Ran out of memory while reading the 3MF file.", hint=_LIMIT_HINT
        ) from None
    except RecursionError:
        raise ThreeMFError("The 3MF file is nested too deeply.") from None
    finally:
        pkg.zf.close()
