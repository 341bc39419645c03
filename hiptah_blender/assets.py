"""The asset library's files, without bpy: catalogs, file names, atomic replacement.

A personal library is a folder of small ``.blend`` files, one per generation, that
Blender scans (design: "From one seat to a studio"); a batch library is one
``library.blend``. Both share this catalog scheme: a parent catalog "HiPtah" and one
per month of creation ("HiPtah/2026-12"), with fixed UUIDs derived from the path, so
every library, every re-run and every machine agrees on them.

Saving never leaves a half-written asset: the ``.blend`` is written under a name Blender
does not scan (``*.blend.part``), then renamed over the job's file in one step. A crash
mid-write leaves only a ``.part`` file, removed by the next save (``sweep_partials``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

CATALOG_ROOT = "HiPtah"
CATALOG_FILE = "blender_assets.cats.txt"
LIBRARY_NAME = "HiPtah"  # the name in Preferences > File Paths > Asset Libraries
PARTIAL_SUFFIX = ".blend.part"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://hiptah.com/blender/catalog/")

CATALOG_HEADER = """# This is an Asset Catalog Definition file for Blender.
#
# Empty lines and lines starting with `#` will be ignored.
# The first non-ignored line should be the version indicator.
# Other lines are of the format "UUID:catalog/path/for/assets:simple catalog name"

VERSION 1

"""


def catalog_path(created_at: float) -> str:
    """The month's catalog of a generation created at ``created_at`` (UTC): "HiPtah/2026-12"."""
    month = datetime.datetime.fromtimestamp(created_at, tz=datetime.UTC).strftime("%Y-%m")
    return f"{CATALOG_ROOT}/{month}"


def catalog_id(path: str) -> str:
    """A catalog's UUID: fixed for its path. The root keeps the UUID batch libraries
    always had, so libraries written before months existed still find it."""
    if path == CATALOG_ROOT:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "https://hiptah.com/blender/catalog/hiptah"))
    return str(uuid.uuid5(_NAMESPACE, path))


def _catalog_line(path: str) -> str:
    simple = path.replace("/", "-")
    return f"{catalog_id(path)}:{path}:{simple}\n"


def ensure_catalogs(folder: str | os.PathLike[str], paths: Iterable[str]) -> bool:
    """Add ``paths`` (and their parents) to the folder's catalog file, keeping every
    other line (catalogs the user made in the Asset Browser). True when it changed."""
    folder = Path(folder)
    wanted: list[str] = []
    for path in paths:
        parts = path.split("/")
        for end in range(1, len(parts) + 1):
            sub = "/".join(parts[:end])
            if sub not in wanted:
                wanted.append(sub)
    target = folder / CATALOG_FILE
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    missing = [p for p in wanted if catalog_id(p) not in text]
    if not missing:
        return False
    if not text.strip():
        text = CATALOG_HEADER
    elif not text.endswith("\n"):
        text += "\n"
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(target, (text + "".join(_catalog_line(p) for p in missing)).encode("utf-8"))
    return True


def read_catalogs(folder: str | os.PathLike[str]) -> dict[str, str]:
    """UUID -> catalog path of the folder's catalog file (tests, reports)."""
    try:
        text = (Path(folder) / CATALOG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("VERSION"):
            continue
        parts = line.split(":", 2)
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def asset_file(folder: str | os.PathLike[str], key: str) -> Path:
    """The one file of a generation (``key``: its job id, else its local id): saving the
    same job again replaces this file, so the library never holds it twice."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_") or "job"
    return Path(folder) / f"hiptah_{safe[:80]}.blend"


def partial_file(final: Path) -> Path:
    """Where ``final`` is written first: not a ``.blend``, so Blender never lists it."""
    return final.with_name(f".{final.stem}.{os.getpid()}{PARTIAL_SUFFIX}")


def sweep_partials(folder: str | os.PathLike[str], *, older_than: float = 60.0) -> int:
    """Remove what a crash mid-write left (``.part`` files older than ``older_than`` s)."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.endswith(PARTIAL_SUFFIX):
            try:
                if now - entry.stat().st_mtime >= older_than:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
    return removed


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def publish(partial: Path, final: Path) -> None:
    """Make a fully written ``partial`` the job's asset file in one rename."""
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, final)


def default_library_dir() -> str:
    """The personal library's default folder: per user, outside the extension's own
    folder (Blender may replace that on upgrade), next to Blender's own "User Library":
    ~/Documents/Blender/HiPtah Library (~/Blender/... without a Documents folder). When
    BLENDER_USER_RESOURCES redirects Blender's user folder (tests, portable setups), the
    library goes there too, so such a Blender never writes into the real home."""
    return _default_for(os.environ.get("BLENDER_USER_RESOURCES", "").strip(), str(Path.home()))


@functools.lru_cache(maxsize=8)
def _default_for(redirected: str, home: str) -> str:
    # Cached: the preferences draw it, and drawing must not touch the disk every time.
    if redirected:
        return str(Path(redirected) / "HiPtah Library")
    documents = Path(home) / "Documents"
    base = documents if documents.is_dir() else Path(home)
    return str(base / "Blender" / "HiPtah Library")
