"""Nouns -> named parts built from primitives, sized in metres, Z-up, resting on z=0.

Each builder returns the same parts (names, groups) at every detail level; only
the tessellation changes. `build_parts` searches the detail knob so the total
triangle count lands in the quality's window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trimesh
from numpy.typing import NDArray

from . import geometry as g
from .geometry import Detail

# (min, max, aim) triangles per quality.
QUALITY_BUDGETS: dict[str, tuple[int, int, int]] = {
    "draft": (1000, 5000, 2500),
    "standard": (10000, 30000, 18000),
    "high": (50000, 100000, 70000),
}


@dataclass
class Part:
    name: str  # unique within a model; becomes the node/object name
    mesh: trimesh.Trimesh  # closed, Z-up, metres
    group: str  # what prompt part-words address ("wheel", "leg", ...)
    default_material: str
    accepts_global: bool = True  # does "red car" / "golden X" repaint this part?
    uv: NDArray[np.float64] | None = None  # per vertex, v up (image relief only)
    texture_png: bytes | None = None
    vertex_colors: NDArray[np.uint8] | None = None  # per vertex RGBA (image relief only)


@dataclass
class Ctx:
    d: Detail
    variant: str | None
    rng: np.random.Generator  # shape noise (rocks, canopies): seeded, never global
    jitter: float = 0.0  # proportion variation for seed != 0
    _j: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def j(self, x: float) -> float:
        """A proportion, varied a little per seed (seed 0 keeps the canonical size)."""
        if self.jitter == 0.0:
            return x
        return x * (1.0 + self.jitter * (2.0 * float(self._j.random()) - 1.0))


def stable_int(*items: object) -> int:
    """Process-independent hash (Python's hash() is salted per process)."""
    h = hashlib.sha256("\x1f".join(str(i) for i in items).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


def _noise_displace(mesh: trimesh.Trimesh, rng: np.random.Generator, amount: float,
                    waves: int = 7, freq: tuple[float, float] = (1.5, 5.0)) -> trimesh.Trimesh:
    """Smooth pseudo-noise: a sum of random plane waves along the surface normal direction
    from the centre. Keeps topology, so closed meshes stay closed."""
    v = mesh.vertices.copy()
    c = v.mean(axis=0)
    rel = v - c
    r = np.linalg.norm(rel, axis=1, keepdims=True)
    r[r == 0] = 1.0
    dirs = rel / r
    scale = float(np.max(r))
    disp = np.zeros(len(v))
    for k in range(waves):
        k_dir = rng.normal(size=3)
        k_dir /= np.linalg.norm(k_dir)
        f = rng.uniform(*freq)
        disp += (1.0 / (k + 1)) * np.sin(f * (dirs @ k_dir) * np.pi + rng.uniform(0, 2 * np.pi))
    mesh.vertices = v + dirs * (amount * scale * disp)[:, None]
    return mesh


# ---------------------------------------------------------------------------- nouns


def _cart(c: Ctx) -> list[Part]:
    d = c.d
    length, width, bed_z = c.j(1.2), c.j(0.7), 0.45
    r = c.j(0.3)
    wall_h = 0.25
    parts = [Part("bed", g.box((length, width, 0.05), d, center=(0, 0, bed_z)), "bed", "wood")]
    for name, ext, ctr in (
        ("side_left", (length, 0.04, wall_h), (0, width / 2 - 0.02, bed_z + wall_h / 2)),
        ("side_right", (length, 0.04, wall_h), (0, -width / 2 + 0.02, bed_z + wall_h / 2)),
        ("side_front", (0.04, width - 0.08, wall_h), (length / 2 - 0.02, 0, bed_z + wall_h / 2)),
        ("side_back", (0.04, width - 0.08, wall_h), (-length / 2 + 0.02, 0, bed_z + wall_h / 2)),
    ):
        parts.append(Part(name, g.box(ext, d, center=ctr), "bed", "wood"))
    ax = length * 0.32
    for tag, x in (("front", ax), ("rear", -ax)):
        for side, y in (("left", width / 2 + 0.08), ("right", -width / 2 - 0.08)):
            parts.append(Part(f"wheel_{tag}_{side}",
                              g.cylinder(r, 0.06, d, center=(x, y, r), axis="y", sections=40),
                              "wheel", "wood"))
        parts.append(Part(f"axle_{tag}", g.cylinder(0.025, width + 0.3, d, center=(x, 0, r),
                                                    axis="y", sections=12), "axle", "iron"))
    for side, y in (("left", 0.25), ("right", -0.25)):
        parts.append(Part(f"handle_{side}",
                          g.cylinder(0.022, 0.9, d, center=(length / 2 + 0.4, y, bed_z + 0.05),
                                     axis="x", sections=12, rings=8), "handle", "wood"))
    return parts


def _chair(c: Ctx) -> list[Part]:
    d = c.d
    if c.variant == "sofa":
        return _sofa(c)
    if c.variant == "stool":
        h, r = c.j(0.65), c.j(0.18)
        parts = [Part("seat", g.cylinder(r, 0.04, d, center=(0, 0, h - 0.02), sections=40),
                      "seat", "wood")]
        for i, a in enumerate(np.linspace(0, 2 * np.pi, 4, endpoint=False) + np.pi / 4):
            x, y = 0.7 * r * np.cos(a), 0.7 * r * np.sin(a)
            parts.append(Part(f"leg_{i + 1}", g.cylinder(0.018, h - 0.04, d,
                                                         center=(x, y, (h - 0.04) / 2),
                                                         sections=12, rings=8), "leg", "wood"))
        return parts
    s, seat_h, back_h = c.j(0.45), c.j(0.45), c.j(0.45)
    leg = s / 2 - 0.035
    parts = [Part("seat", g.box((s, s, 0.05), d, center=(0, 0, seat_h)), "seat", "wood")]
    legs_h = seat_h - 0.025
    for name, x, y in (("leg_front_left", leg, leg), ("leg_front_right", leg, -leg),
                       ("leg_back_left", -leg, leg), ("leg_back_right", -leg, -leg)):
        parts.append(Part(name, g.box((0.04, 0.04, legs_h), d, center=(x, y, legs_h / 2)),
                          "leg", "wood"))
    top = seat_h + 0.025
    for name, y in (("back_post_left", leg), ("back_post_right", -leg)):
        parts.append(Part(name, g.box((0.04, 0.04, back_h), d, center=(-leg, y, top + back_h / 2)),
                          "back", "wood"))
    parts.append(Part("backrest", g.box((0.03, s - 0.06, back_h * 0.45), d,
                                        center=(-leg, 0, top + back_h * 0.7)), "back", "wood"))
    return parts


def _sofa(c: Ctx) -> list[Part]:
    d = c.d
    w, depth = c.j(2.0), c.j(0.9)
    parts = [Part("base", g.box((depth, w, 0.25), d, center=(0, 0, 0.225)), "frame", "fabric"),
             Part("back", g.box((0.25, w, 0.55), d, center=(-depth / 2 + 0.125, 0, 0.6)),
                  "back", "fabric")]
    for side, y in (("left", w / 2 - 0.1), ("right", -w / 2 + 0.1)):
        # Slightly proud of the base on every side: coplanar faces would z-fight.
        parts.append(Part(f"armrest_{side}", g.box((depth + 0.02, 0.22, 0.3), d,
                                                   center=(0.0, y + np.sign(y) * 0.01, 0.5)),
                          "arm", "fabric"))
    inner = w - 0.4
    for side, y in (("left", inner / 4), ("right", -inner / 4)):
        parts.append(Part(f"cushion_{side}",
                          g.box((depth - 0.27, inner / 2 - 0.02, 0.15), d,
                                center=(0.125, y, 0.425)), "cushion", "cushion"))
    for i, (x, y) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]):
        parts.append(Part(f"leg_{i + 1}", g.cylinder(0.03, 0.1, d, center=(
            x * (depth / 2 - 0.06), y * (w / 2 - 0.06), 0.05), sections=12),
            "leg", "wood", accepts_global=False))
    return parts


def _table(c: Ctx) -> list[Part]:
    d = c.d
    length, width, height = c.j(1.4), c.j(0.8), c.j(0.75)
    lx, ly = length / 2 - 0.08, width / 2 - 0.08
    legs_h = height - 0.04
    parts = [Part("top", g.box((length, width, 0.04), d, center=(0, 0, height - 0.02), grid=4),
                  "top", "wood")]
    for name, x, y in (("leg_front_left", lx, ly), ("leg_front_right", lx, -ly),
                       ("leg_back_left", -lx, ly), ("leg_back_right", -lx, -ly)):
        parts.append(Part(name, g.box((0.06, 0.06, legs_h), d, center=(x, y, legs_h / 2)),
                          "leg", "wood"))
    z = height - 0.04 - 0.05
    for name, ext, ctr in (
        ("apron_left", (2 * lx - 0.06, 0.02, 0.1), (0, ly, z)),
        ("apron_right", (2 * lx - 0.06, 0.02, 0.1), (0, -ly, z)),
        ("apron_front", (0.02, 2 * ly - 0.06, 0.1), (lx, 0, z)),
        ("apron_back", (0.02, 2 * ly - 0.06, 0.1), (-lx, 0, z)),
    ):
        parts.append(Part(name, g.box(ext, d, center=ctr), "frame", "wood"))
    return parts


def _tree(c: Ctx) -> list[Part]:
    d = c.d
    if c.variant == "pine":
        h = c.j(1.4)
        parts = [Part("trunk", g.lathe([(0, 0), (0.16, 0), (0.1, 0.25), (0.07, h + 1.0),
                                        (0, h + 1.0)], d, sections=24), "trunk", "bark")]
        for i, (r, hh, z) in enumerate([(1.2, 1.6, h * 0.7), (0.95, 1.4, h * 0.7 + 0.8),
                                        (0.65, 1.2, h * 0.7 + 1.6)]):
            parts.append(Part(f"canopy_{i + 1}", g.frustum(c.j(r), 0.0, z, z + hh, d,
                                                           sections=40, rings=8),
                              "canopy", "leaves"))
        return parts
    th = c.j(2.0)
    parts = [Part("trunk", g.lathe([(0, 0), (0.24, 0), (0.16, 0.3), (0.1, th + 0.4),
                                    (0, th + 0.4)], d, sections=24), "trunk", "bark")]
    blobs = [((0.0, 0.0, th + 0.6), 1.0), ((0.55, 0.3, th + 0.3), 0.7),
             ((-0.5, -0.35, th + 0.35), 0.75), ((0.1, -0.2, th + 1.25), 0.65)]
    for i, (ctr, r) in enumerate(blobs):
        s = g.sphere(c.j(r), d, sections=32, rings=16)
        _noise_displace(s, c.rng, 0.06, waves=5)
        parts.append(Part(f"canopy_{i + 1}", g.translate(s, ctr), "canopy", "leaves"))
    return parts


def _house(c: Ctx) -> list[Part]:
    d = c.d
    w, dp, h = c.j(6.0), c.j(5.0), c.j(3.0)
    ridge = h + c.j(1.8)
    ov = 0.35
    parts = [
        Part("walls", g.box((w, dp, h), d, center=(0, 0, h / 2), grid=4), "wall", "plaster"),
        Part("roof", g.prism([(-w / 2 - ov, h - 0.05), (w / 2 + ov, h - 0.05), (0, ridge)],
                             dp + 2 * ov, d), "roof", "roof_tile", accepts_global=False),
    ]
    cx = w / 2 * 0.55
    roof_at = h + (ridge - h) * (1 - cx / (w / 2 + ov))
    parts.append(Part("chimney", g.box((0.5, 0.5, ridge + 0.4 - roof_at + 0.4), d,
                                       center=(cx, dp * 0.2, (roof_at - 0.4 + ridge + 0.4) / 2)),
                      "chimney", "brick"))
    parts.append(Part("door", g.box((1.0, 0.08, 2.0), d, center=(0, -dp / 2, 1.0)),
                      "door", "wood", accepts_global=False))
    windows = [((0.9, 0.08, 0.9), (-w / 2 * 0.6, -dp / 2, 1.7)),
               ((0.9, 0.08, 0.9), (w / 2 * 0.6, -dp / 2, 1.7)),
               ((0.9, 0.08, 0.9), (-w / 2 * 0.5, dp / 2, 1.7)),
               ((0.9, 0.08, 0.9), (w / 2 * 0.5, dp / 2, 1.7)),
               ((0.08, 0.9, 0.9), (-w / 2, 0, 1.7)),
               ((0.08, 0.9, 0.9), (w / 2, 0, 1.7))]
    for i, (ext, ctr) in enumerate(windows):
        parts.append(Part(f"window_{i + 1}", g.box(ext, d, center=ctr), "window",
                          "dark_glass", accepts_global=False))
    return parts


def _car(c: Ctx) -> list[Part]:
    d = c.d
    L, W = c.j(4.2), c.j(1.75)
    hl = L / 2
    body = [(-hl, 0.3), (hl, 0.3), (hl + 0.05, 0.6), (hl - 0.12, 0.85), (-hl + 0.05, 0.9),
            (-hl - 0.05, 0.6)]
    cabin = [(-hl * 0.57, 0.88), (hl * 0.43, 0.88), (hl * 0.14, 1.4), (-hl * 0.48, 1.42)]
    parts = [
        Part("body", g.prism(body, W, d, detail_edges=48), "body", "paint"),
        Part("cabin", g.prism(cabin, W * 0.84, d, detail_edges=32), "window", "dark_glass",
             accepts_global=False),
        Part("roof", g.box((hl * 0.62, W * 0.86, 0.04), d, center=(-hl * 0.17, 0, 1.42)),
             "body", "paint"),
    ]
    r = 0.34
    for tag, x in (("front", hl * 0.64), ("rear", -hl * 0.64)):
        for side, y in (("left", W / 2 - 0.1), ("right", -W / 2 + 0.1)):
            parts.append(Part(f"wheel_{tag}_{side}",
                              g.cylinder(r, 0.24, d, center=(x, y, r), axis="y", sections=48),
                              "wheel", "rubber", accepts_global=False))
            parts.append(Part(f"hubcap_{tag}_{side}",
                              g.cylinder(0.2, 0.26, d, center=(x, y, r), axis="y", sections=32),
                              "hubcap", "chrome", accepts_global=False))
    for side, y in (("left", W * 0.32), ("right", -W * 0.32)):
        parts.append(Part(f"headlight_{side}",
                          g.sphere(0.08, d, center=(hl + 0.0, y, 0.66), scale=(0.6, 1.2, 0.7)),
                          "light", "warm_light", accepts_global=False))
    return parts


def _sword(c: Ctx) -> list[Part]:
    d = c.d
    blade_len, bw = c.j(0.8), c.j(0.025)
    z0 = 0.2
    tip = z0 + blade_len
    blade = [(-bw, z0 - 0.01), (bw, z0 - 0.01), (bw * 0.85, tip - 0.12), (0, tip),
             (-bw * 0.85, tip - 0.12)]
    return [
        Part("blade", g.prism(blade, 0.008, d, detail_edges=40), "blade", "steel"),
        Part("guard", g.box((0.22, 0.035, 0.03), d, center=(0, 0, z0 - 0.015)), "guard", "iron"),
        Part("grip", g.cylinder(0.016, 0.14, d, center=(0, 0, 0.1), sections=20, rings=8),
             "grip", "leather", accepts_global=False),
        Part("pommel", g.sphere(0.03, d, center=(0, 0, 0.03)), "pommel", "brass"),
    ]


def _cup(c: Ctx) -> list[Part]:
    d = c.d
    r0, r1, h = c.j(0.040), c.j(0.045), c.j(0.095)
    t, b = 0.004, 0.007
    prof = [(0, 0), (r0 - 0.003, 0), (r0, 0.003), (r1, h), (r1 - t, h),
            (r0 - t + (r1 - r0) * b / h, b), (0, b)]
    body = g.lathe(prof, d, sections=48, rings=24)
    zc, ra = h * 0.52, h * 0.3
    n = max(6, d.rings(12))
    a = np.linspace(-np.pi / 2, np.pi / 2, n)
    inner = r0 + (r1 - r0) * 0.5 - t * 0.5  # inside the wall, so the joint is hidden
    path = np.vstack([[inner, 0, zc - ra],
                      np.column_stack([r1 + ra * 0.55 * np.cos(a), np.zeros(n),
                                       zc + ra * np.sin(a)]),
                      [inner, 0, zc + ra]])
    return [Part("body", body, "body", "ceramic"),
            Part("handle", g.tube(path, 0.006, d, sections=16), "handle", "ceramic")]


def _lamp(c: Ctx) -> list[Part]:
    d = c.d
    k = 3.0 if c.variant == "floor" else 1.0
    base_r, stem_h = c.j(0.09) * (1.6 if k > 1 else 1.0), c.j(0.3) * (5.0 if k > 1 else 1.0)
    shade_r0, shade_r1 = 0.16 * (1.6 if k > 1 else 1.0), 0.09 * (1.6 if k > 1 else 1.0)
    shade_h = 0.19 * (1.6 if k > 1 else 1.0)
    top = 0.025 + stem_h
    z0 = top - shade_h * 0.35
    shade = [(shade_r0, z0), (shade_r1, z0 + shade_h), (shade_r1 - 0.004, z0 + shade_h),
             (shade_r0 - 0.004, z0)]
    return [
        Part("base", g.lathe([(0, 0), (base_r, 0), (base_r, 0.015), (base_r * 0.8, 0.025),
                              (0, 0.025)], d, sections=48), "base", "brass"),
        Part("stem", g.cylinder(0.01, stem_h, d, center=(0, 0, 0.025 + stem_h / 2),
                                sections=16, rings=8), "stem", "brass"),
        Part("bulb", g.sphere(0.03, d, center=(0, 0, top + 0.02), scale=(1, 1, 1.3)),
             "bulb", "warm_light", accepts_global=False),
        Part("shade", g.lathe(shade, d, sections=48, rings=12, closed=True), "shade", "fabric"),
    ]


def _robot(c: Ctx) -> list[Part]:
    d = c.d
    leg_h, torso_h = c.j(0.5), c.j(0.45)
    tz = leg_h + torso_h / 2
    head_z = leg_h + torso_h + 0.04 + 0.11
    parts: list[Part] = []
    for side, y in (("left", 0.12), ("right", -0.12)):
        parts.append(Part(f"leg_{side}", g.box((0.14, 0.14, leg_h - 0.06), d,
                                               center=(0, y, 0.06 + (leg_h - 0.06) / 2)),
                          "leg", "robot_metal"))
        parts.append(Part(f"foot_{side}", g.box((0.24, 0.18, 0.06), d, center=(0.04, y, 0.03)),
                          "leg", "robot_metal"))
    parts += [
        Part("torso", g.box((0.3, 0.46, torso_h), d, center=(0, 0, tz)), "body", "robot_metal"),
        Part("neck", g.cylinder(0.045, 0.06, d, center=(0, 0, leg_h + torso_h + 0.02),
                                sections=16), "body", "robot_metal"),
        Part("head", g.box((0.26, 0.28, 0.22), d, center=(0, 0, head_z)), "head", "robot_metal"),
    ]
    for side, y in (("left", 0.065), ("right", -0.065)):
        parts.append(Part(f"eye_{side}", g.sphere(0.03, d, center=(0.125, y, head_z + 0.02)),
                          "eye", "eye_glow", accepts_global=False))
    parts += [
        Part("antenna", g.cylinder(0.008, 0.12, d, center=(0, 0, head_z + 0.11 + 0.06),
                                   sections=8), "antenna", "robot_metal"),
        Part("antenna_tip", g.sphere(0.025, d, center=(0, 0, head_z + 0.11 + 0.13)),
             "antenna", "eye_glow", accepts_global=False),
    ]
    for side, y in (("left", 0.29), ("right", -0.29)):
        parts.append(Part(f"arm_{side}", g.capsule(0.05, 0.45, d, center=(0, y, tz - 0.03)),
                          "arm", "robot_metal"))
        parts.append(Part(f"hand_{side}", g.sphere(0.065, d, center=(0, y, tz - 0.3)),
                          "hand", "robot_metal"))
    return parts


def _rock(c: Ctx) -> list[Part]:
    d = c.d
    parts = []
    for i, (r, ctr, sc) in enumerate([(0.5, (0.0, 0.0), (1.0, 0.8, 0.62)),
                                      (0.14, (0.62, 0.25), (1.0, 0.9, 0.7)),
                                      (0.1, (-0.5, 0.45), (1.0, 0.85, 0.65))]):
        # Lumps on a round sphere first, then squash: noise applied after an anisotropic
        # scale exaggerates the wide equator into a skirt.
        s = g.sphere(1.0, d, sections=40, rings=20)
        _noise_displace(s, c.rng, 0.04, waves=8, freq=(2.0, 5.0))
        v = np.asarray(s.vertices, dtype=np.float64)
        # Flat facets: push everything outside a few random planes back onto them.
        for _ in range(9):
            n = c.rng.normal(size=3)
            n /= np.linalg.norm(n)
            over = np.maximum(v @ n - c.rng.uniform(0.7, 0.9), 0.0)
            v = v - over[:, None] * n
        v = v * (c.j(r) * np.asarray(sc))
        floor = float(v[:, 2].min()) * 0.8
        v[:, 2] = np.maximum(v[:, 2], floor) - floor  # flat underside resting on z=0
        s.vertices = v + np.array([ctr[0], ctr[1], 0.0])
        name = "rock" if i == 0 else f"pebble_{i}"
        parts.append(Part(name, s, "rock", "stone"))
    return parts


def _tower(c: Ctx) -> list[Part]:
    d = c.d
    r, h = c.j(1.6), c.j(8.0)
    parts = [
        Part("body", g.lathe([(0, 0), (r + 0.15, 0), (r + 0.1, 0.5), (r, h), (0, h)], d,
                             sections=64, rings=16), "wall", "stone"),
        Part("parapet", g.cylinder(r + 0.15, 0.5, d, center=(0, 0, h + 0.25), sections=64),
             "battlement", "stone"),
    ]
    n = 10
    merlons = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        m = g.box((0.35, 0.6, 0.5), d, center=(0, 0, 0))
        m.apply_transform(trimesh.transformations.rotation_matrix(a, [0, 0, 1]))
        merlons.append(g.translate(m, (r * np.cos(a), r * np.sin(a), h + 0.75)))
    parts.append(Part("battlements", g.combine(merlons), "battlement", "stone"))
    parts.append(Part("door", g.box((1.1, 0.4, 2.0), d, center=(0, -r - 0.02, 1.0)),
                      "door", "wood", accepts_global=False))
    for i, (a, z) in enumerate([(-np.pi / 2, 4.0), (0.0, 5.5), (np.pi / 2, 3.0), (np.pi, 6.2)]):
        m = g.box((0.35, 0.35, 0.9), d)
        m.apply_transform(trimesh.transformations.rotation_matrix(a + np.pi / 2, [0, 0, 1]))
        rr = r * (1 - 0.06 * z / h) - 0.1
        parts.append(Part(f"window_{i + 1}", g.translate(m, (rr * np.cos(a), rr * np.sin(a), z)),
                          "window", "dark_glass", accepts_global=False))
    return parts


def _barrel(c: Ctx) -> list[Part]:
    d = c.d
    h, r = c.j(0.9), c.j(0.28)
    bulge = 0.05
    zs = np.linspace(0, h, 9)
    prof = [(0.0, 0.0)] + [(r + bulge * np.sin(np.pi * z / h), z) for z in zs] + [(0.0, h)]
    parts = [Part("body", g.lathe(prof, d, sections=48, rings=24), "body", "wood")]
    for i, fz in enumerate((0.1, 0.3, 0.7, 0.9)):
        z = h * fz
        rr = r + bulge * np.sin(np.pi * fz)
        ring = [(rr - 0.004, z - 0.02), (rr + 0.006, z - 0.02), (rr + 0.006, z + 0.02),
                (rr - 0.004, z + 0.02)]
        parts.append(Part(f"hoop_{i + 1}", g.lathe(ring, d, sections=48, rings=4, closed=True),
                          "hoop", "iron", accepts_global=False))
    return parts


def _crate(c: Ctx) -> list[Part]:
    d = c.d
    s = c.j(0.6)
    e, t = s / 2, 0.05
    edges = []
    for axis in range(3):
        for a in (-1, 1):
            for b in (-1, 1):
                ctr = [0.0, 0.0, 0.0]
                ext = [t, t, t]
                ext[axis] = s + 0.01
                o1, o2 = (axis + 1) % 3, (axis + 2) % 3
                ctr[o1], ctr[o2] = a * (e - t / 2 + 0.005), b * (e - t / 2 + 0.005)
                ctr[2] += e + 0.005  # the frame stands 5 mm proud of the body, also below
                edges.append(g.box((ext[0], ext[1], ext[2]), d, center=(ctr[0], ctr[1], ctr[2]),
                                   grid=1))
    return [Part("body", g.box((s, s, s), d, center=(0, 0, e + 0.005), grid=4), "body", "wood"),
            Part("frame", g.combine(edges), "frame", "wood")]


def _mushroom(c: Ctx) -> list[Part]:
    d = c.d
    sh, cr = c.j(0.15), c.j(0.15)
    stem = g.lathe([(0, 0), (0.055, 0), (0.045, sh * 0.6), (0.04, sh + 0.02), (0, sh + 0.02)],
                   d, sections=32)
    a = np.linspace(0, np.pi / 2, 12)
    cap_prof = [(0.0, sh), (cr, sh)] + [(cr * np.cos(t), sh + 0.1 * np.sin(t)) for t in a[1:]]
    cap_prof[-1] = (0.0, sh + 0.1)
    spots = []
    for i in range(7):
        ang = c.rng.uniform(0, 2 * np.pi)
        t = c.rng.uniform(0.3, 1.2)
        pos = (cr * np.cos(t) * np.cos(ang), cr * np.cos(t) * np.sin(ang), sh + 0.1 * np.sin(t))
        spots.append(g.sphere(0.016 + 0.006 * (i % 3) / 2, d, center=pos, scale=(1, 1, 0.5),
                              sections=16, rings=8))
    return [Part("stem", stem, "stem", "ceramic", accepts_global=False),
            Part("cap", g.lathe(cap_prof, d, sections=48, rings=16), "cap", "mushroom_cap"),
            Part("spots", g.combine(spots), "cap", "plaster", accepts_global=False)]


def _abstract(c: Ctx) -> list[Part]:
    """A superquadric, twisted and noise-displaced: its parameters come from the prompt
    hash (c.rng), so different prompts give visibly different forms."""
    d, rng = c.d, c.rng
    s = g.sphere(1.0, d, sections=64, rings=32)
    v = np.asarray(s.vertices, dtype=np.float64)
    e_xy, e_z = rng.uniform(0.35, 2.2), rng.uniform(0.35, 2.2)
    v = np.sign(v) * np.abs(v) ** np.array([e_xy, e_xy, e_z])
    v *= rng.uniform(0.3, 0.6, size=3)
    twist = rng.uniform(-2.5, 2.5)
    ang = twist * v[:, 2]
    x = v[:, 0] * np.cos(ang) - v[:, 1] * np.sin(ang)
    y = v[:, 0] * np.sin(ang) + v[:, 1] * np.cos(ang)
    s.vertices = np.column_stack([x, y, v[:, 2]])
    _noise_displace(s, rng, rng.uniform(0.02, 0.08), waves=6, freq=(1.0, 6.0))
    lift = -float(s.vertices[:, 2].min())
    parts = [Part("form", g.translate(s, (0, 0, lift)), "body", "form")]
    extras = int(rng.integers(0, 3))
    top = float(s.vertices[:, 2].max())
    size = float(np.ptp(s.vertices[:, :2], axis=0).max())
    if extras >= 1:
        ring = g.torus(size * 0.7, size * 0.04, d)
        tilt = trimesh.transformations.rotation_matrix(rng.uniform(0.2, 0.9), rng.normal(size=3))
        ring.apply_transform(tilt)
        parts.append(Part("ring", g.translate(ring, (0, 0, lift)), "ring", "form"))
    if extras >= 2:
        parts.append(Part("orb", g.sphere(size * 0.15, d, center=(0, 0, top + size * 0.25)),
                          "orb", "form"))
    return parts


BUILDERS: dict[str, Callable[[Ctx], list[Part]]] = {
    "cart": _cart, "chair": _chair, "table": _table, "tree": _tree, "house": _house,
    "car": _car, "sword": _sword, "cup": _cup, "lamp": _lamp, "robot": _robot,
    "rock": _rock, "tower": _tower, "barrel": _barrel, "crate": _crate,
    "mushroom": _mushroom,
}


def triangle_count(parts: list[Part]) -> int:
    return sum(len(p.mesh.faces) for p in parts)


def build_parts(noun: str | None, variant: str | None, quality: str, *, seed: int = 0,
                shape_key: str = "", scale: float = 1.0) -> list[Part]:
    """Build `noun` (None -> abstract form keyed by `shape_key`) within the quality's budget."""
    lo, hi, aim = QUALITY_BUDGETS[quality]
    builder = BUILDERS.get(noun or "", _abstract)
    noise_seed = stable_int(noun or "abstract", shape_key if noun is None else "", seed)

    def build(res: float) -> list[Part]:
        ctx = Ctx(Detail(res), variant, np.random.default_rng(noise_seed),
                  jitter=0.08 if seed else 0.0,
                  _j=np.random.default_rng(stable_int("jitter", noun, seed)))
        return builder(ctx)

    # Triangles grow roughly with res^2; a few multiplicative steps land in the window.
    res = {"draft": 0.5, "standard": 1.4, "high": 2.8}[quality]
    best: list[Part] | None = None
    best_err = float("inf")
    for _ in range(10):
        parts = build(res)
        n = triangle_count(parts)
        err = 0.0 if lo <= n <= hi else abs(np.log(n / aim))
        if err < best_err:
            best, best_err = parts, err
        if err == 0.0:
            break
        res *= float(np.clip((aim / n) ** 0.5, 0.3, 3.0))
    assert best is not None
    if scale != 1.0:
        for p in best:
            p.mesh.apply_scale(scale)
    return best
