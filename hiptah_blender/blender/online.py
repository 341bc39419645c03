"""Blender's *Allow Online Access* drives the scheduler's pause gate.

The setting can change at any time (Preferences > System > Network), not only before a
job is submitted, so the runtime's main-thread step hands every change to
:class:`OnlineWatch`: turned off (for a remote base URL), the scheduler pauses (no
request starts, a download under way is abandoned and its partial file deleted);
turned on again, the same jobs carry on. A loopback sandbox is exempt, through
``settings.online_access_exempt`` (tests patch that one function to treat their
loopback sandbox as a remote server).

No bpy here: the runtime reads ``bpy.app.online_access`` and passes it in.
"""

from __future__ import annotations

from typing import Protocol

from ..client import errors
from ..jobs.records import ErrorInfo
from . import settings as _settings


class Pausable(Protocol):
    """What OnlineWatch needs from the Scheduler."""

    @property
    def paused(self) -> ErrorInfo | None: ...

    def set_paused(self, reason: ErrorInfo | None) -> None: ...


def offline_reason(online_access: bool, base_url: str) -> ErrorInfo | None:
    """The error to show while requests to ``base_url`` are not allowed, else None."""
    if online_access or _settings.online_access_exempt(base_url):
        return None
    return ErrorInfo.from_exception(errors.OnlineAccessDisabledError())


class OnlineWatch:
    """Remembers the last (online access, base URL) seen, so a step costs one tuple
    comparison when nothing changed."""

    def __init__(self) -> None:
        self._seen: tuple[bool, str] | None = None
        self.reason: ErrorInfo | None = None  # what the panel shows on held jobs (draw reads it)

    def update(self, scheduler: Pausable, online_access: bool, base_url: str) -> bool:
        """Pause or resume ``scheduler`` when the setting changed. True when it did."""
        seen = (bool(online_access), base_url)
        if seen == self._seen:
            return False
        self._seen = seen
        reason = offline_reason(*seen)
        if (reason is None) == (scheduler.paused is None):
            return False
        scheduler.set_paused(reason)
        self.reason = reason
        return True
