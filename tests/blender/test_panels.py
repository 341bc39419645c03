"""Panel and list draw code in every state, against a recording layout
(background Blender never draws). Also: every icon and operator it names exists."""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import pytest

from .conftest import ADDON, Addon, bpy
from .recording_layout import FakePanel, RecordingLayout

pytestmark = pytest.mark.blender

ICONS = {i.identifier for i in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items}


def ctx(**extra: Any) -> SimpleNamespace:
    c = bpy.context
    return SimpleNamespace(
        scene=c.scene, window_manager=c.window_manager, preferences=c.preferences, region=None, **extra
    )


def draw_main() -> RecordingLayout:
    from hiptah_blender.blender import panels

    fake = FakePanel()
    panels.VIEW3D_PT_hiptah.draw(fake, ctx())  # type: ignore[arg-type]
    check_names(fake.layout)
    return fake.layout


def draw_jobs() -> RecordingLayout:
    from hiptah_blender.blender import panels

    fake = FakePanel()
    panels.VIEW3D_PT_hiptah_jobs.draw(fake, ctx())  # type: ignore[arg-type]
    check_names(fake.layout)
    return fake.layout


def draw_row(item: Any) -> RecordingLayout:
    from hiptah_blender.blender import panels

    layout = RecordingLayout()
    ui_list = SimpleNamespace(layout=layout)
    wm = bpy.context.window_manager
    panels.HIPTAH_UL_jobs.draw_item(ui_list, ctx(), layout, wm, item, 0, wm, "hiptah_jobs_index", 0, 0)  # type: ignore[arg-type]
    check_names(layout)
    return layout


def check_names(layout: RecordingLayout) -> None:
    assert layout.icons() <= ICONS, layout.icons() - ICONS
    for call in layout.operators():
        module, _, name = call.args[0].partition(".")
        assert hasattr(getattr(bpy.ops, module), name), call.args[0]


def test_no_api_key(addon: Addon, no_env: None) -> None:
    addon.prefs.api_key = ""
    layout = draw_main()
    assert "No HiPtah API key is set." in layout.texts()
    (op,) = layout.operators("preferences.addon_show")
    assert op.result.module == ADDON
    assert any(c.layout.effective("alert") for c in layout.find("label") if "API key" in c.text)


def test_online_access_off(addon: Addon, no_env: None) -> None:
    bpy.context.preferences.system.use_online_access = False
    addon.prefs.api_key = "hp_some_key_123456"
    addon.prefs.base_url = "https://api.hiptah.com/v1"
    layout = draw_main()
    assert "Online access is off" in layout.texts()
    assert "Preferences > System > Network" in " ".join(layout.all_text().split())  # wrapped
    (op,) = layout.operators("screen.userpref_show")
    assert op.result.section == "SYSTEM"
    assert not any("Sandbox" in t for t in layout.texts())


def test_invalid_base_url_is_shown(addon: Addon, no_env: None) -> None:
    addon.prefs.api_key = "hp_some_key_123456"
    addon.prefs.base_url = "ftp://example.com"
    layout = draw_main()
    assert "scheme 'ftp' is not supported" in " ".join(layout.all_text().split())  # wrapped
    # and in the preferences themselves
    fake = FakePanel()
    type(addon.prefs).draw(SimpleNamespace(layout=fake.layout, **{  # type: ignore[arg-type]
        name: getattr(addon.prefs, name)
        for name in ("api_key", "base_url", "plan", "download_dir", "import_size", "asset_library", "asset_library_dir")
    }), ctx())
    assert any("scheme 'ftp' is not supported" in t for t in fake.layout.texts())
    check_names(fake.layout)


def test_idle_sandbox_prompt_count_and_generate_state(addon: Addon) -> None:
    scene_ui = bpy.context.scene.hiptah
    layout = draw_main()
    assert "Sandbox: http://127.0.0.1" in " ".join(layout.all_text().split())  # wrapped at a colon's space
    badge = next(c for c in layout.find("label") if c.text.startswith("Sandbox"))
    assert badge.layout.effective("alert") and badge.kwargs["icon"] == "EXPERIMENTAL"
    assert "Ready" in layout.texts()
    assert "0 / 500" in layout.texts()
    assert [c.args[1] for c in layout.find("prop")] == ["source", "prompt", "format", "quality", "size", "facing"]
    assert layout.find("prop")[0].kwargs["expand"] is True  # Text / Image as two buttons
    (generate,) = layout.operators("hiptah.generate")
    assert generate.layout.context_pointers["hiptah_settings"] == scene_ui
    assert "Enter a prompt describing the model" in " ".join(layout.all_text().split())

    # The button's poll greys it out with the reason; scripts are never blocked by it.
    with bpy.context.temp_override(hiptah_settings=scene_ui):
        assert not bpy.ops.hiptah.generate.poll()
    assert bpy.ops.hiptah.generate.poll()

    scene_ui.prompt = "x" * 501
    layout = draw_main()
    count = next(c for c in layout.find("label") if c.text == "501 / 500")
    assert count.layout.effective("alert")
    assert "Prompt is 501 characters; the limit is 500" in " ".join(layout.all_text().split())

    scene_ui.prompt = "<i>cart</i>"
    assert "Remove the HTML from the prompt" in " ".join(draw_main().all_text().split())

    scene_ui.prompt = "a wooden cart"
    layout = draw_main()
    assert "13 / 500" in layout.texts()
    with bpy.context.temp_override(hiptah_settings=scene_ui):
        assert bpy.ops.hiptah.generate.poll()


def test_no_jobs_message(addon: Addon) -> None:
    assert "No jobs yet: generated models appear here." in " ".join(draw_jobs().all_text().split())


def _records_in_every_state() -> list[Any]:
    from hiptah_blender.jobs.records import ErrorInfo, JobRecord, JobState

    now = time.time()
    records = []
    for i, state in enumerate(JobState):
        record = JobRecord(prompt=f"job in state {state.value}", created_at=now - 100 + i)
        record.state = state
        if state.in_flight or state is JobState.DOWNLOADING:
            record.submitted_at = now - 10
            record.eta_seconds = 30
            record.job_id = f"gen_{i}"
        if state is JobState.PROCESSING:
            record.progress = 40.0
        if state.is_finished:
            record.submitted_at, record.finished_at = now - 60, now - 20
            record.file_path = "/tmp/x.glb" if state in (JobState.DOWNLOADED, JobState.IMPORTED) else None
        if state is JobState.FAILED:
            record.error = ErrorInfo(
                kind="PlanLimitError",
                message="Your HiPtah plan's generation limit is reached.",
                hint="Upgrade your plan or wait for the monthly reset.",
                status=403,
            )
        records.append(record)
    return sorted(records, key=lambda r: r.created_at, reverse=True)


def test_jobs_in_every_state(addon: Addon) -> None:
    from hiptah_blender.blender import runtime

    rt = addon.rt()
    records = _records_in_every_state()
    rt.snapshots = {r.local_id: r for r in records}
    runtime.sync_mirror(records)
    wm = bpy.context.window_manager
    assert [item.state for item in wm.hiptah_jobs] == [r.state.value for r in records]

    layout = draw_jobs()
    (tl,) = layout.find("template_list")
    assert tl.args[0] == "HIPTAH_UL_jobs" and tl.args[3] == "hiptah_jobs"
    assert layout.operators("hiptah.clear_finished")

    from hiptah_blender.blender.panels import STATE_ICONS

    rows = {item.state: draw_row(item) for item in wm.hiptah_jobs}
    by_state = {r.state.value: r for r in records}
    for state, row in rows.items():
        record = by_state[state]
        actions = {c.args[0] for c in row.operators()}
        assert all(c.result.local_id == record.local_id for c in row.operators())
        # A row is the state at a glance and the prompt; the only other words: "40%".
        label = next(c for c in row.find("label") if c.text == record.prompt)
        assert label.kwargs["icon"] == STATE_ICONS[record.state]
        assert label.layout.effective("alert") == (state == "failed")
        fraction = record.estimated_fraction(time.time())
        others = [t for t in row.texts() if t != record.prompt]
        if record.state.is_active:
            assert "hiptah.cancel_job" in actions
            assert others == ([f"{fraction * 100:.0f}%"] if fraction is not None else []), others
        else:
            assert others == []
        if state == "processing":
            assert others == ["40%"]
        if state in ("downloaded", "imported"):
            assert {"hiptah.import_job", "hiptah.remove_job"} <= actions
        if state in ("failed", "cancelled"):
            assert {"hiptah.retry_job", "hiptah.remove_job"} <= actions

    # The detail box of each job says its state in words (bar for active jobs).
    def details(state: str) -> RecordingLayout:
        wm.hiptah_jobs_index = [i.state for i in wm.hiptah_jobs].index(state)
        return draw_jobs()

    waiting = details("waiting")
    assert waiting.texts("progress") == ["waiting"] and "plan allows 10 at once" in waiting.texts()
    processing = details("processing")
    (bar,) = processing.find("progress")
    assert bar.text == "processing 40%" and bar.kwargs["type"] == "BAR"
    assert bar.kwargs["factor"] == pytest.approx(0.4)
    assert any(t.startswith("~") and t.endswith("left") for t in processing.texts()), processing.texts()
    assert "Imported after 40 s" in details("imported").texts()
    assert "Cancelled" in details("cancelled").texts()
    assert "job in state processing" in details("processing").texts()  # the whole prompt

    # Details of the selected failed job: message and hint, each once.
    text = " ".join(details("failed").all_text().split())  # wrapped over several labels
    assert text.count("generation limit is reached") == 1 and text.count("Upgrade your plan") == 1
    assert "Failed after 40 s" in text

    # The status line counts what runs and what waits for a slot.
    rt.snapshots = {r.local_id: r for r in records}
    main = draw_main()
    assert "4 running, 1 waiting (plan limit 10)" in " ".join(main.all_text().split())


def test_import_error_shown_in_row_and_details(addon: Addon) -> None:
    from hiptah_blender.blender import runtime
    from hiptah_blender.jobs.records import ErrorInfo, JobState

    rt = addon.rt()
    record = next(r for r in _records_in_every_state() if r.state is JobState.DOWNLOADED)
    rt.snapshots = {record.local_id: record}
    rt.import_errors[record.local_id] = ErrorInfo(
        kind="ModelImportError", message="The GLB file x.glb could not be imported.", hint="The file is kept."
    )
    runtime.sync_mirror([record])
    row = draw_row(bpy.context.window_manager.hiptah_jobs[0])
    (label,) = row.find("label")  # the prompt, red, with the error icon; the words are below
    assert label.text == record.prompt and label.layout.effective("alert") and label.kwargs["icon"] == "ERROR"
    details = " ".join(draw_jobs().all_text().split())
    assert "could not be imported" in details and "The file is kept." in details


def test_draw_does_no_io_and_no_heavy_imports(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing with no runtime must not create one (no scheduler, no disk)."""
    from hiptah_blender.blender import runtime

    assert runtime.peek() is None
    draw_main()
    draw_jobs()
    assert runtime.peek() is None


def test_status_text_durations() -> None:
    from hiptah_blender.blender.panels import duration

    assert [duration(s) for s in (0, 42.4, 65, 3725)] == ["0 s", "42 s", "1 min 05 s", "1 h 02 min"]


def test_records_are_plain_data_for_draw() -> None:
    from hiptah_blender.jobs.records import JobRecord

    assert dataclasses.is_dataclass(JobRecord)


def test_unreachable_server_shown_in_row_status_and_details(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running job whose polls cannot reach the server: the row says "retrying: …",
    the status line shows the error and how many jobs wait; gone once a poll succeeds."""
    from hiptah_blender.blender import runtime
    from hiptah_blender.jobs.records import ErrorInfo, JobState

    rt = addon.rt()
    record = next(r for r in _records_in_every_state() if r.state is JobState.PROCESSING)
    rt.snapshots = {record.local_id: record}
    runtime.sync_mirror([record])
    lost = ErrorInfo(kind="APIConnectionError", message="Could not reach 127.0.0.1 (ConnectionError).",
                     hint="Check your internet connection.")
    errors_now = {record.local_id: lost}
    monkeypatch.setattr(rt.scheduler, "transient_error", lambda local_id: errors_now.get(local_id))
    assert rt._watch_unreachable() and rt.unreachable == {record.local_id: lost}

    from hiptah_blender.blender import panels

    row = draw_row(bpy.context.window_manager.hiptah_jobs[0])
    (label,) = row.find("label")  # no ring while it waits: red, with the retry icon
    assert label.text == record.prompt and label.layout.effective("alert") and label.kwargs["icon"] == "FILE_REFRESH"
    assert panels.row_text(rt, record) == "retrying: Could not reach 127.0.0.1 (ConnectionError)."
    main = " ".join(draw_main().all_text().split())
    assert "Could not reach 127.0.0.1" in main and "1 job retrying" in main and "Ready" not in main
    assert "Check your internet connection." in main
    # The detail box points to the status line instead of repeating the error.
    details = " ".join(draw_jobs().all_text().split())
    assert "Could not reach" not in details and "Cause: the message at the top of the panel." in details

    errors_now.clear()  # a poll went through
    assert rt._watch_unreachable() and rt.unreachable == {}
    assert "1 running (plan limit 10)" in draw_main().texts()
