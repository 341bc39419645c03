"""Building the HiPtah client from the effective settings, and what it says about us.

:func:`make_client` may run on a scheduler worker thread: it reads only the Settings
snapshot it is given (taken on the main thread), never bpy. The User-Agent is worked
out once, on the main thread, by :func:`user_agent`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import bpy

from .settings import Settings

if TYPE_CHECKING:
    from ..client.http import HiptahClient


def addon_version() -> str:
    """The version from blender_manifest.toml (inside the installed extension, or at the
    repository root in a checkout); the manifest is the single source of it."""
    import tomllib

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in (package_dir, os.path.dirname(package_dir)):
        try:
            with open(os.path.join(folder, "blender_manifest.toml"), "rb") as fh:
                return str(tomllib.load(fh).get("version", "0"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return "0"


def user_agent() -> str:
    """Main thread only (reads bpy.app)."""
    return f"hiptah-blender/{addon_version()} Blender/{bpy.app.version_string}"


def make_client(settings: Settings, agent: str, **options: Any) -> HiptahClient:
    """A client for ``settings``. Raises the HiptahError that says what to fix when
    there is no key, the URL is bad or online access is off. ``options``: HiptahClient's
    (timeout, max_retries) for a quick check."""
    settings.check()
    from ..client.http import HiptahClient  # requests: imported only when a client is made

    return HiptahClient(
        settings.api_key,
        settings.base_url,
        ca_bundle=settings.ca_bundle,
        user_agent=agent,
        **options,
    )


__all__ = ["addon_version", "check", "make_client", "user_agent"]


def check(settings: Settings, *, timeout: float) -> str:
    """Test Connection: one short request with these settings; a refusal is kept for the
    status line (account.py), a success clears it. Raises HiptahError."""
    from ..client import errors
    from ..jobs.records import ErrorInfo
    from . import account

    client = make_client(settings, user_agent(), timeout=timeout, max_retries=1)
    try:
        answer = client.check_connection()
    except errors.HiptahError as exc:
        account.note_failure(ErrorInfo.from_exception(exc), settings)
        raise
    account.note_success("key")
    return answer
