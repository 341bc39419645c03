"""Persistence: jobs survive a restart (unregister, purge the modules, register) and
resume; downloaded models can be imported after it; file loads refill the list;
the API key never lands in the job history, a report or a saved .blend."""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import ADDON, Addon, bpy, disable_addon, enable_addon, purge_modules

pytestmark = pytest.mark.blender


def restart() -> Any:
    """What quitting and starting Blender does to the add-on, then its deferred resume."""
    disable_addon()
    purge_modules()
    enable_addon()
    monitor = importlib.import_module(f"{ADDON}.blender.monitor")
    monitor.resume(bpy.context)  # the register() timer / load_post handler, run by hand
    return importlib.import_module(f"{ADDON}.blender.runtime")


def test_unfinished_job_resumes_after_restart(addon: Addon) -> None:
    addon.sandbox.set_faults(latency=3)
    assert bpy.ops.hiptah.generate(prompt="a stone bridge", wait=False) == {"FINISHED"}
    rt = addon.rt()
    local_id = rt.scheduler.jobs()[0].local_id
    end = time.monotonic() + 20
    while rt.get(local_id).job_id is None and time.monotonic() < end:
        rt.step()
        time.sleep(0.05)
    job_id = rt.get(local_id).job_id
    assert job_id and rt.get(local_id).state.value in ("queued", "processing")

    runtime = restart()
    rt2 = runtime.peek()
    assert rt2 is not None and rt2 is not rt, "the history should bring the runtime back"
    assert rt2.has_active()
    assert [i.local_id for i in bpy.context.window_manager.hiptah_jobs] == [local_id]
    done = addon.step_until_done(local_id)
    assert done.state.value == "imported" and done.job_id == job_id
    assert len(addon.sandbox.jobs()) == 1  # polled the same job, never submitted again
    assert bpy.data.collections["HiPtah"].objects


def test_downloaded_model_can_be_imported_after_restart(addon: Addon) -> None:
    assert bpy.ops.hiptah.generate(prompt="a clay pot", wait=True, import_result=False) == {"FINISHED"}
    local_id = addon.rt().scheduler.jobs()[0].local_id
    runtime = restart()
    rt = runtime.peek()
    assert rt is not None and not rt.has_active()
    assert rt.get(local_id).state.value == "downloaded"
    assert bpy.ops.hiptah.import_job(local_id=local_id) == {"FINISHED"}
    assert rt.get(local_id).state.value == "imported"


def test_no_history_no_runtime_after_restart(addon: Addon) -> None:
    runtime = restart()
    assert runtime.peek() is None
    assert not os.path.exists(runtime.store_path())


def test_load_post_refills_the_job_list(addon: Addon, tmp_path: Path) -> None:
    assert bpy.ops.hiptah.generate(prompt="a brass key", wait=True) == {"FINISHED"}
    path = str(tmp_path / "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)  # new window manager: the mirror starts empty
    items = bpy.context.window_manager.hiptah_jobs
    assert [i.state for i in items] == ["imported"]


def test_api_key_never_in_store_reports_or_blend(addon: Addon, no_env: None, tmp_path: Path) -> None:
    key = addon.sandbox.api_key
    addon.prefs.api_key = key
    addon.prefs.base_url = addon.sandbox.base_url
    bpy.context.scene.hiptah.prompt = "a wooden crate"
    assert bpy.ops.hiptah.generate(wait=True) == {"FINISHED"}
    assert bpy.ops.hiptah.test_connection() == {"FINISHED"}
    rt = addon.rt()
    rt.scheduler.flush()

    blend = tmp_path / "with_jobs.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
    data = blend.read_bytes()
    assert b"a wooden crate" in data  # the scene (prompt, provenance) is in the file ...
    assert key.encode() not in data  # ... the key is not

    store = Path(addon.runtime.store_path()).read_bytes()
    assert b"a wooden crate" in store and key.encode() not in store
    assert all(key not in text for _, text in addon.reports())
    assert key not in repr(rt.settings)
