"""Effective settings: add-on preferences overlaid with environment variables.

Read on the main thread (Blender data must not be touched from worker threads)
into a frozen snapshot that the runtime hands to worker-side factories. Cheap
enough for panel draw(): a dozen property reads and two ``os.environ`` lookups.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import bpy

from .. import assets
from ..client import errors, validation
from ..i18n import N_
from ..placement import SizeChoice

# Re-exported: callers keep importing them from here.
from .addon_prefs import ADDON_ID as ADDON_ID
from .addon_prefs import addon_preferences as addon_preferences

ENV_API_KEY = "HIPTAH_API_KEY"
ENV_BASE_URL = "HIPTAH_BASE_URL"

PLAN_LIMITS: dict[str, int] = {"CREATOR": 10, "PRO": 30}


def online_access_exempt(base_url: str) -> bool:
    """Whether ``base_url`` works with Blender's online access off: a loopback sandbox
    never leaves the machine. The one place this rule lives (submit check and the pause
    gate); tests patch it to treat their loopback sandbox as a remote server."""
    return validation.is_sandbox_url(base_url)


@dataclass(frozen=True)
class Settings:
    api_key: str = ""
    api_key_from_env: bool = False
    api_key_source: str = ""  # "environment", "keychain", "preferences" or "" (none)
    api_key_status: str = ""  # where the key lives, e.g. "in the system keychain (...)"
    base_url: str = validation.DEFAULT_BASE_URL
    base_url_from_env: bool = False
    base_url_error: str | None = None  # why base_url is unusable, None when fine
    max_concurrent: int = 10
    plan: str = "CREATOR"
    default_format: str = validation.DEFAULT_FORMAT
    default_quality: str = validation.DEFAULT_QUALITY
    poll_interval: float = 2.0
    job_deadline: float = 600.0
    download_dir: str = ""
    ca_bundle: str | None = None
    auto_import: bool = True
    placement: str = "CURSOR"  # or "ORIGIN"
    collection_name: str = "HiPtah"
    online_access: bool = False
    asset_library: bool = True
    asset_library_dir: str = ""  # empty: assets.default_library_dir()
    size: SizeChoice = field(default_factory=SizeChoice)

    @property
    def library_dir(self) -> str:
        return self.asset_library_dir or assets.default_library_dir()

    def __repr__(self) -> str:  # never show the key, even in a debugger or a log
        return f"Settings(base_url={self.base_url!r}, api_key={'***' if self.api_key else ''!r})"

    @property
    def is_sandbox(self) -> bool:
        return validation.is_sandbox_url(self.base_url)

    def configuration_error(self) -> errors.ConfigurationError | None:
        """What stops any request right now, as the error the user would be shown."""
        if self.base_url_error:
            return errors.InvalidBaseURLError(self.base_url_error)
        try:
            validation.clean_api_key(self.api_key)
        except errors.MissingAPIKeyError as exc:
            return exc
        if not self.online_access and not online_access_exempt(self.base_url):
            return errors.OnlineAccessDisabledError()
        return None

    def check(self) -> None:
        """Raise the configuration error, if any (before creating a client or a job)."""
        problem = self.configuration_error()
        if problem is not None:
            raise problem


def user_dir(*parts: str, create: bool = True) -> str:
    """A writable per-user folder for this add-on, created when missing (unless ``create``
    is False: for display in draw code, which must not touch the disk).

    Installed as an extension: Blender's extension user folder, which survives
    upgrades. Registered from a source checkout (tests, development): a
    "hiptah_blender" folder in Blender's user config, else the temp folder.
    """
    sub = os.path.join(*parts) if parts else ""
    try:
        path = bpy.utils.extension_path_user(ADDON_ID, path=sub, create=create)
        if path:
            return str(path)
    except ValueError:  # "package does not name an extension"
        pass
    base = bpy.utils.user_resource("CONFIG", path="hiptah_blender", create=create) or os.path.join(
        tempfile.gettempdir(), "hiptah_blender"
    )
    path = os.path.join(base, sub) if sub else base
    if create:
        os.makedirs(path, exist_ok=True)
    return path


def default_download_dir(*, create: bool = True) -> str:
    return user_dir("models", create=create)


def store_path() -> str:
    return os.path.join(user_dir(), "jobs.json")


def _stored_key(prefs: Any) -> dict[str, Any]:
    """The key from the system keychain or the preferences (key_store.py decides); headless
    Blender waits for the keychain at most its timeout, the UI never waits."""
    from . import key_store

    pref_key = str(prefs.api_key).strip() if prefs is not None else ""
    wait = key_store.get_keychain().timeout if bpy.app.background else 0.0
    choice = key_store.choose(pref_key, wait=wait)
    if choice.move_done and prefs is not None:
        key_store.empty_field(prefs)
    return {"api_key": choice.key, "api_key_source": choice.source, "api_key_status": choice.status}


def read_settings(context: Any = None) -> Settings:
    """The effective settings now. Registers the key as a secret so no error or report
    can ever echo it."""
    prefs = addon_preferences(context)
    values: dict[str, Any] = {}
    if prefs is not None:
        plan = str(prefs.plan)
        values.update(
            base_url=str(prefs.base_url).strip() or validation.DEFAULT_BASE_URL,
            max_concurrent=PLAN_LIMITS.get(plan, max(1, int(prefs.concurrent_limit))),
            plan=plan,
            default_format=str(prefs.default_format),
            default_quality=str(prefs.default_quality),
            poll_interval=float(prefs.poll_interval),
            job_deadline=float(prefs.job_deadline),
            download_dir=bpy.path.abspath(str(prefs.download_dir)).strip(),
            ca_bundle=bpy.path.abspath(str(prefs.ca_bundle)).strip() or None,
            auto_import=bool(prefs.auto_import),
            placement=str(prefs.placement),
            collection_name=str(prefs.collection_name).strip() or "HiPtah",
            asset_library=bool(prefs.asset_library),
            asset_library_dir=bpy.path.abspath(str(prefs.asset_library_dir)).strip(),
            size=SizeChoice(str(prefs.import_size), float(prefs.target_height), str(prefs.facing)),
        )
    env_key = os.environ.get(ENV_API_KEY, "").strip()
    if env_key:
        values.update(api_key=env_key, api_key_from_env=True, api_key_source="environment",
                      api_key_status=N_(f"from {ENV_API_KEY} (it overrides the keychain and the preferences)"))
    else:
        values.update(_stored_key(prefs))
    env_url = os.environ.get(ENV_BASE_URL, "").strip()
    if env_url:
        values["base_url"] = env_url
        values["base_url_from_env"] = True
    try:
        values["base_url"] = validation.clean_base_url(values.get("base_url", validation.DEFAULT_BASE_URL))
    except errors.InvalidBaseURLError as exc:
        values["base_url_error"] = exc.message
    if not values.get("download_dir"):
        values["download_dir"] = default_download_dir(create=False)  # created by the runtime, not in draw()
    errors.register_secret(values.get("api_key"))
    return Settings(online_access=bool(bpy.app.online_access), **values)
