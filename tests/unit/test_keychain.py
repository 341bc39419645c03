"""hiptah_blender.keychain: bounded calls into keyring, with backends put in through
keyring's own selection mechanism (keyring.set_keyring, a backend class,
PYTHON_KEYRING_BACKEND). The Windows and macOS backends cannot run here: these
backends stand in for them, through the same keyring calls our code makes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError

from hiptah_blender import keychain
from hiptah_blender.client import errors

KEY = "hp_live_0123456789abcdefKEYCHAIN"


class MemoryKeyring(KeyringBackend):
    """A working store (as Credential Manager or the macOS Keychain would be)."""

    # Every KeyringBackend subclass joins keyring's own detection in this process; below zero,
    # keyring never picks these (nor chains them) by itself: only set_keyring() does.
    priority = -1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.calls: list[str] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.calls.append("get")
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls.append("set")
        self.items[service, username] = password

    def delete_password(self, service: str, username: str) -> None:
        self.calls.append("delete")
        if (service, username) not in self.items:
            raise PasswordDeleteError("not found")
        del self.items[service, username]


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("Failed to unlock the collection!")

    set_password = get_password  # type: ignore[assignment]


class HangingKeyring(MemoryKeyring):
    """A daemon that never answers (until released)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.entered += 1
        self.release.wait(30)
        return super().get_password(service, username)


class LossyKeyring(MemoryKeyring):
    """Accepts the write but keeps something else (read-back must catch it)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        super().set_password(service, username, password if password.startswith("hp_old") else password[:-1])


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_store_reads_back_and_load_finds_it(restore_keyring: None) -> None:
    store = MemoryKeyring()
    keyring.set_keyring(store)  # keyring's selection: our default backend() returns it
    chain = keychain.Keychain(timeout=2)
    state = chain.load(wait=2)
    assert state.available is True and state.key == "" and state.backend
    state = chain.store(f"  {KEY} ", wait=2)
    assert state.key == KEY and state.available and not state.problem and not state.busy
    assert store.items[keychain.SERVICE, keychain.USERNAME] == KEY
    assert store.calls[-3:] == ["get", "set", "get"]  # the write is read back before it counts
    fresh = keychain.Keychain(timeout=2).load(wait=2)
    assert fresh.key == KEY
    assert KEY not in repr(fresh) and "***" in repr(fresh)
    assert KEY not in errors.redact(f"key {KEY}")  # stored keys are registered secrets


def test_delete_removes_the_key(restore_keyring: None) -> None:
    store = MemoryKeyring()
    store.items[keychain.SERVICE, keychain.USERNAME] = KEY
    keyring.set_keyring(store)
    chain = keychain.Keychain(timeout=2)
    assert chain.load(wait=2).key == KEY
    state = chain.delete(wait=2)
    assert state.key == "" and state.available and not store.items
    assert chain.delete(wait=2).key == ""  # nothing to delete is fine


def test_no_keychain_found_through_environment_variable() -> None:
    # PYTHON_KEYRING_BACKEND is keyring's documented switch; the fail backend is what
    # keyring picks when no store is usable (no D-Bus session, no Secret Service).
    code = (
        "from hiptah_blender import keychain; s = keychain.Keychain(timeout=5).load(wait=5);"
        "print(s.available, '|', s.problem)"
    )
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == "False | no keychain found"


def test_backend_class_through_environment_variable(tmp_path: os.PathLike[str]) -> None:
    # A backend named by PYTHON_KEYRING_BACKEND, as a user on Windows/macOS could force
    # one; our calls go through it.
    mod = os.path.join(str(tmp_path), "fakestore.py")
    with open(mod, "w", encoding="utf-8") as fh:
        fh.write(
            "from keyring.backend import KeyringBackend\n"
            "ITEMS = {}\n"
            "class Store(KeyringBackend):\n"
            "    priority = 1\n"
            "    def get_password(self, s, u): return ITEMS.get((s, u))\n"
            "    def set_password(self, s, u, p): ITEMS[s, u] = p\n"
            "    def delete_password(self, s, u): ITEMS.pop((s, u))\n"
        )
    code = (
        "import fakestore; from hiptah_blender import keychain;"
        f"c = keychain.Keychain(timeout=5); s = c.store({KEY!r}, wait=5);"
        "print(type(__import__('keyring').get_keyring()).__name__, s.available, s.key == "
        f"{KEY!r}, fakestore.ITEMS)"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="fakestore.Store", PYTHONPATH=f"{tmp_path}{os.pathsep}{root}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True, cwd=root)
    assert out.stdout.startswith("Store True True {('HiPtah for Blender', 'api_key'): ")


def test_locked_collection_falls_back_with_reason() -> None:
    chain = keychain.Keychain(timeout=2, backend=LockedKeyring)
    state = chain.load(wait=2)
    assert state.available is False and state.key == ""
    assert state.problem == "KeyringLocked: Failed to unlock the collection!"
    state = chain.store(KEY, wait=2)
    assert state.available is False and state.key == "" and KEY not in state.problem


def test_lossy_write_is_not_applied() -> None:
    store = LossyKeyring()
    store.items[keychain.SERVICE, keychain.USERNAME] = "hp_old_key_0000000000"
    chain = keychain.Keychain(timeout=2, backend=lambda: store)
    assert chain.load(wait=2).key == "hp_old_key_0000000000"
    state = chain.store(KEY, wait=2)
    assert state.key == "hp_old_key_0000000000"  # never half-applied: the old key stays known
    assert "did not keep the key" in state.problem and state.available is False
    assert store.items[keychain.SERVICE, keychain.USERNAME] == "hp_old_key_0000000000"  # restored


def test_hanging_daemon_is_bounded_and_never_piles_up_threads() -> None:
    store = HangingKeyring()
    chain = keychain.Keychain(timeout=0.3, backend=lambda: store)
    started = time.monotonic()
    state = chain.load(wait=10)
    waited = time.monotonic() - started
    assert waited < 2.0, waited  # bounded by the timeout, not the daemon
    assert state.available is False and state.busy and "did not answer within 0.3 s" in state.problem
    # While the call is stuck, further requests do not start more threads or wait again.
    started = time.monotonic()
    again = chain.store(KEY, wait=10)
    assert time.monotonic() - started < 0.1 and again.busy and again.key == ""
    chain.load(wait=0)
    assert store.entered == 1
    store.release.set()  # the daemon answers at last: the state catches up
    deadline = time.monotonic() + 5
    while chain.state().busy and time.monotonic() < deadline:
        time.sleep(0.01)
    final = chain.state()
    assert final.available is True and not final.busy and final.problem == ""


def test_no_wait_returns_at_once() -> None:
    store = HangingKeyring()
    chain = keychain.Keychain(timeout=1, backend=lambda: store)
    started = time.monotonic()
    state = chain.load()  # the UI path: never waits
    assert time.monotonic() - started < 0.1 and state.busy and state.available is None
    time.sleep(1.2)  # nobody waits (the UI): past the timeout the state says it is not answering
    late = chain.state()
    assert late.busy and late.available is False and "did not answer within 1 s" in late.problem
    store.release.set()
    assert chain.load(wait=5).available is True


def test_keyring_not_imported_until_first_call() -> None:
    code = (
        "import sys; from hiptah_blender import keychain; c = keychain.Keychain();"
        "print('keyring' in sys.modules)"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True, cwd=root)
    assert out.stdout.strip() == "False"
