"""Which built archive the GUI Blender installs: Debian trixie's Blender 4.3.2 runs
Python 3.13, so it takes the archive that scripts/build_repo.archive_for picks for it."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BLENDER_VERSION = (4, 3, 2)
BLENDER_PYTHON = (3, 13)


def gui_archive(dist: Path) -> Path:
    """The linux-x64 archive in ``dist`` that Debian's Blender 4.3.2 installs."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_repo  # scripts/build_repo.py
    finally:
        sys.path.pop(0)
    return Path(build_repo.archive_for(dist, platform="linux-x64", blender=BLENDER_VERSION, python=BLENDER_PYTHON))
