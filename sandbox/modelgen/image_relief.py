"""Image-to-3D for the sandbox: a solid relief whose top follows the image's luminance.

An image with real transparency becomes its silhouette (alpha > 50 %) extruded into a
thicker relief; an opaque one becomes a rectangular tile. The grid resolution follows
the quality budget. The mesh is closed (top, walls, flat bottom), carries planar UVs
and the image as a texture (GLB), and per-vertex colours sampled from the image
(3MF, FBX, USDZ).
"""

from __future__ import annotations

import io

import numpy as np
import trimesh
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from .shapes import QUALITY_BUDGETS, Part

MAX_TEXTURE = 1024  # px on the long side; plenty for a preview, keeps GLBs small
SIZE = 1.0  # metres on the long side


def decode(image: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(image))
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image could not be decoded: {exc}") from exc
    if img.width < 1 or img.height < 1:
        raise ValueError("image is empty")
    return img.convert("RGBA")


def _pot(n: int) -> int:
    """Nearest power of two to n, within 1..MAX_TEXTURE."""
    return int(min(MAX_TEXTURE, 2 ** max(0, round(np.log2(max(n, 1))))))


def _grid_shape(w: int, h: int, quality: str) -> tuple[int, int]:
    # ~4 triangles per cell (top + bottom) plus walls: aim a little under the budget.
    cells = QUALITY_BUDGETS[quality][2] / 4.4
    nx = max(2, round(np.sqrt(cells * w / h)))
    ny = max(2, round(cells / nx))
    return min(nx, max(2, w)), min(ny, max(2, h))


def _fix_pinches(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Fill one cell of every diagonal-only contact so each edge has exactly two faces."""
    m = mask.copy()
    while True:
        a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
        pinch = (a & d & ~b & ~c) | (b & c & ~a & ~d)
        if not pinch.any():
            return m
        r, col = np.nonzero(pinch)
        m[r, col] = True
        m[r, col + 1] = True


def relief_parts(image: bytes, quality: str, scale: float = 1.0) -> list[Part]:
    img = decode(image)
    w, h = img.size
    nx, ny = _grid_shape(w, h, quality)
    rgba_cells = np.asarray(img.resize((nx, ny), Image.Resampling.BOX), dtype=np.float64) / 255
    rgba_verts = np.asarray(img.resize((nx + 1, ny + 1), Image.Resampling.BOX),
                            dtype=np.float64) / 255
    alpha = np.asarray(img.getchannel("A"))
    silhouette = bool((alpha < 250).mean() > 0.01)
    mask = rgba_cells[..., 3] > 0.5 if silhouette else np.ones((ny, nx), dtype=bool)
    if not mask.any():
        mask[:] = True
        silhouette = False
    mask = _fix_pinches(mask)

    cell = SIZE * scale / max(nx, ny)
    base, depth = (0.05, 0.05) if silhouette else (0.02, 0.06)
    lum = rgba_verts[..., :3] @ np.array([0.2126, 0.7152, 0.0722])
    # Vertex (row r, col c): row 0 is the image's top edge, so y falls as r grows.
    rr, cc = np.meshgrid(np.arange(ny + 1), np.arange(nx + 1), indexing="ij")
    x = (cc - nx / 2) * cell
    y = (ny / 2 - rr) * cell
    top = np.column_stack([x.ravel(), y.ravel(), ((base + depth * lum) * scale).ravel()])
    bottom = np.column_stack([x.ravel(), y.ravel(), np.zeros(x.size)])
    nv = top.shape[0]

    def vid(r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.int64]:
        return r * (nx + 1) + c

    r, c = (a.astype(np.int64) for a in np.nonzero(mask))
    tl, tr, bl, br = vid(r, c), vid(r, c + 1), vid(r + 1, c), vid(r + 1, c + 1)
    faces = [np.column_stack([bl, br, tr]), np.column_stack([bl, tr, tl]),
             np.column_stack([bl, tr, br]) + nv, np.column_stack([bl, tl, tr]) + nv]
    padded = np.pad(mask, 1, constant_values=False)
    # Cell edges walked counter-clockwise seen from above, with the neighbour across each.
    for (p, q), (dr, dc) in (((bl, br), (1, 0)), ((br, tr), (0, 1)), ((tr, tl), (-1, 0)),
                             ((tl, bl), (0, -1))):
        open_side = ~padded[r + 1 + dr, c + 1 + dc]
        p_, q_ = p[open_side], q[open_side]
        faces += [np.column_stack([p_ + nv, q_ + nv, q_]), np.column_stack([p_ + nv, q_, p_])]
    vertices = np.vstack([top, bottom])
    uv_grid = np.column_stack([(cc / nx).ravel(), (1.0 - rr / ny).ravel()])
    uv = np.vstack([uv_grid, uv_grid])
    colours = (np.vstack([rgba_verts.reshape(-1, 4)] * 2) * 255).round().astype(np.uint8)
    colours[:, 3] = 255

    mesh = trimesh.Trimesh(vertices, np.vstack(faces), process=False)
    used = np.unique(mesh.faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    mesh = trimesh.Trimesh(vertices[used], remap[mesh.faces], process=False)

    # Power-of-two texture (UVs are normalised, so stretching is invisible): mipmaps
    # and texture wrapping work everywhere.
    tex = img.convert("RGB").resize((_pot(w), _pot(h)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    tex.save(buf, format="PNG", optimize=False)
    return [Part("silhouette" if silhouette else "relief", mesh, "body", "relief",
                 uv=uv[used], texture_png=buf.getvalue(), vertex_colors=colours[used])]
