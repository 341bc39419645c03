"""Scenario: two jobs started from the panel, Blender quit (File > Quit) while both are in
flight, Blender started again with the same user folder: both jobs resume (the same
server jobs, no new generation) and each is imported exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, jobs, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.scenario import (
    imported_objects,
    job_detail,
    monitor_running,
    open_sidebar,
    press,
    slow_sandbox,
    type_prompt,
)

PROMPTS = ["a green ceramic vase", "a folding camp chair"]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    # Both jobs are still running on the server when Blender quits and when it is back,
    # however slow the machine: the test finishes them with the admin API after the restart.
    yield from slow_sandbox(latency=600)


def test_quit_with_jobs_in_flight_then_restart(gui: GuiBlender, gui_factory: Callable[..., GuiBlender],
                                              extension_zip: Path, sandbox: SandboxServer) -> None:
    gui.start()
    setup_addon(gui, extension_zip, sandbox)
    field = type_prompt(gui, PROMPTS[0])
    generate = gui.click_button("hiptah.generate")
    gui.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 1", timeout=30)
    type_prompt(gui, PROMPTS[1], at=field)  # the field and the button stay where they were
    press(gui, *generate)
    gui.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        "result = len(_rt.peek().scheduler.jobs()) == 2 and all(j.job_id for j in _rt.peek().scheduler.jobs())",
        timeout=60, describe="both jobs accepted by the server",
    )
    before = {j["prompt"]: j for j in jobs(gui)}
    assert sorted(before) == sorted(PROMPTS), before
    assert all(j["state"] in ("queued", "processing") for j in before.values()), before
    server_ids = sorted(j["job_id"] for j in before.values())
    assert sorted(j["job_id"] for j in sandbox.jobs()) == server_ids
    assert all(j["status"] in ("queued", "processing") for j in sandbox.jobs()), sandbox.jobs()
    gui.screenshot("two-jobs-running")

    assert gui.quit() == 0  # File > Quit with both jobs in flight

    again = gui_factory(name="restarted", user_resources=gui.user_resources)
    again.start()
    # The history comes back by itself (no setup: the preferences were saved).
    again.wait_until("result = len(bpy.context.window_manager.hiptah_jobs) == 2", timeout=60,
                     describe="both jobs listed after the restart")
    open_sidebar(again)
    resumed = {j["prompt"]: j for j in jobs(again)}
    assert {p: j["local_id"] for p, j in resumed.items()} == {p: j["local_id"] for p, j in before.items()}
    assert {p: j["job_id"] for p, j in resumed.items()} == {p: j["job_id"] for p, j in before.items()}
    # A resumed job polls its server job at once: both are seen processing again.
    again.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        "result = [j.state.value for j in _rt.peek().scheduler.jobs()] == ['processing', 'processing']",
        timeout=120, interval=0.5, describe="both jobs polled (processing) after the restart",
    )
    for job in resumed.values():
        detail = job_detail(again, job["local_id"])
        assert "resumed after restart: polling" in detail["timeline"], detail["timeline"]
        assert detail["progress"] is not None, detail  # the server's percent, shown on the row
    again.screenshot("restarted-jobs-resumed")
    for job_id in server_ids:
        sandbox.complete(job_id)

    # The restarted add-on's own monitor finishes both; then it stops (nothing active).
    again.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        "result = [j.state.value for j in _rt.peek().scheduler.jobs()] == ['imported', 'imported']",
        timeout=240, interval=0.5, describe="both jobs imported after the restart",
    )
    again.wait_until(f"from {ADDON}.blender import monitor as _m\nresult = not _m._MonitorState.alive()",
                     timeout=30, describe="the monitor to stop")
    assert not monitor_running(again)
    again.screenshot("both-imported")

    for prompt, job in resumed.items():
        detail = job_detail(again, job["local_id"])
        assert detail["job_id"] == before[prompt]["job_id"], detail
        assert sum(1 for t in detail["timeline"] if t.startswith("imported")) == 1, detail["timeline"]
        objects = imported_objects(again, detail["job_id"])
        assert len(objects["roots"]) == 1 and objects["collections"] == ["HiPtah"], (prompt, objects)

    state = sandbox.state()
    assert sorted(j["job_id"] for j in state["jobs"]) == server_ids, state["jobs"]
    assert state["generations_used"] == 2, state
    posts = [r for r in state["requests"] if r["method"] == "POST" and r["path"].endswith("/generate")]
    assert len(posts) == 2, posts
