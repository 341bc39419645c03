"""HiPtah for Blender: text and image to 3D models, through the HiPtah API.

Only register()/unregister() live here. bpy is imported lazily so that the pure
Python parts (``hiptah_blender.client``, ``hiptah_blender.jobs``) import without
Blender, and registering imports no network library.
"""

from __future__ import annotations


def register() -> None:
    from .blender import register as _register

    _register()


def unregister() -> None:
    from .blender import unregister as _unregister

    _unregister()
