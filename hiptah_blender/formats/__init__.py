"""File-format readers that do not need Blender (stdlib + numpy only).

Nothing in this package imports bpy, so it can be unit-tested and profiled
outside Blender; ``hiptah_blender/blender/`` turns the results into objects.
"""

from __future__ import annotations

from .threemf import (
    ReadLimits,
    ThreeMFError,
    ThreeMFMaterial,
    ThreeMFMesh,
    read_3mf,
)

__all__ = ["ReadLimits", "ThreeMFError", "ThreeMFMaterial", "ThreeMFMesh", "read_3mf"]
