"""Side by side: where the next imported model stands in a scene.

Models that finish together would all land on the 3D cursor, inside each other. The
pure ``placement.RowPlacer`` lines them up along +X from the cursor; this keeps the
names of the models placed in the current row, so a row whose models were all deleted
(or a moved cursor, another scene, another file) starts a new row at the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import bpy

from ..placement import RowPlacer, Vec3


class SideBySide:
    def __init__(self) -> None:
        self.placer = RowPlacer()
        self.names: list[str] = []

    def spot(self, scene: Any) -> Callable[[Vec3, float], Vec3]:
        """The importer's ``spot(anchor, width) -> where`` for one model in ``scene``."""
        key = f"{bpy.data.filepath}|{scene.name}"

        def spot(anchor: Vec3, width: float) -> Vec3:
            alive = any(scene.objects.get(name) is not None for name in self.names)
            where, new_row = self.placer.place(key, anchor, width, row_alive=alive)
            if new_row:
                self.names = []
            return where

        return spot

    def placed(self, names: Iterable[str]) -> None:
        """The objects just imported belong to the current row."""
        self.names.extend(names)
