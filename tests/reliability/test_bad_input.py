"""Bad input: a clear message and no change (no server job, no file, scene untouched).

The client/scheduler level runs the shared cases of tests/reliability/harness/bad_input.py (the
README table comes from them). The Blender level runs ``bpy.ops.hiptah.generate``
with the same input and checks the report is the very text of that table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from sandbox.fakemodels import generate_model
from sandbox.harness import SandboxServer
from tests.reliability.harness.bad_input import (
    BAD_INPUTS,
    BASE_URLS,
    IMAGES,
    KEYS,
    PROMPTS,
    REVOKED_KEY,
    run_bad_input,
    scripted_api,
)
from tests.unit.scripted_server import Reply, ScriptedServer

bpy: Any
try:  # the Blender half needs the bpy module; the client half does not
    import bpy as _bpy

    from tests.blender.conftest import Addon, addon, no_env  # noqa: F401  (fixtures)

    bpy = _bpy
except (ImportError, pytest.skip.Exception):
    bpy = None


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_client_level(name: str, fault_sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_bad_input(name, fault_sandbox, tmp_path)
    print("\n" + result.row())
    assert result.problems == []
    assert result.text.strip()
    if result.outcome.startswith("refused"):
        assert result.error_kind in errors.__all__


def test_server_job_id_dotdot_is_refused_at_submission() -> None:
    """Regression: a job id of ".." cannot be polled (it is a path segment); the client
    now says so when the server hands it out instead of a misleading 404 later."""
    with ScriptedServer() as server:
        server.default("POST", "/v1/generate", Reply.json(201, {"job_id": "..", "status": "queued"}))
        client = HiptahClient("sk_test_0123456789", server.base_url, max_retries=0)
        with pytest.raises(errors.UnexpectedResponseError, match="unusable job_id"):
            client.generate({"prompt": "a crate"})


def test_job_id_with_path_characters_is_quoted_in_the_url() -> None:
    with ScriptedServer() as server:
        server.default("GET", "/v1/job/..%2F..%2Fevil%3Fx%3D1%23y",
                       Reply.json(200, {"job_id": "../../evil?x=1#y", "status": "queued"}))
        client = HiptahClient("sk_test_0123456789", server.base_url, max_retries=0)
        assert client.get_job("../../evil?x=1#y").status.value == "queued"
        assert [r.path for r in server.requests] == ["/v1/job/..%2F..%2Fevil%3Fx%3D1%23y"]


# ----------------------------------------------------------------------------- in Blender

blender = pytest.mark.skipif(bpy is None, reason="needs the bpy module")


def _scene_state() -> tuple[int, int, int]:
    assert bpy is not None
    return len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections)


def _download_files(addon: Any) -> list[str]:
    folder = addon.rt().settings.download_dir if addon.runtime.peek() else ""
    return sorted(os.listdir(folder)) if folder and os.path.isdir(folder) else []


def _generate_error(addon: Any, **kwargs: Any) -> str:
    """A blocking generate that must fail: Blender raises the ERROR report as RuntimeError
    (in the bpy module; the UI shows it). Returns the report text."""
    with pytest.raises(RuntimeError) as info:
        bpy.ops.hiptah.generate(wait=True, **kwargs)
    level, text = addon.reports()[-1]
    assert level == "ERROR" and text in str(info.value)
    return str(text)


def _refused_in_blender(addon: Any, expected: str, **kwargs: Any) -> None:
    before = _scene_state()
    assert _generate_error(addon, **kwargs).endswith(expected), addon.last_report()
    assert _scene_state() == before
    assert addon.sandbox.jobs() == []
    assert _download_files(addon) == []


@blender
@pytest.mark.blender
@pytest.mark.parametrize("name", [n for n, (_w, _p, valid) in PROMPTS.items() if not valid])
def test_bad_prompt_in_blender(addon: Any, name: str, tmp_path: Path) -> None:
    expected = run_bad_input(name, addon.sandbox, tmp_path).text
    _refused_in_blender(addon, expected, prompt=PROMPTS[name][1])


@blender
@pytest.mark.blender
@pytest.mark.parametrize("name", [n for n, (_w, _p, valid) in PROMPTS.items() if valid])
def test_emoji_and_rtl_prompts_reach_the_server_intact_from_blender(addon: Any, name: str) -> None:
    prompt = PROMPTS[name][1]
    assert bpy.ops.hiptah.generate(prompt=prompt, wait=True) == {"FINISHED"}, addon.last_report()
    assert [j["prompt"] for j in addon.sandbox.jobs()] == [prompt]
    assert bpy.data.collections["HiPtah"].objects


@blender
@pytest.mark.blender
@pytest.mark.parametrize("name", list(BASE_URLS))
def test_bad_base_url_in_blender(addon: Any, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = run_bad_input(name, addon.sandbox, tmp_path).text
    monkeypatch.setenv("HIPTAH_BASE_URL", BASE_URLS[name][1])
    _refused_in_blender(addon, expected, prompt="a wooden crate")


@blender
@pytest.mark.blender
@pytest.mark.parametrize("name", list(KEYS))
def test_bad_key_in_blender(addon: Any, no_env: None, name: str, tmp_path: Path) -> None:
    expected = run_bad_input(name, addon.sandbox, tmp_path).text
    addon.prefs.base_url = addon.sandbox.base_url
    addon.prefs.api_key = KEYS[name][1]
    _refused_in_blender(addon, expected, prompt="a wooden crate")


@blender
@pytest.mark.blender
def test_revoked_key_in_blender(addon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = run_bad_input("key_revoked", addon.sandbox, tmp_path).text  # also revokes it
    monkeypatch.setenv("HIPTAH_API_KEY", REVOKED_KEY)
    before = _scene_state()
    assert _generate_error(addon, prompt="a wooden crate").endswith(expected), addon.last_report()
    assert REVOKED_KEY not in addon.last_report()
    assert _scene_state() == before and addon.sandbox.jobs() == []


@blender
@pytest.mark.blender
def test_unsupported_format_cannot_reach_the_operator(addon: Any) -> None:
    before = _scene_state()
    with pytest.raises(TypeError, match="obj"):
        bpy.ops.hiptah.generate(prompt="a wooden crate", format="obj", wait=True)
    assert _scene_state() == before and addon.sandbox.jobs() == []


@blender
@pytest.mark.blender
@pytest.mark.parametrize("name", list(IMAGES))
def test_bad_image_in_blender(addon: Any, name: str, tmp_path: Path) -> None:
    expected = run_bad_input(name, addon.sandbox, tmp_path / "client").text
    _what, content, filename = IMAGES[name]
    path = tmp_path / filename
    if content is not None:
        path.write_bytes(content)
    _refused_in_blender(addon, expected, prompt="", image_path=str(path))


@blender
@pytest.mark.blender
def test_server_job_id_with_path_characters_stays_in_the_folder_in_blender(
    addon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scripted_api("../../evil", "glb", generate_model("a crate", "glb", "draft")) as api:
        monkeypatch.setenv("HIPTAH_BASE_URL", api.base_url)
        assert bpy.ops.hiptah.generate(prompt="a wooden crate", wait=True) == {"FINISHED"}, addon.last_report()
        polled = {r.path for r in api.requests if r.method == "GET"}
    assert polled == {"/v1/job/..%2F..%2Fevil"}
    record = addon.rt().scheduler.jobs()[0]
    folder = Path(addon.rt().settings.download_dir).resolve()
    assert record.file_path and Path(record.file_path).resolve().parent == folder
    assert bpy.data.collections["HiPtah"].objects


@blender
@pytest.mark.blender
def test_model_of_the_wrong_type_changes_nothing_in_blender(addon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _scene_state()
    with scripted_api("gen_wrong", "glb", b"<html><body>Access denied</body></html>" * 4) as api:
        monkeypatch.setenv("HIPTAH_BASE_URL", api.base_url)
        assert "it is not a GLB file" in _generate_error(addon, prompt="a wooden crate")
    assert _scene_state() == before
    assert _download_files(addon) == []
