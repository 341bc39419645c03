"""The API key in a real Secret Service (Debian's gnome-keyring-daemon under
dbus-run-session, tests/keychain_service.py), in real Blender (bpy, background mode):
store and read back, migrate from the preferences (userpref.blend checked byte for
byte), a key change, a locked collection, no D-Bus at all, a daemon that never answers.
keyring chooses the backend itself (keyring.core.init_backend) in every case."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.keychain_service import SecretService, ensure_packages

from .conftest import ADDON, disable_addon, enable_addon

bpy = pytest.importorskip("bpy")
keyring_core = pytest.importorskip("keyring.core")
keyring_backend = pytest.importorskip("keyring.backend")


def detect_backend() -> None:
    """keyring's own selection, afresh. keyring remembers the viable backends once per
    process (a Blender process has one environment); these tests change the session bus
    within one process, so they make it look again."""
    vars(keyring_backend.get_all_keyring).pop("saved_result", None)  # jaraco's once(): its cache
    keyring_core.init_backend()

KEY = "hp_live_Kc7x0123456789abcdefKEYA"
NEW_KEY = "hp_live_Zq9y9876543210fedcbaKEYB"
TIMEOUT = 2.0


def mod(name: str) -> ModuleType:
    return importlib.import_module(f"{ADDON}.blender.{name}")


def userpref_bytes() -> bytes:
    bpy.ops.wm.save_userpref()
    path = bpy.utils.user_resource("CONFIG", path="userpref.blend")
    return Path(path).read_bytes()


@pytest.fixture(scope="module")
def packages() -> None:
    why = ensure_packages()
    if why:
        pytest.skip(why)


@pytest.fixture
def service(packages: None, tmp_path: Path) -> Iterator[SecretService]:
    svc = SecretService(tmp_path / "secret-service")
    try:
        yield svc
    finally:
        svc.close()


class Env:
    """The add-on enabled, no HIPTAH_API_KEY, keyring pointed at a chosen session bus."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch

    @property
    def prefs(self) -> Any:
        return bpy.context.preferences.addons[ADDON].preferences

    def use_bus(self, address: str | None) -> None:
        """As if Blender started in this session: keyring picks its backend afresh and the
        add-on's keychain state starts empty."""
        self.mp.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        if address is None:
            self.mp.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/hiptah-no-bus")
        else:
            self.mp.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        detect_backend()
        self.restart()

    def no_keychain_backend(self) -> None:
        self.mp.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        detect_backend()
        self.restart()

    def restart(self, timeout: float = TIMEOUT) -> None:
        keychain = importlib.import_module(f"{ADDON}.keychain")
        mod("key_store").reset(keychain.Keychain(timeout=timeout))

    def settings(self) -> Any:
        return mod("settings").read_settings()


@pytest.fixture
def env(no_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    disable_addon()
    enable_addon()
    e = Env(monkeypatch)
    try:
        yield e
    finally:
        e.prefs.api_key = ""
        mod("key_store").reset()
        disable_addon()
        monkeypatch.undo()  # PYTHON_KEYRING_BACKEND back to tests/conftest.py's fail backend
        detect_backend()


def test_pasted_key_goes_into_the_keychain(env: Env, service: SecretService) -> None:
    env.use_bus(service.address)
    env.prefs.api_key = KEY
    s = env.settings()
    assert (s.api_key, s.api_key_source) == (KEY, "keychain")
    assert s.api_key_status == "in the system keychain (SecretService Keyring)"
    assert env.prefs.api_key == ""  # emptied once the read-back matched
    assert service.stored("HiPtah for Blender", "api_key") == KEY
    assert KEY.encode() not in userpref_bytes()
    # Next start: the key comes from the keychain alone.
    env.restart()
    s = env.settings()
    assert (s.api_key, s.api_key_source, env.prefs.api_key) == (KEY, "keychain", "")


def test_key_in_preferences_is_migrated_and_leaves_userpref(env: Env, service: SecretService) -> None:
    # An older version (or no keychain) left the key in userpref.blend.
    env.no_keychain_backend()
    env.prefs.api_key = KEY
    s = env.settings()
    assert (s.api_key, s.api_key_source) == (KEY, "preferences")
    assert s.api_key_status == "in Blender's preferences: no keychain found"
    assert KEY.encode() in userpref_bytes()  # the byte check below can fail
    # Restart with a Secret Service: moved, read back, then removed from the preferences.
    env.use_bus(service.address)
    s = env.settings()
    assert (s.api_key, s.api_key_source, env.prefs.api_key) == (KEY, "keychain", "")
    assert service.stored("HiPtah for Blender", "api_key") == KEY
    data = userpref_bytes()
    assert KEY.encode() not in data and KEY[8:20].encode() not in data


def test_key_change_replaces_the_stored_key(env: Env, service: SecretService) -> None:
    env.use_bus(service.address)
    env.prefs.api_key = KEY
    assert env.settings().api_key == KEY and env.prefs.api_key == ""
    env.prefs.api_key = NEW_KEY
    s = env.settings()
    assert (s.api_key, s.api_key_source, env.prefs.api_key) == (NEW_KEY, "keychain", "")
    assert service.stored("HiPtah for Blender", "api_key") == NEW_KEY


def test_locked_collection_keeps_the_preference(env: Env, service: SecretService) -> None:
    env.use_bus(service.address)
    service.lock()  # no unlock dialog can appear here: gcr-prompter has no display
    env.prefs.api_key = KEY
    started = time.monotonic()
    s = env.settings()
    assert time.monotonic() - started < TIMEOUT + 1
    assert (s.api_key, s.api_key_source, env.prefs.api_key) == (KEY, "preferences", KEY)
    assert s.api_key_status.startswith("in Blender's preferences: KeyringLocked")
    assert KEY not in s.api_key_status


def test_no_dbus_at_all(env: Env, packages: None) -> None:
    env.use_bus(None)
    env.prefs.api_key = KEY
    s = env.settings()
    assert (s.api_key, s.api_key_source, env.prefs.api_key) == (KEY, "preferences", KEY)
    assert s.api_key_status == "in Blender's preferences: no keychain found"
    assert KEY.encode() in userpref_bytes()  # nothing lost: the key stays where it was


def test_daemon_that_never_answers(env: Env, service: SecretService) -> None:
    env.use_bus(service.address)
    env.prefs.api_key = KEY
    assert env.settings().api_key_source == "keychain"
    service.freeze()
    try:
        env.restart(timeout=1.0)
        started = time.monotonic()
        s = env.settings()
        waited = time.monotonic() - started
        assert 0.9 < waited < 2.5, waited  # a bounded wait, then the fallback
        assert (s.api_key, s.api_key_source) == ("", "")
        assert "the system keychain did not answer within 1 s" in s.api_key_status
        # Later reads do not wait again while the daemon is stuck.
        started = time.monotonic()
        env.prefs.api_key = NEW_KEY
        s = env.settings()
        assert time.monotonic() - started < 0.5
        assert (s.api_key, s.api_key_source, env.prefs.api_key) == (NEW_KEY, "preferences", NEW_KEY)
    finally:
        service.thaw()
    # The stuck call completes once the daemon answers; the next read moves the new key.
    chain = mod("key_store").get_keychain()
    deadline = time.monotonic() + 10
    while chain.state().busy and time.monotonic() < deadline:
        time.sleep(0.05)
    s = env.settings()
    assert (s.api_key, s.api_key_source, env.prefs.api_key) == (NEW_KEY, "keychain", "")


def test_environment_overrides_the_keychain(env: Env, service: SecretService,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    env.use_bus(service.address)
    env.prefs.api_key = KEY
    assert env.settings().api_key_source == "keychain"
    monkeypatch.setenv("HIPTAH_API_KEY", NEW_KEY)
    s = env.settings()
    assert (s.api_key, s.api_key_source, s.api_key_from_env) == (NEW_KEY, "environment", True)


def test_status_command_says_where_the_key_lives(env: Env, service: SecretService,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    env.use_bus(service.address)
    env.prefs.api_key = KEY
    env.settings()
    env.restart()
    mod("commands").execute(["status"])
    out = capsys.readouterr().out
    assert "key lives:     in the system keychain (SecretService Keyring)" in out
    assert KEY not in out and os.environ.get("HIPTAH_API_KEY") is None
