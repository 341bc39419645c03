"""Translations of the user interface (pure Python: no bpy).

The code keeps producing English: names, properties, files, logs and requests stay
as they are. Only what the user reads is translated, by the Blender layer, at display
time, from the catalogues in ``hiptah_blender/locale/<language>.po``.

``N_`` marks a string the user reads where the extractor (``scripts/i18n.py``) would
not find it by its position (see docs/i18n.md). It returns its argument unchanged:
marking never changes behaviour. An f-string may be marked; its template (the
f-string's text with each ``{expression}`` kept as written) becomes the catalogue's
msgid, and the Blender layer matches the formatted English text back to it.
"""

from __future__ import annotations

from .catalog import LANGUAGES, Catalog, load_catalogs, placeholders

__all__ = ["LANGUAGES", "N_", "Catalog", "load_catalogs", "placeholders"]


def N_(text: str) -> str:
    """Mark ``text`` as read by the user; returns it unchanged."""
    return text
