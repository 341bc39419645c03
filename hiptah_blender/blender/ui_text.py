"""Labels that wrap to the sidebar's real width, measured with Blender's UI font.

``textfit`` does the wrapping; this module supplies the measure (``blf`` at the UI
font's size times the UI scale) and the width (the region's, minus the panel's
margins). Results are cached by text, width and font size: a redraw of an unchanged
panel measures nothing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import blf

from .. import textfit
from .i18n import iface

_FONT_ID = 0  # Blender's default UI font (what labels use unless the theme changes it)
_FALLBACK_REGION_WIDTH = 300.0  # no region (tests, popups): a narrow sidebar


def ui_scale(context: Any) -> float:
    """The effective UI scale: system.ui_scale includes the monitor's DPI, but it is 0
    until a window exists (background Blender); then the user's Resolution Scale."""
    prefs = getattr(context, "preferences", None)
    if prefs is None:
        return 1.0
    return float(prefs.system.ui_scale or prefs.view.ui_scale or 1.0)


def font_points(context: Any) -> float:
    prefs = getattr(context, "preferences", None)
    try:
        return float(prefs.ui_styles[0].widget.points)  # type: ignore[union-attr]
    except (AttributeError, IndexError):
        return 11.0


def lines_for(context: Any, text: str, *, boxes: int = 0, icon: bool = True) -> list[str]:
    """``text`` split into lines that fit a label in the current region."""
    scale = ui_scale(context)
    region = getattr(context, "region", None)
    region_width = float(region.width) if region is not None else _FALLBACK_REGION_WIDTH * scale
    width = textfit.label_width(region_width, scale, boxes=boxes, icon=icon)
    return list(_wrapped(text, round(width), round(font_points(context) * scale, 1)))


def fits(context: Any, text: str, *, boxes: int = 0, icon: bool = True, translate: bool = True) -> bool:
    """Whether ``text`` fits on one line (a label's or a button's) in the current region,
    measured as shown: in the interface's language unless ``translate`` is False."""
    shown = iface(text) if translate else text
    return len(lines_for(context, shown, boxes=boxes, icon=icon)) == 1


# Below this many px (at UI scale 1) for a boxed label's text, a job row drops a button.
NARROW_LABEL_PX = 140.0


def narrow(context: Any) -> bool:
    """Whether the sidebar is narrow: a label in a box has less than NARROW_LABEL_PX."""
    scale = ui_scale(context)
    region = getattr(context, "region", None)
    region_width = float(region.width) if region is not None else _FALLBACK_REGION_WIDTH * scale
    return textfit.label_width(region_width, scale, boxes=1) < NARROW_LABEL_PX * scale


def side_by_side(context: Any, texts: list[str], *, translate: bool = True) -> bool:
    """Whether menu buttons showing ``texts`` fit in one row of the current region,
    measured as shown: in the interface's language unless ``translate`` is False."""
    scale = ui_scale(context)
    region = getattr(context, "region", None)
    region_width = float(region.width) if region is not None else _FALLBACK_REGION_WIDTH * scale
    size = round(font_points(context) * scale, 1)
    widths = [_measured(iface(text) if translate else text, size) for text in texts]
    return textfit.fit_in_columns(region_width, scale, widths, len(texts))


@lru_cache(maxsize=256)
def _measured(text: str, size: float) -> float:
    blf.size(_FONT_ID, size)
    return float(blf.dimensions(_FONT_ID, text)[0])


@lru_cache(maxsize=256)
def _wrapped(text: str, width: int, size: float) -> tuple[str, ...]:
    blf.size(_FONT_ID, size)
    return tuple(textfit.wrap(text, width, lambda s: float(blf.dimensions(_FONT_ID, s)[0])))


# A paragraph's lines sit closer than separate labels (a label is a whole widget row high).
LINE_SCALE_Y = 0.8


def wrap_label(
    layout: Any, context: Any, text: str, *, icon: str = "NONE", boxes: int = 0, translate: bool = True
) -> None:
    """One label per line, lines of one paragraph set close together. With an icon, lines
    after the first are indented like the first line's text; without, they use the width.
    ``text`` is shown in the interface's language unless ``translate`` is False (a prompt,
    a name or a path: the user's own words stay as they are)."""
    shown = iface(text) if translate else text
    has_icon = icon != "NONE"
    lines = lines_for(context, shown, boxes=boxes, icon=has_icon)
    col = layout.column(align=True)
    if len(lines) > 1:
        col.scale_y = LINE_SCALE_Y
    for i, line in enumerate(lines):
        col.label(text=line, icon=icon if i == 0 else ("BLANK1" if has_icon else "NONE"), translate=False)
