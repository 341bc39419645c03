"""Everything that imports bpy: preferences, properties, operators, panels, the job
monitor and the runtime that steps the scheduler on Blender's main thread."""

from __future__ import annotations

import bpy

from . import (
    batch_ops,
    commands,
    i18n,
    library_ops,
    monitor,
    operators,
    panels,
    preferences,
    properties,
    runtime,
)

_CLASSES: tuple[type, ...] = (
    *preferences.CLASSES,
    *properties.CLASSES,
    *operators.CLASSES,
    *batch_ops.CLASSES,
    *library_ops.CLASSES,
    *monitor.CLASSES,
    *panels.CLASSES,
)


def register() -> None:
    i18n.register()  # first: Blender translates labels and tooltips as classes register
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    operators.register_menus()
    monitor.register_handlers()
    commands.register()  # blender -b -c hiptah ...


def unregister() -> None:
    # Reverse order; the job history stays on disk and resumes on the next register().
    commands.unregister()
    monitor.unregister_handlers()
    runtime.shutdown()
    operators.unregister_menus()
    properties.unregister_properties()
    for cls in reversed(_CLASSES):
        if "bl_rna" in cls.__dict__:  # registered (register() may have failed part way)
            bpy.utils.unregister_class(cls)
    i18n.unregister()
