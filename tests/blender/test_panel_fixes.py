"""What the real-GUI run showed, fixed: refusals stay on the status line, long
messages wrap instead of ending in "…", Format/Quality show the value "Default"
stands for, imported jobs get a thumbnail (none in background Blender, no error)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from .conftest import Addon, bpy
from .recording_layout import FakePanel, RecordingLayout
from .test_panels import check_names

pytestmark = pytest.mark.blender

WRONG_KEY = "hp_wrong_key_0123456789"


def context(width: float | None = None) -> SimpleNamespace:
    c = bpy.context
    region = SimpleNamespace(width=width) if width is not None else None
    return SimpleNamespace(scene=c.scene, window_manager=c.window_manager, preferences=c.preferences, region=region)


def draw(panel: str, width: float | None = None) -> RecordingLayout:
    from hiptah_blender.blender import panels

    fake = FakePanel()
    getattr(panels, panel).draw(fake, context(width))
    check_names(fake.layout)
    return fake.layout


def joined(layout: RecordingLayout) -> str:
    return " ".join(layout.all_text().split())


# ----------------------------------------------------------------- 1. refusals on the status line


def test_refused_key_stays_on_the_status_line_until_the_key_changes(
    addon: Addon, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "Ready" in draw("VIEW3D_PT_hiptah").texts()
    monkeypatch.setenv("HIPTAH_API_KEY", WRONG_KEY)
    with pytest.raises(RuntimeError, match="API key was refused"):
        bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True)
    layout = draw("VIEW3D_PT_hiptah")
    text = joined(layout)
    assert "Ready" not in layout.texts()
    assert "The HiPtah API key was refused." in text and "Check the key in Edit > Preferences" in text
    (first,) = [c for c in layout.find("label") if c.text.startswith("The HiPtah API key")]
    assert first.layout.effective("alert") and first.kwargs["icon"] == "ERROR"
    (fix,) = layout.operators("preferences.addon_show")
    assert fix.text == "Open Add-on Preferences"
    assert "API key was refused" in joined(draw("VIEW3D_PT_hiptah"))  # every redraw, not once

    monkeypatch.setenv("HIPTAH_API_KEY", addon.sandbox.api_key)  # the user fixes the key
    assert "Ready" in draw("VIEW3D_PT_hiptah").texts()


def test_test_connection_sets_and_clears_the_refusal(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPTAH_API_KEY", WRONG_KEY)
    with pytest.raises(RuntimeError):
        bpy.ops.hiptah.test_connection()
    assert "API key was refused" in joined(draw("VIEW3D_PT_hiptah"))
    monkeypatch.setenv("HIPTAH_API_KEY", addon.sandbox.api_key)
    assert bpy.ops.hiptah.test_connection() == {"FINISHED"}  # the key is accepted: forgotten
    monkeypatch.setenv("HIPTAH_API_KEY", WRONG_KEY)  # nothing refused it since: no stale line
    assert "Ready" in draw("VIEW3D_PT_hiptah").texts()


def test_plan_limit_stays_until_the_plan_changes(addon: Addon) -> None:
    addon.sandbox.set_plan("creator", quota=1, used=1)
    with pytest.raises(RuntimeError, match="generation limit"):
        bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True)
    text = joined(draw("VIEW3D_PT_hiptah"))
    assert "generation limit is reached" in text and "Upgrade your plan" in text
    addon.prefs.plan = "PRO"  # upgraded: the add-on cannot know if it helps, so it lets the user try
    assert "Ready" in draw("VIEW3D_PT_hiptah").texts()


def test_a_job_the_server_accepts_clears_the_refusal(addon: Addon) -> None:
    addon.sandbox.set_plan("creator", quota=1, used=1)
    with pytest.raises(RuntimeError):
        bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True)
    addon.sandbox.set_plan("creator", quota=100, used=0)  # upgraded on the website
    assert bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True) == {"FINISHED"}
    assert "Ready" in draw("VIEW3D_PT_hiptah").texts()


# ----------------------------------------------------------------- 2. wrapping to the real width


LONG = (
    "The HiPtah API key was refused. Server said: The API key is not valid. Check the key in "
    "Edit > Preferences > Add-ons > HiPtah (HiPtah dashboard > Settings > API Keys)."
)


def _measure(text: str, scale: float) -> float:
    import blf

    from hiptah_blender.blender import ui_text

    blf.size(0, ui_text.font_points(bpy.context) * scale)
    return float(blf.dimensions(0, text)[0])


@pytest.mark.parametrize("width", [220, 300, 480])
def test_lines_fit_the_region_measured_with_the_ui_font(addon: Addon, width: int) -> None:
    from hiptah_blender import textfit
    from hiptah_blender.blender import ui_text

    lines = ui_text.lines_for(context(width), LONG, boxes=1)
    room = textfit.label_width(width, 1.0, boxes=1)
    assert all(_measure(line, 1.0) <= room for line in lines)
    assert " ".join(lines).split() == LONG.split()
    assert not any("…" in line for line in lines)
    print(f"\nregion {width} px: {len(lines)} lines of at most {room:.0f} px")


def test_wider_region_fewer_lines_bigger_ui_scale_more(addon: Addon) -> None:
    from hiptah_blender.blender import ui_text

    narrow = ui_text.lines_for(context(260), LONG)
    wide = ui_text.lines_for(context(600), LONG)
    assert len(wide) < len(narrow)
    view = bpy.context.preferences.view
    old = view.ui_scale
    try:
        view.ui_scale = 2.0  # background Blender: system.ui_scale is 0, the view's scale applies
        assert ui_text.ui_scale(bpy.context) == 2.0
        assert len(ui_text.lines_for(context(600), LONG)) > len(wide)
    finally:
        view.ui_scale = old


def test_job_details_wrap_long_errors_without_cutting_them(addon: Addon) -> None:
    from hiptah_blender import textfit
    from hiptah_blender.blender import runtime
    from hiptah_blender.jobs.records import ErrorInfo, JobRecord, JobState

    record = JobRecord(prompt="a red chair", created_at=time.time() - 5)
    record.state, record.finished_at = JobState.FAILED, time.time()
    record.error = ErrorInfo(
        kind="AuthenticationError",
        message="The HiPtah API key was refused. Server said: The API key is not valid.",
        hint="Check the key in Edit > Preferences > Add-ons > HiPtah (HiPtah dashboard > Settings > API Keys).",
        status=401,
    )
    rt = addon.rt()
    rt.snapshots = {record.local_id: record}
    runtime.sync_mirror([record])
    layout = draw("VIEW3D_PT_hiptah_jobs", width=280)
    room = textfit.label_width(280, 1.0, boxes=1)
    labels = [c.text for c in layout.find("label")]
    assert all(_measure(t, 1.0) <= room for t in labels), labels
    text = joined(layout)
    assert record.error.message in text and record.error.hint in text


def test_wrapping_is_cached_and_cheap(addon: Addon) -> None:
    from hiptah_blender.blender import ui_text

    ui_text._wrapped.cache_clear()
    started = time.perf_counter()
    ui_text.lines_for(context(300), LONG)
    first = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for _ in range(100):
        ui_text.lines_for(context(300), LONG)
    cached = (time.perf_counter() - started) * 1000 / 100
    print(f"\nwrap {len(LONG)} chars: first {first:.3f} ms (blf), then {cached:.4f} ms (cached)")
    assert ui_text._wrapped.cache_info().hits >= 100


# ----------------------------------------------------------------- 3. what "Default" stands for


def _names(ui: Any) -> tuple[str, str]:
    layout = bpy.types.UILayout
    return (
        layout.enum_item_name(ui, "format", ui.format),
        layout.enum_item_name(ui, "quality", ui.quality),
    )


def test_format_and_quality_show_the_effective_default(addon: Addon) -> None:
    ui = bpy.context.scene.hiptah
    assert (ui.format, ui.quality) == ("default", "default")
    assert _names(ui) == ("GLB (default)", "High (default)")
    addon.prefs.default_format, addon.prefs.default_quality = "fbx", "draft"
    assert _names(ui) == ("FBX (default)", "Draft (default)")
    assert (ui.format, ui.quality) == ("default", "default")  # the stored choice stays "default"

    ui.format, ui.quality = "stl", "standard"
    addon.prefs.default_format = "usdz"
    assert (ui.format, ui.quality) == ("stl", "standard")  # stable across preference changes
    assert _names(ui) == ("STL", "Standard")


def test_dynamic_items_are_kept_alive_and_numbered_like_before(addon: Addon) -> None:
    from hiptah_blender.blender import properties
    from hiptah_blender.blender.preferences import FORMAT_ITEMS

    first = properties._format_items(None, bpy.context)
    assert properties._format_items(None, bpy.context) is first  # the same list: strings stay referenced
    assert [(i[0], i[3]) for i in first] == [("default", 0)] + [(f[0], n) for n, f in enumerate(FORMAT_ITEMS, 1)]


def test_a_saved_choice_survives_save_and_reload(addon: Addon, tmp_path: Any) -> None:
    ui = bpy.context.scene.hiptah
    ui.format, ui.quality = "3mf", "draft"
    path = str(tmp_path / "choice.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    ui = bpy.context.scene.hiptah
    assert (ui.format, ui.quality) == ("3mf", "draft")


# ----------------------------------------------------------------- 5. thumbnails of imported jobs


def test_background_blender_makes_no_thumbnail(addon: Addon) -> None:
    from hiptah_blender.blender import previews

    previews.COSTS.clear()
    assert bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "imported" and list(previews.COSTS) == []
    assert previews.preview_for(record.local_id) is None and previews.icon_for(record) == 0
    assert draw("VIEW3D_PT_hiptah_jobs").find("template_icon") == []


@pytest.fixture
def thumbnails_in_background(monkeypatch: pytest.MonkeyPatch) -> None:
    from hiptah_blender.blender import previews

    monkeypatch.setattr(previews, "IN_BACKGROUND", True)  # draw them although no icon can show


def test_imported_job_gets_a_thumbnail_drawn_off_the_main_thread(
    addon: Addon, thumbnails_in_background: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hiptah_blender.blender import previews

    previews.COSTS.clear()
    assert bpy.ops.hiptah.generate(prompt="a wooden chair", quality="high", wait=True) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "imported"
    (cost,) = previews.COSTS  # one request, on the main thread: copying the meshes
    previews.wait()
    preview = previews.preview_for(record.local_id)
    assert tuple(preview.image_size) == (96, 96)
    alpha = list(preview.image_pixels_float)[3::4]
    assert 0.05 < sum(a > 0 for a in alpha) / len(alpha) < 0.95  # a picture, not empty or full
    triangles = sum(len(o.data.loop_triangles) for o in bpy.data.objects if o.type == "MESH")
    print(f"\nthumbnail request for {triangles} triangles: {cost:.2f} ms on the main thread")

    # Background Blender has no icon system: icon id 0, nothing drawn, no error.
    assert previews.icon_for(record) == preview.icon_id
    bpy.context.window_manager.hiptah_jobs_index = 0
    assert bool(draw("VIEW3D_PT_hiptah_jobs").find("template_icon")) == (preview.icon_id > 0)
    monkeypatch.setattr(previews, "icon_for", lambda r: 4242)  # as with a UI
    (icon,) = draw("VIEW3D_PT_hiptah_jobs").find("template_icon")
    assert icon.kwargs == {"icon_value": 4242, "scale": 5.0}

    started = time.perf_counter()
    for _ in range(1000):
        previews.preview_for(record.local_id)
    print(f"thumbnail lookup in draw(): {(time.perf_counter() - started) * 1000:.1f} us per call")


def test_thumbnail_cost_for_a_big_mesh(addon: Addon, thumbnails_in_background: None) -> None:
    from hiptah_blender import thumbnail
    from hiptah_blender.blender import previews

    bpy.ops.mesh.primitive_uv_sphere_add(segments=256, ring_count=200)
    obj = bpy.context.active_object
    triangles = len(obj.data.loop_triangles)
    started = time.perf_counter()
    assert previews.request("big", [obj]) is not None
    main = (time.perf_counter() - started) * 1000
    geometry = previews.copy_geometry([obj])
    assert geometry is not None
    started = time.perf_counter()
    thumbnail.render_polygons(*geometry)
    worker = (time.perf_counter() - started) * 1000
    previews.wait()
    assert previews.preview_for("big") is not None
    print(f"\n{triangles} triangles (quads): {main:.1f} ms on the main thread (copy), {worker:.0f} ms drawing on the worker")
    assert triangles > 90_000

    bpy.ops.object.modifier_add(type="TRIANGULATE")  # as imported models are
    bpy.ops.object.modifier_apply(modifier=obj.modifiers[0].name)
    started = time.perf_counter()
    assert previews.request("big triangles", [obj]) is not None
    main = (time.perf_counter() - started) * 1000
    print(f"{triangles} triangles (triangulated): {main:.1f} ms on the main thread (copy)")
    previews.wait()


def test_nothing_to_draw_is_not_an_error(addon: Addon, thumbnails_in_background: None) -> None:
    from hiptah_blender.blender import previews

    bpy.ops.object.empty_add()
    assert previews.request("empty", [bpy.context.active_object]) is None
    assert previews.request("none", []) is None

    class Broken:
        type = "MESH"
        name = "broken"
        children_recursive = ()

        @property
        def data(self) -> Any:
            raise ReferenceError("StructRNA of type Mesh has been removed")

    assert previews.request("broken", [Broken()]) is None


def test_blender_preview_would_cost_seconds_in_background(addon: Addon) -> None:
    """Why the add-on draws its own thumbnail: Blender's renders on the calling thread
    here (and froze a UI Blender's main loop 0.8-6.6 s, scripts/benchmarks/preview_cost.py)."""
    bpy.ops.mesh.primitive_monkey_add()
    obj = bpy.context.active_object
    started = time.perf_counter()
    obj.asset_generate_preview()
    cost = (time.perf_counter() - started) * 1000
    print(f"\nasset_generate_preview() in background Blender {bpy.app.version_string}: {cost:.0f} ms")


def test_an_import_right_after_start_up_copies_at_a_later_step(
    addon: Addon, thumbnails_in_background: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import Future

    from hiptah_blender.blender import previews

    warming: Future[Any] = Future()  # numpy still being imported on the worker
    monkeypatch.setattr(previews, "_warm", warming)
    bpy.ops.mesh.primitive_monkey_add()
    assert previews.request("early", [bpy.context.active_object]) == 0.0  # nothing copied yet
    assert not previews.collect() and previews.preview_for("early") is None
    warming.set_result(None)
    previews.wait()
    assert previews.preview_for("early") is not None


def test_the_monitor_keeps_stepping_until_the_last_thumbnail_arrives(
    addon: Addon, thumbnails_in_background: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GUI scenario of every panel state found it: the last job's import ended the
    monitor, so its thumbnail (drawn on a worker) was never collected nor shown."""
    from concurrent.futures import Future

    from hiptah_blender.blender import monitor, previews

    rt = addon.rt()
    assert not rt.has_active()
    drawing: Future[Any] = Future()
    monkeypatch.setitem(previews._pending, "last", drawing)
    assert monitor.on_timer(bpy.context)[0] is True  # no job left, a picture still coming
    drawing.set_exception(RuntimeError("no picture"))  # done (even failed): collected, then stop
    assert monitor.on_timer(bpy.context)[0] is False
    assert "last" not in previews._pending
