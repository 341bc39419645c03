"""PBR material presets and the colour words that tint them.

Colours are linear-ish sRGB floats in 0..1 (glTF baseColorFactor is linear, but
these are picked by eye for a dev sandbox, so the distinction does not matter).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

RGBA = tuple[float, float, float, float]


@dataclass(frozen=True)
class Material:
    """A metallic-roughness material, enough for glTF, 3MF, FBX and USD."""

    name: str
    color: RGBA
    metallic: float = 0.0
    roughness: float = 0.5
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def transparent(self) -> bool:
        return self.color[3] < 0.999

    def tinted(self, colour_name: str, rgb: tuple[float, float, float]) -> Material:
        """The same surface (metal/roughness) in another colour; keeps the alpha."""
        return replace(self, name=f"{colour_name}_{self.name}", color=(*rgb, self.color[3]))

    def hex_rgba(self) -> str:
        """#RRGGBBAA as used by 3MF displaycolor."""
        return "#" + "".join(f"{round(c * 255):02X}" for c in self.color)


def _m(name: str, r: float, g: float, b: float, a: float = 1.0, *, metallic: float = 0.0,
       roughness: float = 0.5, emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Material:
    return Material(name, (r, g, b, a), metallic, roughness, emissive)


# Materials a prompt can ask for (by adjective) plus the defaults shapes use for
# their parts (bark, leaves, rubber, ...). Keys are canonical material names.
MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        _m("wood", 0.52, 0.34, 0.18, roughness=0.8),
        _m("iron", 0.42, 0.43, 0.45, metallic=1.0, roughness=0.55),
        _m("steel", 0.62, 0.64, 0.66, metallic=1.0, roughness=0.35),
        _m("silver", 0.91, 0.91, 0.92, metallic=1.0, roughness=0.2),
        _m("chrome", 0.95, 0.95, 0.96, metallic=1.0, roughness=0.05),
        _m("aluminium", 0.85, 0.86, 0.87, metallic=1.0, roughness=0.4),
        _m("gold", 1.0, 0.77, 0.34, metallic=1.0, roughness=0.25),
        _m("copper", 0.95, 0.64, 0.54, metallic=1.0, roughness=0.3),
        _m("bronze", 0.80, 0.50, 0.20, metallic=1.0, roughness=0.4),
        _m("brass", 0.88, 0.78, 0.50, metallic=1.0, roughness=0.3),
        _m("stone", 0.55, 0.54, 0.51, roughness=0.9),
        _m("marble", 0.92, 0.91, 0.89, roughness=0.3),
        _m("granite", 0.45, 0.43, 0.44, roughness=0.7),
        _m("concrete", 0.62, 0.62, 0.60, roughness=0.95),
        _m("brick", 0.62, 0.27, 0.18, roughness=0.9),
        _m("glass", 0.85, 0.92, 0.95, 0.3, roughness=0.05),
        _m("crystal", 0.90, 0.95, 1.0, 0.45, roughness=0.02),
        _m("ice", 0.80, 0.92, 1.0, 0.6, roughness=0.1),
        _m("plastic", 0.85, 0.85, 0.85, roughness=0.4),
        _m("rubber", 0.06, 0.06, 0.06, roughness=0.9),
        _m("ceramic", 0.95, 0.94, 0.90, roughness=0.2),
        _m("clay", 0.72, 0.42, 0.28, roughness=0.85),
        _m("leather", 0.36, 0.20, 0.11, roughness=0.7),
        _m("fabric", 0.55, 0.55, 0.60, roughness=1.0),
        _m("paper", 0.95, 0.93, 0.86, roughness=0.9),
        # Part defaults, not reachable by adjective.
        _m("bark", 0.36, 0.25, 0.15, roughness=0.95),
        _m("leaves", 0.20, 0.50, 0.18, roughness=0.8),
        _m("plaster", 0.90, 0.87, 0.80, roughness=0.9),
        _m("roof_tile", 0.60, 0.22, 0.15, roughness=0.8),
        _m("dark_glass", 0.05, 0.07, 0.09, roughness=0.05, metallic=0.2),
        _m("paint", 0.75, 0.10, 0.10, metallic=0.3, roughness=0.35),
        _m("robot_metal", 0.70, 0.72, 0.76, metallic=0.9, roughness=0.35),
        _m("warm_light", 1.0, 0.92, 0.70, roughness=0.3, emissive=(1.0, 0.85, 0.55)),
        _m("eye_glow", 0.10, 0.80, 1.0, roughness=0.3, emissive=(0.1, 0.7, 1.0)),
        _m("mushroom_cap", 0.80, 0.12, 0.10, roughness=0.6),
        _m("cushion", 0.35, 0.40, 0.55, roughness=1.0),
        _m("relief", 1.0, 1.0, 1.0, roughness=0.7),
        _m("form", 0.7, 0.7, 0.7, roughness=0.45),
    )
}

# Adjective (or noun used as adjective) -> canonical material key.
MATERIAL_WORDS: dict[str, str] = {
    "wood": "wood", "wooden": "wood", "timber": "wood", "plank": "wood",
    "iron": "iron", "wrought": "iron", "cast": "iron",
    "steel": "steel", "metal": "steel", "metallic": "steel", "stainless": "steel",
    "silver": "silver", "silvery": "silver",
    "chrome": "chrome", "chromed": "chrome",
    "aluminium": "aluminium", "aluminum": "aluminium",
    "gold": "gold", "golden": "gold", "gilded": "gold",
    "copper": "copper", "bronze": "bronze", "brass": "brass",
    "stone": "stone", "rocky": "stone", "marble": "marble", "granite": "granite",
    "concrete": "concrete", "brick": "brick",
    "glass": "glass", "crystal": "crystal", "ice": "ice", "icy": "ice",
    "plastic": "plastic", "rubber": "rubber",
    "ceramic": "ceramic", "porcelain": "ceramic",
    "clay": "clay", "terracotta": "clay",
    "leather": "leather", "fabric": "fabric", "cloth": "fabric", "velvet": "fabric",
    "paper": "paper", "cardboard": "paper",
}

# Colour words -> RGB.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.08, 0.08),
    "green": (0.12, 0.60, 0.18),
    "blue": (0.10, 0.25, 0.80),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (0.95, 0.45, 0.05),
    "purple": (0.45, 0.15, 0.65),
    "violet": (0.55, 0.30, 0.80),
    "pink": (0.95, 0.50, 0.70),
    "black": (0.03, 0.03, 0.03),
    "white": (0.95, 0.95, 0.95),
    "grey": (0.50, 0.50, 0.50),
    "gray": (0.50, 0.50, 0.50),
    "brown": (0.40, 0.24, 0.12),
    "cyan": (0.10, 0.75, 0.85),
    "teal": (0.05, 0.50, 0.50),
    "magenta": (0.85, 0.10, 0.60),
    "beige": (0.85, 0.78, 0.62),
    "turquoise": (0.20, 0.80, 0.75),
}


def material(key: str) -> Material:
    return MATERIALS[key]


def hue_colour(h: float, s: float = 0.6, v: float = 0.8) -> tuple[float, float, float]:
    """HSV -> RGB without colorsys rounding surprises (pure arithmetic, deterministic)."""
    h = (h % 1.0) * 6.0
    i = int(h)
    f = h - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
