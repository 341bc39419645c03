"""Fixtures for the shipping tests: one build per session, the Blender venvs.

The build runs scripts/build.py as a user would (a subprocess, all platforms) into
a temporary folder, sharing the repo's wheel cache (.cache/wheels/) so only the
first run on a machine downloads anything.

The bare Blender venvs (.venv-bpyNN-bare, made by scripts/setup_env.sh) are optional
for a local run (their tests skip); set HIPTAH_REQUIRE_BLENDER_VENVS=1 (as
scripts/test.sh does) to make a missing one a failure.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hiptah_build", ROOT / "scripts" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hiptah_build"] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


build_mod = load_build_module()


@dataclass(frozen=True)
class BlenderVenv:
    version: str      # "4.2.23"
    short: str        # "4.2"
    path: Path        # .venv-bpy42-bare (.venv-bpy4.2.0-bare for an older pin of a series)

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        a, b, c = (int(x) for x in self.version.split("."))
        return a, b, c

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def blender_ext(self) -> Path | None:
        found = sorted(self.path.glob(
            f"lib/python3.*/site-packages/bpy/{self.short}/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        return found[-1] if found else None


def blender_venvs() -> list[BlenderVenv]:
    """Every Blender in requirements-blender.txt, whether or not its venv exists yet.

    Named as scripts/setup_env.sh names them: .venv-bpy<major><minor>-bare for the newest
    pin of a series, .venv-bpy<version>-bare for an older one (4.2.0 next to 4.2.23).
    """
    pins = [m for line in (ROOT / "requirements-blender.txt").read_text().splitlines()
            if (m := re.fullmatch(r"bpy==((\d+)\.(\d+)\.(\d+))", line.strip()))]
    newest = {(m[2], m[3]): max(int(n[4]) for n in pins if (n[2], n[3]) == (m[2], m[3])) for m in pins}
    return [BlenderVenv(m[1], f"{m[2]}.{m[3]}", ROOT / (
        f".venv-bpy{m[2]}{m[3]}-bare" if int(m[4]) == newest[m[2], m[3]] else f".venv-bpy{m[1]}-bare"))
        for m in pins]


def require_venv(venv: BlenderVenv) -> None:
    """Skip (or, in CI, fail) when setup_env.sh has not made this venv."""
    if venv.python.is_file() and venv.blender_ext is not None:
        return
    msg = f"{venv.path.name} (bpy {venv.version}) missing: run bash scripts/setup_env.sh"
    if os.environ.get("HIPTAH_REQUIRE_BLENDER_VENVS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@dataclass
class Build:
    output: Path
    stage: Path
    stdout: str
    version: str
    ext_id: str
    manifest_sha_before: str

    def zip_for(self, platform: str) -> Path:
        """The main archive of a platform (Blender 4.2.13+, cp311 + cp313 wheels)."""
        return self.output / build_mod.zip_name(self.ext_id, self.version, platform)

    def archive_for(self, venv: BlenderVenv, platform: str = "linux-x64") -> Path:
        """The archive that Blender installs (build.archive_for, Blender's own rules)."""
        path: Path = build_mod.archive_for(self.output, platform, blender=venv.version_tuple, python=(3, 11))
        return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_build(*args: str, env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "build.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    base = tmp_path_factory.mktemp("build")
    manifest_sha = sha256(ROOT / "blender_manifest.toml")
    proc = run_build("--output", str(base / "dist"), "--stage-dir", str(base / "stage" / "hiptah_blender"))
    assert proc.returncode == 0, f"build failed:\n{proc.stdout}\n{proc.stderr}"
    manifest = build_mod.read_manifest()
    return Build(base / "dist", base / "stage" / "hiptah_blender", proc.stdout,
                 str(manifest["version"]), str(manifest["id"]), manifest_sha)
