"""Prompt -> what to build: the object noun (+ variant), materials, colours, size.

Deliberately simple: lowercase ASCII words, naive plural stripping, a synonym
table, and a one-word-window rule to attach an adjective to a part
("wooden cart with iron wheels": wood for the cart, iron for the wheels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .materials import COLOURS, MATERIAL_WORDS

# word -> (shape key, variant or None). Shape keys are the builders in shapes.py.
NOUNS: dict[str, tuple[str, str | None]] = {
    "cart": ("cart", None), "wagon": ("cart", None), "wheelbarrow": ("cart", None),
    "handcart": ("cart", None), "trolley": ("cart", None),
    "chair": ("chair", None), "seat": ("chair", None), "armchair": ("chair", "sofa"),
    "stool": ("chair", "stool"), "sofa": ("chair", "sofa"), "couch": ("chair", "sofa"),
    "settee": ("chair", "sofa"),
    "table": ("table", None), "desk": ("table", None),
    "tree": ("tree", None), "pine": ("tree", "pine"), "fir": ("tree", "pine"),
    "spruce": ("tree", "pine"), "conifer": ("tree", "pine"), "christmas": ("tree", "pine"),
    "bush": ("tree", None),
    "house": ("house", None), "home": ("house", None), "cottage": ("house", None),
    "cabin": ("house", None), "hut": ("house", None), "building": ("house", None),
    "barn": ("house", None),
    "car": ("car", None), "automobile": ("car", None), "vehicle": ("car", None),
    "truck": ("car", None), "taxi": ("car", None), "sedan": ("car", None),
    "sword": ("sword", None), "blade": ("sword", None), "katana": ("sword", None),
    "sabre": ("sword", None), "saber": ("sword", None), "longsword": ("sword", None),
    "cup": ("cup", None), "mug": ("cup", None), "teacup": ("cup", None),
    "goblet": ("cup", None), "tankard": ("cup", None),
    "lamp": ("lamp", None), "lantern": ("lamp", None), "lampshade": ("lamp", None),
    "robot": ("robot", None), "bot": ("robot", None), "android": ("robot", None),
    "droid": ("robot", None), "mech": ("robot", None), "automaton": ("robot", None),
    "rock": ("rock", None), "boulder": ("rock", None), "pebble": ("rock", None),
    "tower": ("tower", None), "castle": ("tower", None), "turret": ("tower", None),
    "keep": ("tower", None), "lighthouse": ("tower", None),
    "barrel": ("barrel", None), "keg": ("barrel", None), "cask": ("barrel", None),
    "crate": ("crate", None), "box": ("crate", None), "chest": ("crate", None),
    "mushroom": ("mushroom", None), "toadstool": ("mushroom", None),
}

# Part words -> part groups (the `group` of shapes.Part). A word may name several.
PART_WORDS: dict[str, tuple[str, ...]] = {
    "wheel": ("wheel",), "tyre": ("wheel",), "tire": ("wheel",), "rim": ("hubcap",),
    "hubcap": ("hubcap",), "hub": ("hubcap",), "axle": ("axle",),
    "bed": ("bed",), "frame": ("bed", "frame"), "handle": ("handle",),
    "leg": ("leg",), "foot": ("leg",), "feet": ("leg",),
    "back": ("back",), "backrest": ("back",), "seat": ("seat",), "cushion": ("cushion",),
    "armrest": ("arm",), "arm": ("arm",),
    "top": ("top",), "tabletop": ("top",),
    "trunk": ("trunk",), "canopy": ("canopy",), "leaf": ("canopy",), "foliage": ("canopy",),
    "crown": ("canopy",), "branch": ("canopy",), "needle": ("canopy",),
    "wall": ("wall",), "roof": ("roof",), "door": ("door",), "window": ("window",),
    "chimney": ("chimney",),
    "body": ("body",), "cabin": ("cabin",), "windshield": ("window",),
    "headlight": ("light",), "light": ("light",),
    "blade": ("blade",), "hilt": ("guard", "grip", "pommel"), "guard": ("guard",), "crossguard": ("guard",),
    "grip": ("grip",), "pommel": ("pommel",),
    "base": ("base",), "stem": ("stem",), "pole": ("stem",), "shade": ("shade",),
    "bulb": ("bulb",),
    "head": ("head",), "eye": ("eye",), "antenna": ("antenna",), "hand": ("hand",),
    "torso": ("body",),
    "battlement": ("battlement",), "parapet": ("battlement",),
    "hoop": ("hoop",), "band": ("hoop",), "stave": ("body",),
    "lid": ("lid",), "cap": ("cap",),
}

SIZE_WORDS: dict[str, float] = {
    "big": 1.5, "large": 1.5, "huge": 2.0, "giant": 2.5, "enormous": 2.5, "massive": 2.0,
    "small": 0.6, "little": 0.6, "tiny": 0.35, "mini": 0.45, "miniature": 0.3,
}

# Words that may sit between an adjective and its noun without breaking the link.
_ADJECTIVE_LIKE = set(MATERIAL_WORDS) | set(COLOURS) | set(SIZE_WORDS) | {
    "dark", "light", "bright", "pale", "shiny", "old", "new", "rusty", "medieval", "modern",
    "ancient", "polished", "painted", "simple", "cute", "low", "poly", "lowpoly", "tall",
}
_LINKS = {"of", "in", "from", "made"}

_VOCAB = set(NOUNS) | set(PART_WORDS) | set(MATERIAL_WORDS) | set(COLOURS) | set(SIZE_WORDS)


def singular(word: str) -> str:
    """Naive plural stripping, accepted only when it lands on a known word."""
    if word in _VOCAB:
        return word
    candidates: list[str] = []
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("ves"):
        candidates += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        candidates.append(word[:-1])
    for c in candidates:
        if c in _VOCAB:
            return c
    return word


def tokens(prompt: str) -> list[str]:
    return [singular(w) for w in re.findall(r"[a-z]+", prompt.lower())]


@dataclass
class ParsedPrompt:
    words: list[str]
    noun: str | None = None
    variant: str | None = None
    scale: float = 1.0
    material: str | None = None  # applies to every part that accepts a global material
    colour: str | None = None
    part_materials: dict[str, str] = field(default_factory=dict)  # part group -> material key
    part_colours: dict[str, str] = field(default_factory=dict)  # part group -> colour name


def _find_noun(words: list[str]) -> int | None:
    for i, w in enumerate(words):
        if w in NOUNS:
            # English compounds put the head noun last ("table lamp", "tree house").
            while i + 1 < len(words) and words[i + 1] in NOUNS:
                i += 1
            return i
    return None


def _target_part(words: list[str], i: int, noun_at: int | None) -> tuple[str, ...] | None:
    """Part groups the adjective at i describes, or None for the whole object."""
    j = i + 1
    while j < len(words) and words[j] in _ADJECTIVE_LIKE:
        j += 1
    if j < len(words) and j != noun_at and words[j] in PART_WORDS:
        return PART_WORDS[words[j]]
    if j < len(words) and j == noun_at:
        return None
    # "wheels of iron", "legs made of steel", "handles in brass", "wheels: iron".
    k = i - 1
    while k >= 0 and words[k] in _LINKS:
        k -= 1
    if k >= 0 and k != noun_at and words[k] in PART_WORDS:
        return PART_WORDS[words[k]]
    return None


def parse(prompt: str) -> ParsedPrompt:
    words = tokens(prompt)
    out = ParsedPrompt(words=words)
    noun_at = _find_noun(words)
    if noun_at is not None:
        out.noun, out.variant = NOUNS[words[noun_at]]
        # A variant word elsewhere in the prompt ("pine tree", "floor lamp").
        if out.noun == "tree" and any(NOUNS.get(w, ("", None))[1] == "pine" for w in words):
            out.variant = "pine"
        if out.noun == "lamp" and "floor" in words:
            out.variant = "floor"
        if out.noun == "car" and "truck" in words:
            out.variant = "truck"
    for i, w in enumerate(words):
        if i == noun_at:
            continue
        if w in SIZE_WORDS and out.scale == 1.0:
            out.scale = SIZE_WORDS[w]
            continue
        is_material = w in MATERIAL_WORDS
        is_colour = w in COLOURS
        if not (is_material or is_colour):
            continue
        # A material word naming a part ("glass" in "lamp with a glass shade" is an
        # adjective; "cart with a brick" would be a noun, too rare to care about).
        parts = _target_part(words, i, noun_at)
        if parts is None:
            if is_material and out.material is None:
                out.material = MATERIAL_WORDS[w]
            elif is_colour and out.colour is None:
                out.colour = w
            continue
        for group in parts:
            if is_material:
                out.part_materials.setdefault(group, MATERIAL_WORDS[w])
            else:
                out.part_colours.setdefault(group, w)
    return out
