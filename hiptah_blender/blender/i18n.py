"""The interface in Blender's language: the catalogues registered with Blender, and the
translation of text Blender cannot translate by itself.

Blender translates fixed labels, property names, enum items, tooltips and operator
names by itself once ``register()`` hands it the catalogues. Formatted text cannot be
looked up as it stands, so:

- ``fmt(N_("{count} running"), count=n)``: translate the template, then format it;
- ``iface(text)``: text that arrives already formatted (an error's message, a job's
  stored error): matched back to its template (``i18n.catalog``);
- ``rpt(text)`` / ``rpt_fmt(...)``: the same for reports (Blender's "Reports" switch).

Only what is shown changes: callers keep the English text for names, properties,
files, logs, ``runtime.REPORTS`` and requests. Blender's own switches apply: no
translation when Interface (or Reports) translation is off, or the language is English.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import bpy

from ..i18n import LANGUAGES, Catalog, load_catalogs

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
_OWNER = __package__.rpartition(".")[0] if __package__ else "hiptah_blender"
_CATALOGS: dict[str, Catalog] = {}


def register() -> None:
    _CATALOGS.clear()
    _CATALOGS.update(load_catalogs(LOCALE_DIR))
    with contextlib.suppress(Exception):  # a reload without unregister(): drop the old tables
        bpy.app.translations.unregister(_OWNER)
    bpy.app.translations.register(_OWNER, {lang: cat.blender_dict() for lang, cat in _CATALOGS.items()})


def unregister() -> None:
    try:
        bpy.app.translations.unregister(_OWNER)
    finally:
        _CATALOGS.clear()


def language() -> str | None:
    """The shipped language matching Blender's current one (None: English or not shipped)."""
    locale = str(bpy.app.translations.locale or "")
    if locale in LANGUAGES:
        return locale
    base = locale.split("_")[0].split("@")[0]
    return next((lang for lang in LANGUAGES if lang.split("_")[0] == base and base != "zh"), None)


def _catalog(switch: str) -> Catalog | None:
    view = getattr(getattr(bpy.context, "preferences", None), "view", None)
    if view is not None and not getattr(view, switch, True):
        return None
    lang = language()
    return _CATALOGS.get(lang) if lang else None


def iface(text: str) -> str:
    """``text`` as the interface shows it."""
    cat = _catalog("use_translate_interface")
    return cat.translate(text) if cat is not None else text


def rpt(text: str) -> str:
    """``text`` as a report shows it."""
    cat = _catalog("use_translate_reports")
    return cat.translate(text) if cat is not None else text


def fmt(template: str, **values: Any) -> str:
    """The translated ``template`` with ``values`` put in (``str.format``)."""
    return iface(template).format(**values)


def rpt_fmt(template: str, **values: Any) -> str:
    return rpt(template).format(**values)
