"""What the user is told and shown: the log of reports, and sidebar redraws.

Operators report through :func:`add_report` (which redacts secrets) and keep the text
in :data:`REPORTS`, because background Blender prints reports but does not keep them:
scripts and tests read what the user saw there.
"""

from __future__ import annotations

from collections import deque

import bpy

from ..client import errors

# (level, text) of the latest reports, newest last: what the user was told, readable by
# tests and scripts (background Blender prints reports but does not keep them).
REPORTS: deque[tuple[str, str]] = deque(maxlen=200)


def add_report(level: str, text: str) -> str:
    text = errors.redact(text)
    REPORTS.append((level, text))
    return text


def tag_redraw() -> None:
    """Redraw the 3D Viewport sidebars (the HiPtah panel lives there)."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


__all__ = ["REPORTS", "add_report", "tag_redraw"]
