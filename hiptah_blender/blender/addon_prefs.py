"""The add-on's identity and its live preferences object: the bottom of the Blender
layer's settings stack (settings.py and key_store.py both read it; it imports neither)."""

from __future__ import annotations

from typing import Any

import bpy

# The add-on's module name: "hiptah_blender" from the repository,
# "bl_ext.user_default.hiptah_blender" when installed as an extension.
ADDON_ID: str = (__package__ or "hiptah_blender.blender").rpartition(".")[0]


def addon_preferences(context: Any = None) -> Any:
    """The add-on's preferences (a ``preferences.HiptahPreferences``), or None when it is
    registered without being enabled through addon_utils (then defaults + environment
    apply). Typed Any: preferences.py imports the settings modules, never the other way round."""
    prefs = (context or bpy.context).preferences
    if prefs is None:
        return None
    addon = prefs.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None
