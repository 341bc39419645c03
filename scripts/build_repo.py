"""Blender's side of the archives: which one a Blender takes, and the remote repository.

    .venv/bin/python scripts/build.py --repo DIR     # archives + index.json + index.html

``publish_repo`` moves the archives of a build into DIR, removes older archives of the
same extension (a repository must list one version of an id per platform and
Blender/Python range; ``server-generate`` only warns about overlapping entries and
lists both, leaving Blender two candidates), then runs
Blender's own ``blender_ext.py server-generate --repo-dir DIR --html``. DIR is then
ready for any static host: upload the archives first and ``index.json`` last. Users add
the URL of ``index.json`` in *Preferences > Get Extensions > Repositories > + > Add
Remote Repository*; Blender offers each of them the one archive that fits its platform,
version and Python, and offers an update when a higher version is published.

``archive_for`` applies the same rules to a folder of archives (the tests, the GUI suite).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Blender 4.2.0's bl_pkg picks bundled wheels by platform only ("TODO: Match Python & ABI
# tags" in bl_extension_ops._extensions_wheel_filter_for_platform) and keeps one wheel per
# name+version, so it may set up the cp313 pydantic_core on its Python 3.11. Blender commit
# a3a3dda5 ("support multiple extensions with different Python versions", Ref #128750) made
# bl_pkg check wheels' Python tags, and the manifest/index "python_versions", at install,
# enable and repository listing. bpy 4.2.13, the first 4.2 on PyPI after 4.2.0, has it.
PYTHON_FILTER_SINCE: tuple[int, int, int] = (4, 2, 13)
PYTHON_VERSIONS: tuple[str, ...] = ("3.11", "3.13")  # Blender 4.2-5.0 / 5.1+ (and Debian's 4.3.2)


class RepoError(RuntimeError):
    """The repository cannot be written; the message says why."""


def parse_version(text: str) -> tuple[int, int, int]:
    a, b, c = ([int(x) for x in text.split(".")] + [0, 0])[:3]
    return a, b, c


def wheel_python(wheel: str) -> str | None:
    """'3.11' for a cp311 wheel; None for a pure one (py3-none-any)."""
    tag = Path(wheel).name.split("-")[-3]
    return f"{tag[2]}.{tag[3:]}" if tag.startswith("cp") else None


@dataclass(frozen=True)
class Variant:
    """One archive per platform: the Pythons whose wheels it carries, the Blenders it admits."""

    suffix: str                  # added to blender_ext's file name, before ".zip"
    pythons: tuple[str, ...]
    blender_min: str | None      # None: the manifest's blender_version_min
    blender_max: str | None      # exclusive, as in Blender


def variants(manifest_min: str) -> list[Variant]:
    """Disjoint Blender ranges, so each Blender is offered exactly one archive per platform.

    Blenders whose filter is right get both Pythons' wheels (a distro Blender on another
    Python than upstream's, e.g. Debian's 4.3.2 on 3.13, works too); older ones, all on
    upstream's Python 3.11, get the cp311 wheels only.
    """
    if parse_version(manifest_min) >= PYTHON_FILTER_SINCE:
        return [Variant("", PYTHON_VERSIONS, None, None)]
    since = ".".join(map(str, PYTHON_FILTER_SINCE))
    last = ".".join(map(str, (*PYTHON_FILTER_SINCE[:2], PYTHON_FILTER_SINCE[2] - 1)))
    return [Variant("", PYTHON_VERSIONS, since, None),
            Variant(f"-blender_{manifest_min}-{last}", ("3.11",), None, since)]




def archive_manifest(path: Path) -> dict[str, Any] | None:
    """The archive's manifest with ``[build.generated]`` applied, as Blender reads it."""
    with zipfile.ZipFile(path) as zf:
        if "blender_manifest.toml" not in zf.namelist():
            return None
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    generated = manifest.get("build", {}).get("generated", {})
    return {**manifest, **generated}


def archive_for(dist_dir: Path, platform: str = "linux-x64", *, blender: Sequence[int],
                python: Sequence[int] = (3, 11)) -> Path:
    """The one archive in ``dist_dir`` that this Blender is offered and installs.

    Blender's rules (bl_pkg ``repository_filter_skip``): the archive's ``platforms``,
    ``blender_version_min`` <= Blender < ``blender_version_max`` and, from
    PYTHON_FILTER_SINCE on, the Python versions of its wheels. E.g. Debian's Blender
    4.3.2: ``archive_for(dist, "linux-x64", blender=(4, 3, 2), python=(3, 13))``.
    Raises LookupError unless exactly one archive fits.
    """
    version = parse_version(".".join(map(str, blender)))
    py = f"{python[0]}.{python[1]}"
    found: list[Path] = []
    for path in sorted(Path(dist_dir).glob("*.zip")):
        manifest = archive_manifest(path)
        if manifest is None:
            continue
        platforms = manifest.get("platforms") or []
        pythons = {wheel_python(w) for w in manifest.get("wheels") or []} - {None}
        low, high = manifest.get("blender_version_min"), manifest.get("blender_version_max")
        if (platforms and platform not in platforms) or (low and version < parse_version(low)) \
                or (high and version >= parse_version(high)) \
                or (version >= PYTHON_FILTER_SINCE and pythons and py not in pythons):
            continue
        found.append(path)
    if len(found) != 1:
        raise LookupError(f"{len(found)} archives in {dist_dir} for Blender {'.'.join(map(str, version))} "
                          f"on {platform} with Python {py}, expected one: {[p.name for p in found]}")
    return found[0]


def read_index(repo_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo_dir / "index.json").read_text(encoding="utf-8"))
    return data


def publish_repo(archives: Sequence[Path], repo_dir: Path, ext_id: str, blender_ext: Path,
                 *, html: bool = True) -> list[Path]:
    """Move ``archives`` into ``repo_dir``, drop older ones of ``ext_id``, write the index."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    names = {a.name for a in archives}
    for old in repo_dir.glob(f"{ext_id}-*.zip"):
        if old.name not in names:
            old.unlink()
    published = []
    for archive in archives:
        dest = repo_dir / archive.name
        if archive.resolve() != dest.resolve():
            shutil.move(str(archive), dest)
        published.append(dest)
    cmd = [sys.executable, str(blender_ext), "server-generate", "--repo-dir", str(repo_dir)]
    proc = subprocess.run(cmd + (["--html"] if html else []), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RepoError(f"blender_ext.py server-generate failed:\n{proc.stdout}{proc.stderr}".strip())
    listed = sorted(Path(item.get("archive_url", "")).name for item in read_index(repo_dir).get("data", [])
                    if item.get("id") == ext_id)
    if listed != sorted(names):  # e.g. an archive blender_ext skipped as invalid
        raise RepoError(f"{repo_dir}/index.json lists {listed}, expected {sorted(names)}:\n{proc.stdout}")
    return published
