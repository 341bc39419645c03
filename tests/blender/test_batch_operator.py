"""Generate from List… (hiptah.batch_generate): a file's prompts into the panel's job
list, through the same runtime and scheduler as Generate; a bad file queues nothing."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from .conftest import Addon, bpy

pytestmark = pytest.mark.blender


def step_until_all_finished(addon: Addon, timeout: float = 90.0) -> list[object]:
    monitor = importlib.import_module("hiptah_blender.blender.monitor")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        keep, _notices = monitor.on_timer(bpy.context)  # keep: jobs run or imports are queued
        jobs = addon.rt().scheduler.jobs()
        if not keep and jobs and all(j.state.is_finished for j in jobs):
            return list(jobs)
        time.sleep(0.05)
    raise AssertionError(f"still running: {[j.state.value for j in addon.rt().scheduler.jobs()]}")


def test_csv_rows_become_jobs_with_their_own_format_and_quality(addon: Addon, tmp_path: Path) -> None:
    path = tmp_path / "furniture.csv"
    path.write_text("color,object,format,quality\nred,chair,,draft\nblue,table,stl,\ngreen,lamp,glb,standard\n",
                    encoding="utf-8")
    ui = bpy.context.scene.hiptah
    ui.format, ui.quality = "glb", "high"  # the panel's choice: the default for rows without their own

    assert bpy.ops.hiptah.batch_generate(filepath=str(path), template="a {color} wooden {object}") == {"FINISHED"}
    assert addon.last_report() == "HiPtah: queued 3 jobs from furniture.csv."
    queued = {j.prompt: (j.format, j.quality) for j in addon.rt().scheduler.jobs()}
    assert queued == {
        "a red wooden chair": ("glb", "draft"),
        "a blue wooden table": ("stl", "high"),
        "a green wooden lamp": ("glb", "standard"),
    }

    jobs = step_until_all_finished(addon)
    assert sorted(j.state.value for j in jobs) == ["imported"] * 3  # type: ignore[attr-defined]
    assert sorted(j["prompt"] for j in addon.sandbox.jobs()) == sorted(queued)
    imported = {o["hiptah_prompt"] for o in bpy.data.objects if "hiptah_prompt" in o}
    assert imported == set(queued)
    # The job list the panel shows holds them like any other job.
    assert len(bpy.context.window_manager.hiptah_jobs) == 3


def test_text_and_json_files(addon: Addon, tmp_path: Path) -> None:
    text = tmp_path / "prompts.txt"
    text.write_text("# props\na stone pillar\n\na brass key\n", encoding="utf-8")
    assert bpy.ops.hiptah.batch_generate(filepath=str(text), quality="draft") == {"FINISHED"}
    data = tmp_path / "prompts.json"
    data.write_text('["a tin cup", {"prompt": "a red lamp", "format": "stl"}]', encoding="utf-8")
    assert bpy.ops.hiptah.batch_generate(filepath=str(data), quality="draft") == {"FINISHED"}
    queued = sorted((j.prompt, j.format, j.quality) for j in addon.rt().scheduler.jobs())
    assert queued == [
        ("a brass key", "glb", "draft"),
        ("a red lamp", "stl", "draft"),
        ("a stone pillar", "glb", "draft"),
        ("a tin cup", "glb", "draft"),
    ]


def test_bad_file_reports_every_problem_and_queues_nothing(addon: Addon, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("prompt,format\na chair,glb\n<b>a table</b>,glb\na lamp,obj\n", encoding="utf-8")
    with pytest.raises(RuntimeError) as info:
        bpy.ops.hiptah.batch_generate(filepath=str(path))
    level, text = addon.reports()[-1]
    assert level == "ERROR" and text in str(info.value)
    assert "nothing was queued" in text and "2 problem(s)" in text
    assert "row 3" in text and "HTML" in text and "row 4" in text and "glb, fbx" in text
    assert "Fix the file" in text
    assert addon.rt().scheduler.jobs() == []
    assert addon.sandbox.jobs() == []

    # A CSV without a prompt column and no template: says how to fix it (the operator's words).
    path.write_text("color,object\nred,chair\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"no 'prompt' column .* Template in the panel"):
        bpy.ops.hiptah.batch_generate(filepath=str(path))
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.hiptah.batch_generate(filepath=str(tmp_path / "missing.txt"))
    assert addon.rt().scheduler.jobs() == []


def test_missing_key_is_reported_before_the_file_is_read(addon: Addon, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIPTAH_API_KEY")
    path = tmp_path / "p.txt"
    path.write_text("a chair\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="API key"):
        bpy.ops.hiptah.batch_generate(filepath=str(path))
    assert addon.rt().scheduler.jobs() == []


def test_panel_has_the_button(addon: Addon) -> None:
    from .test_panels import draw_main  # checks that every operator it names exists

    calls = draw_main().operators("hiptah.batch_generate")
    assert [c.kwargs.get("text") for c in calls] == ["Generate from List…"]
