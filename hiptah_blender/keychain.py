"""The API key in the OS credential store, through ``keyring``; pure Python, no bpy.

Windows Credential Manager, the macOS Keychain or the Secret Service on Linux (GNOME
Keyring, KWallet, KeePassXC), whichever ``keyring`` selects. Every call can block: a
locked collection waits on an unlock dialog, a stopped daemon never answers, a missing
session bus fails only after D-Bus gives up. So each call runs on its own daemon thread
and the caller waits at most ``timeout`` seconds; while a call is still stuck, no
second one is started (the keychain then reads as "not answering" at once).

``keyring`` is imported on that thread at the first call, never at import time: enabling
the extension must not pay for it (a bench figure and a lazy-import test watch this).

The key is never in a state's repr, a status line or an exception text.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client.errors import redact, register_secret
from .i18n import N_

SERVICE = "HiPtah for Blender"
USERNAME = "api_key"
DEFAULT_TIMEOUT = 4.0  # seconds; a healthy keychain answers in milliseconds
# Importing keyring (and SecretStorage, cryptography) reads only local files but can take
# seconds on a loaded machine; that is waited for apart, so the timeout bounds the keychain.
IMPORT_TIMEOUT = 60.0

# keyring's placeholders when no real store is usable: "no keychain found".
_NO_STORE_MODULES = ("keyring.backends.fail", "keyring.backends.null")


class KeychainUnavailable(Exception):
    """No usable credential store (the message says why, never the key)."""


@dataclass(frozen=True)
class KeychainState:
    """What the keychain said last. ``available`` is None until a first answer."""

    available: bool | None = None
    key: str = ""
    backend: str = ""  # keyring backend's name, e.g. "SecretService Keyring"
    problem: str = ""  # why it is unavailable or the last call failed; "" when fine
    busy: bool = False  # a call is running now

    def __repr__(self) -> str:  # never the key
        return (f"KeychainState(available={self.available}, key={'***' if self.key else ''!r}, "
                f"backend={self.backend!r}, problem={self.problem!r}, busy={self.busy})")


def _backend_name(kr: Any) -> str:
    try:
        return str(getattr(kr, "name", "") or type(kr).__name__)
    except Exception:  # a backend's name property may itself probe the system
        return type(kr).__name__


def default_backend() -> Any:
    """keyring's choice for this system (honours PYTHON_KEYRING_BACKEND and keyring.set_keyring).

    Raises KeychainUnavailable when keyring found no usable store."""
    import keyring  # here, on the worker thread: never at enable

    kr = keyring.get_keyring()
    if type(kr).__module__ in _NO_STORE_MODULES:
        raise KeychainUnavailable(N_("no keychain found"))
    return kr


def _describe(exc: BaseException) -> str:
    """A one-line reason for the status line and logs (redacted, bounded)."""
    if isinstance(exc, KeychainUnavailable):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)[:200]


def import_keyring() -> None:
    """keyring's modules, without choosing a backend (that is what may block)."""
    import keyring  # noqa: F401


class _Call:
    """One keychain operation on its own daemon thread; ``ready`` once keyring is imported."""

    def __init__(self, fn: Callable[[], KeychainState], prepare: Callable[[], None] | None) -> None:
        self.ready = threading.Event()
        self.ready_at = 0.0  # time.monotonic() when keyring was imported and the call began
        self.done = threading.Event()
        self.result: KeychainState | None = None
        self._fn = fn
        self._prepare = prepare
        self.thread = threading.Thread(target=self._run, name="hiptah-keychain", daemon=True)

    def _run(self) -> None:
        try:
            if self._prepare is not None:
                with contextlib.suppress(Exception):  # the operation itself reports a failure
                    self._prepare()
            self.ready_at = time.monotonic()
            self.ready.set()
            self.result = self._fn()
        finally:
            self.ready.set()
            self.done.set()


class Keychain:
    """Bounded, thread-safe access to one stored key (``service``/``username``).

    ``backend`` returns the keyring backend to use (default: keyring's own choice), so
    tests can put any backend class in; it runs on the worker thread too.
    """

    def __init__(self, service: str = SERVICE, username: str = USERNAME, *,
                 timeout: float = DEFAULT_TIMEOUT, backend: Callable[[], Any] | None = None) -> None:
        self.service = service
        self.username = username
        self.timeout = timeout
        self._backend = backend or default_backend
        self._prepare = import_keyring if backend is None else None
        self._lock = threading.Lock()
        self._state = KeychainState()
        self._call: _Call | None = None
        self._kind = ""  # "read", "store" or "delete": what the running call does
        self._store_key_hash: int | None = None  # hash of the key being stored

    # ------------------------------------------------------------------ state
    def state(self) -> KeychainState:
        """The last answer; a call running past the timeout reads as "did not answer"
        (also when nobody waited for it: the UI never does)."""
        with self._lock:
            call = self._call
            busy = call is not None and not call.done.is_set()
            st = self._state
            if busy and call is not None and call.ready.is_set() and not st.problem \
                    and time.monotonic() - call.ready_at > self.timeout:
                return KeychainState(st.available if st.available is not None else False, st.key, st.backend,
                                     N_(f"the system keychain did not answer within {self.timeout:g} s"), True)
            return KeychainState(st.available, st.key, st.backend, st.problem, busy)

    def storing(self, key: str) -> bool:
        """Whether a store of exactly ``key`` is running now."""
        with self._lock:
            return (self._kind == "store" and self._call is not None and not self._call.done.is_set()
                    and self._store_key_hash == hash(key))

    # ------------------------------------------------------------------ calls
    def load(self, wait: float = 0.0) -> KeychainState:
        """Read the stored key (starting a read unless one is running); wait at most
        ``min(wait, timeout)`` seconds for the answer, after keyring's import (the first
        call only). Returns the state then."""
        return self._start("read", self._read, wait)

    def store(self, key: str, wait: float = 0.0) -> KeychainState:
        """Write ``key``, then read it back; the state's key changes only when the read-back
        equals it (a key change is never half-applied)."""
        key = key.strip()
        register_secret(key)
        return self._start("store", lambda: self._write(key), wait, key)

    def delete(self, wait: float = 0.0) -> KeychainState:
        """Remove the stored key; the state's key becomes "" only once it is gone."""
        return self._start("delete", self._remove, wait)

    def _start(self, kind: str, fn: Callable[[], KeychainState], wait: float, key: str | None = None) -> KeychainState:
        with self._lock:
            running = self._call
            if running is not None and not running.done.is_set():
                same = self._kind == kind and (kind != "store" or self._store_key_hash == hash(key))
                if not same:  # one call at a time: a stuck daemon must not collect threads
                    return self._busy_state()
                call = running  # the same request is already on its way: wait for that one
            else:
                call = _Call(lambda: self._finish(fn), self._prepare)
                self._call, self._kind = call, kind
                self._store_key_hash = hash(key) if key is not None else None
                call.thread.start()
        if wait > 0:
            call.ready.wait(IMPORT_TIMEOUT)
            if not call.done.wait(min(wait, self.timeout)):
                self._timed_out()
        return self.state()

    def _busy_state(self) -> KeychainState:
        return KeychainState(self._state.available, self._state.key, self._state.backend,
                             self._state.problem or N_("the system keychain is busy with another request"), True)

    def _timed_out(self) -> None:
        with self._lock:
            self._state = KeychainState(
                self._state.available if self._state.available is not None else False,
                self._state.key, self._state.backend,
                N_(f"the system keychain did not answer within {self.timeout:g} s"), True)

    def _finish(self, fn: Callable[[], KeychainState]) -> KeychainState:
        try:
            new = fn()
        except Exception as exc:  # any backend failure: unusable for now, keep the last key, say why
            with self._lock:
                old = self._state
            new = KeychainState(False, old.key, old.backend, _describe(exc))
        register_secret(new.key)
        with self._lock:
            self._state = new
        return new

    # -------------------------------------------------------- on the worker thread
    def _read(self) -> KeychainState:
        kr = self._backend()
        key = (kr.get_password(self.service, self.username) or "").strip()
        register_secret(key)
        return KeychainState(True, key, _backend_name(kr), "")

    def _write(self, key: str) -> KeychainState:
        kr = self._backend()
        previous = kr.get_password(self.service, self.username)
        kr.set_password(self.service, self.username, key)
        back = (kr.get_password(self.service, self.username) or "").strip()
        if back != key:
            # Put the old entry back: the keychain holds the old key or the new one, never a third.
            if previous is not None:
                kr.set_password(self.service, self.username, previous)
            else:
                kr.delete_password(self.service, self.username)
            raise KeychainUnavailable(N_("the system keychain did not keep the key (read back a different value)"))
        return KeychainState(True, key, _backend_name(kr), "")

    def _remove(self) -> KeychainState:
        kr = self._backend()
        if kr.get_password(self.service, self.username) is not None:
            kr.delete_password(self.service, self.username)
        if kr.get_password(self.service, self.username) is not None:
            raise KeychainUnavailable(N_("the system keychain still holds the key after removing it"))
        return KeychainState(True, "", _backend_name(kr), "")
