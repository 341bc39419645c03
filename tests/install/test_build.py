"""scripts/build.py: what goes into each zip, the wheel cache, the manifest handling."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    BlenderVenv,
    Build,
    blender_venvs,
    build_mod,
    require_venv,
    run_build,
    sha256,
)

pytestmark = pytest.mark.install

# Binary wheels; every other pin is pure (py3-none-any). Each zip holds the pure wheels its
# platform's markers select (jeepney on Linux, pywin32-ctypes on Windows), for either Python.
BINARY = {"pydantic_core", "cryptography", "cffi"}
LINUX_ONLY_BINARY = {"cryptography", "cffi"}  # SecretStorage's crypto, for the Secret Service
# The platform tag each zip's pydantic_core wheels must carry.
BINARY_TAG = {
    "windows-x64": r"win_amd64",
    "windows-arm64": r"win_arm64",
    "macos-arm64": r"macosx_\d+_\d+_arm64",
    "macos-x64": r"macosx_\d+_\d+_x86_64",
    "linux-x64": r"manylinux_2_\d+_x86_64(\.manylinux2014_x86_64)?",
    "linux-arm64": r"manylinux_2_\d+_aarch64(\.manylinux2014_aarch64)?",
}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()  # environment markers dropped
        if "==" in line:
            name, version = line.split("==")
            out[build_mod.normalize_name(name)] = version
    return out


def platform_pure(platform: str) -> set[str]:
    """The pure wheels a platform's zip holds: its markers' pins for CPython 3.11 or 3.13."""
    reqs = build_mod.read_requirements()
    target = next(p for p in build_mod.PLATFORMS if p.name == platform)
    names = {build_mod.normalize_name(pin.split("==")[0])
             for python in ("3.11", "3.13") for pin in build_mod.applicable(reqs, target, python)}
    return names - BINARY


def package_files() -> set[str]:
    """What the zip must hold besides wheels and the manifest: the package, minus caches."""
    out = set()
    for path in (ROOT / "hiptah_blender").rglob("*"):
        rel = path.relative_to(ROOT / "hiptah_blender")
        if path.is_file() and "__pycache__" not in rel.parts and rel.parts[0] != "wheels" \
                and path.suffix not in {".pyc", ".pyo"}:
            out.add(rel.as_posix())
    return out


LEGACY = "-blender_4.2.0-4.2.12"   # the cp311-only archives for Blender 4.2.0 to 4.2.12


def legacy_zip(built: Build, platform: str) -> Path:
    return built.output / build_mod.zip_name(built.ext_id, built.version, platform, LEGACY)


def test_table_lists_every_platform_zip(built: Build) -> None:
    assert set(build_mod.PLATFORM_NAMES) == set(BINARY_TAG)
    for platform in build_mod.PLATFORM_NAMES:
        path = built.zip_for(platform)
        # blender_ext's --split-platforms naming: "-" in the platform becomes "_".
        assert path.name == f"hiptah_blender-{built.version}-{platform.replace('-', '_')}.zip"
        # Every pure wheel, pydantic_core per Python, on Linux also cffi per Python + cryptography.
        pure = len(platform_pure(platform))
        linux = platform.startswith("linux")
        for zip_path, span, wheels in ((path, r"4\.2\.13\+", pure + 2 + (3 if linux else 0)),
                                       (legacy_zip(built, platform), r"4\.2\.0 to < 4\.2\.13",
                                        pure + 1 + (2 if linux else 0))):
            assert zip_path.is_file(), built.stdout
            row = re.search(rf"^{re.escape(zip_path.name)}\s+{platform}\s+{span}\s+([\d.]+) MB\s+(\d+)$",
                            built.stdout, flags=re.MULTILINE)
            assert row, built.stdout
            assert int(row[2]) == wheels
    assert sorted(p.name for p in built.output.iterdir()) == sorted(
        [built.zip_for(p).name for p in build_mod.PLATFORM_NAMES]
        + [legacy_zip(built, p).name for p in build_mod.PLATFORM_NAMES])


def test_version_comes_from_the_manifest(built: Build) -> None:
    with open(ROOT / "blender_manifest.toml", "rb") as fh:
        assert built.version == tomllib.load(fh)["version"]
    # No other project file may hard-code it.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{built.version}"' not in pyproject


@pytest.mark.parametrize("platform", sorted(BINARY_TAG))
def test_each_zip_holds_only_its_platform_wheels(built: Build, platform: str) -> None:
    with zipfile.ZipFile(built.zip_for(platform)) as zf:
        names = zf.namelist()
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    wheels = sorted(n for n in names if n.endswith(".whl"))
    pure = [w for w in wheels if w.endswith("-py3-none-any.whl")]
    binary = [w for w in wheels if w not in pure]
    every_pure = platform_pure(platform)
    assert {build_mod.normalize_name(Path(w).name.split("-")[0]) for w in pure} == every_pure
    assert len(pure) == len(every_pure)                               # each pure wheel once
    core = [w for w in binary if "/pydantic_core-" in w]
    assert sorted(re.sub(r"^wheels/pydantic_core-[\d.]+-(cp3\d+)-.*", r"\1", w) for w in core) == [
        "cp311", "cp313"]                                             # Blender 4.2-5.0 and 5.1+
    for w in core:
        assert re.fullmatch(rf"wheels/pydantic_core-[\d.]+-(cp3\d+)-\1-{BINARY_TAG[platform]}\.whl", w), w
    others = sorted(re.sub(r"^wheels/([a-z_]+)-[\d.]+-(cp3\d+)-(cp3\d+|abi3)-.*", r"\1 \2 \3", w)
                    for w in binary if w not in core)
    if platform.startswith("linux"):  # keyring's Secret Service backend: SecretStorage -> cryptography
        assert others == ["cffi cp311 cp311", "cffi cp313 cp313", "cryptography cp311 abi3"]
        arch = {"linux-x64": "x86_64", "linux-arm64": "aarch64"}[platform]
        assert all(w.endswith(f"_{arch}.whl") for w in binary), binary
    else:
        assert others == []
    # Blender reads these generated keys from the zip to pick what to install.
    assert manifest["build"]["generated"]["platforms"] == [platform]
    assert sorted(w.removeprefix("./") for w in manifest["build"]["generated"]["wheels"]) == wheels
    assert manifest["blender_version_min"] == "4.2.13" and "blender_version_max" not in manifest

    # Blender 4.2.0-4.2.12: the same, minus the cp313 wheel (4.2.0 could pick it on 3.11).
    with zipfile.ZipFile(legacy_zip(built, platform)) as zf:
        legacy = sorted(n for n in zf.namelist() if n.endswith(".whl"))
        old = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert legacy == [w for w in wheels if "-cp313-" not in w]
    assert (old["blender_version_min"], old["blender_version_max"]) == ("4.2.0", "4.2.13")


def test_zip_holds_the_package_and_nothing_else(built: Build) -> None:
    with zipfile.ZipFile(built.zip_for("linux-x64")) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
    rest = {n for n in names if not n.startswith("wheels/")} - {"blender_manifest.toml"}
    assert rest == package_files()
    assert not any(n.split("/")[0] in {"tests", "scripts", "sandbox", "docs"} for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_zip_ships_only_code_that_runs(built: Build) -> None:
    """Every file of ours in the zip is a module that register() (or a module it imports,
    also lazily inside functions) imports: no stubs, tests, docs or dead modules."""
    with zipfile.ZipFile(built.zip_for("linux-x64")) as zf:
        ours = {n: zf.read(n).decode() for n in zf.namelist()
                if not n.endswith("/") and not n.startswith("wheels/") and n != "blender_manifest.toml"}
    # The one kind of data we ship: the translation catalogues, which blender/i18n.py reads
    # from the package's locale/ folder at register().
    catalogues = {n for n in ours if n.startswith("locale/") and n.endswith(".po")}
    assert catalogues == {f"locale/{lang}.po" for lang in ("zh_HANS", "ja_JP", "es", "de_DE")}, sorted(catalogues)
    assert '"locale"' in ours["blender/i18n.py"]
    ours = {n: text for n, text in ours.items() if n not in catalogues}
    assert all(n.endswith(".py") for n in ours), sorted(ours)
    modules = {".".join(Path(n).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__")
               or "": n for n in ours}
    seen: set[str] = set()
    todo = [""]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        parts = name.split(".") if name else []
        todo += [".".join(parts[:i]) for i in range(len(parts))]  # parent packages run first
        package = parts if modules[name].endswith("__init__.py") else parts[:-1]
        for node in ast.walk(ast.parse(ours[modules[name]])):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1] + ([node.module] if node.module else [])
                todo += [".".join([*base, a.name]) for a in node.names] + [".".join(base)]
    assert set(modules) - seen == set(), "shipped but never imported"


def test_manifest_credits_every_bundled_wheel() -> None:
    """Extensions terms 3.8: the copyright lines name the bundled code's authors."""
    with open(ROOT / "blender_manifest.toml", "rb") as fh:
        lines = tomllib.load(fh)["copyright"]
    assert any("HiPtah" in line for line in lines)
    credited = " ".join(lines).replace("_", "-").replace(".", "-").lower()
    for name in pins(ROOT / "requirements-extension.txt"):
        assert f"({name.replace('_', '-')})" in credited, f"{name} is bundled but not credited"


def test_repo_manifest_is_never_written(built: Build) -> None:
    assert sha256(ROOT / "blender_manifest.toml") == built.manifest_sha_before
    with open(ROOT / "blender_manifest.toml", "rb") as fh:
        repo = tomllib.load(fh)
    assert "wheels" not in repo and "platforms" not in repo
    # Staged per platform family (their pure wheels differ); the Linux one for Blender 4.2.13+:
    with open(built.stage.with_name(built.stage.name + "-linux") / "blender_manifest.toml", "rb") as fh:
        staged = tomllib.load(fh)
    linux = [p for p in build_mod.PLATFORM_NAMES if p.startswith("linux")]
    assert staged["platforms"] == linux
    # pydantic_core cp311 + cp313, cffi cp311 + cp313 and cryptography abi3 per platform.
    assert len(staged["wheels"]) == len(set(staged["wheels"])) == len(platform_pure("linux-x64")) + 5 * len(linux)
    assert staged["blender_version_min"] == "4.2.13"   # the main archive; 4.2.0 keeps its own
    assert {k: v for k, v in staged.items() if k not in {"wheels", "platforms", "blender_version_min"}} \
        == {k: v for k, v in repo.items() if k != "blender_version_min"}


def test_bundled_versions_match_the_dev_venv_and_pydantic_needs() -> None:
    ext = pins(ROOT / "requirements-extension.txt")
    dev = pins(ROOT / "requirements-dev.txt")
    assert ext["pydantic"] == dev["pydantic"]
    # requests and numpy ship with Blender: bundling them would shadow Blender's own.
    assert "requests" not in ext and "numpy" not in ext


def test_pins_cover_every_pydantic_dependency(built: Build) -> None:
    ext = pins(ROOT / "requirements-extension.txt")
    with zipfile.ZipFile(built.zip_for("linux-x64")) as zf:
        wheel_name = next(n for n in zf.namelist() if n.startswith("wheels/pydantic-"))
        wheel_path = built.output.parent / Path(wheel_name).name
        wheel_path.write_bytes(zf.read(wheel_name))
    with zipfile.ZipFile(wheel_path) as wz:
        meta = wz.read(next(n for n in wz.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    deps = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    required = {build_mod.normalize_name(re.split(r"[ <>=!;\[(~]", d, maxsplit=1)[0])
                for d in deps if "extra ==" not in d}
    assert required <= set(ext), f"pydantic needs {sorted(required - set(ext))}, not pinned"
    core = next(d for d in deps if d.startswith("pydantic-core") or d.startswith("pydantic_core"))
    assert ext["pydantic_core"] in core   # the exact version pydantic requires


def test_blender_50_pin_matches_the_dev_venv() -> None:
    dev = pins(ROOT / "requirements-dev.txt")["bpy"]
    assert dev in [v.version for v in blender_venvs()]


def offline_env() -> dict[str, str]:
    """pip cannot reach any index from this environment: proves the build never asks."""
    env = dict(os.environ)
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull,
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    return env


def test_second_build_makes_no_download(built: Build, tmp_path: Path) -> None:
    # `built` filled the cache; without --offline the build must still skip pip.
    proc = run_build("--platform", "linux-x64", "--output", str(tmp_path / "dist"),
                     "--stage-dir", str(tmp_path / "stage" / "hiptah_blender"), env=offline_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip download:" not in proc.stdout
    assert "pip downloads this run: 0" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == sorted(
        [built.zip_for("linux-x64").name, legacy_zip(built, "linux-x64").name])
    # Same inputs, same wheels: the zips list identical files.
    with zipfile.ZipFile(tmp_path / "dist" / built.zip_for("linux-x64").name) as a, \
            zipfile.ZipFile(built.zip_for("linux-x64")) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_offline_with_empty_cache_fails_clearly(tmp_path: Path) -> None:
    proc = run_build("--offline", "--platform", "linux-x64", "--cache-dir", str(tmp_path / "empty"),
                     "--output", str(tmp_path / "dist"),
                     "--stage-dir", str(tmp_path / "stage" / "hiptah_blender"), env=offline_env())
    assert proc.returncode == 2
    assert "--offline: wheels for linux-x64 / CPython 3.11 are not in" in proc.stderr
    assert not (tmp_path / "dist").exists()


def test_damaged_cache_is_not_used(built: Build, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(ROOT / ".cache" / "wheels", cache)
    index = json.loads((cache / "index.json").read_text())
    key = next(k for k in index if k.startswith("linux-x64-cp311-"))
    victim = cache / next(n for n in index[key] if n.startswith("pydantic_core"))
    victim.write_bytes(victim.read_bytes()[:-10])   # a truncated download
    proc = run_build("--offline", "--platform", "linux-x64", "--cache-dir", str(cache),
                     "--output", str(tmp_path / "dist"),
                     "--stage-dir", str(tmp_path / "stage" / "hiptah_blender"), env=offline_env())
    assert proc.returncode == 2, proc.stdout
    assert "linux-x64 / CPython 3.11 are not in" in proc.stderr


def test_unknown_platform_is_refused(tmp_path: Path) -> None:
    proc = run_build("--platform", "linux-riscv", "--output", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown platform" in proc.stderr and "linux-x64" in proc.stderr


def test_manifest_edit_keeps_tables_and_refuses_owned_keys() -> None:
    text = 'id = "x"\nversion = "1.0.0"\n\n[permissions]\nnetwork = "n"\n'
    out = build_mod.manifest_with_generated_keys(text, ["./wheels/a-1-py3-none-any.whl"], ["linux-x64"])
    parsed = tomllib.loads(out)
    assert parsed["wheels"] == ["./wheels/a-1-py3-none-any.whl"]
    assert parsed["platforms"] == ["linux-x64"]
    assert parsed["permissions"] == {"network": "n"}
    with pytest.raises(build_mod.BuildError, match="wheels"):
        build_mod.manifest_with_generated_keys('wheels = []\n' + text, [], [])
    ranged = tomllib.loads(build_mod.manifest_with_generated_keys(
        'blender_version_min = "4.2.0"\n' + text, [], [], blender_min="4.2.13", blender_max="5.0.0"))
    assert (ranged["blender_version_min"], ranged["blender_version_max"]) == ("4.2.13", "5.0.0")
    with pytest.raises(build_mod.BuildError, match="blender_version_max"):
        build_mod.manifest_with_generated_keys('blender_version_max = "9.0.0"\n' + text, [], [])


def blender_ext_tools() -> list[object]:
    return [pytest.param(v, id=f"bpy{v.version}") for v in blender_venvs()]


@pytest.mark.parametrize("venv", blender_ext_tools())
def test_repo_manifest_validates(venv: BlenderVenv, tmp_path: Path) -> None:
    """The repo's own manifest, with each supported Blender's validator."""
    require_venv(venv)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(ROOT / "blender_manifest.toml", src / "blender_manifest.toml")
    shutil.copyfile(ROOT / "hiptah_blender" / "__init__.py", src / "__init__.py")
    proc = subprocess.run([sys.executable, str(venv.blender_ext), "validate", str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


@pytest.mark.parametrize("venv", blender_ext_tools())
def test_zips_validate_with_every_blender(built: Build, venv: BlenderVenv) -> None:
    """Zips come from 5.0's blender_ext; older Blenders must accept them too."""
    require_venv(venv)
    for path in sorted(built.output.glob("*.zip")):
        proc = subprocess.run([sys.executable, str(venv.blender_ext), "validate", str(path)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"


def test_optional_platform_without_wheels_is_left_out(built: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    """windows-arm64 style: no binary wheel -> that zip is skipped with a note, the rest builds."""
    def no_wheels(platform, python, requirements, dest):
        raise build_mod.BuildError(f"pip download failed for {platform.name} / CPython {python}")

    monkeypatch.setattr(build_mod, "pip_download", no_wheels)
    reqs = build_mod.read_requirements()
    cache = build_mod.WheelCache(ROOT / ".cache" / "wheels")   # linux-x64 is cached by `built`
    linux = next(p for p in build_mod.PLATFORMS if p.name == "linux-x64")
    exotic = build_mod.Platform("windows-arm64", ("win_arm64_not_published",), required=False)
    result = build_mod.fetch_wheels([linux, exotic], reqs, cache, offline=False, log=False)
    assert set(result.wheels) == {"linux-x64"}
    assert "windows-arm64" in result.skipped and result.downloads == 0
    required = build_mod.Platform("linux-x64", ("manylinux_9_99_x86_64",))
    with pytest.raises(build_mod.BuildError, match="pip download failed"):
        build_mod.fetch_wheels([required], reqs, cache, offline=False, log=False)
