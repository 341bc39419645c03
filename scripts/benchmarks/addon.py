"""The add-on enabled in this bpy process and pointed at a sandbox, as tests/blender do."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import Any

ADDON = "hiptah_blender"


def enable(sandbox: Any, *, concurrent_limit: int = 200, poll_interval: float = 2.0) -> ModuleType:
    """Register the add-on through addon_utils with an empty job history; returns runtime."""
    import bpy

    # Any: the stubs (fake-bpy-module) type optional context members and enable()'s result
    # as None-able / None, which the real module is not here.
    addon_utils: Any = importlib.import_module("addon_utils")  # Blender's, importable after bpy
    context: Any = bpy.context
    os.environ["HIPTAH_API_KEY"] = sandbox.api_key
    os.environ["HIPTAH_BASE_URL"] = sandbox.base_url
    context.preferences.system.use_online_access = True
    if addon_utils.enable(ADDON, default_set=True) is None:
        raise RuntimeError("the add-on failed to register")
    prefs = context.preferences.addons[ADDON].preferences
    # Enterprise: the plan limit comes from concurrent_limit, so 100 jobs can be in flight.
    prefs.plan = "ENTERPRISE"
    prefs.concurrent_limit = concurrent_limit
    prefs.poll_interval = poll_interval
    settings = importlib.import_module(f"{ADDON}.blender.settings")
    shutil.rmtree(settings.user_dir(), ignore_errors=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    return importlib.import_module(f"{ADDON}.blender.runtime")


def clear_jobs(runtime: ModuleType) -> None:
    """Forget every job (cancelling active ones) so the next round starts empty."""
    rt = runtime.peek()
    if rt is None:
        return
    for job in rt.scheduler.jobs():
        rt.scheduler.remove(job.local_id)
    rt.step(push_undo=False)
