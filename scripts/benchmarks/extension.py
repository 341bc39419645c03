"""Figure 5: cost of enabling the installed extension vs a minimal one-operator extension.

Both are installed (Blender's own ``extensions.package_install_files``) into one temporary
BLENDER_USER_RESOURCES; then every measurement runs in a fresh interpreter (what a user's
Blender start or first enable pays), alternating the two extensions:
- enable: ``addon_utils.enable("bl_ext.user_default.<id>")`` (import + register), with
  ``sys.modules`` compared before/after to see whether pydantic or requests came along;
- import: the module imports that register() needs, under ``-X importtime``.
The zip is dist/'s linux-x64 one when present, else built with scripts/build.py --offline.

    python -m scripts.benchmarks.extension --runs 5
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from .stats import emit, median, parse

ROOT = Path(__file__).resolve().parents[2]
REPO = "user_default"
ADDON_ID = "hiptah_blender"
MINIMAL_ID = "hiptah_bench_minimal"

MINIMAL_MANIFEST = f"""schema_version = "1.0.0"
id = "{MINIMAL_ID}"
version = "1.0.0"
name = "Bench Minimal"
tagline = "One operator, for the enable-time comparison"
maintainer = "HiPtah bench"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:GPL-3.0-or-later"]
"""

MINIMAL_INIT = '''import bpy


class BENCH_OT_hello(bpy.types.Operator):
    bl_idname = "bench.hello"
    bl_label = "Hello"

    def execute(self, context):
        return {"FINISHED"}


def register():
    bpy.utils.register_class(BENCH_OT_hello)


def unregister():
    bpy.utils.unregister_class(BENCH_OT_hello)
'''


def minimal_zip(folder: Path) -> Path:
    path = folder / f"{MINIMAL_ID}-1.0.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("blender_manifest.toml", MINIMAL_MANIFEST)
        zf.writestr("__init__.py", MINIMAL_INIT)
    return path


def addon_zip(folder: Path) -> tuple[Path, str]:
    found = sorted(glob.glob(str(ROOT / "dist" / f"{ADDON_ID}-*-linux_x64.zip")))
    if found:
        return Path(found[-1]), "dist/"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build.py"), "--platform", "linux-x64", "--offline",
         "--output", str(folder / "dist"), "--stage-dir", str(folder / "stage" / ADDON_ID)],
        check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
    )
    return next((folder / "dist").glob("*-linux_x64.zip")), "scripts/build.py --offline"  # main archive


# --- children (fresh interpreters) -------------------------------------------------------
def child_install(zips: list[str]) -> dict[str, Any]:
    import bpy

    for path in zips:
        bpy.ops.extensions.package_install_files(filepath=path, repo=REPO, enable_on_install=False)
    return {"installed": zips}


def child_enable(module: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import bpy  # noqa: F401  (puts Blender's scripts on sys.path)

    addon_utils: Any = importlib.import_module("addon_utils")  # stubs say enable() returns None
    bpy_ms = (time.perf_counter() - t0) * 1000.0
    before = set(sys.modules)
    t0 = time.perf_counter()
    mod = addon_utils.enable(module, default_set=True)
    enable_ms = (time.perf_counter() - t0) * 1000.0
    if mod is None:
        raise RuntimeError(f"{module} did not enable")
    new = set(sys.modules) - before

    def loaded(name: str) -> bool:
        return any(m == name or m.startswith(name + ".") for m in new)

    return {
        "enable_ms": enable_ms,
        "bpy_import_ms": bpy_ms,
        "new_modules": len(new),
        "pydantic": loaded("pydantic"),
        "requests": loaded("requests"),
        "keyring": loaded("keyring"),  # the keychain is reached at first use, never at enable
        "requests_before": "requests" in before,
    }


def child_import(module: str) -> dict[str, Any]:
    import bpy  # noqa: F401

    sys.stderr.write("BENCH_MARK\n")  # -X importtime lines after this belong to the add-on
    sys.stderr.flush()
    t0 = time.perf_counter()
    importlib.import_module(module)
    if module.endswith(ADDON_ID):
        importlib.import_module(module + ".blender")  # what register() imports
    return {"import_ms": (time.perf_counter() - t0) * 1000.0}


def run_child(bur: str, args: list[str], *, importtime: bool = False) -> tuple[dict[str, Any], str]:
    env = {**os.environ, "BLENDER_USER_RESOURCES": bur, "PYTHONUNBUFFERED": "1"}
    # A user's Blender writes and reuses __pycache__ for extensions; this machine sets
    # PYTHONDONTWRITEBYTECODE, which would make every start compile the add-on again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "scripts.benchmarks.extension", "--child", *args]
    # cwd = the repo so "scripts.benchmarks" imports; the checkout's hiptah_blender cannot stand in for
    # the installed one: that is imported as bl_ext.user_default.hiptah_blender.
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return parse(proc.stdout), proc.stderr


def drop_bytecode(bur: str, ext_id: str) -> None:
    """Delete the extension's __pycache__ folders: the next start compiles from source,
    as the first start after an install or an update does."""
    for cache in Path(bur, "extensions", REPO, ext_id).rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def top_imports(stderr: str, count: int = 5) -> list[tuple[str, float]]:
    """Slowest top-level imports (cumulative ms) after the marker, from -X importtime."""
    lines = stderr.split("BENCH_MARK", 1)[-1].splitlines()
    rows: list[tuple[str, float, int]] = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        try:
            cumulative = int(parts[1].strip())
        except ValueError:
            continue  # the header line
        name = parts[2]
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), cumulative / 1000.0, depth))
    shallow = min((d for _, _, d in rows), default=0)
    tops = [(n, ms) for n, ms, d in rows if d <= shallow + 1 and not n.endswith(ADDON_ID + ".blender")]
    return sorted(tops, key=lambda r: -r[1])[:count]


def measure(runs: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hiptah-bench-ext-"))
    try:
        zip_path, source = addon_zip(work)
        full_mod, min_mod = f"bl_ext.{REPO}.{ADDON_ID}", f"bl_ext.{REPO}.{MINIMAL_ID}"
        # One user folder per extension: Blender re-syncs extension wheels whenever the
        # set of enabled extensions changes, and unsaved preferences in alternating
        # processes would make every enable pay that (a user's saved set is stable).
        burs = {full_mod: str(work / "bur-full"), min_mod: str(work / "bur-minimal")}
        for module, path in ((full_mod, zip_path), (min_mod, minimal_zip(work))):
            os.makedirs(burs[module])
            run_child(burs[module], ["install", str(path)])
            # The first enable after an install unpacks wheels and builds Blender's
            # compatibility cache; the first import writes __pycache__: paid once here.
            run_child(burs[module], ["enable", module])
            run_child(burs[module], ["import", module])
        full: list[dict[str, Any]] = []
        mini: list[dict[str, Any]] = []
        cold: list[float] = []
        full_imp: list[float] = []
        mini_imp: list[float] = []
        slowest: list[tuple[str, float]] = []
        for _ in range(runs):
            full.append(run_child(burs[full_mod], ["enable", full_mod])[0])
            mini.append(run_child(burs[min_mod], ["enable", min_mod])[0])
            result, stderr = run_child(burs[full_mod], ["import", full_mod], importtime=True)
            full_imp.append(result["import_ms"])
            slowest = top_imports(stderr)
            mini_imp.append(run_child(burs[min_mod], ["import", min_mod])[0]["import_ms"])
            drop_bytecode(burs[full_mod], ADDON_ID)  # this run compiles and rewrites it
            cold.append(run_child(burs[full_mod], ["enable", full_mod])[0]["enable_ms"])
        out: dict[str, Any] = {
            "zip": zip_path.name,
            "zip_source": source,
            "runs": runs,
            "enable_ms": median([r["enable_ms"] for r in full]),
            "minimal_enable_ms": median([r["enable_ms"] for r in mini]),
            "cold_enable_ms": median(cold),
            "import_ms": median(full_imp),
            "minimal_import_ms": median(mini_imp),
            "bpy_import_ms": median([r["bpy_import_ms"] for r in full + mini]),
            "pydantic_at_enable": any(r["pydantic"] for r in full),
            "requests_at_enable": any(r["requests"] for r in full),
            "keyring_at_enable": any(r["keyring"] for r in full),
            "requests_loaded_before": any(r["requests_before"] for r in full),
            "new_modules": median([float(r["new_modules"]) for r in full]),
            "minimal_new_modules": median([float(r["new_modules"]) for r in mini]),
            "slowest_imports": slowest,
        }
        out["extra_ms"] = out["enable_ms"] - out["minimal_enable_ms"]
        out["cold_extra_ms"] = out["cold_enable_ms"] - out["minimal_enable_ms"]
        print(f"[extension] {json.dumps(out)}", flush=True)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        kind, *rest = ns.child
        if kind == "install":
            emit(child_install(rest))
        elif kind == "enable":
            emit(child_enable(rest[0]))
        else:
            emit(child_import(rest[0]))
        return
    emit(measure(ns.runs))


if __name__ == "__main__":
    main()
