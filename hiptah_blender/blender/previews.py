"""A thumbnail of each imported model: Blender's own preview of the imported object.

After an import the runtime asks Blender once for the first object's preview
(``ID.asset_generate_preview()``: with a UI, Blender renders it in a background job);
the job's detail box draws it with ``template_icon`` once Blender has it. Drawing only
reads ``Object.preview`` (never creates or renders anything).

Background Blender (``-b``, the bpy module) has no preview job: the same call renders
on the calling thread (seconds, with no GPU), so nothing is requested there and the
panel simply shows no thumbnail. A request that takes longer than ``BUDGET_MS`` on the
main thread turns requests off for the rest of the session.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import bpy

from ..jobs.records import JobRecord

log = logging.getLogger("hiptah")

BUDGET_MS = 50.0
# Main-thread milliseconds of each request, newest last (docs/blender.md quotes them).
COSTS: deque[float] = deque(maxlen=50)
_enabled = True


def supported() -> bool:
    return _enabled and not bpy.app.background


def request(objects: Sequence[Any]) -> float | None:
    """Ask Blender for a preview of the first imported object. Returns the main-thread
    cost in ms, or None when no preview was requested (background, turned off, none)."""
    global _enabled
    obj = objects[0] if objects else None
    if obj is None or not supported() or not hasattr(obj, "asset_generate_preview"):
        return None
    started = time.perf_counter()
    try:
        obj.asset_generate_preview()
    except (RuntimeError, ReferenceError) as exc:  # a preview is a nicety: never fail an import
        log.info("no preview for %s: %s", getattr(obj, "name", "?"), exc)
        return None
    cost = (time.perf_counter() - started) * 1000.0
    COSTS.append(cost)
    if cost > BUDGET_MS:
        _enabled = False
        log.warning("object preview took %.0f ms on the main thread; previews are off for this session", cost)
    return cost


def icon_for(record: JobRecord) -> int:
    """The icon id of the job's rendered preview, 0 when there is none (yet). Cheap:
    a name lookup and two property reads."""
    names = record.meta.get("imported_objects") or ()
    obj = bpy.data.objects.get(str(names[0])) if names else None
    preview = getattr(obj, "preview", None) if obj is not None else None
    if preview is None or not preview.image_size[0]:
        return 0
    return int(preview.icon_id)
