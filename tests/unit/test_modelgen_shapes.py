"""Prompt parsing, shapes, materials and triangle budgets of sandbox.modelgen."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.modelgen import build_model, generate_model
from sandbox.modelgen.parse import parse, singular
from sandbox.modelgen.shapes import BUILDERS, QUALITY_BUDGETS, build_parts, triangle_count

# noun -> expected part count (pins the composition, e.g. cart = bed + 4 sides + 4 wheels...)
EXPECTED_PARTS = {
    "cart": 13, "chair": 8, "table": 9, "tree": 5, "house": 10, "car": 13, "sword": 4,
    "cup": 2, "lamp": 4, "robot": 15, "rock": 3, "tower": 8, "barrel": 5, "crate": 2,
    "mushroom": 3,
}
REQUIRED_NOUNS = ["cart", "chair", "table", "tree", "house", "car", "sword", "cup", "lamp",
                  "robot", "rock", "tower"]


def test_every_builder_has_an_expected_part_count() -> None:
    assert set(EXPECTED_PARTS) == set(BUILDERS)
    assert set(REQUIRED_NOUNS) <= set(BUILDERS)


@pytest.mark.parametrize("noun", sorted(EXPECTED_PARTS))
def test_noun_parts_are_closed_named_and_sized(noun: str) -> None:
    parts = build_parts(noun, None, "draft")
    assert len(parts) == EXPECTED_PARTS[noun]
    names = [p.name for p in parts]
    assert len(set(names)) == len(names), "part names become node names: must be unique"
    for p in parts:
        assert len(p.mesh.faces) >= 8, p.name
        assert p.mesh.is_watertight, f"{noun}/{p.name} is not closed"
        assert p.mesh.volume > 0, f"{noun}/{p.name} is inside out"
        assert not np.isnan(p.mesh.vertices).any()
    lo = np.min([p.mesh.bounds[0] for p in parts], axis=0)
    hi = np.max([p.mesh.bounds[1] for p in parts], axis=0)
    assert lo[2] == pytest.approx(0.0, abs=1e-6), "objects rest on the ground (z=0)"
    assert 0.05 < float(np.max(hi - lo)) < 12.0, "real-world size in metres"


def test_real_world_sizes() -> None:
    def height(noun: str) -> float:
        parts = build_parts(noun, None, "draft")
        return float(max(p.mesh.bounds[1][2] for p in parts))

    assert 0.8 < height("chair") < 1.1
    assert 0.7 < height("table") < 0.8
    assert 0.08 < height("cup") < 0.12
    assert 3.0 < height("house") < 6.0
    assert 1.2 < height("car") < 1.7


def test_nouns_are_distinct() -> None:
    sigs = set()
    for noun in [*BUILDERS, None]:
        parts = build_parts(noun, None, "draft", shape_key="something else")
        sig = (len(parts), round(sum(p.mesh.volume for p in parts), 6))
        sigs.add(sig)
    assert len(sigs) == len(BUILDERS) + 1


@pytest.mark.parametrize("quality", ["draft", "standard", "high"])
def test_triangle_budget(quality: str) -> None:
    lo, hi, _ = QUALITY_BUDGETS[quality]
    for noun in [*REQUIRED_NOUNS, None]:
        n = triangle_count(build_parts(noun, None, quality, shape_key="blob"))
        assert lo <= n <= hi, (noun, quality, n)


def test_image_relief_respects_budget() -> None:
    import io

    from PIL import Image

    img = Image.radial_gradient("L").convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    for quality, (lo, hi, _) in QUALITY_BUDGETS.items():
        n = build_model("", quality, image=buf.getvalue()).triangle_count
        assert lo <= n <= hi, (quality, n)


def test_abstract_forms_differ_by_prompt_and_are_stable() -> None:
    a = build_model("a swirling nebula", "draft")
    b = build_model("quantum fluctuation", "draft")
    a2 = build_model("A  swirling NEBULA", "draft")  # normalised: same form
    va = np.vstack([p.part.mesh.vertices for p in a.parts])
    vb = np.vstack([p.part.mesh.vertices for p in b.parts])
    va2 = np.vstack([p.part.mesh.vertices for p in a2.parts])
    assert a.name == "form"
    assert va.shape != vb.shape or not np.allclose(va, vb)
    assert np.array_equal(va, va2)
    assert a.parts[0].material != b.parts[0].material


def test_seed_varies_proportions_but_not_composition() -> None:
    s0 = build_parts("table", None, "draft", seed=0)
    s1 = build_parts("table", None, "draft", seed=1)
    assert [p.name for p in s0] == [p.name for p in s1]
    assert not np.allclose(s0[0].mesh.bounds, s1[0].mesh.bounds)
    again = build_parts("table", None, "draft", seed=1)
    assert np.array_equal(s1[0].mesh.vertices, again[0].mesh.vertices)


# ----------------------------------------------------------------------------- parsing


def test_plurals_and_synonyms() -> None:
    assert singular("wheels") == "wheel"
    assert singular("leaves") == "leaf"
    assert singular("boxes") == "box"
    assert singular("glass") == "glass"  # not "glas"
    assert parse("two mugs").noun == "cup"
    assert parse("a comfy couch").noun == "chair" and parse("a comfy couch").variant == "sofa"
    assert parse("a tall pine").variant == "pine"
    assert parse("table lamp").noun == "lamp"  # English compounds: the head noun is last
    assert parse("stone castle").noun == "tower"
    assert parse("something abstract").noun is None


def test_part_materials_from_adjacent_adjectives() -> None:
    p = parse("a medieval wooden cart with iron wheels")
    assert p.noun == "cart"
    assert p.material == "wood"
    assert p.part_materials == {"wheel": "iron"}
    q = parse("chair with legs of steel and a red leather seat")
    assert q.part_materials == {"leg": "steel", "seat": "leather"}
    assert q.part_colours == {"seat": "red"}
    assert q.material is None


def test_materials_resolved_per_part() -> None:
    model = build_model("wooden cart with iron wheels", "draft")
    by_name = {mp.part.name: mp.material for mp in model.parts}
    assert by_name["bed"].name == "wood" and by_name["bed"].metallic == 0.0
    assert by_name["bed"].roughness >= 0.7
    assert by_name["wheel_front_left"].name == "iron"
    assert by_name["wheel_front_left"].metallic == 1.0
    car = {mp.part.name: mp.material for mp in build_model("a red car", "draft").parts}
    assert car["body"].color[:3] == pytest.approx((0.80, 0.08, 0.08))
    assert car["wheel_front_left"].name == "rubber"  # tyres keep their own material
    glass = build_model("glass cup", "draft").parts[0].material
    assert glass.transparent
    gold = build_model("golden sword", "draft").parts[0].material
    assert gold.name == "gold" and gold.metallic == 1.0


def test_size_words_scale_the_model() -> None:
    small = build_model("tiny chair", "draft")
    big = build_model("huge chair", "draft")
    hs = max(p.part.mesh.bounds[1][2] for p in small.parts)
    hb = max(p.part.mesh.bounds[1][2] for p in big.parts)
    assert hb / hs == pytest.approx(2.0 / 0.35, rel=1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120), st.integers(min_value=0, max_value=2**31))
def test_arbitrary_prompts_always_give_a_glb(prompt: str, seed: int) -> None:
    data = generate_model(prompt, "glb", "draft", seed=seed)
    assert data[:4] == b"glTF" and len(data) > 1000


@pytest.mark.parametrize("noun, variant, count", [("chair", "stool", 5), ("chair", "sofa", 10),
                                                  ("tree", "pine", 4), ("lamp", "floor", 4)])
def test_variants(noun: str, variant: str, count: int) -> None:
    parts = build_parts(noun, variant, "draft")
    assert len(parts) == count
    assert all(p.mesh.is_watertight and p.mesh.volume > 0 for p in parts)
    assert [p.name for p in parts] != [p.name for p in build_parts(noun, None, "draft")] or (
        max(p.mesh.bounds[1][2] for p in parts)
        != max(p.mesh.bounds[1][2] for p in build_parts(noun, None, "draft")))
