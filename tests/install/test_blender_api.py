"""The Blender API the add-on uses exists in every supported Blender (4.2, 4.5, 5.0).

Known differences between them, and why the add-on is unaffected:
- importer options differ (5.0's glTF importer adds ``import_select_created_objects``,
  ``import_scene_as_collection``; USD renamed ``import_subdiv`` -> ``import_subdivision``
  and ``attr_import_mode`` -> ``property_import_mode``): the add-on must only pass
  keywords every version has - checked below for every ``bpy.ops`` call it makes;
- STL: only the C++ ``wm.stl_import`` exists from 4.2 on (``import_mesh.stl`` is gone);
- ``Material.blend_method`` vs ``surface_render_method`` (EEVEE Next, 4.2+): the add-on
  checks with hasattr; at least one must exist;
- icons: every icon name in the add-on must exist in each version, or drawing the
  panel raises.
The bpy module of each version runs in a subprocess (one module per process).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, BlenderVenv, blender_venvs, require_venv

pytestmark = [pytest.mark.install, pytest.mark.blender]

PROBE = Path(__file__).with_name("blender_api_probe.py")
ADDON_BLENDER_DIR = ROOT / "hiptah_blender" / "blender"
INSTALL_OPS = ("extensions.package_install_files", "extensions.package_uninstall",
               "preferences.addon_disable")
VENVS = [pytest.param(v, id=f"bpy{v.version}") for v in blender_venvs()]


def addon_sources() -> list[Path]:
    return sorted(ADDON_BLENDER_DIR.rglob("*.py"))


def ops_calls() -> dict[str, set[str]]:
    """``bpy.ops.<module>.<op>(...)`` calls in the add-on -> keywords passed (its own ops left out)."""
    calls: dict[str, set[str]] = {}
    for path in addon_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            m = re.fullmatch(r"bpy\.ops\.(\w+)\.(\w+)", name)
            if m and m[1] != "hiptah":
                calls.setdefault(f"{m[1]}.{m[2]}", set()).update(
                    kw.arg for kw in node.keywords if kw.arg is not None)
    return calls


@cache
def probe(venv: BlenderVenv) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="hiptah-probe-")
    proc = subprocess.run([str(venv.python), "-I", str(PROBE), json.dumps(sorted({*ops_calls(), *INSTALL_OPS}))],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("HIPTAH_RESULT=")), None)
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(line.removeprefix("HIPTAH_RESULT="))
    return result


def test_the_scan_finds_the_importers() -> None:
    calls = ops_calls()
    # If these disappear the add-on changed how it imports: update this test with it.
    assert {"import_scene.gltf", "wm.stl_import", "wm.usd_import"} <= set(calls), calls


@pytest.mark.parametrize("venv", VENVS)
def test_every_operator_and_keyword_the_addon_uses_exists(venv: BlenderVenv) -> None:
    require_venv(venv)
    info = probe(venv)
    assert info["version"][:2] == [int(x) for x in venv.short.split(".")]
    for op, keywords in sorted(ops_calls().items()):
        props = info["ops"][op]
        assert props is not None, f"bpy.ops.{op} does not exist in Blender {venv.version}"
        missing = keywords - set(props)
        assert not missing, f"bpy.ops.{op}: {sorted(missing)} not in Blender {venv.version}"


@pytest.mark.parametrize("venv", VENVS)
def test_runtime_apis_exist(venv: BlenderVenv) -> None:
    require_venv(venv)
    info = probe(venv)
    assert info["extension_path_user"]      # downloads + job history folder
    assert info["app_online_access"]        # "Allow Online Access"
    assert info["use_online_access_pref"]
    assert info["layout_progress"]          # job progress bars in the panel
    assert info["material_surface_render_method"] or info["material_blend_method"]
    # The install test's calls.
    assert {"filepath", "repo", "enable_on_install"} <= set(info["ops"]["extensions.package_install_files"])
    assert {"repo_index", "pkg_id"} <= set(info["ops"]["extensions.package_uninstall"])


@pytest.mark.parametrize("venv", VENVS)
def test_every_icon_the_addon_names_exists(venv: BlenderVenv) -> None:
    require_venv(venv)
    every_icon: set[str] = set()
    for other in blender_venvs():
        if other.python.is_file():
            every_icon |= set(probe(other)["icons"])
    literals = {m for path in addon_sources()
                for m in re.findall(r"[\"']([A-Z][A-Z0-9_]{2,})[\"']", path.read_text(encoding="utf-8"))}
    used = literals & every_icon
    assert used, "no icon names found: the scan is broken"
    missing = used - set(probe(venv)["icons"])
    assert not missing, f"icons missing in Blender {venv.version}: {sorted(missing)}"
