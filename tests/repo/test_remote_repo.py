"""``scripts/build.py --repo DIR``: a Blender remote repository, served from loopback.

- the repository's files: archives, index.json and index.html from Blender's own
  ``blender_ext.py server-generate``;
- the archive scheme: with each Blender's own listing filter (bl_pkg
  ``repository_filter_skip`` of 4.2.0, 4.2.23, 4.5, 5.0, and of Debian's 4.3.2 when its
  root is cached), every Blender/Python pair is offered exactly one archive, and it
  carries the pydantic_core wheel for that Python;
- in real Blender (bpy 5.0.1 and 4.2.0, bare venvs): add the repository, sync, install,
  generate; publish a higher version (built from a temporary copy, never touching the
  real manifest), sync: the update is reported, the upgrade loads the new code, and the
  job history and the preferences (API key included) are kept. See blender_repo_check.py.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.install.conftest import ROOT, BlenderVenv, blender_venvs, build_mod, require_venv

pytestmark = [pytest.mark.install]

SCRIPT = Path(__file__).with_name("blender_repo_check.py")
PROMPT = "a small wooden table"
DEBIAN_BL_PKG = ROOT / ".cache" / "ui-root" / "usr" / "share" / "blender" / "scripts" / "addons_core" / "bl_pkg"


def build_repo_into(repo_dir: Path, *, source: Path = ROOT, stage: Path) -> subprocess.CompletedProcess[str]:
    """``build.py --repo`` of ``source`` (the checkout or a copy of it), sharing the wheel cache."""
    return subprocess.run(
        [sys.executable, str(source / "scripts" / "build.py"), "--repo", str(repo_dir),
         "--platform", "linux-x64", "--cache-dir", str(ROOT / ".cache" / "wheels"),
         "--stage-dir", str(stage / "hiptah_blender")],
        cwd=source, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("repo")
    proc = build_repo_into(base / "repo", stage=base / "stage")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "repository index:" in proc.stdout
    return base / "repo"


def index_items(repo_dir: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((repo_dir / "index.json").read_text())["data"]
    return items


def test_repo_holds_the_archives_index_and_listing(repo: Path) -> None:
    version = str(build_mod.read_manifest()["version"])
    main = f"hiptah_blender-{version}-linux_x64.zip"
    legacy = f"hiptah_blender-{version}-linux_x64-blender_4.2.0-4.2.12.zip"
    assert sorted(p.name for p in repo.iterdir()) == sorted([main, legacy, "index.json", "index.html"])
    items = {Path(i["archive_url"]).name: i for i in index_items(repo)}
    assert set(items) == {main, legacy}
    for name, item in items.items():
        data = (repo / name).read_bytes()
        assert item["archive_url"] == f"./{name}"          # relative: any static host works
        assert item["archive_size"] == len(data)
        assert item["archive_hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert (item["id"], item["version"], item["platforms"]) == ("hiptah_blender", version, ["linux-x64"])
    assert (items[main]["blender_version_min"], items[main].get("blender_version_max")) == ("4.2.13", None)
    assert items[main]["python_versions"] == ["3.11", "3.13"]
    assert (items[legacy]["blender_version_min"], items[legacy]["blender_version_max"]) == ("4.2.0", "4.2.13")
    assert items[legacy]["python_versions"] == ["3.11"]
    html = (repo / "index.html").read_text()
    assert main in html and legacy in html


def load_blender_ext(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"blender_ext_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bl_pkg_of(version: str) -> Path | None:
    """blender_ext.py of a Blender whose bl_pkg is on disk (a bare venv or Debian's root)."""
    if version == "debian-4.3.2":
        path = DEBIAN_BL_PKG / "cli" / "blender_ext.py"
        return path if path.is_file() else None
    venv = next((v for v in blender_venvs() if v.version == version), None)
    return venv.blender_ext if venv is not None else None


# (Blender, its Python, whose listing filter stands in for it). Upstream 4.2.1-4.2.12 are not
# on PyPI; 5.1 is not installable here: the nearest rules stand in (noted per row).
SCHEME = [
    ((4, 2, 0), (3, 11), "4.2.0"),
    ((4, 2, 12), (3, 11), "4.2.0"),        # worst case: a 4.2.x without the Python filter
    ((4, 2, 13), (3, 11), "4.2.23"),
    ((4, 2, 23), (3, 11), "4.2.23"),
    ((4, 3, 2), (3, 13), "debian-4.3.2"),  # Debian trixie's Blender runs Python 3.13
    ((4, 5, 15), (3, 11), "4.5.15"),
    ((5, 0, 1), (3, 11), "5.0.1"),
    ((5, 1, 0), (3, 13), "5.0.1"),         # 5.1's filter is 5.0's
]


@pytest.mark.parametrize(("blender", "python", "rules"), SCHEME,
                         ids=[f"{'.'.join(map(str, b))}-py{p[0]}{p[1]}" for b, p, _ in SCHEME])
def test_each_blender_is_offered_exactly_one_archive_that_works(
        repo: Path, blender: tuple[int, int, int], python: tuple[int, int], rules: str) -> None:
    tool = bl_pkg_of(rules)
    if tool is None:
        pytest.skip(f"bl_pkg of Blender {rules} is not on this machine")
    ext = load_blender_ext(tool)
    kwargs: dict[str, Any] = dict(filter_blender_version=blender, filter_platform="linux-x64",
                                  skip_message_fn=None, error_fn=print)
    if "filter_python_version" in ext.repository_filter_skip.__code__.co_varnames:
        kwargs["filter_python_version"] = (*python, 0)
    offered = [i for i in index_items(repo) if not ext.repository_filter_skip(i, **kwargs)]
    assert len(offered) == 1, [i["archive_url"] for i in offered]
    chosen = repo / Path(offered[0]["archive_url"]).name
    # build.archive_for applies the same rules to a folder of archives.
    assert build_mod.archive_for(repo, "linux-x64", blender=blender, python=python) == chosen
    wheels = build_mod.archive_manifest(chosen)["wheels"]
    cp = f"cp{python[0]}{python[1]}"
    assert any("pydantic_core-" in w and f"-{cp}-" in w for w in wheels), wheels
    if "filter_python_version" not in kwargs:   # 4.2.0 installs any Python's wheel it sees
        assert all(f"-{cp}-" in w or "-py3-none-any" in w for w in wheels), wheels


# --- real Blender ---------------------------------------------------------------------------


@pytest.fixture
def served(repo: Path, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A copy of the repository served over HTTP on loopback (a free port), stopped after."""
    repo_dir = tmp_path / "served"
    shutil.copytree(repo, repo_dir)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(repo_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield repo_dir, f"http://127.0.0.1:{server.server_address[1]}/index.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def bumped_copy(tmp: Path) -> tuple[Path, str]:
    """A copy of what the build reads, with the patch version + 1 and a marker in the code."""
    src = tmp / "next"
    shutil.copytree(ROOT / "hiptah_blender", src / "hiptah_blender",
                    ignore=shutil.ignore_patterns("__pycache__", "wheels"))
    (src / "scripts").mkdir()
    for name in ("build.py", "build_repo.py"):
        shutil.copyfile(ROOT / "scripts" / name, src / "scripts" / name)
    shutil.copyfile(ROOT / "requirements-extension.txt", src / "requirements-extension.txt")
    text = (ROOT / "blender_manifest.toml").read_text()
    old = str(build_mod.read_manifest()["version"])
    major, minor, patch = (int(x) for x in old.split("."))
    new = f"{major}.{minor}.{patch + 1}"
    (src / "blender_manifest.toml").write_text(
        re.sub(r'^version = ".*"$', f'version = "{new}"', text, count=1, flags=re.MULTILINE))
    with (src / "hiptah_blender" / "__init__.py").open("a") as fh:
        fh.write(f'\nHIPTAH_BUILD_MARKER = "{new}"\n')
    return src, new


REPO_VENVS = [pytest.param(v, id=f"bpy{v.version}") for v in blender_venvs()
              if v.version in {"4.2.0", "5.0.1"}]


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("venv", REPO_VENVS)
def test_add_repository_install_then_upgrade(venv: BlenderVenv, served: tuple[Path, str],
                                             sandbox: SandboxServer, tmp_path: Path) -> None:
    require_venv(venv)
    repo_dir, url = served
    manifest_before = (ROOT / "blender_manifest.toml").read_bytes()
    old_version = str(build_mod.read_manifest()["version"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HIPTAH_"))}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender-user")
    # The key and URL go into the add-on's preferences (not the environment), so the test
    # also shows they survive the upgrade.
    proc = subprocess.Popen(
        [str(venv.python), "-I", str(SCRIPT), url, sandbox.api_key, sandbox.base_url, PROMPT],
        cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert proc.stdin is not None and proc.stdout is not None
    log: list[str] = []
    try:
        phase1 = read_marker(proc, "HIPTAH_PHASE1=", log)
        assert phase1 is not None, "".join(log[-80:])
        src, new_version = bumped_copy(tmp_path)
        published = build_repo_into(repo_dir, source=src, stage=tmp_path / "stage-next")
        assert published.returncode == 0, published.stdout + published.stderr
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = read_marker(proc, "HIPTAH_RESULT=", log)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert result is not None, "".join(log[-120:])
    errors = result["errors"]
    assert (ROOT / "blender_manifest.toml").read_bytes() == manifest_before

    # Phase 1: added through Blender's operator, synced, installed from the repository.
    assert result["blender_version"] == list(venv.version_tuple)
    assert result["repo_add"] == ["FINISHED"] and result["repo_found"], errors
    assert result["sync1"] == ["FINISHED"], errors
    assert result["remote_version1"] == old_version
    assert result["install"] == ["FINISHED"], errors
    before = result["before"]
    assert before["loaded"][1] is True, errors
    assert before["bl_info_version"][:3] == [int(x) for x in old_version.split(".")]
    assert before["marker"] is None
    # Blender took the archive meant for it: 4.2.0 the cp311-only one.
    has_cp313 = any("-cp313-" in w for w in before["wheels"])
    assert has_cp313 == (venv.version_tuple >= (4, 2, 13)), before["wheels"]
    assert result["generate1"] == ["FINISHED"], errors
    assert result["jobs1"], "no job history written"

    # The repository now holds only the new version (server-generate lists one per range).
    assert sorted(p.name for p in repo_dir.glob("*.zip")) == sorted(
        [f"hiptah_blender-{new_version}-linux_x64.zip",
         f"hiptah_blender-{new_version}-linux_x64-blender_4.2.0-4.2.12.zip"])

    # Phase 2: the update is seen, the upgrade loads the new code, nothing is lost.
    assert result["sync2"] == ["FINISHED"], errors
    assert result["remote_version2"] == new_version
    assert result["updates"] == 1
    assert result["upgrade"] == ["FINISHED"], errors
    after = result["after"]
    assert after["loaded"][1] is True, errors
    assert after["bl_info_version"][:3] == [int(x) for x in new_version.split(".")]
    assert after["marker"] == new_version, "the old module is still the one loaded"
    assert result["updates_after"] == 0
    assert result["api_key_kept"] is True and result["base_url_kept"] is True, errors
    assert result["jobs2"] == result["jobs1"], "the job history changed with the upgrade"
    assert result["generate2"] == ["FINISHED"], errors
    assert [j["prompt"] for j in sandbox.jobs()] == [PROMPT, PROMPT]
    assert errors == []


def read_marker(proc: subprocess.Popen[str], marker: str, log: list[str]) -> dict[str, Any] | None:
    assert proc.stdout is not None
    for line in proc.stdout:
        log.append(line)
        if line.startswith(marker):
            data: dict[str, Any] = json.loads(line.removeprefix(marker))
            return data
    return None
