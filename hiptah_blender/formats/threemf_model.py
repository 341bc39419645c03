"""What one 3MF model part holds: namespaces and element names, units, the parsed
objects / property groups / build items, and the attribute readers (ids, transforms, colours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .threemf_mesh import FloatArray, IntArray
from .threemf_safety import ThreeMFError

CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
MATERIAL_NS = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
PRODUCTION_NS = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"

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
