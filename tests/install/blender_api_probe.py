"""Report which Blender APIs the add-on and the install test rely on exist here.

Run by test_blender_api.py in each bare bpy venv (``python -I``); prints
``HIPTAH_RESULT=<json>`` on its last line.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def op_props(op: Any) -> list[str]:
    return sorted(p.identifier for p in op.get_rna_type().properties)


def main(op_names: list[str]) -> dict[str, Any]:
    import bpy  # isort: skip  (first: importing bpy puts Blender's scripts on sys.path)

    props: dict[str, list[str] | None] = {}
    for name in op_names:
        module, _, func = name.partition(".")
        try:
            props[name] = op_props(getattr(getattr(bpy.ops, module), func))
        except (AttributeError, KeyError, RuntimeError):
            props[name] = None  # the operator does not exist in this Blender
    functions: Any = bpy.types.UILayout.bl_rna.functions  # type: ignore[attr-defined]
    icons = sorted(functions["prop"].parameters["icon"].enum_items.keys())
    material = bpy.types.Material.bl_rna.properties
    return {
        "version": list(bpy.app.version),
        "ops": props,
        "extension_path_user": hasattr(bpy.utils, "extension_path_user"),
        "app_online_access": hasattr(bpy.app, "online_access"),
        "use_online_access_pref": "use_online_access" in bpy.types.PreferencesSystem.bl_rna.properties,
        "layout_progress": "progress" in functions,
        "material_surface_render_method": "surface_render_method" in material,
        "material_blend_method": "blend_method" in material,
        "icons": icons,
    }


if __name__ == "__main__":
    # argv[1]: JSON list of operator ids ("wm.stl_import") whose properties to report.
    print("HIPTAH_RESULT=" + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
    sys.exit(0)
