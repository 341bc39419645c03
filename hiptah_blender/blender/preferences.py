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

from ..client import validation
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


def _registered_key(self: Any, context: Any) -> None:
    # Register the new key as a secret at once, so no report can echo it.
    from ..client.errors import register_secret

    register_secret(str(self.api_key).strip())


class HiptahPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    api_key: StringProperty(
        name="API Key",
        description="Your HiPtah API key (HiPtah dashboard > Settings > API Keys). "
        "Stored in Blender's preferences, never in .blend files; HIPTAH_API_KEY overrides it",
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
            box.label(text=f"Using the key from {ENV_API_KEY}", icon="INFO")
        col = box.column()
        col.enabled = not settings.base_url_from_env
        col.prop(self, "base_url")
        if settings.base_url_from_env:
            box.label(text=f"Using {ENV_BASE_URL}={settings.base_url}", icon="INFO")
        if settings.base_url_error:
            col = box.column()
            col.alert = True
            col.label(text=settings.base_url_error, icon="ERROR")
        elif settings.is_sandbox:
            box.label(text="Sandbox: a local test server, not the real service", icon="EXPERIMENTAL")
        box.prop(self, "plan")
        if self.plan == "ENTERPRISE":
            box.prop(self, "concurrent_limit")  # only a negotiated plan has a limit to type in
        else:
            split = box.split(factor=0.4)  # under the field, where use_property_split puts values
            split.label(text="")
            split.label(text=f"{PLAN_LIMITS[self.plan]} jobs at once", icon="INFO")
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
            col.label(text=f"Default: {default_download_dir(create=False)}", icon="FILE_FOLDER")
        col.prop(self, "ca_bundle")
        col.prop(self, "auto_import")
        col.prop(self, "placement")
        col.prop(self, "collection_name")


CLASSES: tuple[type, ...] = (HiptahPreferences,)
