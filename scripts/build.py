#!/usr/bin/env python3
"""Build the extension archives users install: per platform, and per Blender range.

    .venv/bin/python scripts/build.py                      # every platform -> dist/
    .venv/bin/python scripts/build.py --platform linux-x64 # only some
    .venv/bin/python scripts/build.py --offline            # never touch the network
    .venv/bin/python scripts/build.py --repo DIR           # a remote repository (build_repo.py)

Steps:
1. Stage ``hiptah_blender/`` (no ``__pycache__``, no old ``wheels/``) plus the repo's
   ``blender_manifest.toml`` into a private temporary folder (or ``--stage-dir``).
2. Fetch the run-time wheels pinned in ``requirements-extension.txt`` for every
   platform and for CPython 3.11 (Blender 4.2-5.0) and 3.13 (Blender 5.1+) with
   ``pip download``, cached in ``.cache/wheels/``; a build whose wheels are all
   cached runs no pip at all.
3. Write ``platforms`` and ``wheels`` into the STAGED manifest (never the repo's).
4. Per variant (build_repo.variants: cp311+cp313 for Blender 4.2.13+, cp311 only for
   4.2.0-4.2.12), Blender's own ``blender_ext.py build --split-platforms`` (from this
   Python's bpy) writes ``<id>-<version>-<platform_>[<suffix>].zip`` per platform, each
   then checked with ``blender_ext.py validate``. The version comes from the manifest only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker  # pip's own dependency, in every venv here

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_repo import (  # the sibling module, also when this runs as a script
    PYTHON_VERSIONS,
    RepoError,
    Variant,
    archive_for,
    archive_manifest,
    publish_repo,
    variants,
    wheel_python,
)

__all__ = ["archive_for", "archive_manifest"]  # for callers: which archive a Blender installs

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "hiptah_blender"
MANIFEST = ROOT / "blender_manifest.toml"
REQUIREMENTS = ROOT / "requirements-extension.txt"
DEFAULT_CACHE = ROOT / ".cache" / "wheels"
DEFAULT_OUTPUT = ROOT / "dist"
CACHE_INDEX = "index.json"

@dataclass(frozen=True)
class Platform:
    """A Blender platform name and the pip platform tags whose wheels it can use."""

    name: str
    pip_tags: tuple[str, ...]
    # Optional platforms are left out (with a note) when a binary wheel is missing.
    required: bool = True


# pip 23 does not expand manylinux_2_28 to older glibc tags by itself, so list them;
# Blender 4.2+ needs glibc 2.28 and macOS 11, so wheels tagged for those or older work.
# macOS tags are expanded downwards by pip (macosx_11_0_x86_64 also accepts 10_12).
PLATFORMS: tuple[Platform, ...] = (
    Platform("windows-x64", ("win_amd64",)),
    Platform("windows-arm64", ("win_arm64",), required=False),
    Platform("macos-arm64", ("macosx_11_0_arm64",)),
    Platform("macos-x64", ("macosx_11_0_x86_64",)),
    Platform("linux-x64", ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")),
    Platform("linux-arm64", ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")),
)
PLATFORM_NAMES: tuple[str, ...] = tuple(p.name for p in PLATFORMS)


class BuildError(RuntimeError):
    """The build cannot go on; the message says what to do."""


# --- inputs -------------------------------------------------------------------------------


def read_manifest(path: Path = MANIFEST) -> dict[str, object]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def manifest_version(path: Path = MANIFEST) -> str:
    version = read_manifest(path).get("version")
    if not isinstance(version, str) or not version:
        raise BuildError(f"{path}: no version")
    return version


def read_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """The pinned ``name==version`` lines, each with its environment marker if any
    (``name==version ; sys_platform == "linux"``); comments and blanks dropped."""
    reqs: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        pin, _, marker = (part.strip() for part in line.partition(";"))
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-+]+", pin):
            raise BuildError(f"{path}: every line must be an exact pin name==version, got {line!r}")
        if marker:
            try:
                Marker(marker)
            except InvalidMarker as exc:
                raise BuildError(f"{path}: bad environment marker in {line!r}: {exc}") from exc
        reqs.append(f"{pin} ; {marker}" if marker else pin)
    if not reqs:
        raise BuildError(f"{path}: no requirements")
    return reqs


# What a wheel's environment markers see on each platform family (keyring's dependencies
# differ: SecretStorage on Linux, pywin32-ctypes on Windows; importlib_metadata below 3.12).
_MARKER_PLATFORM = {"windows": ("win32", "Windows", "nt"), "macos": ("darwin", "Darwin", "posix"),
                    "linux": ("linux", "Linux", "posix")}


def applicable(requirements: Sequence[str], platform: Platform, python: str) -> list[str]:
    """The ``name==version`` pins whose marker holds for ``platform`` and CPython ``python``."""
    sys_platform, system, os_name = _MARKER_PLATFORM[platform.name.split("-")[0]]
    env = {"sys_platform": sys_platform, "platform_system": system, "os_name": os_name,
           "python_version": python, "python_full_version": f"{python}.0",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    out = []
    for req in requirements:
        pin, _, marker = (part.strip() for part in req.partition(";"))
        if not marker or Marker(marker).evaluate(env):
            out.append(pin)
    return out


def normalize_name(name: str) -> str:
    """PEP 503 name, compared with wheel file names' first field (which use ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_blender_ext() -> Path:
    """blender_ext.py from the bpy module of this Python, without importing bpy (slow)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "the bpy module is not importable from this Python; run with .venv/bin/python "
            "(bash scripts/setup_env.sh makes it) or pass --blender-ext PATH"
        )
    for base in spec.submodule_search_locations:
        found = sorted(Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise BuildError("blender_ext.py not found inside the bpy module; pass --blender-ext PATH")


# --- wheel cache --------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(platform: Platform, python: str, requirements: Sequence[str]) -> str:
    """Changes whenever the pins or the pip tags change, so stale entries are never reused."""
    digest = hashlib.sha256(
        json.dumps([platform.pip_tags, python, list(requirements)]).encode()
    ).hexdigest()[:16]
    return f"{platform.name}-cp{python.replace('.', '')}-{digest}"


class WheelCache:
    """``.cache/wheels/*.whl`` plus ``index.json``: cache key -> {file name: sha256}."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.index_path = directory / CACHE_INDEX
        self.index: dict[str, dict[str, str]] = self._read_index()

    def _read_index(self) -> dict[str, dict[str, str]]:
        try:
            loaded = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or damaged: only costs a re-download
        return loaded if isinstance(loaded, dict) else {}

    def lookup(self, key: str) -> list[Path] | None:
        """The cached wheels for ``key`` if every one is present and intact."""
        entry = self.index.get(key)
        if not entry:
            return None
        paths: list[Path] = []
        for name, digest in entry.items():
            path = self.dir / name
            if not path.is_file() or sha256_file(path) != digest:
                return None
            paths.append(path)
        return sorted(paths)

    def store(self, key: str, files: Iterable[Path]) -> list[Path]:
        self.dir.mkdir(parents=True, exist_ok=True)
        entry: dict[str, str] = {}
        stored: list[Path] = []
        for src in files:
            dst = self.dir / src.name
            tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)  # another build reading the cache never sees half a wheel
            entry[src.name] = sha256_file(dst)
            stored.append(dst)
        # Merge with what another build may have stored meanwhile, then replace atomically.
        self.index = {**self._read_index(), **self.index, key: entry}
        tmp_index = self.index_path.with_name(f".{CACHE_INDEX}.{os.getpid()}.tmp")
        tmp_index.write_text(json.dumps(self.index, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp_index, self.index_path)
        return sorted(stored)


def pip_download(platform: Platform, python: str, requirements: Sequence[str], dest: Path) -> None:
    abi = "cp" + python.replace(".", "")
    cmd = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
        # The pins list every dependency, so resolution stays reproducible.
        "--no-deps", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python, "--abi", abi,
    ]
    for tag in platform.pip_tags:
        cmd += ["--platform", tag]
    cmd += ["--dest", str(dest), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        err = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)
        raise BuildError(f"pip download failed for {platform.name} / CPython {python}:\n{err.strip()}")


def check_wheel_set(files: Sequence[Path], requirements: Sequence[str], what: str) -> None:
    """Exactly one wheel per pinned requirement, with the pinned version."""
    by_name: dict[str, list[str]] = {}
    for path in files:
        name, version = path.name.split("-")[:2]
        by_name.setdefault(normalize_name(name), []).append(version)
    for req in requirements:
        name, version = req.split("==")
        got = by_name.get(normalize_name(name), [])
        if got != [version]:
            raise BuildError(f"{what}: expected one {name} {version} wheel, got {got or 'none'}")
    extra = set(by_name) - {normalize_name(r.split("==")[0]) for r in requirements}
    if extra:
        raise BuildError(f"{what}: unexpected wheels {sorted(extra)}")


@dataclass
class FetchResult:
    wheels: dict[str, list[Path]]  # platform name -> wheels for all Python versions
    skipped: dict[str, str]        # optional platform -> why it was left out
    downloads: int                 # pip runs (0 on a warm cache)


def fetch_wheels(platforms: Sequence[Platform], requirements: Sequence[str], cache: WheelCache,
                 *, offline: bool, log: bool = True, jobs: int = 2) -> FetchResult:
    result = FetchResult(wheels={}, skipped={}, downloads=0)
    targets = [(p, py) for p in platforms for py in PYTHON_VERSIONS]
    found: dict[tuple[str, str], list[Path]] = {}
    missing: list[tuple[Platform, str]] = []
    for platform, python in targets:
        cached = cache.lookup(cache_key(platform, python, applicable(requirements, platform, python)))
        if cached is not None:
            found[platform.name, python] = cached
        elif offline:
            raise BuildError(
                f"--offline: wheels for {platform.name} / CPython {python} are not in "
                f"{cache.dir}; run once without --offline (needs network)"
            )
        else:
            missing.append((platform, python))

    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hiptah-wheels-") as tmp:
        def download(target: tuple[Platform, str]) -> Path:
            platform, python = target
            dest = Path(tmp) / f"{platform.name}-{python}"
            if log:
                print(f"  pip download: {platform.name} / CPython {python}", flush=True)
            pip_download(platform, python, applicable(requirements, platform, python), dest)
            return dest

        # pip runs are network-bound: a few at once cut a cold build from ~50 s to ~15 s.
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(download, t): t for t in missing}
            for future, (platform, python) in futures.items():
                try:
                    dest = future.result()
                    downloaded = sorted(dest.glob("*.whl"))
                    check_wheel_set(downloaded, applicable(requirements, platform, python),
                                    f"{platform.name} / CPython {python}")
                except BuildError as exc:
                    if platform.required:
                        raise
                    failed.setdefault(platform.name, str(exc).splitlines()[0])
                    continue
                # Stored from this thread only: the cache index is not thread-safe.
                found[platform.name, python] = cache.store(
                    cache_key(platform, python, applicable(requirements, platform, python)), downloaded)
                result.downloads += 1

    for platform in platforms:
        if platform.name in failed:
            result.skipped[platform.name] = failed[platform.name]
            continue
        files: list[Path] = []
        for python in PYTHON_VERSIONS:
            cached = found[platform.name, python]
            check_wheel_set(cached, applicable(requirements, platform, python),
                            f"{platform.name} / CPython {python} (cache)")
            files.extend(cached)
        # Pure wheels (py3-none-any) are the same file for both Pythons: keep one.
        result.wheels[platform.name] = sorted(set(files))
    return result


# --- staging ------------------------------------------------------------------------------


def stage(stage_dir: Path, wheels: Sequence[Path], platforms: Sequence[str],
          variant: Variant | None = None) -> None:
    """A clean copy of the package + manifest, with the wheels and the generated keys."""
    if not (PACKAGE_DIR / "__init__.py").is_file():
        raise BuildError(f"{PACKAGE_DIR}/__init__.py is missing: nothing to build")
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.parent.mkdir(parents=True, exist_ok=True)

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}
        if Path(directory) == PACKAGE_DIR and "wheels" in names:
            skip.add("wheels")  # regenerated below from the pins, never stale files
        return skip

    shutil.copytree(PACKAGE_DIR, stage_dir, ignore=ignore)
    wheel_dir = stage_dir / "wheels"
    wheel_dir.mkdir()
    for wheel in wheels:
        shutil.copyfile(wheel, wheel_dir / wheel.name)
    text = MANIFEST.read_text(encoding="utf-8")
    (stage_dir / "blender_manifest.toml").write_text(
        manifest_with_generated_keys(text, [f"./wheels/{w.name}" for w in sorted(wheels)], platforms,
                                     blender_min=variant and variant.blender_min,
                                     blender_max=variant and variant.blender_max),
        encoding="utf-8",
    )


def toml_list(values: Sequence[str]) -> str:
    return "[\n" + "".join(f"  {json.dumps(v)},\n" for v in values) + "]"


def manifest_with_generated_keys(text: str, wheels: Sequence[str], platforms: Sequence[str], *,
                                 blender_min: str | None = None, blender_max: str | None = None) -> str:
    """The manifest text with top-level ``platforms`` and ``wheels`` added (and the
    variant's Blender range: ``blender_version_min`` replaced, ``blender_version_max`` added).

    TOML top-level keys must come before the first table, so they go right there.
    The repo manifest must not set them itself: the build owns them.
    """
    existing = tomllib.loads(text)
    for key in ("platforms", "wheels", "blender_version_max"):
        if key in existing:
            raise BuildError(f"blender_manifest.toml sets {key!r}; remove it, scripts/build.py writes it")
    if blender_min is not None:
        text, found = re.subn(r"^blender_version_min\s*=.*$", f"blender_version_min = {json.dumps(blender_min)}",
                              text, count=1, flags=re.MULTILINE)
        if not found:
            raise BuildError("blender_manifest.toml: no top-level blender_version_min line")
    block = (
        "# Written by scripts/build.py into the staged copy only.\n"
        + (f"blender_version_max = {json.dumps(blender_max)}\n" if blender_max else "")
        + f"platforms = {toml_list(platforms)}\n"
        f"wheels = {toml_list(wheels)}\n\n"
    )
    match = re.search(r"^\s*\[", text, flags=re.MULTILINE)
    cut = match.start() if match else len(text)
    out = text[:cut] + ("" if text[:cut].endswith("\n") or not cut else "\n") + block + text[cut:]
    parsed = tomllib.loads(out)  # proves the edit is valid TOML with the intended values
    if parsed.get("platforms") != list(platforms) or parsed.get("wheels") != list(wheels) \
            or parsed.get("blender_version_max") != blender_max \
            or parsed.get("blender_version_min") != (blender_min or existing.get("blender_version_min")):
        raise BuildError("internal error: generated manifest keys did not round-trip")
    return out


# --- blender_ext --------------------------------------------------------------------------


def run_blender_ext(blender_ext: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(blender_ext), *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"blender_ext.py {args[0]} failed:\n{proc.stdout}{proc.stderr}".strip())
    return proc.stdout


def zip_name(ext_id: str, version: str, platform: str, suffix: str = "") -> str:
    """blender_ext's --split-platforms naming (the platform with '-' replaced by '_'),
    plus the variant's suffix."""
    return f"{ext_id}-{version}-{platform.replace('-', '_')}{suffix}.zip"


@dataclass
class BuiltZip:
    path: Path
    platform: str
    size: int
    wheels: list[str]
    blender: str = ""  # the Blender range it admits, for the table


def zip_wheels(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return sorted(n for n in zf.namelist() if n.endswith(".whl"))


def build(*, platforms: Sequence[str], output: Path, stage_dir: Path, cache_dir: Path,
          offline: bool, blender_ext: Path | None = None) -> tuple[list[BuiltZip], FetchResult]:
    manifest = read_manifest()
    ext_id, version = str(manifest["id"]), manifest_version()
    tool = blender_ext or find_blender_ext()
    requirements = read_requirements()
    selected = [p for p in PLATFORMS if p.name in set(platforms)]

    print(f"HiPtah extension {ext_id} {version}: {', '.join(p.name for p in selected)}", flush=True)
    fetched = fetch_wheels(selected, requirements, WheelCache(cache_dir), offline=offline)
    for name, why in fetched.skipped.items():
        print(f"  note: {name} left out ({why})")
    built_platforms = [p.name for p in selected if p.name in fetched.wheels]
    if not built_platforms:
        raise BuildError("no platform left to build")
    output.mkdir(parents=True, exist_ok=True)

    zips: list[BuiltZip] = []
    manifest_min = str(manifest.get("blender_version_min", "0"))
    for variant in variants(manifest_min):
        chosen = {name: [w for w in fetched.wheels[name] if wheel_python(w.name) in (None, *variant.pythons)]
                  for name in built_platforms}
        low = variant.blender_min or manifest_min
        span = f"{low} to < {variant.blender_max}" if variant.blender_max else f"{low}+"
        # blender_ext puts every pure ("any") wheel into every platform's zip, so platforms
        # whose pure wheels differ (keyring's: SecretStorage/jeepney on Linux, pywin32-ctypes
        # on Windows) are staged and built apart: each zip carries only what its platform needs.
        groups: dict[tuple[str, ...], list[str]] = {}
        for name in built_platforms:
            pure = tuple(sorted(w.name for w in chosen[name] if w.name.endswith("-none-any.whl")))
            groups.setdefault(pure, []).append(name)
        for members in groups.values():
            label = "" if len(groups) == 1 else "-" + "+".join(dict.fromkeys(n.split("-")[0] for n in members))
            vstage = stage_dir.with_name(stage_dir.name + variant.suffix + label)
            stage(vstage, sorted({w for n in members for w in chosen[n]}), members, variant)
            # Every variant's blender_ext output has the same name: build aside, then rename.
            with tempfile.TemporaryDirectory(prefix=".build-", dir=output) as tmp:
                run_blender_ext(tool, "build", "--split-platforms",
                                "--source-dir", str(vstage), "--output-dir", tmp)
                for name in members:
                    built = Path(tmp) / zip_name(ext_id, version, name)
                    if not built.is_file():
                        raise BuildError(f"blender_ext did not write {built.name}")
                    path = output / zip_name(ext_id, version, name, variant.suffix)
                    os.replace(built, path)
                    run_blender_ext(tool, "validate", str(path))
                    wheels = zip_wheels(path)
                    expected = sorted(f"wheels/{w.name}" for w in chosen[name])
                    if wheels != expected:  # blender_ext filters by platform tag; make sure it matches ours
                        raise BuildError(f"{path.name}: wheels {wheels} differ from the expected {expected}")
                    zips.append(BuiltZip(path, name, path.stat().st_size, wheels, span))
    return zips, fetched


def print_table(zips: Sequence[BuiltZip], downloads: int) -> None:
    rows = [("zip", "platform", "Blender", "size", "wheels")]
    rows += [(z.path.name, z.platform, z.blender, f"{z.size / 1e6:.2f} MB", str(len(z.wheels))) for z in zips]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"{len(zips)} zip(s) in {zips[0].path.parent if zips else '-'}; pip downloads this run: {downloads}")
    if zips and (zips[0].path.parent / "index.json").is_file():
        print(f"repository index: {zips[0].path.parent / 'index.json'} (+ index.html)")


def parse_platforms(values: Sequence[str] | None) -> list[str]:
    if not values:
        return list(PLATFORM_NAMES)
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLATFORM_NAMES]
    if unknown:
        raise BuildError(f"unknown platform(s) {unknown}; choose from {', '.join(PLATFORM_NAMES)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--platform", action="append", metavar="NAME",
                        help=f"build only these (repeat or comma-separate): {', '.join(PLATFORM_NAMES)}")
    parser.add_argument("--offline", action="store_true",
                        help="use only the wheel cache; fail if anything is missing")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="zip folder (default dist/)")
    parser.add_argument("--repo", type=Path, metavar="DIR", default=None,
                        help="write a remote repository into DIR instead: the archives, index.json "
                             "and index.html (blender_ext.py server-generate); older archives go")
    # Default: a private temporary folder, so builds running at once never share a stage.
    parser.add_argument("--stage-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="wheel cache (default .cache/wheels/)")
    parser.add_argument("--blender-ext", type=Path, default=None,
                        help="blender_ext.py to use (default: the one inside this Python's bpy)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="hiptah-build-") as tmp:
            stage_dir = args.stage_dir or Path(tmp) / "stage" / "hiptah_blender"
            zips, fetched = build(
                platforms=parse_platforms(args.platform),
                output=Path(tmp) / "out" if args.repo else args.output.resolve(),
                stage_dir=stage_dir.resolve(), cache_dir=args.cache_dir.resolve(),
                offline=args.offline, blender_ext=args.blender_ext,
            )
            if args.repo:
                moved = publish_repo([z.path for z in zips], args.repo.resolve(), str(read_manifest()["id"]),
                                     args.blender_ext or find_blender_ext())
                for z, path in zip(zips, moved, strict=True):
                    z.path = path
    except (BuildError, RepoError) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 2
    print_table(zips, fetched.downloads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
