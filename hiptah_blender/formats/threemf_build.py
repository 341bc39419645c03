"""From parsed parts to meshes: build items, component trees and their transforms, materials, merging.

Each build item becomes one :class:`ThreeMFMesh` with the full world transform
(components, item, unit) applied to its vertices; mirroring transforms reverse
the winding; component cycles, depth, output size and material counts are checked.
"""

from __future__ import annotations

import numpy as np

from .threemf_mesh import DEFAULT_MATERIAL, FloatArray, IntArray, ThreeMFMaterial, ThreeMFMesh
from .threemf_model import _Item, _Object, _Part
from .threemf_package import DEFAULT_MODEL_PART, _Package
from .threemf_parser import _parse_part
from .threemf_safety import _LIMIT_HINT, ReadLimits, ThreeMFError


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
                f"The 3MF {where} refers to object {oid}, which does not exist in part {path!r}."
                if path != self.root
                else f"The 3MF {where} refers to object {oid}, which does not exist."
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
