"""Fixtures of the real-GUI suite: Debian's Blender 4.3.2 with its whole UI under Xvfb.

Run with ``.venv/bin/python -m pytest tests/ui`` (scripts/test.sh does, after the bpy
suites). The plain ``pytest`` run leaves this folder out (tests/conftest.py).
Where the UI root cannot be built (not root, no debootstrap) every test skips with the
reason; with ``CI=true`` that is an error instead, so CI never passes without it.

- ``ui_root``: builds (or reuses) the cached trixie root (scripts/ui_env.sh).
- ``extension_zip``: the linux-x64 archive a Python 3.13 Blender installs, built once.
- ``gui``: a fresh GuiBlender (own Xvfb display, own BLENDER_USER_RESOURCES), screenshots
  under ``out/ui/<test name>/``, every process stopped at teardown; on failure the
  tail of Blender's log is printed.
- ``ui_sandbox``: a sandbox with real models and a short latency (progress is visible).
- ``setup_addon(gui, sandbox)``: install the zip as a user would, set the preferences,
  open the sidebar on the HiPtah tab.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.ui.driver.archive import gui_archive
from tests.ui.driver.session import GuiBlender, ui_env_problem

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out" / "ui"
ADDON = "bl_ext.user_default.hiptah_blender"


@pytest.fixture(scope="session")
def ui_root() -> Path:
    problem = ui_env_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the GUI suite must run in CI, but the UI root cannot be built: {problem}")
        pytest.skip(f"GUI suite skipped: {problem}")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "ui_env.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the UI root failed:\n{proc.stdout}\n{proc.stderr}")
    return Path(subprocess.run(["bash", str(ROOT / "scripts" / "ui_env.sh"), "path"],
                               capture_output=True, text=True, check=True).stdout.strip())


@pytest.fixture(scope="session")
def extension_zip(ui_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("ui-dist")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build.py"), "--platform", "linux-x64", "--output", str(dist)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"building the extension failed:\n{proc.stdout}\n{proc.stderr}")
    return gui_archive(dist)


# Longest scenarios first (measured: docs/shipping.md#ci-and-timing). pytest-xdist hands
# tests to its workers in collection order, so a long scenario collected last becomes the
# suite's tail; a new scenario that takes minutes belongs in this list.
LONGEST_FIRST = ("test_five_jobs.py", "test_panel_states.py", "test_failures_recover.py",
                 "test_i18n_screenshots.py", "test_farm_openjd.py", "test_asset_library.py",
                 "test_keychain.py", "test_blend_reopen.py", "test_quit_restart.py",
                 "test_generate_undo.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside a file and among the rest is kept


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash.setdefault(_REPORTS, {})["call"] = report
    return report


_REPORTS = pytest.StashKey[dict[str, Any]]()


def _out_dir(node_name: str) -> Path:
    return OUT / re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name.removeprefix("test_"))


@pytest.fixture
def gui_factory(ui_root: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., GuiBlender]]:
    """``gui_factory(name=None, user_resources=None)``: more than one Blender in a test
    (e.g. quit and start again with the same user folder)."""
    started: list[GuiBlender] = []
    base = _out_dir(request.node.name)
    shutil.rmtree(base, ignore_errors=True)  # only this run's screenshots

    def factory(name: str | None = None, user_resources: Path | None = None, **kw: Any) -> GuiBlender:
        bur = user_resources or Path(tempfile.mkdtemp(prefix="hiptah-gui-bur-"))
        gui = GuiBlender(base / name if name else base, user_resources=bur, **kw)
        started.append(gui)
        return gui

    yield factory
    report = request.node.stash.get(_REPORTS, {}).get("call")
    for gui in started:
        if report is not None and report.failed:
            try:
                gui.screenshot("failure")
            except Exception as exc:  # the display may be gone already
                print(f"(no failure screenshot: {exc})")
            print(gui.log_tail(80))
        gui.stop()


@pytest.fixture
def gui(gui_factory: Callable[..., GuiBlender]) -> GuiBlender:
    return gui_factory()


@pytest.fixture
def ui_sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(latency=4, models="auto", seed=0, webhook_backoff=0.1, webhook_timeout=2)
    try:
        yield server.start()
    finally:
        server.stop()


def setup_addon(gui: GuiBlender, zip_path: Path | None, sandbox: SandboxServer | None, *,
                api_key: str | None = None, open_tab: bool = True) -> None:
    """Install the archive (Preferences > Get Extensions > Install from Disk does this
    operator), turn on online access, set key + URL, show the sidebar on our tab."""
    code = "prefs = bpy.context.preferences\nprefs.system.use_online_access = True\n"
    if zip_path is not None:
        code += (f"assert 'FINISHED' in bpy.ops.extensions.package_install_files(filepath={str(zip_path)!r}, "
                 "repo='user_default', enable_on_install=True)\n")
    if sandbox is not None:
        key = api_key if api_key is not None else sandbox.api_key
        code += (f"p = prefs.addons[{ADDON!r}].preferences\n"
                 f"p.api_key = {key!r}\np.base_url = {sandbox.base_url!r}\n")
    code += ("sidebar('VIEW_3D', 'WINDOW')['area'].spaces.active.show_region_ui = True\n"
             "bpy.ops.wm.save_userpref()\nresult = 1\n")
    gui.call(code)
    if open_tab:
        gui.click_tab("HiPtah")


def jobs(gui: GuiBlender) -> list[dict[str, Any]]:
    """The add-on's job snapshots as the panel sees them (read-only, from the runtime)."""
    return list(gui.call(
        f"from {ADDON}.blender import runtime as _rt\n"
        "_r = _rt.peek()\n"
        "result = [] if _r is None else [dict(local_id=j.local_id, job_id=j.job_id, state=j.state.value, "
        "progress=j.progress, prompt=j.prompt, error=(j.error.message if j.error else None)) "
        "for j in _r.scheduler.jobs()]\n"
    ))
