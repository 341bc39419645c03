"""The pure-Python 3MF reader: geometry, transforms, units, materials, safety.

Files are built by hand (XML + zipfile), with trimesh's exporter and with
lib3mf's writer; results are cross-checked against lib3mf and trimesh readers.
"""

from __future__ import annotations

import io
import math
import re
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiptah_blender.client.errors import HiptahError
from hiptah_blender.formats import ReadLimits, ThreeMFError, ThreeMFMaterial, ThreeMFMesh, read_3mf
from hiptah_blender.formats import threemf as tm
from hiptah_blender.formats import threemf_fastpath as fastpath

CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
MAT = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
PROD = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"

RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="{target}" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
)
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    "</Types>"
)

# A unit tetrahedron (outward winding), in model units.
TET_V = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
TET_T = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


# --------------------------------------------------------------------------- helpers


def package(
    model: str | bytes,
    *,
    name: str = "3D/3dmodel.model",
    rels: str | None = "/3D/3dmodel.model",
    extra: dict[str, bytes | str] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        if rels is not None:
            zf.writestr("_rels/.rels", RELS.format(target=rels))
        zf.writestr(name, model if isinstance(model, bytes) else model.encode())
        for member, data in (extra or {}).items():
            zf.writestr(member, data)
    return buf.getvalue()


def model_xml(resources: str, build: str, *, unit: str = "millimeter", attrs: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<model unit="{unit}" xml:lang="en-US" xmlns="{CORE}" xmlns:m="{MAT}" xmlns:p="{PROD}"{attrs}>\n'
        f"<resources>\n{resources}\n</resources>\n<build>\n{build}\n</build>\n</model>\n"
    )


def mesh_xml(
    oid: int,
    verts: np.ndarray = TET_V,
    tris: np.ndarray = TET_T,
    *,
    name: str | None = None,
    attrs: str = "",
    tri_attrs: list[str] | None = None,
) -> str:
    vs = "\n".join(f'<vertex x="{x:g}" y="{y:g}" z="{z:g}" />' for x, y, z in verts)
    ts = "\n".join(
        f'<triangle v1="{a}" v2="{b}" v3="{c}"{(" " + tri_attrs[i]) if tri_attrs and tri_attrs[i] else ""} />'
        for i, (a, b, c) in enumerate(tris)
    )
    nm = f' name="{name}"' if name else ""
    return (
        f'<object id="{oid}" type="model"{nm}{attrs}><mesh><vertices>\n{vs}\n</vertices>'
        f"<triangles>\n{ts}\n</triangles></mesh></object>"
    )


def read(data: bytes, **kw: object) -> list[ThreeMFMesh]:
    return read_3mf(io.BytesIO(data), **kw)  # type: ignore[arg-type]


def tet_file(**kw: object) -> bytes:
    return package(model_xml(mesh_xml(1, name="Tet"), '<item objectid="1" />'), **kw)  # type: ignore[arg-type]


def signed_volume(mesh: ThreeMFMesh) -> float:
    v = mesh.vertices.astype(np.float64)[mesh.triangles]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def row_transform(m: np.ndarray) -> str:
    """A 4x4 column-vector matrix as a 3MF transform attribute (row vectors, m00..m32)."""
    rows = m[:3, :4].T  # 4x3: rows are images of x, y, z axes, then translation
    return " ".join(f"{v:.9g}" for v in rows.ravel())


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    return m


def translate(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def scale(x: float, y: float, z: float) -> np.ndarray:
    return np.diag([x, y, z, 1.0])


def apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    return v @ m[:3, :3].T + m[:3, 3]


# --------------------------------------------------------------------------- lib3mf


def lib3mf_world(path: Path) -> tuple[str, list[np.ndarray], list[int]]:
    """(unit, world vertices per build item in file units, triangles per item) via lib3mf."""
    import lib3mf

    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    model.QueryReader("3mf").ReadFromFile(str(path))

    def matrix(t: object) -> np.ndarray:
        rows = np.array([list(r) for r in t.Fields])  # type: ignore[attr-defined]
        out = np.eye(4)
        out[:3, :4] = rows.T
        return out

    def collect(res: object, m: np.ndarray, verts: list[np.ndarray], ntri: list[int]) -> None:
        if res.IsMeshObject():  # type: ignore[attr-defined]
            mesh = model.GetMeshObjectByID(res.GetResourceID())  # type: ignore[attr-defined]
            v = np.array([list(p.Coordinates) for p in mesh.GetVertices()], dtype=float)
            verts.append(apply(m, v))
            ntri.append(mesh.GetTriangleCount())
        else:
            comp = model.GetComponentsObjectByID(res.GetResourceID())  # type: ignore[attr-defined]
            for i in range(comp.GetComponentCount()):
                c = comp.GetComponent(i)
                collect(c.GetObjectResource(), m @ matrix(c.GetTransform()), verts, ntri)

    items = model.GetBuildItems()
    worlds: list[np.ndarray] = []
    counts: list[int] = []
    while items.MoveNext():
        item = items.GetCurrent()
        verts: list[np.ndarray] = []
        ntri: list[int] = []
        collect(item.GetObjectResource(), matrix(item.GetObjectTransform()), verts, ntri)
        worlds.append(np.concatenate(verts))
        counts.append(sum(ntri))
    unit_names = {
        0: "micron",
        1: "millimeter",
        2: "centimeter",
        3: "inch",
        4: "foot",
        5: "meter",
    }
    return unit_names[int(model.GetUnit())], worlds, counts


def assert_matches_lib3mf(path: Path) -> list[ThreeMFMesh]:
    meshes = read_3mf(path)
    unit, worlds, counts = lib3mf_world(path)
    s = tm.UNITS[unit]
    assert len(meshes) == len(worlds)
    for mesh, world, ntri in zip(meshes, worlds, counts, strict=True):
        assert len(mesh.vertices) == len(world)
        assert len(mesh.triangles) == ntri
        np.testing.assert_allclose(mesh.vertices, world * s, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(mesh.vertices.min(0), world.min(0) * s, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(mesh.vertices.max(0), world.max(0) * s, rtol=1e-5, atol=1e-7)
    return meshes


# --------------------------------------------------------------------------- geometry


def test_error_type_is_a_hiptah_error() -> None:
    assert issubclass(ThreeMFError, HiptahError)
    with pytest.raises(ThreeMFError) as info:
        read(b"not a zip")
    assert info.value.hint
    assert "zip" in info.value.user_text().lower()


def test_single_object_millimetres_to_metres(tmp_path: Path) -> None:
    data = tet_file()
    (meshes,) = read(data)
    assert meshes.name == "Tet"
    assert meshes.vertices.dtype == np.float32 and meshes.vertices.shape == (4, 3)
    assert meshes.triangles.dtype == np.int32 and meshes.triangles.shape == (4, 3)
    np.testing.assert_allclose(meshes.vertices, TET_V / 1000.0)
    np.testing.assert_array_equal(meshes.triangles, TET_T)
    assert meshes.materials == []
    np.testing.assert_array_equal(meshes.material_indices, np.zeros(4))
    assert signed_volume(meshes) > 0
    path = tmp_path / "tet.3mf"
    path.write_bytes(data)
    assert_matches_lib3mf(path)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("micron", 1e-6),
        ("millimeter", 1e-3),
        ("centimeter", 1e-2),
        ("inch", 0.0254),
        ("foot", 0.3048),
        ("meter", 1.0),
    ],
)
def test_units(unit: str, factor: float) -> None:
    (mesh,) = read(package(model_xml(mesh_xml(1), '<item objectid="1"/>', unit=unit)))
    np.testing.assert_allclose(mesh.vertices, TET_V * factor, rtol=1e-6)


def test_unknown_unit_is_an_error() -> None:
    with pytest.raises(ThreeMFError, match="unit"):
        read(package(model_xml(mesh_xml(1), '<item objectid="1"/>', unit="furlong")))


def test_multiple_objects_and_items(tmp_path: Path) -> None:
    cube = np.array([[x, y, z] for x in (0, 5) for y in (0, 5) for z in (0, 5)], float)
    cube_t = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1]])
    resources = mesh_xml(1, name="A") + mesh_xml(2, cube, cube_t, name="B")
    build = (
        f'<item objectid="1" transform="{row_transform(translate(100, 0, 0))}"/>'
        '<item objectid="2"/>'
        f'<item objectid="1" transform="{row_transform(rot_z(90))}"/>'
    )
    path = tmp_path / "multi.3mf"
    path.write_bytes(package(model_xml(resources, build)))
    meshes = assert_matches_lib3mf(path)
    assert [m.name for m in meshes] == ["A", "B", "A"]
    assert [len(m.triangles) for m in meshes] == [4, 6, 4]
    np.testing.assert_allclose(
        meshes[0].vertices, (TET_V + np.array([100, 0, 0])) / 1000, atol=1e-7
    )


def test_build_item_transform_follows_the_row_vector_convention() -> None:
    # Rotation +90 deg about Z then translation (10, 20, 30), written as m00 m01 m02 ... m30 m31 m32.
    # Row vectors: p' = p . M, so x' = x*m00 + y*m10 + z*m20 + m30.
    transform = "0 1 0  -1 0 0  0 0 1  10 20 30"
    (mesh,) = read(package(model_xml(mesh_xml(1), f'<item objectid="1" transform="{transform}"/>')))
    # (10, 0, 0) mm -> rotated (0, 10, 0) -> (10, 30, 30) mm
    np.testing.assert_allclose(mesh.vertices[1], [0.010, 0.030, 0.030], atol=1e-7)
    # (0, 10, 0) -> (-10, 0, 0) -> (0, 20, 30)
    np.testing.assert_allclose(mesh.vertices[2], [0.0, 0.020, 0.030], atol=1e-7)
    assert signed_volume(mesh) > 0


def test_parse_transform_matches_the_helper() -> None:
    m = translate(1, 2, 3) @ rot_z(30) @ scale(1, 2, 3)
    np.testing.assert_allclose(tm.parse_transform(row_transform(m), "test"), m, atol=1e-8)
    np.testing.assert_array_equal(tm.parse_transform(None, "test"), np.eye(4))
    for bad in ("1 2 3", "a b c d e f g h i j k l", "1 0 0 0 1 0 0 0 1 nan 0 0", "1 " * 13):
        with pytest.raises(ThreeMFError, match="transform"):
            tm.parse_transform(bad, "test")


def test_nested_components_compose_transforms(tmp_path: Path) -> None:
    leaf = mesh_xml(1, name="Leaf")
    c_inner = translate(0, 0, 50) @ scale(2, 1, 1)
    c_outer = rot_z(90)
    c_second = translate(-20, 0, 0)
    resources = (
        leaf
        + f'<object id="2" name="Inner"><components><component objectid="1" transform="{row_transform(c_inner)}"/>'
        "</components></object>" + f'<object id="3" name="Assembly"><components>'
        f'<component objectid="2" transform="{row_transform(c_outer)}"/>'
        f'<component objectid="1" transform="{row_transform(c_second)}"/>'
        "</components></object>"
    )
    item = translate(5, 5, 5)
    path = tmp_path / "components.3mf"
    path.write_bytes(
        package(model_xml(resources, f'<item objectid="3" transform="{row_transform(item)}"/>'))
    )
    (mesh,) = assert_matches_lib3mf(path)
    assert mesh.name == "Assembly"
    assert len(mesh.vertices) == 8 and len(mesh.triangles) == 8
    expected = np.concatenate(
        [apply(item @ c_outer @ c_inner, TET_V), apply(item @ c_second, TET_V)]
    )
    np.testing.assert_allclose(mesh.vertices, expected / 1000, atol=1e-7)
    np.testing.assert_array_equal(mesh.triangles[4:], TET_T + 4)
    # trimesh (lxml-based) agrees on the placement too
    trimesh = pytest.importorskip("trimesh")
    scene = trimesh.load(str(path), file_type="3mf", force="scene")
    dumped = scene.to_mesh() if hasattr(scene, "to_mesh") else scene.dump(concatenate=True)
    np.testing.assert_allclose(
        np.sort(dumped.vertices, axis=0), np.sort(expected, axis=0), atol=1e-6
    )


def test_mirroring_transform_keeps_normals_outward() -> None:
    mirror = scale(-1, 1, 1)
    (mesh,) = read(
        package(model_xml(mesh_xml(1), f'<item objectid="1" transform="{row_transform(mirror)}"/>'))
    )
    assert signed_volume(mesh) > 0
    np.testing.assert_array_equal(mesh.triangles, TET_T[:, ::-1])


def test_components_reused_many_times_count_against_limits() -> None:
    comps = "".join('<component objectid="1"/>' for _ in range(50))
    resources = mesh_xml(1) + f'<object id="2"><components>{comps}</components></object>'
    data = package(model_xml(resources, '<item objectid="2"/>'))
    (mesh,) = read(data)
    assert len(mesh.triangles) == 200
    with pytest.raises(ThreeMFError, match="triangles"):
        read(data, limits=ReadLimits(max_triangles=199))


def test_trimesh_exported_files_match_lib3mf(tmp_path: Path) -> None:
    trimesh = pytest.importorskip("trimesh")
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=3, radius=7.0), node_name="ball")
    box = trimesh.creation.box(extents=(10, 20, 30))
    scene.add_geometry(box, node_name="box", transform=translate(40, 0, 0) @ rot_z(30))
    path = tmp_path / "trimesh.3mf"
    path.write_bytes(trimesh.exchange.threemf.export_3MF(scene))
    meshes = assert_matches_lib3mf(path)
    assert sorted(len(m.triangles) for m in meshes) == sorted([12, 1280])
    ball = next(m for m in meshes if len(m.triangles) == 1280)
    np.testing.assert_allclose(np.linalg.norm(ball.vertices, axis=1), 0.007, rtol=1e-5)


def test_lib3mf_written_file_with_components_and_materials(tmp_path: Path) -> None:
    import lib3mf

    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    model.SetUnit(lib3mf.ModelUnit.CentiMeter)
    group = model.AddBaseMaterialGroup()
    red = group.AddMaterial("Red", wrapper.RGBAToColor(255, 0, 0, 255))
    blue = group.AddMaterial("Blue", wrapper.RGBAToColor(0, 0, 255, 128))
    mesh = model.AddMeshObject()
    mesh.SetName("Tet")
    for x, y, z in TET_V:
        pos = lib3mf.Position()
        pos.Coordinates[0], pos.Coordinates[1], pos.Coordinates[2] = x, y, z
        mesh.AddVertex(pos)
    for a, b, c in TET_T:
        tri = lib3mf.Triangle()
        tri.Indices[0], tri.Indices[1], tri.Indices[2] = int(a), int(b), int(c)
        mesh.AddTriangle(tri)
    mesh.SetObjectLevelProperty(group.GetResourceID(), red)
    props = lib3mf.TriangleProperties()
    props.ResourceID = group.GetResourceID()
    props.PropertyIDs[0] = props.PropertyIDs[1] = props.PropertyIDs[2] = blue
    mesh.SetTriangleProperties(3, props)

    def transform(m: np.ndarray) -> object:
        t = lib3mf.Transform()
        rows = m[:3, :4].T
        for r in range(4):
            for c in range(3):
                t.Fields[r][c] = float(rows[r, c])
        return t

    comps = model.AddComponentsObject()
    comps.SetName("Pair")
    comps.AddComponent(mesh, transform(translate(1, 2, 3)))
    comps.AddComponent(mesh, transform(rot_z(45) @ scale(1, 1, 2)))
    model.AddBuildItem(comps, transform(translate(0, 0, 10)))
    path = tmp_path / "lib3mf.3mf"
    model.QueryWriter("3mf").WriteToFile(str(path))

    (got,) = assert_matches_lib3mf(path)
    assert got.name == "Pair"
    names = [m.name for m in got.materials]
    assert sorted(names) == ["Blue", "Red"]
    red_m = got.materials[names.index("Red")]
    blue_m = got.materials[names.index("Blue")]
    assert red_m.rgba == (1.0, 0.0, 0.0, 1.0)
    assert blue_m.rgba[2] == 1.0 and blue_m.rgba[3] == pytest.approx(128 / 255)
    expected = [names.index("Red")] * 3 + [names.index("Blue")]
    np.testing.assert_array_equal(got.material_indices, expected * 2)


# --------------------------------------------------------------------------- materials


def test_base_materials_object_level_and_triangle_override() -> None:
    resources = (
        '<basematerials id="5"><base name="PLA White" displaycolor="#FFFFFF"/>'
        '<base name="Glass" displaycolor="#00FF0080"/></basematerials>'
        + mesh_xml(1, attrs=' pid="5" pindex="0"', tri_attrs=["", 'pid="5" p1="1"', "", 'p1="1"'])
    )
    (mesh,) = read(package(model_xml(resources, '<item objectid="1"/>')))
    assert mesh.materials == [
        ThreeMFMaterial("PLA White", (1.0, 1.0, 1.0, 1.0)),
        ThreeMFMaterial("Glass", (0.0, 1.0, 0.0, 128 / 255)),
    ]
    np.testing.assert_array_equal(mesh.material_indices, [0, 1, 0, 1])


def test_colorgroup_and_uncoloured_triangles_get_a_default() -> None:
    resources = (
        '<m:colorgroup id="7"><m:color color="#FF0000"/><m:color color="#0000FFCC"/></m:colorgroup>'
        + mesh_xml(
            1, tri_attrs=['pid="7" p1="0"', 'pid="7" p1="1" p2="0" p3="0"', "", 'pid="7" p1="0"']
        )
    )
    (mesh,) = read(package(model_xml(resources, '<item objectid="1"/>')))
    names = [m.name for m in mesh.materials]
    assert names == ["3MF default", "Color #FF0000", "Color #0000FFCC"]
    np.testing.assert_array_equal(mesh.material_indices, [1, 2, 0, 1])


def test_property_references_are_checked() -> None:
    base = '<basematerials id="5"><base name="A" displaycolor="#FFFFFF"/></basematerials>'
    with pytest.raises(ThreeMFError, match="property group 6"):
        read(
            package(
                model_xml(base + mesh_xml(1, attrs=' pid="6" pindex="0"'), '<item objectid="1"/>')
            )
        )
    with pytest.raises(ThreeMFError, match="index 3"):
        read(
            package(
                model_xml(base + mesh_xml(1, attrs=' pid="5" pindex="3"'), '<item objectid="1"/>')
            )
        )


def test_unsupported_property_groups_give_no_colour() -> None:
    resources = (
        '<m:texture2d id="3" path="/3D/Texture/a.png" contenttype="image/png"/>'
        '<m:texture2dgroup id="4" texid="3"><m:tex2coord u="0" v="0"/></m:texture2dgroup>'
        + mesh_xml(1, attrs=' pid="4" pindex="0"')
    )
    (mesh,) = read(package(model_xml(resources, '<item objectid="1"/>')))
    assert mesh.materials == []


def test_invalid_displaycolor_falls_back_to_grey() -> None:
    resources = (
        '<basematerials id="5"><base name="X" displaycolor="red"/></basematerials>'
        + mesh_xml(1, attrs=' pid="5" pindex="0"')
    )
    (mesh,) = read(package(model_xml(resources, '<item objectid="1"/>')))
    assert mesh.materials[0].rgba == tm.DEFAULT_MATERIAL.rgba


def test_parse_color() -> None:
    assert tm.parse_color("#FF8000") == (1.0, 128 / 255, 0.0, 1.0)
    assert tm.parse_color(" #00000000 ") == (0.0, 0.0, 0.0, 0.0)
    for bad in (None, "", "FF0000", "#FF00", "#GG0000", "#FF0000FF00"):
        assert tm.parse_color(bad) is None


# --------------------------------------------------------------------------- package


def test_missing_rels_falls_back_to_default_part() -> None:
    (mesh,) = read(tet_file(rels=None))
    assert len(mesh.triangles) == 4


def test_rels_start_part_with_another_name() -> None:
    data = package(
        model_xml(mesh_xml(1), '<item objectid="1"/>'),
        name="3D/Other Model.model",
        rels="/3D/Other%20Model.model",
    )
    (mesh,) = read(data)
    assert mesh.part == "3D/Other Model.model"


def test_no_model_part() -> None:
    with pytest.raises(ThreeMFError, match="no 3D model part"):
        read(package("<x/>", name="3D/wrong.model", rels="/3D/missing.model"))


def test_production_extension_external_part() -> None:
    root = model_xml(
        '<object id="9" name="Wrapper"><components>'
        '<component p:path="/3D/Objects/part.model" objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0 7"/>'
        "</components></object>",
        '<item objectid="9"/>',
        attrs=' requiredextensions="p"',
    )
    part = model_xml(mesh_xml(1, name="Inside"), "")
    (mesh,) = read(package(root, extra={"3D/Objects/part.model": part}))
    np.testing.assert_allclose(mesh.vertices, (TET_V + np.array([0, 0, 7])) / 1000, atol=1e-7)
    missing = root.replace("part.model", "gone.model")
    with pytest.raises(ThreeMFError, match="missing"):
        read(package(missing))


def test_unsupported_required_extension() -> None:
    xml = model_xml(
        mesh_xml(1), '<item objectid="1"/>', attrs=' xmlns:b="urn:beam" requiredextensions="b"'
    )
    with pytest.raises(ThreeMFError, match="does not support"):
        read(package(xml))


def test_no_namespace_and_bom_and_crlf_are_accepted() -> None:
    xml = model_xml(mesh_xml(1), '<item objectid="1"/>').replace(f' xmlns="{CORE}"', "")
    (mesh,) = read(package(xml))
    assert len(mesh.triangles) == 4
    bom = (
        b"\xef\xbb\xbf"
        + model_xml(mesh_xml(1), '<item objectid="1"/>').replace("\n", "\r\n").encode()
    )
    (mesh,) = read(package(bom))
    np.testing.assert_allclose(mesh.vertices, TET_V / 1000)


# --------------------------------------------------------------------------- fast path


def test_fast_path_and_generic_path_agree() -> None:
    """Irregular formatting (comments, quotes, attribute order) takes the generic path."""
    regular = model_xml(
        mesh_xml(1, attrs=' pid="5" pindex="0"', tri_attrs=['pid="5" p1="1"'] * 4),
        '<item objectid="1"/>',
    )
    regular = regular.replace(
        "<resources>\n",
        '<resources>\n<basematerials id="5"><base name="A" displaycolor="#111111"/>'
        '<base name="B" displaycolor="#222222"/></basematerials>',
    )
    irregular = regular.replace(
        '<vertex x="10" y="0" z="0" />', "<!-- c --><vertex  z='0' y=\"0\"\tx='10'/>"
    ).replace('<triangle v1="0" v2="1" v3="3"', '<triangle v3="3" v2="1"  v1="0"')
    assert irregular != regular
    a = read(package(regular))[0]
    b = read(package(irregular))[0]
    for field in ("vertices", "triangles", "material_indices"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.materials == b.materials


def test_fast_block_accepts_only_uniform_blocks() -> None:
    fb = fastpath._fast_block
    ok = b'\n<vertex x="1" y="2" z="3"/>\n<vertex x="4" y="5.5" z="-6e1"/>\n'
    block = fb(ok, b"", b"vertex", fastpath._VERTEX_ATTRS, fastpath._VERTEX_ATTRS, np.float64)
    assert block is not None and block.count == 2
    np.testing.assert_array_equal(block.columns["z"], [3, -60])
    for bad in (
        b'<vertex x="1" y="2" z="3"/><vertex x="1" y="2"/>',  # missing attribute
        b'<vertex x="1" y="2" z="3"/> <!-- --> <vertex x="1" y="2" z="3"/>',  # comment
        b'<vertex x="1" y="2" z="3"/><vertex x="1"  y="2" z="3"/>',  # spacing differs
        b'<vertex x="1 2" y="" z="3"/>',  # two tokens in one value
        b'<vertex x="1-2" y="2" z="3"/>',
        b'<vertex x="&#49;" y="2" z="3"/>',
        b'<vertex x="1" y="2" z="3" w="4"/>',
        b'<vertexx="1" y="2" z="3"/>',
        b'<vertex x="1"y="2" z="3"/>',
        b'<p:vertex x="1" y="2" z="3"/>',
        b'<vertex x="1" y="2" z="3">',
    ):
        assert fb(bad, b"", b"vertex", fastpath._VERTEX_ATTRS, fastpath._VERTEX_ATTRS, np.float64) is None, bad
    tri = b'<triangle v1="1" v2="2" v3="1.5"/>'
    assert fb(tri, b"", b"triangle", fastpath._TRIANGLE_ATTRS, fastpath._TRIANGLE_REQUIRED, np.int64) is None


_SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\r\n"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    verts=st.lists(
        st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False, width=32)] * 3), min_size=3, max_size=12
    ),
    data=st.data(),
)
def test_any_formatting_gives_the_same_mesh(
    verts: list[tuple[float, float, float]], data: st.DataObject
) -> None:
    n = len(verts)
    tris = [
        data.draw(st.tuples(*[st.integers(0, n - 1)] * 3))
        for _ in range(data.draw(st.integers(1, 8)))
    ]

    def element(tag: str, attrs: list[tuple[str, str]]) -> str:
        order = data.draw(st.permutations(attrs))
        parts = []
        for k, v in order:
            q = data.draw(st.sampled_from(['"', "'"]))
            parts.append(f"{data.draw(_SPACES)}{k}={q}{v}{q}")
        return f"<{tag}{''.join(parts)}{data.draw(st.sampled_from(['', ' ']))}/>"

    vx = "".join(
        data.draw(_SPACES) + element("vertex", [("x", repr(x)), ("y", repr(y)), ("z", repr(z))])
        for x, y, z in verts
    )
    tx = "".join(
        data.draw(_SPACES) + element("triangle", [("v1", str(a)), ("v2", str(b)), ("v3", str(c))])
        for a, b, c in tris
    )
    obj = (
        f'<object id="1"><mesh><vertices>{vx}</vertices><triangles>{tx}</triangles></mesh></object>'
    )
    (mesh,) = read(package(model_xml(obj, '<item objectid="1"/>', unit="meter")))
    np.testing.assert_array_equal(
        mesh.vertices, np.array(verts, dtype=np.float64).astype(np.float32)
    )
    np.testing.assert_array_equal(mesh.triangles, np.array(tris))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"PK\x03\x04garbage", b"\x00" * 100],
    ids=["empty", "text", "fake-zip", "zeros"],
)
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(ThreeMFError, match="zip"):
        read(data)


def test_truncated_zip() -> None:
    data = tet_file()
    with pytest.raises(ThreeMFError):
        read(data[: len(data) // 2])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ThreeMFError, match="cannot be opened"):
        read_3mf(tmp_path / "nope.3mf")


def test_corrupt_member_data() -> None:
    data = bytearray(tet_file(compression=zipfile.ZIP_STORED))
    pos = data.find(b"<vertex ")
    data[pos : pos + 8] = b"<vortex "  # CRC no longer matches
    with pytest.raises(ThreeMFError, match="corrupt"):
        read(bytes(data))


def test_member_larger_than_declared() -> None:
    data = bytearray(tet_file(compression=zipfile.ZIP_STORED))
    # lower the declared uncompressed size of the model member in the central directory
    cd = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 1)
    while cd >= 0:
        name_len = struct.unpack_from("<H", data, cd + 28)[0]
        if data[cd + 46 : cd + 46 + name_len] == b"3D/3dmodel.model":
            size = struct.unpack_from("<I", data, cd + 24)[0]
            struct.pack_into("<I", data, cd + 24, size - 10)
            break
        cd = data.find(b"PK\x01\x02", cd + 1)
    with pytest.raises(ThreeMFError):
        read(bytes(data))


def test_zip_bomb_by_ratio() -> None:
    xml = model_xml(mesh_xml(1), '<item objectid="1"/>')
    bomb = xml.replace("</model>", " " * (40 << 20) + "</model>")
    data = package(bomb)
    assert len(data) < 1 << 20
    with pytest.raises(ThreeMFError, match="compressed 1") as info:
        read(data)
    assert "zip bomb" in info.value.user_text()


def test_zip_bomb_by_total_size() -> None:
    data = tet_file(extra={"Metadata/huge.bin": b"\0" * (3 << 20)})
    with pytest.raises(ThreeMFError, match="expand"):
        read(data, limits=ReadLimits(max_total_uncompressed=2 << 20))
    with pytest.raises(ThreeMFError, match="MiB"):
        read(tet_file(), limits=ReadLimits(max_part_bytes=100))


@pytest.mark.parametrize(
    "member",
    ["../evil.model", "/etc/passwd", "3D\\3dmodel.model", "C:/Windows/x", "3D/../../x", "./3D/a"],
)
def test_unsafe_member_names_are_refused(member: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("3D/3dmodel.model", model_xml(mesh_xml(1), '<item objectid="1"/>'))
        info = zipfile.ZipInfo("placeholder")
        info.filename = member  # bypass zipfile's own normalisation
        zf.writestr(info, b"x")
    with pytest.raises(ThreeMFError, match="unsafe"):
        read(buf.getvalue())


@pytest.mark.parametrize("target", ["../../etc/passwd", "/3D/../../x.model", "C:\\model"])
def test_unsafe_relationship_targets_are_refused(target: str) -> None:
    with pytest.raises(ThreeMFError, match="unsafe"):
        read(tet_file(rels=target))


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE model [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<model xmlns="{core}"><resources/><build/><metadata>&lol3;</metadata></model>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE model [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<model xmlns="{core}"><metadata name="x">&xxe;</metadata></model>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE model SYSTEM "http://127.0.0.1:9/evil.dtd">
<model xmlns="{core}"/>"""


@pytest.mark.parametrize(
    "xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD], ids=["laughs", "xxe", "dtd"]
)
def test_dtd_and_entities_are_refused(xml: str) -> None:
    with pytest.raises(ThreeMFError, match="DOCTYPE"):
        read(package(xml.format(core=CORE)))


def test_dtd_in_relationships_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("_rels/.rels", EXTERNAL_ENTITY.format(core=CORE))
        zf.writestr("3D/3dmodel.model", model_xml(mesh_xml(1), '<item objectid="1"/>'))
    with pytest.raises(ThreeMFError, match="DOCTYPE"):
        read(buf.getvalue())


@pytest.mark.parametrize(
    "xml",
    [
        "<model",
        f'<model xmlns="{CORE}"><resources></model>',
        f'<model xmlns="{CORE}"><resources/><build/></model><extra/>',
        model_xml(mesh_xml(1), '<item objectid="1"/>')[:-40],
        model_xml(mesh_xml(1), '<item objectid="1"/>').replace("</vertices>", "</vertice>"),
        model_xml(mesh_xml(1), '<item objectid="1"/>').replace('x="10"', 'x="10" x="1"'),
    ],
    ids=["unclosed", "mismatch", "two-roots", "truncated", "bad-end-tag", "dup-attr"],
)
def test_malformed_xml(xml: str) -> None:
    with pytest.raises(ThreeMFError, match="XML"):
        read(package(xml))


def test_wrong_root_element() -> None:
    with pytest.raises(ThreeMFError, match="not a 3MF model"):
        read(package('<html xmlns="http://www.w3.org/1999/xhtml"/>'))


@pytest.mark.parametrize(
    ("tris", "match"),
    [
        (np.array([[0, 1, 4]]), "vertex 4"),
        (np.array([[0, 1, 99999]]), "vertex 99999"),
        (np.array([[0, -1, 2]]), "negative|out-of-range"),
    ],
)
def test_triangle_index_out_of_range(tris: np.ndarray, match: str) -> None:
    with pytest.raises(ThreeMFError, match=match):
        read(package(model_xml(mesh_xml(1, TET_V, tris), '<item objectid="1"/>')))


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e999", "abc", "", "0x10"])
def test_non_finite_or_bad_coordinates(value: str) -> None:
    xml = model_xml(mesh_xml(1), '<item objectid="1"/>').replace('x="10"', f'x="{value}"', 1)
    with pytest.raises(ThreeMFError, match=r"finite|not a number"):
        read(package(xml))


def test_non_integer_triangle_index() -> None:
    xml = model_xml(mesh_xml(1), '<item objectid="1"/>').replace('v3="1"', 'v3="1.5"', 1)
    with pytest.raises(ThreeMFError, match="not an integer"):
        read(package(xml))


def test_missing_object_references() -> None:
    with pytest.raises(ThreeMFError, match="object 2"):
        read(package(model_xml(mesh_xml(1), '<item objectid="2"/>')))
    comp = '<object id="3"><components><component objectid="42"/></components></object>'
    with pytest.raises(ThreeMFError, match="object 42"):
        read(package(model_xml(mesh_xml(1) + comp, '<item objectid="3"/>')))
    with pytest.raises(ThreeMFError, match="objectid"):
        read(package(model_xml(mesh_xml(1), "<item/>")))


@pytest.mark.parametrize(
    "resources",
    [
        '<object id="2"><components><component objectid="2"/></components></object>',
        '<object id="2"><components><component objectid="3"/></components></object>'
        '<object id="3"><components><component objectid="4"/><component objectid="1"/></components></object>'
        '<object id="4"><components><component objectid="2"/></components></object>',
    ],
    ids=["self", "three"],
)
def test_component_cycles(resources: str) -> None:
    with pytest.raises(ThreeMFError, match="cycle"):
        read(package(model_xml(mesh_xml(1) + resources, '<item objectid="2"/>')))


def test_deep_component_chain_is_limited() -> None:
    chain = "".join(
        f'<object id="{i}"><components><component objectid="{i - 1}"/></components></object>'
        for i in range(2, 80)
    )
    data = package(model_xml(mesh_xml(1) + chain, '<item objectid="79"/>'))
    with pytest.raises(ThreeMFError, match="nested"):
        read(data)
    (mesh,) = read(data, limits=ReadLimits(max_component_depth=100))
    assert len(mesh.triangles) == 4


def test_duplicate_ids_and_empty_build() -> None:
    with pytest.raises(ThreeMFError, match="twice"):
        read(package(model_xml(mesh_xml(1) + mesh_xml(1), '<item objectid="1"/>')))
    with pytest.raises(ThreeMFError, match="no mesh"):
        read(package(model_xml(mesh_xml(1), "")))


def test_count_limits() -> None:
    data = tet_file()
    with pytest.raises(ThreeMFError, match="vertices"):
        read(data, limits=ReadLimits(max_vertices=3))
    with pytest.raises(ThreeMFError, match="triangles"):
        read(data, limits=ReadLimits(max_triangles=3))
    with pytest.raises(ThreeMFError, match="members"):
        read(data, limits=ReadLimits(max_members=2))


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_threemf_error(data: bytes) -> None:
    with pytest.raises(ThreeMFError):
        read(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_in_a_model_part_only_raise_threemf_error(data: bytes) -> None:
    with pytest.raises(ThreeMFError):
        read(package(data))


_TAGS = [
    "model",
    "resources",
    "object",
    "mesh",
    "vertices",
    "vertex",
    "triangles",
    "triangle",
    "components",
    "component",
    "build",
    "item",
    "basematerials",
    "base",
    "m:colorgroup",
    "m:color",
]
_ATTRS = [
    "id",
    "objectid",
    "x",
    "y",
    "z",
    "v1",
    "v2",
    "v3",
    "pid",
    "pindex",
    "p1",
    "transform",
    "unit",
    "displaycolor",
    "color",
    "type",
    "p:path",
    "requiredextensions",
]
_VALUES = st.one_of(
    st.integers(-3, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            "millimeter",
            "#FF0000",
            "1 0 0 0 1 0 0 0 1 0 0 0",
            "/3D/3dmodel.model",
            "../x",
            "m",
            "nan",
            "1e400",
        ]
    ),
    st.text(max_size=8).map(lambda s: s.replace("&", "").replace("<", "").replace('"', "")),
)


def _element(depth: int) -> st.SearchStrategy[str]:
    attrs = st.dictionaries(st.sampled_from(_ATTRS), _VALUES, max_size=4).map(
        lambda d: "".join(f' {k}="{v}"' for k, v in d.items())
    )
    children = st.lists(_element(depth - 1), max_size=4).map("".join) if depth > 0 else st.just("")
    return st.builds(lambda t, a, c: f"<{t}{a}>{c}</{t}>", st.sampled_from(_TAGS), attrs, children)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_element(4), st.sampled_from(["millimeter", "inch", "bogus"]))
def test_random_small_models_only_raise_threemf_error(body: str, unit: str) -> None:
    xml = f'<model unit="{unit}" xmlns="{CORE}" xmlns:m="{MAT}" xmlns:p="{PROD}">{body}</model>'
    try:
        meshes = read(package(xml))
    except ThreeMFError:
        return
    for mesh in meshes:
        assert mesh.vertices.dtype == np.float32 and np.isfinite(mesh.vertices).all()
        assert mesh.triangles.dtype == np.int32
        if len(mesh.triangles):
            assert mesh.triangles.min() >= 0 and mesh.triangles.max() < len(mesh.vertices)
        assert len(mesh.material_indices) == len(mesh.triangles)
        if mesh.materials:
            assert mesh.material_indices.max() < len(mesh.materials)


# --------------------------------------------------------------------------- throughput


def big_model(n_side: int) -> bytes:
    """A closed-ish grid surface with ~2*n_side**2 triangles, as an exporter writes it."""
    i, j = np.meshgrid(np.arange(n_side + 1), np.arange(n_side + 1), indexing="ij")
    z = np.sin(i / 7.0) * np.cos(j / 5.0) * 3.0
    verts = np.stack([i * 0.25, j * 0.25, z], axis=-1).reshape(-1, 3)
    idx = np.arange((n_side + 1) ** 2).reshape(n_side + 1, n_side + 1)
    a, b, c, d = (
        idx[:-1, :-1].ravel(),
        idx[1:, :-1].ravel(),
        idx[1:, 1:].ravel(),
        idx[:-1, 1:].ravel(),
    )
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    vs = ('<vertex x="%.6f" y="%.6f" z="%.6f"/>\n' * len(verts)) % tuple(verts.ravel())
    ts = ('<triangle v1="%d" v2="%d" v3="%d"/>\n' * len(tris)) % tuple(tris.ravel())
    obj = f'<object id="1" name="Grid" type="model"><mesh><vertices>\n{vs}</vertices><triangles>\n{ts}</triangles></mesh></object>'
    return package(model_xml(obj, '<item objectid="1"/>'))


@pytest.mark.slow
def test_throughput_one_million_triangles(tmp_path: Path) -> None:
    path = tmp_path / "big.3mf"
    path.write_bytes(big_model(708))  # 1,002,528 triangles
    t0 = time.perf_counter()
    (mesh,) = read_3mf(path)
    dt = time.perf_counter() - t0
    ntri = len(mesh.triangles)
    assert ntri == 2 * 708 * 708
    with zipfile.ZipFile(path) as zf:
        xml_mb = zf.getinfo("3D/3dmodel.model").file_size / 1e6
    print(
        f"\n3MF fast path: {ntri:,} triangles, {len(mesh.vertices):,} vertices, {xml_mb:.0f} MB XML "
        f"in {dt:.2f} s ({ntri / dt / 1e6:.2f} M triangles/s)"
    )


def test_generic_path_matches_fast_path_on_a_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    data = big_model(30)
    fast = read(data)[0]
    monkeypatch.setattr(fastpath, "_fast_block", lambda *a, **k: None)  # where _cut_blocks looks it up
    t0 = time.perf_counter()
    slow = read(data)[0]
    dt = time.perf_counter() - t0
    np.testing.assert_array_equal(fast.vertices, slow.vertices)
    np.testing.assert_array_equal(fast.triangles, slow.triangles)
    print(f"\n3MF generic path: {len(slow.triangles):,} triangles in {dt * 1000:.0f} ms")


def test_error_messages_never_mention_internal_names() -> None:
    with pytest.raises(ThreeMFError) as info:
        read(package(model_xml(mesh_xml(1), '<item objectid="2"/>')))
    assert not re.search(r"_[A-Za-z]+\(", str(info.value))
