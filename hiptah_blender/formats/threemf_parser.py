"""The expat handlers for one 3MF model part, fed by the numpy fast path where it applies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .threemf_fastpath import _cut_blocks, _FastBlock
from .threemf_mesh import DEFAULT_MATERIAL, FloatArray, IntArray
from .threemf_model import (
    _MAX_ID,
    _OTHER_GROUPS,
    _SUPPORTED_REQUIRED,
    A_PATH,
    CORE_NS,
    E_BASE,
    E_BASEMATERIALS,
    E_BUILD,
    E_COLOR,
    E_COLORGROUP,
    E_COMPONENT,
    E_COMPONENTS,
    E_ITEM,
    E_MESH,
    E_MODEL,
    E_OBJECT,
    E_RESOURCES,
    E_TRIANGLE,
    E_TRIANGLES,
    E_VERTEX,
    E_VERTICES,
    UNITS,
    _Group,
    _int_attr,
    _Item,
    _Object,
    _Part,
    parse_color,
    parse_transform,
)
from .threemf_safety import (
    _LIMIT_HINT,
    ReadLimits,
    ThreeMFError,
    _new_parser,
    _parse_xml,
    _part_name,
)

# Logged under the reader module's name, as before this code moved here.
log = logging.getLogger(f"{__package__}.threemf")

_CHUNK = 1 << 16


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
                name=attrs.get("name", "") or f"Object {oid}",  # no-i18n: an object name (data)
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
