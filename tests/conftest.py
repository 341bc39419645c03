"""Shared fixtures.

BLENDER_USER_RESOURCES is pointed at a temporary folder before anything can
import bpy, so no test ever touches the real user's Blender configuration.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if not os.environ.get("BLENDER_USER_RESOURCES"):
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="hiptah-bur-")
elif os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist workers share the parent's environment; one user folder for all of
    # them would share the add-on's job store and download folder between tests running
    # at the same time. Each worker gets its own (inside the given one, so it is cleaned
    # up with it).
    _worker_bur = os.path.join(os.environ["BLENDER_USER_RESOURCES"], os.environ["PYTEST_XDIST_WORKER"])
    os.makedirs(_worker_bur, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = _worker_bur

pytest_plugins = ["tests.fixtures_sandbox"]


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    """tests/ui (real Blender GUI under Xvfb) runs only when named: scripts/test.sh runs
    it as its own step after the bpy suites."""
    ui = ROOT / "tests" / "ui"
    if collection_path == ui:
        args = [str(Path(a.split("::")[0]).resolve()) for a in getattr(config, "args", [])]
        if not any(a == str(ui) or a.startswith(str(ui) + os.sep) for a in args):
            return True
    return None
