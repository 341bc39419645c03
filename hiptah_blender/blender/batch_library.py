"""The batch command's Blender part: the asset library a real run writes into.

``batch/cli.py`` is pure Python and never imports this layer; its callers (the
``hiptah batch`` command in ``commands.py`` and the development script
``scripts/batch.py``) hand it :func:`open_library`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .library import AssetLibrary, LibraryItem


def open_library(
    path: str | os.PathLike[str], *, previews: bool, quiet: bool, log: Callable[[str], None]
) -> tuple[AssetLibrary, Callable[..., LibraryItem]]:
    """Open (or create) the library at ``path``; returns it and the factory of its items.
    When the add-on's personal asset library is on, each result is also saved there."""
    library = AssetLibrary(path, previews=previews, quiet=quiet, log=log,
                           personal_dir=personal_library_dir(log))
    library.open()
    return library, LibraryItem.from_record


def personal_library_dir(log: Callable[[str], None]) -> str | None:
    """The add-on's personal asset library folder when it is on (the add-on's preferences:
    each batch result is also saved there), registered as the 'HiPtah' library."""
    import bpy

    from . import personal_library
    from .settings import addon_preferences, read_settings

    if addon_preferences(bpy.context) is None:
        return None  # the development entry point (scripts/batch.py): no add-on, no personal library
    settings = read_settings(bpy.context)
    if not settings.asset_library:
        return None
    try:
        personal_library.ensure_registered(bpy.context, settings.library_dir)
    except (OSError, RuntimeError) as exc:
        log(f"warning: the personal asset library {settings.library_dir} cannot be used: {exc}")
        return None
    return settings.library_dir


__all__ = ["open_library", "personal_library_dir"]
