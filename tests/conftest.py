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

# No test may reach the developer's real keychain: keyring's "no keychain" backend for
# every test and every Blender they start, unless a test picks another (the keychain
# tests start their own Secret Service, tests/keychain_service.py).
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

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
