"""Shared fixtures.

BLENDER_USER_RESOURCES is pointed at a temporary folder before anything can
import bpy, so no test ever touches the real user's Blender configuration.
"""

from __future__ import annotations

import contextlib
import locale
import os
import sys
import tempfile
from pathlib import Path

import pytest

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

# No test may reach the developer's real keychain: keyring's "no keychain" backend for
# every test and every Blender they start, unless a test picks another (the keychain
# tests start their own Secret Service, tests/keychain_service.py).
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

pytest_plugins = ["tests.fixtures_sandbox"]


@pytest.fixture(autouse=True)
def _environment_locale() -> None:
    """Each test starts with the environment's character locale. Something in a test
    running Blender in-process can leave the process's LC_CTYPE at "C" (seen in
    pytest-xdist workers), after which text-mode subprocess output with a curly quote
    fails to decode in whatever test that worker runs next."""
    if locale.getpreferredencoding(False).lower().replace("-", "") != "utf8":
        with contextlib.suppress(locale.Error):
            locale.setlocale(locale.LC_CTYPE, "")


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    """tests/ui (real Blender GUI under Xvfb) runs only when named: scripts/test.sh runs
    it as its own step after the bpy suites."""
    ui = ROOT / "tests" / "ui"
    if collection_path == ui:
        args = [str(Path(a.split("::")[0]).resolve()) for a in getattr(config, "args", [])]
        if not any(a == str(ui) or a.startswith(str(ui) + os.sep) for a in args):
            return True
    return None
