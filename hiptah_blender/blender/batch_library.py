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
    """Open (or create) the library at ``path``; returns it and the factory of its items."""
    library = AssetLibrary(path, previews=previews, quiet=quiet, log=log)
    library.open()
    return library, LibraryItem.from_record


__all__ = ["open_library"]
