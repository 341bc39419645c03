"""Add-on preferences (Edit > Preferences > Add-ons > HiPtah).

Blender keeps add-on preferences in userpref.blend, never in the user's .blend
files, so the API key stored here does not travel with a shared scene.
Environment variables (HIPTAH_API_KEY, HIPTAH_BASE_URL) override these fields.
"""
# mypy: disable-error-code="valid-type"

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .. import assets, placement
from ..client import validation
from ..i18n import N_
from .i18n import fmt, iface
from .settings import (
    ADDON_ID,
    ENV_API_KEY,
    ENV_BASE_URL,
    PLAN_LIMITS,
    default_download_dir,
    read_settings,
)

FORMAT_ITEMS = [
    ("glb", "GLB", "Binary glTF: materials and textures in one file (recommended)"),
    ("fbx", "FBX", "Autodesk FBX"),
    ("usdz", "USDZ", "Universal Scene Description, zipped"),
    ("stl", "STL", "Mesh only, no materials (3D printing)"),
    ("3mf", "3MF", "3D Manufacturing Format (3D printing, with colours)"),
]
QUALITY_ITEMS = [
    ("draft", "Draft", "Fast, low polygon count"),
    ("standard", "Standard", "Balanced"),
    ("high", "High", "Most detail, slowest"),
]

SIZE_ITEMS = [
    (placement.SIZE_KEEP, "As Generated", "Keep the size the server made"),
    (placement.SIZE_HEIGHT, "Height", "Scale uniformly to a height in metres"),
]
FACING_ITEMS = [
    (placement.FACING_NEG_Y, "-Y (Front)", "Facing -Y, towards the Front view (as generated)"),
    (placement.FACING_POS_Y, "+Y (Back)", "Turned half a turn: facing +Y"),
]


def _registered_key(self: Any, context: Any) -> None:
    # Register the new key as a secret at once, so no report can echo it; then move it
    # into the system keychain (off the main thread; the field empties once it is there).
    from ..client.errors import register_secret
    from . import key_store

    register_secret(str(self.api_key).strip())
    key_store.key_edited(str(self.api_key))


class HiptahPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    api_key: StringProperty(
        name="API Key",
        description="Your HiPtah API key (HiPtah dashboard > Settings > API Keys). "
        "Moved into the system keychain when there is one, else kept in Blender's preferences; "
        "never in .blend files. HIPTAH_API_KEY overrides it",
        subtype="PASSWORD",
        update=_registered_key,
    )
    base_url: StringProperty(
        name="Base URL",
        description="HiPtah API base URL; http:// only for a local sandbox. HIPTAH_BASE_URL overrides it",
        default=validation.DEFAULT_BASE_URL,
    )
    plan: EnumProperty(
        name="Plan",
        description="Your HiPtah plan: sets how many jobs may run at once on the server",
        items=[
            ("CREATOR", "Creator", "100 generations a month, 10 concurrent jobs"),
            ("PRO", "Pro", "300 generations a month, 30 concurrent jobs"),
            ("ENTERPRISE", "Enterprise", "Negotiated limits: enter your concurrent job limit"),
        ],
        default="CREATOR",
    )
    concurrent_limit: IntProperty(
        name="Concurrent Jobs",
        description="Enterprise plan: the number of jobs your contract lets run at once",
        default=50,
        min=1,
        max=1000,
    )
    default_format: EnumProperty(name="Default Format", items=FORMAT_ITEMS, default="glb")
    default_quality: EnumProperty(name="Default Quality", items=QUALITY_ITEMS, default="high")
    poll_interval: FloatProperty(
        name="Poll Interval",
        description="Seconds between status checks of a running job (the API recommends 2)",
        default=2.0,
        min=1.0,
        max=30.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )
    job_deadline: FloatProperty(
        name="Job Deadline",
        description="Give up waiting for a job after this many seconds (it can be retried later)",
        default=600.0,
        min=5.0,  # scripts and tests may go this low; the slider starts at 30 s
        soft_min=30.0,
        max=7200.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )
    download_dir: StringProperty(
        name="Download Folder",
        description="Where generated models are saved; empty for the extension's own user folder",
        subtype="DIR_PATH",
        default="",
    )
    ca_bundle: StringProperty(
        name="CA Bundle",
        description="Optional PEM file of extra certificate authorities (corporate proxies); "
        "certificate verification is never turned off",
        subtype="FILE_PATH",
        default="",
    )
    auto_import: BoolProperty(
        name="Import When Done",
        description="Import each finished model into the scene it was generated from",
        default=True,
    )
    placement: EnumProperty(
        name="Place At",
        description="Where imported models are put (their bottom centre)",
        items=[
            ("CURSOR", "3D Cursor", "Bottom centre of the model at the 3D cursor"),
            ("ORIGIN", "World Origin", "Bottom centre of the model at the world origin"),
        ],
        default="CURSOR",
    )
    collection_name: StringProperty(
        name="Collection",
        description="Collection that receives imported models (created in the scene when missing)",
        default="HiPtah",
    )

    # Asset library, size and facing (issue 16). Drawn by draw_library_rows().
    asset_library: BoolProperty(
        name="Save to Asset Library",
        description="Save every imported generation as an asset in the HiPtah asset library "
        "(Asset Browser), with a preview, tags, a catalog per month and its job id",
        default=True,
    )
    asset_library_dir: StringProperty(
        name="Library Folder",
        description="Folder of the HiPtah asset library (one small .blend per generation); "
        "empty for the default in your Documents",
        subtype="DIR_PATH",
        default="",
    )
    import_size: EnumProperty(
        name="Size",
        description="How big imported models are",
        items=SIZE_ITEMS,
        default=placement.SIZE_KEEP,
    )
    target_height: FloatProperty(
        name="Height",
        description="Height imported models are scaled to (uniformly) when Size is 'Height'",
        default=1.8,
        min=0.001,
        soft_max=100.0,
        subtype="DISTANCE",
        unit="LENGTH",
    )
    facing: EnumProperty(name="Facing", description="Which way imported models face", items=FACING_ITEMS)

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = read_settings(context)
        # Label left, field right, one setting a line: labels are never cut to "Default …".
        layout.use_property_split = True
        layout.use_property_decorate = False

        box = layout.box()
        box.label(text="Account", icon="KEYINGSET")
        col = box.column()
        col.enabled = not settings.api_key_from_env
        col.prop(self, "api_key")
        if settings.api_key_from_env:
            box.label(text=fmt(N_("Using the key from {variable}"), variable=ENV_API_KEY), icon="INFO", translate=False)
        elif settings.api_key_status:
            box.label(text=fmt(N_("Key: {status}"), status=iface(settings.api_key_status)),
                      icon="LOCKED" if settings.api_key_source == "keychain" else "INFO", translate=False)
        col = box.column()
        col.enabled = not settings.base_url_from_env
        col.prop(self, "base_url")
        if settings.base_url_from_env:
            box.label(text=fmt(N_("Using {variable}={url}"), variable=ENV_BASE_URL, url=settings.base_url), icon="INFO",
                      translate=False)
        if settings.base_url_error:
            col = box.column()
            col.alert = True
            col.label(text=iface(settings.base_url_error), icon="ERROR", translate=False)
        elif settings.is_sandbox:
            box.label(text="Sandbox: a local test server, not the real service", icon="EXPERIMENTAL")
        box.prop(self, "plan")
        if self.plan == "ENTERPRISE":
            box.prop(self, "concurrent_limit")  # only a negotiated plan has a limit to type in
        else:
            split = box.split(factor=0.4)  # under the field, where use_property_split puts values
            split.label(text="")
            split.label(text=fmt(N_("{count} jobs at once"), count=PLAN_LIMITS[self.plan]), icon="INFO", translate=False)
        row = box.row()
        row.use_property_split = False
        row.operator("hiptah.test_connection", icon="URL")
        if not settings.online_access and not settings.is_sandbox:
            box.label(text="Online access is off (Preferences > System > Network)", icon="INTERNET_OFFLINE")

        box = layout.box()
        box.label(text="Generation", icon="MESH_MONKEY")
        col = box.column()
        col.prop(self, "default_format")
        col.prop(self, "default_quality")
        col.prop(self, "poll_interval")
        col.prop(self, "job_deadline")

        box = layout.box()
        box.label(text="Files and Import", icon="IMPORT")
        col = box.column()
        col.prop(self, "download_dir")
        if not self.download_dir:
            col.label(text=fmt(N_("Default: {folder}"), folder=default_download_dir(create=False)), icon="FILE_FOLDER",
                      translate=False)
        col.prop(self, "ca_bundle")
        col.prop(self, "auto_import")
        col.prop(self, "placement")
        col.prop(self, "collection_name")
        draw_library_rows(box, self)


def draw_library_rows(layout: Any, prefs: Any) -> None:
    """Size, facing and the asset library, one setting a line like the rest (the
    preferences' property split: label left, field right)."""
    col = layout.column()
    col.prop(prefs, "import_size")
    sub = col.column()
    sub.enabled = prefs.import_size == placement.SIZE_HEIGHT
    sub.prop(prefs, "target_height")
    col.prop(prefs, "facing")
    col = layout.column()
    col.prop(prefs, "asset_library")
    sub = col.column()
    sub.enabled = prefs.asset_library
    sub.prop(prefs, "asset_library_dir")
    if not prefs.asset_library_dir:
        sub.label(text=fmt(N_("Default: {folder}"), folder=assets.default_library_dir()), icon="FILE_FOLDER",
                  translate=False)
    row = layout.row()
    row.use_property_split = False  # a button over the whole width, like Test Connection
    row.operator("hiptah.add_past_generations", icon="ASSET_MANAGER")


CLASSES: tuple[type, ...] = (HiptahPreferences,)
