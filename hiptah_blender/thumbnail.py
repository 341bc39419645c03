"""A small shaded thumbnail of a triangle mesh, drawn with numpy on any thread.

Blender's own object preview (``ID.asset_generate_preview()``) froze a UI Blender's
main thread for 0.8-6.6 s per object here (scripts/benchmarks/preview_cost.py: the render holds the
main loop), far over the 50 ms an import may add. So the add-on copies the imported
mesh on the main thread (``foreach_get``: a few ms) and draws this picture on a worker:
an orthographic three-quarter view, Lambert-shaded, depth-tested by splatting
samples of every triangle at sub-pixel spacing. No bpy; numpy only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SIZE = 96  # pixels a side: template_icon scales it to the sidebar
MAX_SAMPLES = 1_000_000  # bounds time and memory (~40 MB of temporaries) for huge meshes
_BASE = np.array([0.72, 0.74, 0.78], dtype=np.float32)  # a neutral clay colour
_LIGHT = np.array([0.35, 0.75, 0.55], dtype=np.float32)  # view space: from above, right, front


def view_matrix(yaw_deg: float = 35.0, elevation_deg: float = 30.0) -> np.ndarray:
    """World (Z up) to view (x right, y up, z towards the viewer): turned by ``yaw``
    about Z, seen from the front (-Y) and from ``elevation`` degrees above."""
    yaw, elev = math.radians(yaw_deg), math.radians(elevation_deg)
    turn = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    front = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    tilt = np.array([[1, 0, 0], [0, math.cos(elev), -math.sin(elev)], [0, math.sin(elev), math.cos(elev)]])
    return (tilt @ front @ turn).astype(np.float32)


def _view(vertices: np.ndarray) -> np.ndarray:
    return vertices @ view_matrix().T


def render(vertices: Any, triangles: Any, size: int = SIZE) -> np.ndarray:
    """RGBA floats, ``size * size * 4``, rows bottom-up (Blender's preview layout).
    Transparent where there is no model; an all-transparent image for no triangles."""
    image = np.zeros((size, size, 4), dtype=np.float32)
    verts = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    tris = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    if len(verts) == 0 or len(tris) == 0:
        return image.reshape(-1)
    tris = tris[(tris >= 0).all(axis=1) & (tris < len(verts)).all(axis=1)]
    view = _view(verts)
    finite = np.isfinite(view).all(axis=1)
    tris = tris[finite[tris].all(axis=1)]
    if len(tris) == 0:
        return image.reshape(-1)
    lo, hi = view[tris].reshape(-1, 3).min(axis=0), view[tris].reshape(-1, 3).max(axis=0)
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-9))
    scale = (size - 2) / extent
    centre = (lo + hi) / 2
    px = (view - centre) * scale
    px[:, 0] += size / 2
    px[:, 1] += size / 2

    a, b, c = px[tris[:, 0]], px[tris[:, 1]], px[tris[:, 2]]
    normals = np.cross(view[tris[:, 1]] - view[tris[:, 0]], view[tris[:, 2]] - view[tris[:, 0]])
    lengths = np.linalg.norm(normals, axis=1)
    keep = lengths > 0
    a, b, c, normals, lengths = a[keep], b[keep], c[keep], normals[keep], lengths[keep]
    light = _LIGHT / np.linalg.norm(_LIGHT)
    shade = 0.3 + 0.7 * np.abs((normals / lengths[:, None]) @ light)  # two-sided
    if len(shade) == 0:  # only degenerate triangles
        return image.reshape(-1)

    # Samples per edge: enough that neighbours are under a pixel apart.
    edge = np.maximum.reduce([np.linalg.norm((b - a)[:, :2], axis=1), np.linalg.norm((c - b)[:, :2], axis=1),
                              np.linalg.norm((a - c)[:, :2], axis=1)])
    steps = np.clip(np.ceil(edge), 1, size).astype(np.int64)
    budget = MAX_SAMPLES / max(1.0, float(((steps + 1) * (steps + 2) // 2).sum()))
    if budget < 1.0:  # too many samples: coarser, still covering
        steps = np.maximum(1, (steps * math.sqrt(budget)).astype(np.int64))
    xs, ys, zs, values = [], [], [], []
    for n in np.unique(steps):
        group = steps == n
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        mask = i + j <= n
        u = (i[mask] / n).astype(np.float32)
        v = (j[mask] / n).astype(np.float32)
        ga, gb, gc = a[group], b[group], c[group]
        points = ga[:, None, :] + (gb - ga)[:, None, :] * u[None, :, None] + (gc - ga)[:, None, :] * v[None, :, None]
        xs.append(points[..., 0].ravel())
        ys.append(points[..., 1].ravel())
        zs.append(points[..., 2].ravel())
        values.append(np.repeat(shade[group], len(u)))
    x = np.clip(np.concatenate(xs).astype(np.int64), 0, size - 1)
    y = np.clip(np.concatenate(ys).astype(np.int64), 0, size - 1)
    z = np.concatenate(zs)
    value = np.concatenate(values)
    pixel = y * size + x
    # Depth test: the largest z (nearest the viewer) per pixel, then its shade.
    depth = np.full(size * size, -np.inf, dtype=np.float32)
    np.maximum.at(depth, pixel, z)
    front = z >= depth[pixel]
    flat = image.reshape(-1, 4)
    flat[pixel[front], :3] = value[front, None] * _BASE
    flat[pixel[front], 3] = 1.0
    return image.reshape(-1)


def fan_triangles(corners: Any, sizes: Any = None) -> np.ndarray:
    """Triangles (M, 3) from polygon corners (vertex indices, polygon after polygon)
    and each polygon's corner count (None: all triangles). Fans are exact for convex
    polygons, and enough for a thumbnail otherwise."""
    corners = np.asarray(corners, dtype=np.int64).reshape(-1)
    if sizes is None:
        return corners[: len(corners) // 3 * 3].reshape(-1, 3)
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if sizes.sum() != len(corners):
        return np.zeros((0, 3), dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    fans = np.maximum(sizes - 2, 0)
    polygon = np.repeat(np.arange(len(sizes)), fans)
    step = np.arange(int(fans.sum())) - np.repeat(np.cumsum(fans) - fans, fans) + 1
    first = starts[polygon]
    return np.stack([corners[first], corners[first + step], corners[first + step + 1]], axis=1)


def render_polygons(vertices: Any, corners: Any, sizes: Any = None, size: int = SIZE) -> np.ndarray:
    """:func:`render` for polygon meshes as Blender stores them (see :func:`fan_triangles`)."""
    return render(vertices, fan_triangles(corners, sizes), size)

