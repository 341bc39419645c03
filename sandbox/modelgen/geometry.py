"""Watertight primitives whose tessellation scales with one detail knob.

Everything is built Z-up in metres (Blender's and 3MF's convention); the glTF
writer converts to Y-up. Round things are surfaces of revolution (lathe) so that
both the number of sections and the number of rings grow with detail: that keeps
the triangle count roughly proportional to detail squared, which the budget
search in shapes.py relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import Point, Polygon

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Detail:
    """Tessellation density; res=1 is "standard-ish" for a single object."""

    res: float

    def sections(self, base: int = 32) -> int:
        return max(6, round(base * self.res))

    def rings(self, base: int = 16) -> int:
        return max(1, round(base * self.res))

    def grid(self, base: int = 4) -> int:
        return max(1, round(base * self.res))


def translate(mesh: trimesh.Trimesh, offset: ArrayLike) -> trimesh.Trimesh:
    mesh.apply_translation(np.asarray(offset, dtype=np.float64))
    return mesh


def _align_z_to(axis: str) -> NDArray[np.float64]:
    """Rotation taking +Z to the named axis (x or y); identity for z."""
    if axis == "x":
        return trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
    if axis == "y":
        return trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])
    return np.eye(4)


def densify(profile: ArrayLike, count: int) -> NDArray[np.float64]:
    """Split a polyline into about `count` segments, keeping every original corner."""
    pts = np.asarray(profile, dtype=np.float64)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    total = float(seg.sum())
    out = [pts[:1]]
    for i, length in enumerate(seg):
        n = max(1, round(count * length / total)) if total > 0 else 1
        t = np.linspace(0.0, 1.0, n + 1)[1:, None]
        out.append(pts[i] + (pts[i + 1] - pts[i]) * t)
    return np.vstack(out)


def _shoelace(pts: NDArray[np.float64]) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def lathe(profile: ArrayLike, d: Detail, *, sections: int = 32, rings: int = 16,
          closed: bool = False) -> trimesh.Trimesh:
    """Revolve an (r, z) polyline around Z.

    Open profiles must start and end on the axis (r=0) to be closed solids;
    closed profiles (rings, shades) revolve into tori-like solids.
    """
    pts = np.asarray(profile, dtype=np.float64)
    if closed and not np.allclose(pts[0], pts[-1]):
        pts = np.vstack([pts, pts[:1]])
    # Outward normals need a counter-clockwise profile in the (r, z) plane.
    if _shoelace(pts) < 0:
        pts = pts[::-1].copy()
    pts = densify(pts, d.rings(rings))
    return trimesh.creation.revolve(pts, sections=d.sections(sections))


def cylinder(radius: float, height: float, d: Detail, *, center: Vec3 = (0, 0, 0),
             axis: str = "z", sections: int = 32, rings: int = 4) -> trimesh.Trimesh:
    h = height / 2
    m = lathe([(0, -h), (radius, -h), (radius, h), (0, h)], d, sections=sections,
              rings=rings + 2)
    m.apply_transform(_align_z_to(axis))
    return translate(m, center)


def frustum(r0: float, r1: float, z0: float, z1: float, d: Detail, *,
            center: Vec3 = (0, 0, 0), sections: int = 32, rings: int = 4) -> trimesh.Trimesh:
    """Tapered cylinder (r1=0 gives a cone) from z0 to z1."""
    prof = [(0, z0), (r0, z0), (r1, z1)] + ([(0, z1)] if r1 > 0 else [])
    return translate(lathe(prof, d, sections=sections, rings=rings + 2), center)


def sphere(radius: float, d: Detail, *, center: Vec3 = (0, 0, 0), scale: Vec3 = (1, 1, 1),
           sections: int = 32, rings: int = 16) -> trimesh.Trimesh:
    n = max(3, d.rings(rings))
    a = np.linspace(-np.pi / 2, np.pi / 2, n + 1)
    prof = np.column_stack([radius * np.cos(a), radius * np.sin(a)])
    prof[0, 0] = prof[-1, 0] = 0.0
    m = trimesh.creation.revolve(prof, sections=d.sections(sections))
    m.vertices = m.vertices * np.asarray(scale, dtype=np.float64)
    return translate(m, center)


def capsule(radius: float, length: float, d: Detail, *, center: Vec3 = (0, 0, 0),
            axis: str = "z", sections: int = 32, rings: int = 12) -> trimesh.Trimesh:
    """Capsule whose total length (caps included) is `length`."""
    h = max(length / 2 - radius, 0.0)
    n = max(2, d.rings(rings) // 2)
    a = np.linspace(-np.pi / 2, 0, n + 1)
    low = np.column_stack([radius * np.cos(a), -h + radius * np.sin(a)])
    high = np.column_stack([radius * np.cos(-a[::-1]), h + radius * np.sin(-a[::-1])])
    prof = np.vstack([low, densify([(radius, -h), (radius, h)], max(1, d.rings(4)))[1:-1], high])
    prof[0, 0] = prof[-1, 0] = 0.0
    m = trimesh.creation.revolve(prof, sections=d.sections(sections))
    m.apply_transform(_align_z_to(axis))
    return translate(m, center)


def box(extents: Vec3, d: Detail, *, center: Vec3 = (0, 0, 0), grid: int = 2) -> trimesh.Trimesh:
    """Axis-aligned box with each face split into an n x n grid (12 n^2 triangles)."""
    n = d.grid(grid)
    ex = np.asarray(extents, dtype=np.float64) / 2
    t = np.linspace(-1.0, 1.0, n + 1)
    u, v = np.meshgrid(t, t, indexing="ij")
    u, v = u.ravel(), v.ravel()
    quads = []
    for i in range(n):
        for j in range(n):
            a = i * (n + 1) + j
            quads.append((a, a + n + 1, a + n + 2, a + 1))
    q = np.asarray(quads, dtype=np.int64)
    tri = np.vstack([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    verts: list[NDArray[np.float64]] = []
    faces: list[NDArray[np.int64]] = []
    one = np.ones_like(u)
    # (axis, sign): face grids laid out so that (u x v) points outward.
    for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)):
        p = np.zeros((len(u), 3))
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        p[:, axis] = sign * one
        p[:, a1] = u
        p[:, a2] = v * sign
        faces.append(tri + len(verts) * len(u))
        verts.append(p)
    m = trimesh.Trimesh(np.vstack(verts) * ex, np.vstack(faces), process=True)
    m.merge_vertices()
    return translate(m, center)


def prism(outline: ArrayLike, depth: float, d: Detail, *, plane: str = "xz",
          center: Vec3 = (0, 0, 0), detail_edges: int = 24) -> trimesh.Trimesh:
    """Extrude a 2D outline by `depth`, centred on the extrusion axis.

    plane "xz": outline is (x, z), extruded along Y (side profiles: car, roof, blade).
    plane "xy": outline is (x, y), extruded along Z.
    """
    pts = np.asarray(outline, dtype=np.float64)
    ring = densify(np.vstack([pts, pts[:1]]), d.rings(detail_edges))[:-1]
    poly = Polygon(ring)
    if not poly.is_valid:
        poly = poly.buffer(0)
    m = trimesh.creation.extrude_polygon(poly, depth)
    m.apply_translation([0, 0, -depth / 2])
    if plane == "xz":
        # (x, y, z) -> (x, -z, y): the outline's y becomes height, extrusion runs along -Y.
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return translate(m, center)


def tube(path: ArrayLike, radius: float, d: Detail, *, sections: int = 16) -> trimesh.Trimesh:
    """A round bar swept along a 3D polyline, capped at both ends."""
    circle = Point(0, 0).buffer(radius, quad_segs=max(2, d.sections(sections) // 4))
    return trimesh.creation.sweep_polygon(circle, np.asarray(path, dtype=np.float64))


def torus(major: float, minor: float, d: Detail, *, center: Vec3 = (0, 0, 0),
          sections: int = 48, rings: int = 12) -> trimesh.Trimesh:
    m = trimesh.creation.torus(major, minor, major_sections=d.sections(sections),
                               minor_sections=max(4, d.rings(rings)))
    return translate(m, center)


def arc(center: Vec3, radius: float, a0: float, a1: float, n: int, plane: str = "xz"
        ) -> NDArray[np.float64]:
    a = np.linspace(a0, a1, n)
    c = np.asarray(center, dtype=np.float64)
    if plane == "xz":
        return c + np.column_stack([radius * np.cos(a), np.zeros_like(a), radius * np.sin(a)])
    return c + np.column_stack([radius * np.cos(a), radius * np.sin(a), np.zeros_like(a)])


def combine(meshes: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Disjoint closed meshes as one part (still closed: no shared edges)."""
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    return trimesh.Trimesh(np.vstack([m.vertices for m in meshes]),
                           np.vstack([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
                           process=False)
