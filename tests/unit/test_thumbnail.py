"""The model thumbnail drawn off Blender's main thread (hiptah_blender.thumbnail): numpy only."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hiptah_blender import thumbnail

CUBE_V = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float32)
CUBE_F = np.array(
    [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
     (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
)


def alpha(image: np.ndarray, size: int = thumbnail.SIZE) -> np.ndarray:
    return image.reshape(size, size, 4)[..., 3]


def test_a_cube_is_drawn_centred_opaque_and_shaded() -> None:
    image = thumbnail.render(CUBE_V, CUBE_F)
    assert image.shape == (thumbnail.SIZE * thumbnail.SIZE * 4,) and image.dtype == np.float32
    a = alpha(image)
    assert set(np.unique(a)) == {0.0, 1.0}
    assert a[thumbnail.SIZE // 2, thumbnail.SIZE // 2] == 1.0 and a[0, 0] == 0.0
    assert 0.3 < a.mean() < 0.9
    rgb = image.reshape(-1, 4)[a.reshape(-1) > 0, :3]
    assert len(np.unique(rgb.round(3), axis=0)) >= 3  # three visible faces, three shades
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def _square(half: float, depth: float, tilt: float) -> np.ndarray:
    """A square in view space (centred on the view axis), as world coordinates."""
    view = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], dtype=np.float32)
    z = depth + tilt * view[:, 0]
    return np.column_stack([view, z]) @ thumbnail.view_matrix()  # view -> world (orthonormal)


def test_the_nearest_surface_wins() -> None:
    front, back = _square(0.3, 1.0, 0.0), _square(1.0, -1.0, 0.8)  # back: bigger, tilted
    quad = np.array([(0, 1, 2), (0, 2, 3)])
    centre = (thumbnail.SIZE // 2) * thumbnail.SIZE + thumbnail.SIZE // 2

    def centre_rgb(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return thumbnail.render(verts, faces).reshape(-1, 4)[centre, :3]

    both = centre_rgb(np.concatenate([front, back]), np.concatenate([quad, quad + 4]))
    assert np.allclose(both, centre_rgb(front, quad))
    assert not np.allclose(both, centre_rgb(back, quad))
    behind = centre_rgb(np.concatenate([back, front]), np.concatenate([quad, quad + 4]))
    assert np.allclose(behind, both)  # the order of the triangles does not matter


def test_up_is_up_and_tops_face_the_viewer() -> None:
    m = thumbnail.view_matrix()
    assert (m @ [0, 0, 1])[1] > 0.8  # world up is mostly screen up
    assert (m @ [0, 0, 1])[2] > 0 and (m @ [0, -1, 0])[2] > 0  # top and front are seen


@pytest.mark.parametrize(
    ("verts", "faces"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=int)),
        (CUBE_V, np.zeros((0, 3), dtype=int)),
        (CUBE_V, np.array([(0, 1, 99), (-1, 2, 3)])),  # indices out of range: ignored
        (np.full((3, 3), np.nan), np.array([(0, 1, 2)])),  # NaN vertices: ignored
        (np.zeros((3, 3)), np.array([(0, 1, 2)])),  # degenerate: nothing to see
    ],
)
def test_nothing_drawable_gives_a_transparent_image(verts: np.ndarray, faces: np.ndarray) -> None:
    image = thumbnail.render(verts, faces)
    assert image.shape == (thumbnail.SIZE**2 * 4,) and not alpha(image).any()


def test_polygons_are_fanned_into_triangles() -> None:
    corners = [0, 1, 2, 3, 4, 5, 6, 7, 8]  # a quad, then a pentagon
    tris = thumbnail.fan_triangles(corners, [4, 5])
    assert tris.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [4, 7, 8]]
    assert thumbnail.fan_triangles([0, 1, 2, 3, 4, 5]).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert thumbnail.fan_triangles([0, 1, 2], [4]).shape == (0, 3)  # sizes do not match
    quads = thumbnail.render_polygons(CUBE_V, [0, 1, 3, 2, 4, 6, 7, 5], [4, 4])
    assert alpha(quads).any()


def test_a_huge_or_hostile_mesh_stays_bounded() -> None:
    rng = np.random.default_rng(7)
    verts = rng.normal(size=(20_000, 3)).astype(np.float32)
    faces = rng.integers(0, 20_000, size=(60_000, 3))  # every triangle spans the image
    started = time.perf_counter()
    image = thumbnail.render(verts, faces)
    elapsed = time.perf_counter() - started
    print(f"\n60k image-wide triangles: {elapsed * 1000:.0f} ms (worker thread)")
    assert alpha(image).any() and elapsed < 20  # bounded by MAX_SAMPLES, not by the mesh
