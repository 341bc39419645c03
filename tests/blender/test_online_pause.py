"""Turning Allow Online Access off while jobs run pauses them (no poll, no download);
turning it on again finishes them with no new server job.

The sandbox is on loopback, which is exempt from online access on purpose (it never
leaves the machine). To play a remote server, these tests patch the one function that
holds that rule, ``settings.online_access_exempt`` (used both by the submit check and
the pause gate), to say "not exempt".
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest

from .conftest import ADDON, Addon, bpy
from .recording_layout import FakePanel, RecordingLayout
from .test_panels import ctx, draw_row

pytestmark = pytest.mark.blender


@pytest.fixture
def remote_sandbox(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> Addon:
    settings = importlib.import_module(f"{ADDON}.blender.settings")
    monkeypatch.setattr(settings, "online_access_exempt", lambda base_url: False)
    return addon


def _step_until(addon: Addon, local_id: str, done: Any, timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        addon.runtime.step()
        record = addon.rt().get(local_id)
        if done(record):
            return record
        time.sleep(0.05)
    raise AssertionError(f"still {addon.rt().get(local_id).state} after {timeout} s")


def _polls(addon: Addon, job_id: str) -> int:
    return sum(1 for r in addon.sandbox.state()["requests"] if r["path"].endswith(f"/job/{job_id}"))


def _text(layout: RecordingLayout) -> str:
    return " ".join(layout.all_text().split())


def test_offline_pauses_running_jobs_and_online_finishes_them(remote_sandbox: Addon) -> None:
    addon = remote_sandbox
    from hiptah_blender.blender import panels

    addon.sandbox.set_faults(latency=3)
    assert bpy.ops.hiptah.generate(prompt="a wooden cart", wait=False) == {"FINISHED"}
    rt = addon.rt()
    local_id = rt.scheduler.jobs()[0].local_id
    accepted = _step_until(addon, local_id, lambda r: r.job_id is not None)
    key, job_id = accepted.idempotency_key, accepted.job_id

    bpy.context.preferences.system.use_online_access = False
    addon.runtime.step()
    assert rt.scheduler.paused is not None and rt.online.reason is not None
    assert rt.online.reason.kind == "OnlineAccessDisabledError"
    polls = _polls(addon, job_id)
    end = time.monotonic() + 4.5  # past the job's 3 s on the server
    while time.monotonic() < end:
        addon.runtime.step()
        time.sleep(0.05)
    held = rt.get(local_id)
    assert held.state.is_active and held.error is None and held.job_id == job_id
    assert _polls(addon, job_id) == polls  # not one request while offline
    assert any(t.what.startswith("paused: Blender's online access is turned off") for t in held.timeline)

    # What the user sees: the row, the job's details and the status line.
    row = draw_row(bpy.context.window_manager.hiptah_jobs[0])
    (label,) = row.find("label")  # red, paused icon, no percentage while held
    assert label.text == "a wooden cart" and label.kwargs["icon"] == "PAUSE" and label.layout.effective("alert")
    assert panels.row_text(rt, held) == "paused: Blender's online access is turned off."
    fake = FakePanel()
    panels.VIEW3D_PT_hiptah_jobs.draw(fake, ctx())  # type: ignore[arg-type]
    details = _text(fake.layout)  # the status line says why: the box points to it, once
    assert "online access is turned off" not in details and "Cause: the message at the top" in details
    fake = FakePanel()
    panels.VIEW3D_PT_hiptah.draw(fake, ctx())  # type: ignore[arg-type]
    status = _text(fake.layout)
    assert "Online access is off" in status and "1 job paused" in status
    assert "Blender's online access is turned off." in status and "Allow Online Access" in status
    assert fake.layout.operators("screen.userpref_show")

    bpy.context.preferences.system.use_online_access = True
    done = _step_until(addon, local_id, lambda r: r.state.is_finished)
    assert done.state.value == "imported", done.error
    assert done.job_id == job_id and done.idempotency_key == key
    jobs = addon.sandbox.state()["jobs"]
    assert [j["idempotency_key"] for j in jobs] == [key]  # one server job, never a second
    assert any(t.what == "resumed (online again)" for t in done.timeline)
    assert rt.scheduler.paused is None and rt.online.reason is None


def test_offline_before_the_answer_resends_with_the_same_key(remote_sandbox: Addon) -> None:
    """Offline right after Generate: the submission waits, then goes out once."""
    addon = remote_sandbox
    assert bpy.ops.hiptah.generate(prompt="a brass key", wait=False) == {"FINISHED"}
    rt = addon.rt()
    bpy.context.preferences.system.use_online_access = False
    addon.runtime.step()
    local_id = rt.scheduler.jobs()[0].local_id
    time.sleep(0.5)
    addon.runtime.step()
    assert rt.get(local_id).state.is_active
    bpy.context.preferences.system.use_online_access = True
    done = _step_until(addon, local_id, lambda r: r.state.is_finished)
    assert done.state.value == "imported", done.error
    assert len(addon.sandbox.state()["jobs"]) == 1


def test_the_loopback_sandbox_is_still_exempt(addon: Addon) -> None:
    """Without the patch, the real rule: a loopback base URL never pauses."""
    addon.sandbox.set_faults(latency=0.5)
    assert bpy.ops.hiptah.generate(prompt="a cup", wait=False) == {"FINISHED"}
    bpy.context.preferences.system.use_online_access = False
    rt = addon.rt()
    local_id = rt.scheduler.jobs()[0].local_id
    done = _step_until(addon, local_id, lambda r: r.state.is_finished)
    assert done.state.value == "imported" and rt.scheduler.paused is None


def test_blocking_generate_returns_when_paused(remote_sandbox: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script's wait=True does not hang while online access is off: it reports why."""
    addon = remote_sandbox
    rt = addon.rt()
    original = rt.step

    def step_then_go_offline(*args: Any, **kwargs: Any) -> Any:
        bpy.context.preferences.system.use_online_access = False  # turned off during the wait
        return original(*args, **kwargs)

    monkeypatch.setattr(rt, "step", step_then_go_offline)
    with pytest.raises(RuntimeError, match="online access is turned off"):
        bpy.ops.hiptah.generate(prompt="a tower", wait=True)
    assert rt.scheduler.jobs()[0].state.is_active  # kept; it goes out when online again
