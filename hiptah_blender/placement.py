"""Where an imported model goes and how big it is, without bpy.

Size: keep what the server made (the default), or scale uniformly so the model is a
target height in metres. Facing: generated models look down -Y once imported (glTF's
+Z front becomes Blender's -Y, the Front view); "+Y" turns them half a turn about Z.

Rows: several models finishing together used to land on the same 3D cursor, inside
each other. ``RowPlacer`` puts each new model beside the ones placed before it, along
+X with a gap, for as long as the anchor (the 3D cursor) has not moved and the scene
is the same; moving the cursor starts a new row there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SIZE_KEEP = "KEEP"
SIZE_HEIGHT = "HEIGHT"
FACING_NEG_Y = "NEG_Y"
FACING_POS_Y = "POS_Y"
MIN_HEIGHT = 1e-6  # a flat model (a relief seen edge-on) is never scaled: no height to fit


@dataclass(frozen=True)
class SizeChoice:
    """One generation's size and facing (stored in the job's meta, so it applies even
    when the model arrives after a restart)."""

    size: str = SIZE_KEEP
    height: float = 1.8
    facing: str = FACING_NEG_Y

    def to_meta(self) -> dict[str, object]:
        return {"size": self.size, "target_height": self.height, "facing": self.facing}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object], fallback: SizeChoice) -> SizeChoice:
        size = str(meta.get("size") or fallback.size)
        facing = str(meta.get("facing") or fallback.facing)
        try:
            height = float(meta.get("target_height") or fallback.height)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            height = fallback.height
        if size not in (SIZE_KEEP, SIZE_HEIGHT):
            size = fallback.size
        if facing not in (FACING_NEG_Y, FACING_POS_Y):
            facing = fallback.facing
        return cls(size=size, height=height if height > 0 else fallback.height, facing=facing)

    def scale_for(self, current_height: float) -> float:
        """The uniform scale that makes a model ``current_height`` tall the chosen size."""
        if self.size != SIZE_HEIGHT or current_height < MIN_HEIGHT or self.height <= 0:
            return 1.0
        return self.height / current_height

    @property
    def turn(self) -> float:
        """Rotation about Z, in radians."""
        return math.pi if self.facing == FACING_POS_Y else 0.0


Vec3 = tuple[float, float, float]


class RowPlacer:
    """Bottom-centre positions for models that arrive one after another (per session)."""

    def __init__(self, *, gap_ratio: float = 0.25, min_gap: float = 0.1) -> None:
        self.gap_ratio = gap_ratio
        self.min_gap = min_gap
        self._key: str | None = None
        self._anchor: Vec3 | None = None
        self._right = 0.0  # right edge (x) of the last model placed in the row
        self._last_width = 0.0

    def reset(self) -> None:
        self._key = None
        self._anchor = None

    def place(self, key: str, anchor: Vec3, width: float, *, row_alive: bool = True) -> tuple[Vec3, bool]:
        """Where the bottom centre of a model ``width`` wide (along X) goes, and whether
        it starts a new row. ``key``: the scene; ``row_alive``: whether any model of the
        current row is still there."""
        width = max(0.0, width)
        moved = self._anchor is None or any(abs(a - b) > 1e-5 for a, b in zip(anchor, self._anchor, strict=True))
        if key != self._key or moved or not row_alive:
            self._key = key
            self._anchor = anchor
            self._right = anchor[0] + width / 2
            self._last_width = width
            return anchor, True
        gap = max(self.min_gap, self.gap_ratio * max(width, self._last_width))
        x = self._right + gap + width / 2
        self._right = x + width / 2
        self._last_width = width
        return (x, anchor[1], anchor[2]), False
