"""Deterministic 3D models for the sandbox server (dev tooling, not shipped).

    generate_model(prompt, fmt, quality, image=None, seed=0) -> bytes

glb/stl/3mf are written here without bpy; fbx/usdz go through Blender's own
exporters (bpy imported lazily, serialised by a lock). See docs/modelgen.md.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from .model import Model, build_model

__all__ = ["FORMATS", "QUALITIES", "Model", "build_model", "generate_model"]

FORMATS = ("glb", "fbx", "usdz", "stl", "3mf")
QUALITIES = ("draft", "standard", "high")

_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, str, str, str, int], bytes] = OrderedDict()
_cache_lock = threading.Lock()


def _encode(model: Model, fmt: str, title: str) -> bytes:
    if fmt in ("glb", "stl", "3mf"):
        from . import export_trimesh as ex

        if fmt == "glb":
            return ex.to_glb(model)
        if fmt == "stl":
            return ex.to_stl(model)
        return ex.to_3mf(model, title=title)
    from . import export_blender  # bpy: only for the formats that need it

    return export_blender.export(model, fmt)


def generate_model(prompt: str, fmt: str, quality: str, image: bytes | None = None,
                   seed: int = 0) -> bytes:
    """Model file bytes for `prompt` (and optional png/jpeg/webp `image`) in `fmt`.

    Raises ValueError for an unknown format/quality or an undecodable image.
    Same inputs -> same bytes (FBX: see docs/modelgen.md). Safe from any thread.
    """
    fmt = fmt.lower().lstrip(".")
    quality = quality.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; expected one of {', '.join(QUALITIES)}")
    image_key = hashlib.sha256(image).hexdigest() if image is not None else ""
    key = (prompt, fmt, quality, image_key, int(seed))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    data = _encode(build_model(prompt, quality, image, int(seed)), fmt, prompt.strip()[:200])
    with _cache_lock:
        _cache[key] = data
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
