"""Word wrap to a pixel width, given a function that measures text. Pure Python.

Blender's labels cut a text that does not fit with "…", so long messages in the
sidebar must be split into lines that each fit. The Blender side
(``blender/ui_text.py``) supplies the measure (``blf`` with the UI's font size) and
the panel's real width; the logic lives here so unit tests check it without bpy.
"""

from __future__ import annotations

from collections.abc import Callable

Measure = Callable[[str], float]

# Blender's sidebar geometry in units of U.widget_unit (20 px at UI scale 1) or px,
# from interface_intern/UI_interface headers: category tabs (UI_PANEL_CATEGORY_MARGIN_WIDTH,
# 1 unit), panel margins (UI_PANEL_MARGIN_X, 0.4 unit a side), layout inset
# (style->panelspace, 8 px a side), box padding (style->boxspace, 5 px a side), the
# label's icon (1 unit) and its text margins (UI_TEXT_MARGIN_X, 0.4 unit a side).
# SCROLLBAR_UNITS is a safety margin for the overlapping scrollbar.
TABS_UNITS = 1.0
PANEL_MARGIN_UNITS = 2 * 0.4
PANEL_SPACE_PX = 2 * 8
BOX_SPACE_PX = 2 * 5 + 2  # padding plus the box's outline
ICON_UNITS = 1.0
TEXT_MARGIN_UNITS = 2 * 0.4
SCROLLBAR_UNITS = 0.5


def label_width(region_width: float, scale: float, *, boxes: int = 0, icon: bool = True) -> float:
    """Pixels a label's text may use in a sidebar panel ``region_width`` px wide, inside
    ``boxes`` nested boxes, after an icon (or the BLANK1 indent) when ``icon``."""
    unit = 20.0 * scale
    used = unit * (TABS_UNITS + PANEL_MARGIN_UNITS + TEXT_MARGIN_UNITS + SCROLLBAR_UNITS)
    used += scale * (PANEL_SPACE_PX + boxes * BOX_SPACE_PX)
    if icon:
        used += unit * ICON_UNITS
    return max(unit * 2, region_width - used)


# A menu button (Format, Quality): its text's left margin and the drop-down arrow, in units.
MENU_CHROME_UNITS = 0.4 + 0.8


def fit_in_columns(region_width: float, scale: float, text_widths: list[float], columns: int) -> bool:
    """Whether ``columns`` menu buttons side by side in a sidebar panel ``region_width`` px
    wide each show their whole text (the widest of ``text_widths``), else they go one a line."""
    room = label_width(region_width, scale, icon=False) + 20.0 * scale * TEXT_MARGIN_UNITS
    return max(text_widths, default=0.0) + 20.0 * scale * MENU_CHROME_UNITS <= room / columns


def wrap(text: str, width: float, measure: Measure) -> list[str]:
    """Split ``text`` into lines that each measure at most ``width``.

    Greedy, at spaces; explicit newlines are kept. A word wider than a whole line (a
    URL, a path) is split between characters. Always at least one line ("" -> [""]).
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(paragraph, width, measure))
    return lines or [""]


def _wrap_paragraph(paragraph: str, width: float, measure: Measure) -> list[str]:
    words = paragraph.split()
    if not words:
        return [""]
    lines: list[str] = []
    line = ""
    for word in words:
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        if measure(word) <= width:
            line = word
            continue
        pieces = _split_word(word, width, measure)
        lines.extend(pieces[:-1])
        line = pieces[-1]
    lines.append(line)
    return lines


def _split_word(word: str, width: float, measure: Measure) -> list[str]:
    """Break a word that fits on no line into pieces that do (at least one character each)."""
    pieces: list[str] = []
    piece = ""
    for char in word:
        if piece and measure(piece + char) > width:
            pieces.append(piece)
            piece = char
        else:
            piece += char
    pieces.append(piece)
    return pieces
