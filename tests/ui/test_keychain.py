"""Scenario: the API key in the system keychain, in Debian's Blender 4.3.2 with its UI.

A real Secret Service (gnome-keyring-daemon under dbus-run-session) runs inside the same
Debian root as Blender. The artist opens Edit > Preferences on the add-on (the agent calls
the operator the menu item runs), clicks into the API Key field (found by hovering, in the
Preferences window's own context), pastes the key from the clipboard with ctrl+v and
presses Return. The add-on's own timer moves it into the keychain, empties the field and
saves the preferences: the preferences say where the key lives and userpref.blend no
longer holds it. Blender is quit and started again; the preferences still say so, and
Generate in the panel runs with the key from the keychain. The bundled cp313 wheels
(keyring, SecretStorage, jeepney, cryptography, cffi) are the ones Blender's Python 3.13
loads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.harness import SandboxServer
from tests.keychain_service import SecretService
from tests.ui.conftest import ADDON, setup_addon
from tests.ui.driver.session import GuiBlender, inside, wait_for
from tests.ui.scenario import follow, open_sidebar, press, type_prompt

SERVICE, USERNAME = "HiPtah for Blender", "api_key"
PREFS = f"bpy.context.preferences.addons[{ADDON!r}].preferences"
SETTINGS = (f"from {ADDON}.blender.settings import read_settings as _rs\n_s = _rs()\n"
            "result = dict(source=_s.api_key_source, status=_s.api_key_status, has_key=bool(_s.api_key))\n")


@pytest.fixture
def secret_service(ui_root: Path, tmp_path: Path) -> Iterator[SecretService]:
    if not (ui_root / "usr" / "bin" / "gnome-keyring-daemon").is_file():
        pytest.fail(f"the UI root {ui_root} has no gnome-keyring: scripts/ui_env.sh lists it; rebuild the root")
    svc = SecretService(tmp_path / "secret-service", wrap=inside)
    try:
        yield svc
    finally:
        svc.close()


def open_preferences(gui: GuiBlender) -> None:
    """Edit > Preferences on the add-on's entry (Add-ons section, HiPtah expanded): the
    operator the add-on's "Preferences" buttons run; it opens a window of its own."""
    gui.call(f"bpy.ops.preferences.addon_show(module={ADDON!r}); result = 1")
    gui.wait_until("result = len(bpy.context.window_manager.windows) == 2", timeout=20,
                   describe="the Preferences window")
    time.sleep(0.5)  # its first draw


def close_preferences(gui: GuiBlender) -> None:
    """Close the Preferences window (a window manager's close button does this)."""
    gui.call("_w = sidebar('PREFERENCES', 'WINDOW')['window']\n"
             "with bpy.context.temp_override(window=_w):\n    bpy.ops.wm.window_close()\nresult = 1")
    gui.wait_until("result = len(bpy.context.window_manager.windows) == 1", timeout=20,
                   describe="the Preferences window closed")


def paste_key(gui: GuiBlender, key: str) -> None:
    """The artist's paste: the key is on the clipboard (copied from the dashboard); click
    into the API Key field, ctrl+v, Return."""
    at = gui.find_button("Preferences.api_key", columns=(0.7, 0.5), area="PREFERENCES", region="WINDOW")
    gui.call(f"bpy.context.window_manager.clipboard = {key!r}; result = 1")
    press(gui, *at)  # a text field enters editing on click, its text selected
    time.sleep(0.3)
    gui.key("ctrl+v")
    time.sleep(0.3)
    gui.screenshot("key-pasted")  # the field in edit mode, the key masked
    gui.key("Return")
    gui.call("bpy.context.window_manager.clipboard = ''; result = 1")


def userpref_bytes(gui: GuiBlender) -> bytes:
    return Path(gui.call("result = bpy.utils.user_resource('CONFIG', path='userpref.blend')")).read_bytes()


def test_key_moves_into_the_keychain_survives_restart_and_generates(
        gui_factory: Callable[..., GuiBlender], extension_zip: Path, ui_sandbox: SandboxServer,
        secret_service: SecretService, tmp_path: Path) -> None:
    key = ui_sandbox.api_key
    env = {"DBUS_SESSION_BUS_ADDRESS": secret_service.address}
    gui = gui_factory("first", user_resources=tmp_path / "bur", env=env)
    gui.start()
    setup_addon(gui, extension_zip, ui_sandbox, api_key="", open_tab=False)  # the URL; no key yet
    open_preferences(gui)
    assert gui.call(f"result = {PREFS}.api_key") == ""
    paste_key(gui, key)
    # Only the keystrokes put it there: the field was empty and nothing else writes the key.
    assert wait_for(lambda: secret_service.stored(SERVICE, USERNAME) == key, timeout=30), \
        "the pasted key did not reach the keychain"
    # Nothing here calls the add-on: its timer sees the keychain's read-back and empties the field.
    gui.wait_until(f"result = {PREFS}.api_key == ''", timeout=30,
                   describe="the key field emptied once the keychain holds the key")
    assert secret_service.stored(SERVICE, USERNAME) == key
    facts = gui.call(
        "import sys, keyring, secretstorage, jeepney, cryptography, _cffi_backend\n"
        "result = dict(python=list(sys.version_info[:2]), backend=type(keyring.get_keyring()).__module__,\n"
        "    files=[m.__file__ for m in (keyring, secretstorage, jeepney, cryptography, _cffi_backend)])\n"
    )
    assert facts["python"] == [3, 13] and facts["backend"] == "keyring.backends.SecretService", facts
    assert all("/extensions/.local/lib/python3.13/site-packages/" in f for f in facts["files"]), facts
    assert "cpython-313" in facts["files"][-1], facts  # cffi's binary: the cp313 wheel
    assert gui.call(SETTINGS) == dict(source="keychain", status="in the system keychain (SecretService Keyring)",
                                      has_key=True)
    # Auto-save is on (Blender's default): the add-on saved the preferences without the key.
    assert key.encode() not in userpref_bytes(gui)
    time.sleep(0.5)  # the window redrawn with the emptied field and the status line
    gui.screenshot("preferences-key-in-keychain")
    assert gui.quit() == 0

    again = gui_factory("restarted", user_resources=gui.user_resources, env=env)
    again.start()
    assert again.call(f"result = {PREFS}.api_key") == ""
    assert key.encode() not in userpref_bytes(again)
    again.wait_until(SETTINGS.replace("result = dict(", "result = _s.api_key_source == 'keychain' and dict("),
                     timeout=30, describe="the key read from the keychain")
    open_preferences(again)
    again.screenshot("preferences-after-restart")
    close_preferences(again)
    open_sidebar(again)
    type_prompt(again, "a wooden stool")
    again.click_button("hiptah.generate")
    local_id = again.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        "result = [j.local_id for j in _rt.peek().scheduler.jobs()] if _rt.peek() else []",
        timeout=30, describe="the job queued by Generate")[0]
    follow(again, local_id, shot=None)  # the sandbox answers only its own key: the keychain's
    assert [j["prompt"] for j in ui_sandbox.jobs()] == ["a wooden stool"]
    assert again.call(SETTINGS)["source"] == "keychain"
    assert key not in again.log_tail(400)
