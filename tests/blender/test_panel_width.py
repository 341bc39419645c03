"""The panel at the default sidebar width and at a narrow one (issue 16, part 3): no line
cut with "…" (every label measured with the UI font against the room textfit gives it),
Format/Quality side by side only when both fit, short button names when narrow, each
error drawn once, and the preferences one setting a line."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from .conftest import Addon, bpy
from .recording_layout import Call, FakePanel, RecordingLayout
from .test_panels import check_names

pytestmark = pytest.mark.blender

WRONG_KEY = "hp_wrong_key_0123456789"
WIDTHS = (210, 291, 480)  # narrow, Blender 4.3's default sidebar here (px, UI scale 1), wide


def context(width: float) -> SimpleNamespace:
    c = bpy.context
    return SimpleNamespace(scene=c.scene, window_manager=c.window_manager, preferences=c.preferences,
                           region=SimpleNamespace(width=width))


def draw(panel: str, width: float) -> RecordingLayout:
    from hiptah_blender.blender import panels

    fake = FakePanel()
    getattr(panels, panel).draw(fake, context(width))
    check_names(fake.layout)
    return fake.layout


def both(width: float) -> str:
    return " ".join(" ".join(draw(p, width).all_text() for p in ("VIEW3D_PT_hiptah", "VIEW3D_PT_hiptah_jobs")).split())


def _alone(call: Call) -> bool:
    """A line to itself: no row or split on the way up shares it with another item."""
    node: RecordingLayout | None = call.layout
    while node is not None:
        if node.kind in ("row", "split") and sum(1 for c in node.root.calls if c.layout is node) > 1:
            return False
        node = node.parent
    return True


def _boxes(call: Call) -> int:
    node, count = call.layout, 0
    while node is not None:
        count += node.kind == "box"
        node = node.parent
    return count


def cut_lines(layout: RecordingLayout, width: float) -> list[tuple[str, float, float]]:
    """Every label, bar or button text alone on its line that would not fit: (text, px, room)."""
    import blf

    from hiptah_blender import textfit
    from hiptah_blender.blender import ui_text

    blf.size(0, ui_text.font_points(bpy.context))
    cut = []
    for call in layout.find("label") + layout.find("progress") + layout.operators():
        if not call.text or not _alone(call):
            continue
        icon = call.method != "progress" and call.kwargs.get("icon", "NONE") != "NONE"
        room = textfit.label_width(width, 1.0, boxes=_boxes(call), icon=icon)
        measured = float(blf.dimensions(0, call.text)[0])
        dots = call.text.rstrip("…") if call.method == "operator" else call.text  # "Generate from List…"
        if measured > room or "…" in dots:
            cut.append((call.text, round(measured), round(room)))
    return cut


def fail_with_wrong_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPTAH_API_KEY", WRONG_KEY)
    with pytest.raises(RuntimeError, match="API key was refused"):
        bpy.ops.hiptah.generate(prompt="a red wooden chair with a tall carved back", wait=True)
    bpy.context.window_manager.hiptah_jobs_index = 0


def records_in_states(addon: Addon) -> Any:
    """A history with a job in every state (the list and each detail box drawn)."""
    from hiptah_blender.blender import runtime

    from .test_panels import _records_in_every_state

    records = _records_in_every_state()
    rt = addon.rt()
    rt.snapshots = {r.local_id: r for r in records}
    runtime.sync_mirror(records)
    return records


# ----------------------------------------------------------------- no line cut, at any width


@pytest.mark.parametrize("width", WIDTHS)
def test_no_line_is_cut_in_any_state(addon: Addon, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    wm = bpy.context.window_manager
    layouts = [draw("VIEW3D_PT_hiptah", width), draw("VIEW3D_PT_hiptah_jobs", width)]  # idle, no jobs
    fail_with_wrong_key(monkeypatch)  # key refused: status line and the failed job's box
    layouts += [draw("VIEW3D_PT_hiptah", width), draw("VIEW3D_PT_hiptah_jobs", width)]
    monkeypatch.setenv("HIPTAH_API_KEY", addon.sandbox.api_key)
    records_in_states(addon)
    for index in range(len(wm.hiptah_jobs)):  # each job's detail box
        wm.hiptah_jobs_index = index
        layouts.append(draw("VIEW3D_PT_hiptah_jobs", width))
    layouts.append(draw("VIEW3D_PT_hiptah", width))  # "4 running, 1 waiting (plan limit 10)"
    cut = [line for layout in layouts for line in cut_lines(layout, width)]
    assert cut == [], cut


def test_the_check_catches_a_line_that_does_not_fit(addon: Addon) -> None:
    layout = RecordingLayout()
    layout.box().label(text="The HiPtah API key was refused. Server said: The API key is not valid.", icon="ERROR")
    layout.label(text="Ready", icon="CHECKMARK")
    assert [text for text, _, _ in cut_lines(layout, 291)] == [
        "The HiPtah API key was refused. Server said: The API key is not valid."
    ]


# ----------------------------------------------------------------- Format / Quality, buttons


def _menus(width: int) -> RecordingLayout:
    layout = draw("VIEW3D_PT_hiptah", width)
    (fmt,) = [c for c in layout.find("prop") if c.args[1] == "format"]
    (quality,) = [c for c in layout.find("prop") if c.args[1] == "quality"]
    assert fmt.layout is quality.layout
    return fmt.layout


def test_format_and_quality_side_by_side_only_when_both_fit(addon: Addon) -> None:
    assert _menus(291).kind == "row" and _menus(480).kind == "row"  # "GLB (default)" | "High (default)"
    assert _menus(210).kind == "column"  # one a line rather than "GLB (de…"


def test_buttons_take_their_short_name_when_narrow(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIPTAH_API_KEY")
    addon.prefs.api_key = ""
    (wide,) = draw("VIEW3D_PT_hiptah", 291).operators("preferences.addon_show")
    (narrow,) = draw("VIEW3D_PT_hiptah", 210).operators("preferences.addon_show")
    assert (wide.text, narrow.text) == ("Open Add-on Preferences", "Preferences")
    assert wide.result.module == narrow.result.module == "hiptah_blender"


# ----------------------------------------------------------------- each error once


def test_a_refusal_is_drawn_once_and_the_box_points_to_it(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_with_wrong_key(monkeypatch)
    record = addon.rt().scheduler.jobs()[0]
    assert record.error is not None
    for width in WIDTHS:
        text = both(width)
        assert text.count(record.error.message) == 1, text  # on the status line
        assert text.count(record.error.hint) == 1, text
        assert "Cause: the message at the top of the panel." in text
        assert "Failed after" in text and record.prompt in text  # the box still says what and when


def test_an_error_the_status_line_does_not_show_is_in_the_box_once(addon: Addon) -> None:
    records_in_states(addon)
    wm = bpy.context.window_manager
    wm.hiptah_jobs_index = [i.state for i in wm.hiptah_jobs].index("failed")
    text = both(291)
    assert text.count("Your HiPtah plan's generation limit is reached.") == 1
    assert text.count("Upgrade your plan or wait for the monthly reset.") == 1
    assert "Cause:" not in text


def test_a_row_is_the_state_icon_the_prompt_and_the_percentage(addon: Addon) -> None:
    from .test_panels import draw_row

    records = records_in_states(addon)
    by_state = {r.state.value: r for r in records}
    wm = bpy.context.window_manager
    item = next(i for i in wm.hiptah_jobs if i.state == "processing")
    row = draw_row(item)
    assert row.texts() == [by_state["processing"].prompt, "40%"]
    (tag,) = [c for c in row.find("label") if c.text == "40%"]
    assert tag.layout.ui_units_x == 2.0 and tag.layout.alignment == "RIGHT"
    item = next(i for i in wm.hiptah_jobs if i.state == "waiting")  # no estimate yet: no number
    assert draw_row(item).texts() == [by_state["waiting"].prompt]


def test_paragraph_lines_sit_close_together(addon: Addon) -> None:
    from hiptah_blender.blender import ui_text

    layout = RecordingLayout()
    ui_text.wrap_label(layout, context(210), "a long message " * 6, icon="ERROR")
    labels = layout.find("label")
    assert len(labels) > 1 and {c.layout.scale_y for c in labels} == {ui_text.LINE_SCALE_Y}
    assert [c.kwargs["icon"] for c in labels] == ["ERROR"] + ["BLANK1"] * (len(labels) - 1)
    layout = RecordingLayout()
    ui_text.wrap_label(layout, context(210), "Ready")
    (label,) = layout.find("label")
    assert label.layout.scale_y == 1.0 and label.kwargs["icon"] == "NONE"


# ----------------------------------------------------------------- the preferences


def draw_prefs(addon: Addon) -> RecordingLayout:
    fake = FakePanel()
    fields = ("api_key", "base_url", "plan", "download_dir", "concurrent_limit", "import_size", "asset_library",
              "asset_library_dir")
    type(addon.prefs).draw(SimpleNamespace(layout=fake.layout, **{  # type: ignore[arg-type]
        name: getattr(addon.prefs, name) for name in fields}), bpy.context)
    check_names(fake.layout)
    return fake.layout


def test_preferences_one_setting_a_line_labels_whole(addon: Addon) -> None:
    layout = draw_prefs(addon)
    assert layout.use_property_split  # label left, field right: "Default Format", never "Default …"
    props = layout.find("prop")
    names = [c.args[1] for c in props]
    assert {"default_format", "default_quality", "poll_interval", "job_deadline"} <= set(names)
    # The asset library, size and facing (issue 16 parts 1-2) follow the same layout.
    assert {"import_size", "target_height", "facing", "asset_library", "asset_library_dir"} <= set(names)
    for call in props:  # never two settings sharing a line
        node: RecordingLayout | None = call.layout
        while node is not None:
            assert node.kind != "row" or sum(1 for c in node.root.calls if c.layout is node) == 1, call
            node = node.parent


def test_concurrent_jobs_only_for_enterprise(addon: Addon) -> None:
    layout = draw_prefs(addon)
    assert "concurrent_limit" not in [c.args[1] for c in layout.find("prop")]
    assert "10 jobs at once" in layout.texts()  # what the Creator plan allows, read-only
    addon.prefs.plan = "PRO"
    assert "30 jobs at once" in draw_prefs(addon).texts()
    addon.prefs.plan = "ENTERPRISE"
    layout = draw_prefs(addon)
    assert "concurrent_limit" in [c.args[1] for c in layout.find("prop")]
    assert not any(t.endswith("jobs at once") for t in layout.texts())


def test_manifest_has_no_placeholder_website() -> None:
    """The contract names no HiPtah website (only api. and cdn.hiptah.com), so the
    extension claims none rather than a placeholder."""
    import tomllib
    from pathlib import Path

    manifest = tomllib.loads((Path(__file__).resolve().parents[2] / "blender_manifest.toml").read_text())
    assert "website" not in manifest


def test_state_line_of_a_finished_job(addon: Addon) -> None:
    from hiptah_blender.blender import panels
    from hiptah_blender.jobs.records import JobRecord, JobState

    record = JobRecord(prompt="a chair", created_at=time.time() - 50)
    record.state, record.submitted_at, record.finished_at = JobState.IMPORTED, time.time() - 45, time.time()
    assert panels.state_words(record, time.time(), 10) == ("Imported after 45 s", "")
    assert panels.status_text(record, time.time(), 10) == "imported (45 s)"


def test_a_narrow_row_keeps_room_for_the_prompt(addon: Addon) -> None:
    """At a narrow sidebar a finished row drops Remove (the detail box still has it), so
    the prompt keeps room next to Retry / Import Again."""
    from hiptah_blender.blender import panels

    records_in_states(addon)
    wm = bpy.context.window_manager

    def actions(state: str, width: int) -> set[str]:
        item = next(i for i in wm.hiptah_jobs if i.state == state)
        layout = RecordingLayout()
        panels.HIPTAH_UL_jobs.draw_item(SimpleNamespace(layout=layout), context(width), layout, wm, item,  # type: ignore[arg-type]
                                        0, wm, "hiptah_jobs_index", 0, 0)
        check_names(layout)
        return {c.args[0] for c in layout.operators()}

    assert actions("failed", 291) == {"hiptah.retry_job", "hiptah.remove_job"}
    assert actions("failed", 220) == {"hiptah.retry_job"}
    assert actions("imported", 220) == {"hiptah.import_job"}
    assert actions("processing", 220) == {"hiptah.cancel_job"}
    wm.hiptah_jobs_index = [i.state for i in wm.hiptah_jobs].index("failed")
    details = draw("VIEW3D_PT_hiptah_jobs", 220)
    assert "hiptah.remove_job" in {c.args[0] for c in details.operators()}
