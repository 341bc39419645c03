"""Asset Browser tags and names from a prompt (pure, so it is unit-tested without bpy)."""

from __future__ import annotations

import re

# Words that say nothing about the model: searching the Asset Browser for them
# would match everything.
STOP_WORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "nor", "of", "in", "on", "at", "to", "for", "from", "by", "with", "without", "into", "onto", "over", "under", "above", "below", "near", "beside", "between", "behind", "through", "across", "along", "around", "about", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "some", "any", "each", "every", "very", "which", "who", "whom", "whose", "has", "have", "had", "having", "made", "make", "style", "styled", "like", "look", "looking", "plus", "also", "than", "then", "there", "here", "just", "only", "quite", "rather", "really", "so", "too"]
)
MAX_TAGS = 16
# Blender truncates ID names at 63 bytes; leave room for a ".001"-style suffix.
MAX_NAME_BYTES = 56

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)


def prompt_tags(prompt: str, *, limit: int = MAX_TAGS) -> list[str]:
    """Distinct lower-case content words of the prompt, in order of appearance."""
    tags: list[str] = []
    for match in _WORD.finditer(prompt.lower()):
        word = match.group(0).strip("'-")
        if len(word) < 2 or word in STOP_WORDS or word.isdigit():
            continue
        if word not in tags:
            tags.append(word)
        if len(tags) >= limit:
            break
    return tags


def asset_name(prompt: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A readable data-block name from the prompt: leading article dropped, capitalised,
    cut on a word boundary to fit Blender's name limit."""
    words = prompt.split()
    if len(words) > 1 and words[0].lower() in ("a", "an", "the"):
        words = words[1:]
    name = " ".join(words) or "HiPtah model"
    name = name[0].upper() + name[1:]
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    cut = ""
    for word in name.split():
        candidate = f"{cut} {word}".strip()
        if len((candidate + "…").encode("utf-8")) > max_bytes:
            break
        cut = candidate
    if not cut:  # one enormous word: cut by characters
        cut = name
        while len((cut + "…").encode("utf-8")) > max_bytes:
            cut = cut[:-1]
    return cut + "…"
