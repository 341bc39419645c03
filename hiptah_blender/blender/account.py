"""Server refusals that only the user can fix, kept for the panel's status line.

A 401 (the key is refused) or a 403 (the plan's quota is used up) fails the job that
met it, but the next job would meet it too: the status line keeps saying so, with the
fix, until the settings it depends on change (key or base URL; for the plan also the
plan setting) or the server accepts a request again. draw() only compares a small
fingerprint of the settings: no I/O, no pydantic, never the key itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..jobs.records import ErrorInfo

if TYPE_CHECKING:
    from .settings import Settings

SCOPES: dict[str, str] = {"AuthenticationError": "key", "PlanLimitError": "plan"}


@dataclass(frozen=True)
class Refusal:
    error: ErrorInfo
    scope: str  # "key" | "plan"
    fingerprint: tuple[object, ...]


_current: Refusal | None = None


def fingerprint(settings: Settings, scope: str) -> tuple[object, ...]:
    # hash(): the key's identity in this process, without keeping another copy of it.
    key = (hash(settings.api_key), settings.base_url)
    return key if scope == "key" else (*key, settings.plan, settings.max_concurrent)


def note_failure(error: ErrorInfo | None, settings: Settings) -> bool:
    """Remember ``error`` when it is a refusal the settings must fix. True if it was."""
    global _current
    scope = SCOPES.get(error.kind) if error is not None else None
    if error is None or scope is None:
        return False
    _current = Refusal(error, scope, fingerprint(settings, scope))
    return True


def note_success(scope: str | None = None) -> None:
    """The server accepted a request: forget the refusal (only a ``scope`` one if given:
    Test Connection proves the key, not the plan's quota)."""
    global _current
    if scope is None or (_current is not None and _current.scope == scope):
        _current = None


def current(settings: Settings) -> Refusal | None:
    """The refusal to show with ``settings`` (None once the relevant settings changed)."""
    global _current
    refusal = _current
    if refusal is None:
        return None
    if fingerprint(settings, refusal.scope) != refusal.fingerprint:
        _current = None
        return None
    return refusal
