"""3MF import into real Blender: objects, counts, materials, transforms, rollback."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from hiptah_blender.blender import threemf_import  # noqa: E402
from hiptah_blender.blender.threemf_import import srgb_to_linear  # noqa: E402
from hiptah_blender.formats import ThreeMFError, read_3mf  # noqa: E402
from tests.unit.test_threemf_reader import (  # noqa: E402
    TET_T,
    TET_V,
    big_model,
    mesh_xml,
    model_xml,
    package,
    rot_z,
    row_transform,
    translate,
)

pytestmark = pytest.mark.blender

ID_TYPES = ("objects", "meshes", "materials", "collections", "node_groups", "images")


def id_counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in ID_TYPES}


@pytest.fixture(autouse=True)
def empty_scene() -> Iterator[None]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield
    bpy.ops.wm.read_factory_settings(use_empty=True)


def write(tmp_path: Path, data: bytes, name: str = "model.3mf") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def two_item_file(unit: str = "millimeter") -> bytes:
    cube = np.array([[x, y, z] for x in (0, 5) for y in (0, 5) for z in (0, 5)], float)
    cube_t = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    resources = (
        '<basematerials id="10"><base name="Red PLA" displaycolor="#FF0000"/>'
        '<base name="Clear" displaycolor="#80808040"/></basematerials>'
        + mesh_xml(1, name="Tet", attrs=' pid="10" pindex="0"', tri_attrs=["", "", 'p1="1"', ""])
        + mesh_xml(2, cube, cube_t, name="Cube")
    )
    build = (
        f'<item objectid="1" transform="{row_transform(translate(100, 0, 0) @ rot_z(90))}"/>'
        '<item objectid="2"/>'
    )
    return package(model_xml(resources, build, unit=unit))


def import_3mf(*args: Any, **kwargs: Any) -> list[Any]:
    """The importer, with results typed loosely (obj.data is a Mesh here)."""
    return list(threemf_import.import_3mf(*args, **kwargs))


def build_objects(*args: Any, **kwargs: Any) -> list[Any]:
    return list(threemf_import.build_objects(*args, **kwargs))


def mesh_coords(obj: Any) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def material_indices(obj: Any) -> np.ndarray:
    idx = np.empty(len(obj.data.polygons), dtype=np.int32)
    obj.data.polygons.foreach_get("material_index", idx)
    return idx


def principled(mat: Any) -> Any:
    return next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")


def test_import_objects_counts_materials_and_transforms(tmp_path: Path) -> None:
    coll = bpy.data.collections.new("Imported")
    bpy.context.scene.collection.children.link(coll)
    objs = import_3mf(write(tmp_path, two_item_file()), collection=coll, name_prefix="job")
    assert [o.name for o in objs] == ["job_Tet", "job_Cube"]
    assert all(o.name in coll.objects for o in objs)
    tet, cube = objs
    assert (len(tet.data.vertices), len(tet.data.polygons), len(tet.data.edges)) == (4, 4, 6)
    assert (len(cube.data.vertices), len(cube.data.polygons), len(cube.data.edges)) == (8, 12, 18)
    assert all(p.loop_total == 3 for p in cube.data.polygons)
    # vertices are in metres with the build transform baked in; object matrices stay identity
    expected = (TET_V @ rot_z(90)[:3, :3].T + [100, 0, 0]) / 1000
    np.testing.assert_allclose(mesh_coords(tet), expected, atol=1e-6)
    assert np.allclose(np.array(tet.matrix_world), np.eye(4))
    np.testing.assert_allclose(mesh_coords(cube).max(0), [0.005, 0.005, 0.005], atol=1e-7)
    # face order and winding are kept
    loops = np.empty(len(tet.data.loops), dtype=np.int32)
    tet.data.loops.foreach_get("vertex_index", loops)
    np.testing.assert_array_equal(loops.reshape(-1, 3), TET_T)
    # materials: two slots on the tet, none on the cube
    assert [m.name for m in tet.data.materials] == ["Red PLA", "Clear"]
    np.testing.assert_array_equal(material_indices(tet), [0, 0, 1, 0])
    assert len(cube.data.materials) == 0
    red, clear = list(tet.data.materials)
    assert tuple(principled(red).inputs["Base Color"].default_value) == pytest.approx((1, 0, 0, 1))
    grey = srgb_to_linear(0x80 / 255)
    assert tuple(principled(clear).inputs["Base Color"].default_value) == pytest.approx(
        (grey, grey, grey, 1)
    )
    assert principled(clear).inputs["Alpha"].default_value == pytest.approx(0x40 / 255)
    assert tuple(clear.diffuse_color) == pytest.approx((grey, grey, grey, 0x40 / 255))
    if hasattr(clear, "surface_render_method"):
        assert clear.surface_render_method == "BLENDED"
    assert tet["hiptah_3mf_object_id"] == 1


def test_units_are_converted(tmp_path: Path) -> None:
    objs = import_3mf(
        write(tmp_path, two_item_file(unit="inch")),
        collection=bpy.context.scene.collection,
        name_prefix="",
    )
    assert [o.name for o in objs] == ["Tet", "Cube"]
    np.testing.assert_allclose(mesh_coords(objs[1]).max(0), [5 * 0.0254] * 3, rtol=1e-6)


def test_single_mesh_takes_the_prefix_and_shared_materials(tmp_path: Path) -> None:
    resources = '<m:colorgroup id="3"><m:color color="#00FF00"/></m:colorgroup>' + mesh_xml(
        1, name="Part", attrs=' pid="3" pindex="0"'
    )
    build = '<item objectid="1"/><item objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0 20"/>'
    data = package(model_xml(resources, build))
    objs = import_3mf(io.BytesIO(data), collection=bpy.context.scene.collection, name_prefix="p")
    assert len(objs) == 2
    # one Blender material for the same colour in both objects
    assert objs[0].data.materials[0] == objs[1].data.materials[0]
    assert len(bpy.data.materials) == 1
    single = package(model_xml(mesh_xml(1, name="Part"), '<item objectid="1"/>'))
    (obj,) = import_3mf(
        io.BytesIO(single), collection=bpy.context.scene.collection, name_prefix="chair"
    )
    assert obj.name == "chair"


def test_trimesh_file_imports(tmp_path: Path) -> None:
    trimesh = pytest.importorskip("trimesh")
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    path = write(tmp_path, trimesh.exchange.threemf.export_3MF(sphere))
    (obj,) = import_3mf(path, collection=bpy.context.scene.collection, name_prefix="ball")
    assert len(obj.data.polygons) == len(sphere.faces)
    assert len(obj.data.vertices) == len(sphere.vertices)
    np.testing.assert_allclose(np.linalg.norm(mesh_coords(obj), axis=1), 0.010, rtol=1e-5)


@pytest.mark.parametrize(
    "data",
    [
        b"definitely not a zip",
        package(model_xml(mesh_xml(1, TET_V, np.array([[0, 1, 9]])), '<item objectid="1"/>')),
        package("<model"),
    ],
    ids=["not-zip", "bad-index", "bad-xml"],
)
def test_corrupt_file_raises_and_leaves_nothing(tmp_path: Path, data: bytes) -> None:
    before = id_counts()
    with pytest.raises(ThreeMFError):
        import_3mf(write(tmp_path, data), collection=bpy.context.scene.collection, name_prefix="x")
    assert id_counts() == before
    assert len(bpy.context.scene.collection.objects) == 0


def test_failure_while_building_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meshes = read_3mf(io.BytesIO(two_item_file()))
    bpy.data.materials.new("Pre-existing")
    before = id_counts()
    real = threemf_import._make_mesh
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure in the second mesh")
        return real(*args, **kwargs)

    monkeypatch.setattr(threemf_import, "_make_mesh", flaky)
    with pytest.raises(RuntimeError, match="simulated"):
        build_objects(meshes, name_prefix="y", collection=bpy.context.scene.collection)
    assert calls["n"] == 2
    assert id_counts() == before
    assert [m.name for m in bpy.data.materials] == ["Pre-existing"]


def test_large_mesh_import_speed(tmp_path: Path) -> None:
    path = write(tmp_path, big_model(300))  # 180,000 triangles
    t0 = time.perf_counter()
    meshes = read_3mf(path)
    t1 = time.perf_counter()
    (obj,) = build_objects(meshes, name_prefix="grid", collection=bpy.context.scene.collection)
    t2 = time.perf_counter()
    assert len(obj.data.polygons) == 2 * 300 * 300
    assert len(obj.data.vertices) == 301 * 301
    print(
        f"\n3MF into Blender: {len(obj.data.polygons):,} triangles, read {t1 - t0:.2f} s, "
        f"build {t2 - t1:.2f} s"
    )
