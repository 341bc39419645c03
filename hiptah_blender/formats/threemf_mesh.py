"""What the 3MF reader returns: :class:`ThreeMFMesh`, :class:`ThreeMFMaterial`, and the array types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .threemf_package import DEFAULT_MODEL_PART

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ThreeMFMaterial:
    """A colour from ``<base>`` or ``<m:color>``: ``rgba`` is sRGB, 0..1, as in the file."""

    name: str
    rgba: tuple[float, float, float, float]


@dataclass
class ThreeMFMesh:
    """One build item, flattened.

    ``vertices``: float32 (N, 3), metres, world transform applied.
    ``triangles``: int32 (M, 3), indices into ``vertices``, outward winding.
    ``material_indices``: int32 (M,), indices into ``materials``. When the item
    has no colour at all, ``materials`` is empty and every index is 0; when only
    some triangles have one, the others use an added grey "3MF default" material.
    """

    name: str
    vertices: npt.NDArray[np.float32]
    triangles: npt.NDArray[np.int32]
    material_indices: npt.NDArray[np.int32]
    materials: list[ThreeMFMaterial]
    object_type: str = "model"
    object_id: int = 0
    part: str = DEFAULT_MODEL_PART


DEFAULT_MATERIAL = ThreeMFMaterial("3MF default", (0.8, 0.8, 0.8, 1.0))
