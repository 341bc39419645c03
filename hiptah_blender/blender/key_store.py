"""Where the API key lives, for the Blender layer: the system keychain when there is
one, else the add-on preferences (userpref.blend); HIPTAH_API_KEY overrides both.

The pure ``hiptah_blender.keychain`` does the bounded calls on its own thread. Here:
which key wins, the status line the preferences show, and moving a key typed into the
preferences (or left there by an older version) into the keychain. The field is
emptied only after the keychain's read-back equals it, and only while it still holds
that same key (a newer paste is never clobbered). With the UI the main thread never
waits on the keychain (a timer picks up the answer); headless Blender waits at most
the keychain timeout, then falls back to the preference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy

from .. import keychain
from ..i18n import N_

# Pref keys whose move into the keychain failed this session: not retried on every draw.
_failed_moves: set[int] = set()
_keychain: keychain.Keychain | None = None
_POLL = 0.2  # seconds between timer checks of a running keychain call (UI only)


def get_keychain() -> keychain.Keychain:
    """The session's keychain access (created at first use, never at enable)."""
    global _keychain
    if _keychain is None:
        _keychain = keychain.Keychain()
    return _keychain


def reset(chain: keychain.Keychain | None = None) -> None:
    """Use ``chain`` from now on (tests), or start afresh; forgets failed moves."""
    global _keychain
    _keychain = chain
    _failed_moves.clear()


@dataclass(frozen=True)
class KeyChoice:
    key: str
    source: str  # "keychain", "preferences" or "" (the environment is settings.py's)
    status: str  # where the key lives, for the preferences and the command line
    move_done: bool = False  # the keychain holds the preference's key: empty the field

    def __repr__(self) -> str:
        return f"KeyChoice(source={self.source!r}, status={self.status!r})"


def _no_keychain(state: keychain.KeychainState) -> str:
    if state.available is None:
        return N_("looking for the system keychain")
    return state.problem or N_("no keychain found")


def choose(pref_key: str, *, wait: float = 0.0) -> KeyChoice:
    """The key to use and where it lives. A non-empty preference wins over the keychain
    (it is the newer paste, or the only copy) and is moved into the keychain when there
    is one. ``wait`` bounds how long to wait for the keychain (0 with the UI)."""
    chain = get_keychain()
    state = chain.state()
    if state.available is None:  # first use (a timeout makes it False: waited once only)
        state = chain.load(wait)
    if pref_key:
        if state.available and state.key != pref_key and hash(pref_key) not in _failed_moves:
            state = chain.store(pref_key, wait)
            if not state.busy and state.key != pref_key:
                _failed_moves.add(hash(pref_key))
        if state.available and state.key == pref_key and not state.busy:
            return KeyChoice(pref_key, "keychain", N_(f"in the system keychain ({state.backend})"), True)
        if state.busy and state.available is not False and chain.storing(pref_key):
            return KeyChoice(pref_key, "preferences", N_("in Blender's preferences: moving it into the system keychain"))
        reason = _no_keychain(state)  # "{reason}" is translated in turn (catalog._NESTED)
        return KeyChoice(pref_key, "preferences", N_(f"in Blender's preferences: {reason}"))
    if state.available and state.key:
        return KeyChoice(state.key, "keychain", N_(f"in the system keychain ({state.backend})"))
    if state.available:
        return KeyChoice("", "", N_(f"none yet; a key you paste goes into the system keychain ({state.backend})"))
    reason = _no_keychain(state)
    return KeyChoice("", "", N_(f"none yet; a key you paste stays in Blender's preferences: {reason}"))


def empty_field(prefs: Any) -> None:
    """Empty the preference field once the keychain holds its key: now when headless,
    else from a timer (draw code must not write properties)."""
    if bpy.app.background:
        _empty_now(prefs)
    elif not bpy.app.timers.is_registered(_empty_later):
        bpy.app.timers.register(_empty_later, first_interval=0.0)


def _empty_later() -> None:
    from .addon_prefs import addon_preferences  # the live object, looked up when the timer fires

    prefs = addon_preferences()
    if prefs is not None:
        _empty_now(prefs)


def _empty_now(prefs: Any) -> None:
    key = str(prefs.api_key).strip()
    state = get_keychain().state()
    if key and state.available and state.key == key and not state.busy:
        prefs.api_key = ""  # the update callback sees "" and does nothing
        _forget_on_disk()


def _forget_on_disk() -> None:
    """userpref.blend may still hold the key: with auto-save on, save the preferences now;
    otherwise mark them changed so Blender offers to save them. Headless Blender never
    writes userpref.blend by itself, so it is left alone (the next UI session does this)."""
    if bpy.app.background:
        return
    preferences = bpy.context.preferences
    if preferences is None:
        return
    if preferences.use_preferences_save:
        bpy.ops.wm.save_userpref()
    else:
        preferences.is_dirty = True


def key_edited(key: str) -> None:
    """The preference field changed (a paste): start moving it into the keychain. With
    the UI a timer watches for the answer, so the field empties without a redraw."""
    key = key.strip()
    if not key:
        return
    _failed_moves.discard(hash(key))  # a fresh paste of the same key gets a fresh try
    if bpy.app.background:
        return  # read_settings() moves it, waiting at most the keychain timeout
    chain = get_keychain()
    state = chain.state()
    if state.available:
        chain.store(key)
    elif not state.busy:  # never asked, or it failed before: ask again (a fresh paste, a fresh try)
        chain.load()
    if not bpy.app.timers.is_registered(_watch):
        bpy.app.timers.register(_watch, first_interval=_POLL)


def _watch() -> float | None:
    """Timer: once the keychain answered, settle the field (move done or failed)."""
    from .addon_prefs import addon_preferences

    prefs = addon_preferences()
    if prefs is None:
        return None
    choice = choose(str(prefs.api_key).strip())
    if choice.move_done:
        _empty_now(prefs)
    _redraw_preferences()
    state = get_keychain().state()
    return _POLL if state.busy and not state.problem else None  # a stuck call: stop watching


def _redraw_preferences() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
