"""Scenario: install the built archive as a user would, set the preferences, and run
Test Connection against the sandbox; then a wrong key is reported by the same button."""

from __future__ import annotations

from pathlib import Path

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, setup_addon
from tests.ui.driver.session import GuiBlender


def test_install_and_test_connection(gui: GuiBlender, extension_zip: Path, ui_sandbox: SandboxServer) -> None:
    gui.start()
    setup_addon(gui, extension_zip, ui_sandbox)
    facts = gui.call(
        "import sys, importlib\n"
        f"mod = sys.modules[{ADDON!r}]\n"
        "import pydantic_core, pydantic\n"
        "result = dict(enabled=" + repr(ADDON) + " in bpy.context.preferences.addons,\n"
        "    pydantic=pydantic.VERSION, core_file=pydantic_core._pydantic_core.__file__,\n"
        "    python=list(sys.version_info[:2]), blender=list(bpy.app.version))\n"
    )
    assert facts["enabled"], facts
    assert facts["blender"][:2] == [4, 3] and facts["python"] == [3, 13], facts
    # The bundled cp313 wheel is the one Blender's Python loaded.
    assert "cpython-313" in facts["core_file"] and "/extensions/" in facts["core_file"], facts
    gui.screenshot("panel-idle")

    # The preferences as the user sees them, then Test Connection (its button's operator).
    gui.call(f"bpy.ops.preferences.addon_show(module={ADDON!r}); result = 1")
    gui.wait_until("result = len(bpy.context.window_manager.windows) == 2", timeout=20)
    gui.screenshot("preferences")
    assert gui.call("result = invoke('hiptah.test_connection')") == ["FINISHED"]
    reports = gui.call(f"from {ADDON}.blender import runtime\nresult = list(runtime.REPORTS)")
    assert any("accepted" in text for _, text in reports), reports
    assert ui_sandbox.api_key not in repr(reports)

    gui.call(f"bpy.context.preferences.addons[{ADDON!r}].preferences.api_key = 'hp_wrong_key_123456'; result = 1")
    outcome = gui.call("result = invoke('hiptah.test_connection')")
    assert outcome[0] == "CANCELLED" and "key was refused" in outcome[1], outcome
    assert "hp_wrong_key_123456" not in repr(outcome)
    gui.screenshot("wrong-key-reported")
