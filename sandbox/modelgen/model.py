"""Prompt (+ optional image) -> a Model: named parts, each with its resolved material."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .materials import COLOURS, MATERIALS, Material, hue_colour
from .parse import ParsedPrompt, parse
from .shapes import Part, build_parts, stable_int


@dataclass
class ModelPart:
    part: Part
    material: Material


@dataclass
class Model:
    name: str  # root node / object name
    parts: list[ModelPart]

    @property
    def triangle_count(self) -> int:
        return sum(len(p.part.mesh.faces) for p in self.parts)


def normalise_prompt(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def resolve_material(part: Part, parsed: ParsedPrompt, fallback: Material | None = None
                     ) -> Material:
    """Part word wins, then the prompt's global material (if the part takes it), then
    the part's own default. Colours follow the same precedence and tint the result."""
    key = parsed.part_materials.get(part.group)
    if key is None and part.accepts_global and parsed.material is not None:
        key = parsed.material
    mat = MATERIALS[key] if key is not None else (fallback or MATERIALS[part.default_material])
    colour = parsed.part_colours.get(part.group)
    if colour is None and part.accepts_global:
        colour = parsed.colour
    if colour is not None:
        mat = mat.tinted(colour, COLOURS[colour])
    return mat


def build_model(prompt: str, quality: str, image: bytes | None = None, seed: int = 0) -> Model:
    parsed = parse(prompt)
    key = normalise_prompt(prompt)
    fallback: Material | None = None
    if image is not None:
        from .image_relief import relief_parts  # Pillow only when an image comes in

        parts = relief_parts(image, quality, scale=parsed.scale)
        name = "image_relief"
    else:
        parts = build_parts(parsed.noun, parsed.variant, quality, seed=seed, shape_key=key,
                            scale=parsed.scale)
        name = parsed.noun or "form"
        if parsed.noun is None:
            # Abstract forms get a colour from the prompt hash, so they differ in colour too.
            h = stable_int("hue", key, seed)
            fallback = Material(f"form_{h % 1000:03d}", (*hue_colour((h % 360) / 360.0), 1.0),
                                metallic=float((h >> 12) % 2),
                                roughness=0.25 + (h >> 16) % 50 / 100)
    slug = re.sub(r"[^a-z0-9]+", "_", name).strip("_") or "model"
    return Model(slug, [ModelPart(p, resolve_material(p, parsed, fallback)) for p in parts])
