"""Install the extension zip into Blender the way a user does, then remove it.

Run by tests/install/test_install_zip.py in a fresh interpreter of a bare bpy venv
(no pydantic, ``python -I`` so neither the repo nor PYTHONPATH is importable):

    python -I blender_install_check.py ZIP PROMPT [full|refuse]

with BLENDER_USER_RESOURCES (a temp dir), HIPTAH_BASE_URL and HIPTAH_API_KEY in the
environment, and DBUS_SESSION_BUS_ADDRESS when a Secret Service is up for the keychain step. It records facts rather than asserting, so the test reports every
step; the last stdout line is ``HIPTAH_RESULT=<json>``. Mode ``refuse`` only tries the
install (for a Blender the archive does not admit) and reports what is left.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from typing import Any

PKG_ID = "hiptah_blender"
REPO = "user_default"
MODULE = f"bl_ext.{REPO}.{PKG_ID}"


def main(zip_path: str, prompt: str, mode: str = "full") -> dict[str, Any]:
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
    facts["python"] = list(sys.version_info[:2])
    # The venv must not provide pydantic, or the test could not tell where it came from.
    facts["pydantic_before_install"] = importlib.util.find_spec("pydantic") is not None
    facts["repo_on_path"] = any(
        os.path.isfile(os.path.join(p or ".", "hiptah_blender", "__init__.py")) for p in sys.path
    )

    prefs = bpy.context.preferences
    assert prefs is not None
    prefs.system.use_online_access = True
    repos = prefs.extensions.repos
    repo_index = next(i for i, r in enumerate(repos) if r.module == REPO)
    repo_dir = repos[repo_index].directory
    ext_dir = os.path.join(repo_dir, PKG_ID)
    site_packages = os.path.join(
        bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
        "python{:d}.{:d}".format(*sys.version_info[:2]), "site-packages",
    )
    # The add-on's own files (downloads, job history): bpy.utils.extension_path_user().
    user_dir = os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".user", REPO, PKG_ID)
    facts["ext_dir"] = ext_dir
    facts["site_packages"] = site_packages

    facts["install"] = sorted(step("install", lambda: bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo=REPO, enable_on_install=True)) or [])
    facts["ext_dir_exists"] = os.path.isdir(ext_dir)
    facts["addon_in_prefs"] = MODULE in prefs.addons
    facts["addon_check"] = list(addon_utils.check(MODULE))
    if mode == "refuse":
        facts["site_packages_after"] = sorted(os.listdir(site_packages)) if os.path.isdir(site_packages) else []
        return facts

    def pydantic_origin() -> dict[str, str]:
        import pydantic
        import pydantic_core

        return {"pydantic": pydantic.__file__, "pydantic_core": pydantic_core.__file__,
                "pydantic_core_binary": pydantic_core._pydantic_core.__file__,
                "version": pydantic.VERSION}

    facts["pydantic"] = step("import pydantic", pydantic_origin)

    def generate() -> dict[str, Any]:
        before = set(bpy.data.objects.keys())
        result = bpy.ops.hiptah.generate(prompt=prompt, wait=True)  # type: ignore[attr-defined]
        coll = bpy.data.collections.get("HiPtah")
        objects: list[bpy.types.Object] = list(coll.all_objects) if coll else []
        return {
            "result": sorted(result),
            "collection_objects": sorted(o.name for o in objects) if coll else None,
            "new_objects": sorted(set(bpy.data.objects.keys()) - before),
            "meshes_with_polygons": len([
                o for o in objects
                if o.type == "MESH" and isinstance(o.data, bpy.types.Mesh) and len(o.data.polygons) > 0
            ]),
        }

    facts["generate"] = step("generate", generate)

    def keychain() -> dict[str, Any]:
        """The bundled keyring (and on Linux SecretStorage/jeepney/cryptography) loads from the
        extension's wheels and keeps a key pasted in the preferences in the Secret Service."""
        import cryptography
        import keyring
        import secretstorage

        settings = sys.modules[f"{MODULE}.blender.settings"]
        key = "hp_install_check_Kc0123456789abcdef"
        env_key = os.environ.pop("HIPTAH_API_KEY", None)
        try:
            prefs.addons[MODULE].preferences.api_key = key
            s = settings.read_settings()
            field = prefs.addons[MODULE].preferences.api_key
            return {"files": [m.__file__ for m in (keyring, secretstorage, cryptography)],
                    "backend": type(keyring.get_keyring()).__module__, "source": s.api_key_source,
                    "status": s.api_key_status, "same_key": s.api_key == key, "field_emptied": field == ""}
        finally:
            if env_key is not None:
                os.environ["HIPTAH_API_KEY"] = env_key

    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        facts["keychain"] = step("keychain", keychain)
    facts["user_dir_exists"] = os.path.isdir(user_dir)

    step("disable", lambda: bpy.ops.preferences.addon_disable(module=MODULE))
    facts["addon_in_prefs_after_disable"] = MODULE in prefs.addons
    facts["uninstall"] = sorted(step("uninstall", lambda: bpy.ops.extensions.package_uninstall(
        repo_index=repo_index, pkg_id=PKG_ID)) or [])
    facts["ext_dir_exists_after"] = os.path.exists(ext_dir)
    facts["addon_in_prefs_after"] = MODULE in prefs.addons
    facts["user_dir_exists_after"] = os.path.isdir(user_dir)
    # Blender removes the wheels' files once no enabled extension uses them.
    facts["site_packages_after"] = sorted(os.listdir(site_packages)) if os.path.isdir(site_packages) else []
    return facts


if __name__ == "__main__":
    result = main(*sys.argv[1:4])
    print("HIPTAH_RESULT=" + json.dumps(result), flush=True)
    import bpy

    if bpy.app.version < (4, 2, 13):
        # bpy 4.2.0 as a module segfaults at interpreter exit after any glTF import, with
        # or without the add-on (`import bpy; bpy.ops.import_scene.gltf(...)` exits 139);
        # 4.2.13+ do not. The facts are out, so skip that teardown.
        sys.stderr.flush()
        os._exit(0)
