"""Blender-side data: the panel's inputs (per scene) and the job list mirror (per session).

``Scene.hiptah`` holds prompt, format, quality and the image-to-3D input: saved with the .blend, like any
other scene setting. ``WindowManager.hiptah_jobs`` mirrors the scheduler's jobs for
the UIList; window-manager properties registered from Python are never written to
.blend files, and the runtime refills the mirror from its snapshots.
"""
# mypy: disable-error-code="valid-type"

from __future__ import annotations

from typing import Any, cast

import bpy
from bpy.props import (
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..client import validation
from ..i18n import N_
from ..placement import SizeChoice
from .i18n import fmt, language
from .preferences import FACING_ITEMS, FORMAT_ITEMS, QUALITY_ITEMS, SIZE_ITEMS
from .settings import Settings, addon_preferences

DEFAULT_ITEM = ("default", "Default", "Use the default from the add-on preferences")

# Item lists handed to Blender, one per (property, default): Blender keeps pointers to
# the strings of dynamic enum items, so each list must stay referenced (Python freeing
# them can crash Blender). At most 5 + 3 lists.
_ITEMS: dict[tuple[str, str, str | None], list[tuple[str, str, str, int]]] = {}


def default_items(kind: str, base: list[tuple[str, str, str]], default: str) -> list[tuple[str, str, str, int]]:
    """"Default" spelled out as the value it stands for ("GLB (default)"). The numbers are
    the items' positions in the former static enum, so stored values never change."""
    # Formatted, so Blender cannot translate it by itself: one list per language too.
    key = (kind, default, language())
    items = _ITEMS.get(key)
    if items is None:
        name = next((label for ident, label, _ in base if ident == default), default.upper())
        what = fmt(N_("format")) if kind == "format" else fmt(N_("quality"))
        items = [("default", fmt(N_("{name} (default)"), name=fmt(name)),
                  fmt(N_("Use the add-on preferences' default {kind} (now {name})"), kind=what, name=fmt(name)), 0)]
        items += [(ident, label, desc, number) for number, (ident, label, desc) in enumerate(base, start=1)]
        _ITEMS[key] = items
    return items


def _format_items(self: Any, context: Any) -> list[tuple[str, str, str, int]]:
    prefs = addon_preferences(context)
    default = str(prefs.default_format) if prefs is not None else validation.DEFAULT_FORMAT
    return default_items("format", FORMAT_ITEMS, default)


def _quality_items(self: Any, context: Any) -> list[tuple[str, str, str, int]]:
    prefs = addon_preferences(context)
    default = str(prefs.default_quality) if prefs is not None else validation.DEFAULT_QUALITY
    return default_items("quality", QUALITY_ITEMS, default)


SOURCE_ITEMS = [
    ("TEXT", "Text", "Generate a model from the prompt", "OUTLINER_OB_FONT", 0),
    ("IMAGE", "Image", "Generate a model from an image, with an optional prompt", "IMAGE_DATA", 1),
]


def _file_chosen(self: HiptahSceneSettings, context: Any) -> None:
    # One image at a time: picking a file drops the Blender image and vice versa.
    if self.image_file and self.image is not None:
        self.image = None


def _image_chosen(self: HiptahSceneSettings, context: Any) -> None:
    if self.image is not None and self.image_file:
        self.image_file = ""


class HiptahSceneSettings(bpy.types.PropertyGroup):
    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="TEXT")
    image_file: StringProperty(
        name="Image File",
        description="PNG, JPEG or WebP image of at most 10 MB to turn into a model",
        default="",
        subtype="FILE_PATH",
        update=_file_chosen,
    )
    image: PointerProperty(
        name="Blender Image",
        description="An image loaded in Blender (packed, generated or edited ones are sent as PNG)",
        type=bpy.types.Image,
        update=_image_chosen,
    )
    prompt: StringProperty(
        name="Prompt",
        description=N_("Describe the model to generate (1 to 500 characters, no HTML)"),
        default="",
    )
    # Dynamic items: the first one reads "GLB (default)", following the preferences.
    format: EnumProperty(name="Format", items=_format_items, default=0)
    quality: EnumProperty(name="Quality", items=_quality_items, default=0)
    # Size and facing of the next generations; "default" follows the preferences.
    size: EnumProperty(
        name="Size", items=[DEFAULT_ITEM, *SIZE_ITEMS], default="default", description="How big the model is"
    )
    target_height: FloatProperty(
        name="Height", description="Height to scale the model to", default=1.8, min=0.001, soft_max=100.0,
        subtype="DISTANCE", unit="LENGTH",
    )
    facing: EnumProperty(
        name="Facing", items=[DEFAULT_ITEM, *FACING_ITEMS], default="default", description="Which way the model faces"
    )


class HiptahJobItem(bpy.types.PropertyGroup):
    """One row of the job list. Only identity and what the UIList filters on: the row's
    details come from the runtime's plain-Python snapshot, so draw() stays cheap."""

    local_id: StringProperty()
    label: StringProperty()
    state: StringProperty()


def scene_settings(scene: Any) -> HiptahSceneSettings:
    return cast(HiptahSceneSettings, scene.hiptah)


def effective_size(context: Any, settings: Settings, size: str, height: float, facing: str) -> SizeChoice:
    """A job's size and facing: the operator's own choice, else the panel's, else the
    preferences' ("default" at each level defers to the next; height 0: not given)."""
    ui = scene_settings(context.scene)
    prefs = settings.size
    if size == "default" and ui.size != "default":
        size, height = ui.size, height or float(ui.target_height)
    if size == "default":
        size = prefs.size
    facing = facing if facing != "default" else str(ui.facing)
    return SizeChoice(
        size=size,
        height=height if height > 0 else prefs.height,
        facing=facing if facing != "default" else prefs.facing,
    )


def job_items(wm: Any) -> Any:
    """The WindowManager collection (bpy_prop_collection of HiptahJobItem)."""
    return wm.hiptah_jobs


CLASSES: tuple[type, ...] = (HiptahSceneSettings, HiptahJobItem)


def register_properties() -> None:
    bpy.types.Scene.hiptah = PointerProperty(type=HiptahSceneSettings)  # type: ignore[attr-defined]
    bpy.types.WindowManager.hiptah_jobs = CollectionProperty(type=HiptahJobItem)  # type: ignore[attr-defined]
    bpy.types.WindowManager.hiptah_jobs_index = IntProperty(  # type: ignore[attr-defined]
        name="Selected Job", default=0, min=0
    )


def unregister_properties() -> None:
    for owner, name in (
        (bpy.types.WindowManager, "hiptah_jobs_index"),
        (bpy.types.WindowManager, "hiptah_jobs"),
        (bpy.types.Scene, "hiptah"),
    ):
        if hasattr(owner, name):
            delattr(owner, name)
