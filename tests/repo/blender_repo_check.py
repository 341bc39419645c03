"""Add our remote repository to Blender, install from it, then upgrade from it.

Run by tests/repo/test_remote_repo.py in a fresh interpreter of a bare bpy venv
(``python -I``, a temporary BLENDER_USER_RESOURCES):

    python -I blender_repo_check.py INDEX_URL API_KEY BASE_URL PROMPT

Phase 1: Preferences > Get Extensions > Repositories > Add Remote Repository
(``preferences.extension_repo_add``), sync (``extensions.repo_sync``), install
(``extensions.package_install``), API key and base URL into the add-on's preferences,
one generation (so the job history exists). Prints ``HIPTAH_PHASE1=<json>`` and
waits for a line on stdin: meanwhile the test publishes a higher version.
Phase 2: sync again, count updates as Blender's status bar does, upgrade
(``extensions.package_upgrade_all``), check the new code is loaded and that the job
history and the preferences survived, generate once more with the new code.
Prints ``HIPTAH_RESULT=<json>``.

In background mode bl_pkg runs these operators synchronously (``_is_modal`` is False
when ``bpy.app.background``), so no event loop is needed. The one thing that does not
run headless is the status bar's update count (``bl_pkg.repo_stats_calc`` returns at
once in background mode); this script calls the function it uses,
``bl_pkg.repo_stats_calc_outdated_for_repo_directory``, directly.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

PKG_ID = "hiptah_blender"


def main(url: str, api_key: str, base_url: str, prompt: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"errors": []}

    def step(name: str, fn: Any) -> Any:
        try:
            return fn()
        except BaseException as exc:  # every failure is reported, not raised
            facts["errors"].append(f"{name}: {exc!r}\n{traceback.format_exc()}")
            return None

    import bpy  # isort: skip  (first: importing bpy puts Blender's scripts on sys.path)
    import addon_utils  # type: ignore[import-not-found]  # isort: skip

    facts["blender_version"] = list(bpy.app.version)
    prefs = bpy.context.preferences
    assert prefs is not None
    prefs.system.use_online_access = True

    facts["repo_add"] = sorted(step("repo_add", lambda: bpy.ops.preferences.extension_repo_add(
        name="HiPtah", remote_url=url, type="REMOTE", use_sync_on_startup=False)) or [])
    repos = prefs.extensions.repos
    index = next((i for i, r in enumerate(repos) if r.use_remote_url and r.remote_url == url), -1)
    facts["repo_found"] = index >= 0
    if index < 0:
        return facts
    repo = repos[index]
    module = f"bl_ext.{repo.module}.{PKG_ID}"
    ext_dir = os.path.join(repo.directory, PKG_ID)
    facts["module"] = module

    import bl_pkg  # type: ignore[import-not-found]  # (the Extensions add-on, enabled by default)

    def remote_version() -> str | None:
        remote = bl_pkg.repo_cache_store_ensure().refresh_remote_from_directory(
            directory=repo.directory, error_fn=print)
        item = (remote or {}).get(PKG_ID)
        return None if item is None else str(item.version)

    def local_state() -> dict[str, Any]:
        mod = sys.modules.get(module)
        info = addon_utils.module_bl_info(mod) if mod is not None else {}
        wheels = os.path.join(ext_dir, "wheels")
        return {
            "loaded": list(addon_utils.check(module)),
            "bl_info_version": list(info.get("version", ())),
            "marker": getattr(mod, "HIPTAH_BUILD_MARKER", None),
            "module_file": getattr(mod, "__file__", None),
            "wheels": sorted(os.listdir(wheels)) if os.path.isdir(wheels) else [],
        }

    def generate() -> list[str]:
        return sorted(bpy.ops.hiptah.generate(prompt=prompt, wait=True))  # type: ignore[attr-defined]

    def jobs() -> list[str]:
        path = os.path.join(bpy.utils.extension_path_user(module, create=False), "jobs.json")
        with open(path, encoding="utf-8") as fh:
            return sorted(json.dumps(job, sort_keys=True) for job in _job_list(json.load(fh)))

    # --- phase 1: add, sync, install, configure, generate ---------------------------------
    facts["sync1"] = sorted(step("sync1", lambda: bpy.ops.extensions.repo_sync(repo_index=index)) or [])
    facts["remote_version1"] = step("remote1", remote_version)
    facts["install"] = sorted(step("install", lambda: bpy.ops.extensions.package_install(
        repo_index=index, pkg_id=PKG_ID, enable_on_install=True)) or [])
    facts["before"] = step("state1", local_state)

    def configure() -> None:
        addon_prefs = prefs.addons[module].preferences
        addon_prefs.api_key = api_key  # type: ignore[attr-defined]
        addon_prefs.base_url = base_url  # type: ignore[attr-defined]

    step("configure", configure)
    facts["generate1"] = step("generate1", generate)
    facts["jobs1"] = step("jobs1", jobs)

    print("HIPTAH_PHASE1=" + json.dumps(facts), flush=True)
    sys.stdin.readline()  # the test publishes the higher version now

    # --- phase 2: sync, update reported, upgrade ------------------------------------------
    facts["sync2"] = sorted(step("sync2", lambda: bpy.ops.extensions.repo_sync(repo_index=index)) or [])
    facts["remote_version2"] = step("remote2", remote_version)
    facts["updates"] = step("updates", lambda: bl_pkg.repo_stats_calc_outdated_for_repo_directory(
        bl_pkg.repo_cache_store_ensure(), repo.directory))
    facts["upgrade"] = sorted(step("upgrade", lambda: bpy.ops.extensions.package_upgrade_all(
        use_active_only=False)) or [])
    facts["after"] = step("state2", local_state)
    facts["updates_after"] = step("updates2", lambda: bl_pkg.repo_stats_calc_outdated_for_repo_directory(
        bl_pkg.repo_cache_store_ensure(), repo.directory))
    facts["api_key_kept"] = step("prefs", lambda: prefs.addons[module].preferences.api_key == api_key)
    facts["base_url_kept"] = step("prefs", lambda: prefs.addons[module].preferences.base_url == base_url)
    facts["jobs2"] = step("jobs2", jobs)
    facts["generate2"] = step("generate2", generate)
    return facts


def _job_list(data: Any) -> list[Any]:
    """The job records of jobs.json, whatever its top-level shape (a list or {"jobs": ...})."""
    if isinstance(data, dict):
        data = data.get("jobs", list(data.values()))
    if isinstance(data, dict):
        data = list(data.values())
    return [{k: job.get(k) for k in ("local_id", "job_id", "prompt")} if isinstance(job, dict) else job
            for job in data]


if __name__ == "__main__":
    result = main(*sys.argv[1:5])
    print("HIPTAH_RESULT=" + json.dumps(result), flush=True)
    import bpy

    if bpy.app.version < (4, 2, 13):
        # bpy 4.2.0 as a module segfaults at interpreter exit after any glTF import
        # (see tests/install/blender_install_check.py); the facts are out.
        sys.stderr.flush()
        os._exit(0)
