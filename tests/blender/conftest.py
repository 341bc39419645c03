"""Fixtures for tests in real Blender (the bpy module).

``addon``: the add-on enabled through addon_utils (as Blender does), pointed at the
sandbox through HIPTAH_API_KEY / HIPTAH_BASE_URL, online access on, an empty
scene, an empty job history and download folder; disabled again at teardown.
Module objects are looked up at fixture time because the restart test purges
``hiptah_blender*`` from sys.modules.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402  (Blender's module, importable once bpy is)

ADDON = "hiptah_blender"


def runtime_module() -> ModuleType:
    return importlib.import_module(f"{ADDON}.blender.runtime")


def user_dir() -> str:
    return str(importlib.import_module(f"{ADDON}.blender.settings").user_dir())


def reset_scene() -> None:
    bpy.ops.wm.read_homefile(use_empty=True)


def enable_addon() -> ModuleType:
    mod = addon_utils.enable(ADDON, default_set=True)
    assert mod is not None, "the add-on failed to register (see the traceback above)"
    return mod  # type: ignore[no-any-return]


def disable_addon() -> None:
    if ADDON in {a.module for a in bpy.context.preferences.addons}:
        addon_utils.disable(ADDON, default_set=True)


def addon_modules() -> dict[str, ModuleType]:
    return {n: m for n, m in sys.modules.items() if n == ADDON or n.startswith(ADDON + ".")}


def purge_modules() -> None:
    """What a Blender restart does to the add-on's Python state."""
    for name in addon_modules():
        del sys.modules[name]


def restore_modules(saved: dict[str, ModuleType]) -> None:
    """Put the module objects from before a purge back, so that later tests in the same
    process (the unit suite imports the same package) see one set of classes."""
    for name in addon_modules():
        del sys.modules[name]
    sys.modules.update(saved)


@dataclass
class Addon:
    sandbox: Any
    library: Any = None  # the personal asset library's folder (a pytest tmp_path)

    @property
    def runtime(self) -> ModuleType:
        return runtime_module()

    @property
    def prefs(self) -> Any:
        return bpy.context.preferences.addons[ADDON].preferences

    def rt(self) -> Any:
        return self.runtime.get(bpy.context)

    def reports(self) -> list[tuple[str, str]]:
        return list(self.runtime.REPORTS)

    def last_report(self) -> str:
        reports = self.reports()
        return reports[-1][1] if reports else ""

    def step_until_done(self, local_id: str, timeout: float = 60.0) -> Any:
        """Drive the interactive path by hand, as the modal monitor would."""
        monitor = importlib.import_module(f"{ADDON}.blender.monitor")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            keep, _notices = monitor.on_timer(bpy.context)
            record = self.rt().get(local_id)
            if not keep and record is not None and record.state.is_finished:
                return record
            time.sleep(0.05)
        raise AssertionError(f"job {local_id} still {self.rt().get(local_id).state} after {timeout} s")


@pytest.fixture
def addon(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Addon]:
    monkeypatch.setenv("HIPTAH_API_KEY", sandbox.api_key)
    monkeypatch.setenv("HIPTAH_BASE_URL", sandbox.base_url)
    bpy.context.preferences.system.use_online_access = True
    saved_modules = addon_modules()
    disable_addon()
    enable_addon()
    shutil.rmtree(user_dir(), ignore_errors=True)
    runtime_module().REPORTS.clear()
    reset_scene()
    # Never the real default (~/Documents/Blender/HiPtah Library) in tests.
    library = tmp_path_factory.mktemp("library")
    bpy.context.preferences.addons[ADDON].preferences.asset_library_dir = str(library)
    try:
        yield Addon(sandbox, library)
    finally:
        disable_addon()
        if saved_modules:
            restore_modules(saved_modules)
        shutil.rmtree(user_dir(), ignore_errors=True)
        reset_scene()
        bpy.context.preferences.system.use_online_access = False


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the preferences only."""
    monkeypatch.delenv("HIPTAH_API_KEY", raising=False)
    monkeypatch.delenv("HIPTAH_BASE_URL", raising=False)


def skip_unless_produced(addon: Addon, fmt: str) -> None:
    """Skip (with the reason) when the sandbox cannot make ``fmt`` models here."""
    text = addon.last_report()
    if "failed on the server" in text or "generator" in text.lower():
        pytest.skip(f"the sandbox did not produce a {fmt} model here: {text}")

