"""Every failure reaches the user as an ERROR report naming the cause and the fix,
and a model that cannot be imported leaves the scene exactly as it was."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Addon, bpy

pytestmark = pytest.mark.blender


def generate_error(addon: Addon, **kwargs: Any) -> str:
    """Run a blocking generate that must fail; return the report the user got."""
    with pytest.raises(RuntimeError) as info:
        bpy.ops.hiptah.generate(**{"prompt": "a wooden chair", "wait": True, **kwargs})
    level, text = addon.reports()[-1]
    assert level == "ERROR"
    assert text in str(info.value)  # the same text Blender shows / prints
    return text


def test_wrong_key_401(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPTAH_API_KEY", "hp_wrong_key_0123456789")
    text = generate_error(addon)
    assert "API key was refused" in text and "Preferences > Add-ons > HiPtah" in text
    assert "hp_wrong_key_0123456789" not in text


def test_plan_limit_403(addon: Addon) -> None:
    addon.sandbox.set_plan("creator", quota=100, used=100)
    text = generate_error(addon)
    assert "generation limit is reached" in text and "Upgrade your plan" in text


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("<b>a chair</b>", "Remove the HTML"),
        ("x" * 501, "the limit is 500"),
        ("   ", "Enter a prompt"),
    ],
)
def test_bad_prompt_400_refused_before_sending(addon: Addon, prompt: str, expected: str) -> None:
    text = generate_error(addon, prompt=prompt)
    assert expected in text and "1 to 500 characters" in text
    assert addon.sandbox.jobs() == []  # nothing was sent, nothing charged


def test_unsupported_format_422(addon: Addon) -> None:
    # The operator only offers the contract's formats ...
    with pytest.raises(TypeError, match="glb"):
        bpy.ops.hiptah.generate(prompt="a chair", format="obj")
    # ... and the runtime refuses anything else with the 422 error type and its hint.
    from hiptah_blender.client.errors import UnsupportedFormatError

    with pytest.raises(UnsupportedFormatError) as info:
        addon.rt().submit(bpy.context, "a chair", fmt="obj", quality="high")
    assert "glb, fbx, usdz, stl or 3mf" in info.value.user_text()


def test_server_down(addon: Addon, make_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = make_sandbox()
    base_url = server.base_url
    server.stop()
    monkeypatch.setenv("HIPTAH_BASE_URL", base_url)
    addon.prefs.job_deadline = 5.0
    text = generate_error(addon)
    assert "Could not reach 127.0.0.1" in text and "base URL" in text


def test_unreachable_server_stops_a_blocking_wait_early_and_keeps_the_job(
    addon: Addon, make_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the default 600 s job deadline a script must not hang on a server it cannot
    # reach: the wait ends after the grace period, the job is kept (same idempotency
    # key) and is sent, once, as soon as the server answers again.
    server = make_sandbox()
    server.stop()
    monkeypatch.setenv("HIPTAH_BASE_URL", server.base_url)
    monkeypatch.setenv("HIPTAH_API_KEY", server.api_key)
    runtime = addon.runtime
    monkeypatch.setattr(runtime, "UNREACHABLE_GRACE", 1.0)
    assert addon.prefs.job_deadline >= 300
    started = time.monotonic()
    text = generate_error(addon)
    waited = time.monotonic() - started
    assert "could not be sent" in text and "Could not reach 127.0.0.1" in text
    assert "idempotency key" in text
    assert waited < 120, waited  # far from the 600 s deadline: the grace, plus retries
    rt = addon.rt()
    record = rt.scheduler.jobs()[0]
    assert record.job_id is None and record.state.value in ("waiting", "submitting")
    key = record.idempotency_key

    server.start()  # same port and key: HiPtah is back
    end = time.monotonic() + 60
    while rt.scheduler.get(record.local_id).job_id is None and time.monotonic() < end:
        rt.step()
        time.sleep(0.05)
    assert rt.scheduler.get(record.local_id).job_id
    jobs = server.state()["jobs"]
    assert [j["idempotency_key"] for j in jobs] == [key]


def test_deadline(addon: Addon) -> None:
    addon.sandbox.set_faults(latency=60)
    addon.prefs.job_deadline = 5.0
    text = generate_error(addon)
    assert "did not finish within 5 s" in text and "raise the job deadline" in text
    record = addon.rt().scheduler.jobs()[0]
    assert record.state.value == "failed" and record.error.kind == "JobTimeoutError"


def test_generation_failed_on_the_server(addon: Addon) -> None:
    addon.sandbox.set_faults(fail_rate=1.0)
    text = generate_error(addon)
    assert "generation failed" in text and "rephrasing" in text


def test_missing_key(addon: Addon, no_env: None) -> None:
    addon.prefs.base_url = addon.sandbox.base_url
    addon.prefs.api_key = ""
    text = generate_error(addon)
    assert "No HiPtah API key" in text and "HIPTAH_API_KEY" in text


def test_online_access_off_blocks_remote_hosts_only(addon: Addon, no_env: None) -> None:
    bpy.context.preferences.system.use_online_access = False
    addon.prefs.api_key = "hp_some_key_123456"
    addon.prefs.base_url = "https://api.hiptah.com/v1"
    text = generate_error(addon)
    assert "online access is turned off" in text and "Allow Online Access" in text
    # The loopback sandbox stays usable offline.
    addon.prefs.api_key = addon.sandbox.api_key
    addon.prefs.base_url = addon.sandbox.base_url
    assert bpy.ops.hiptah.generate(prompt="a chair", wait=True) == {"FINISHED"}


def test_plain_http_to_a_remote_host_is_refused(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPTAH_BASE_URL", "http://api.example.com/v1")
    text = generate_error(addon)
    assert "Plain http://" in text and "https://" in text


def test_test_connection_wrong_key(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPTAH_API_KEY", "hp_wrong_key_0123456789")
    with pytest.raises(RuntimeError, match="API key was refused"):
        bpy.ops.hiptah.test_connection()


def _scene_state() -> dict[str, Any]:
    names = {
        attr: sorted(i.name for i in getattr(bpy.data, attr))
        for attr in ("objects", "meshes", "materials", "images", "collections", "textures", "node_groups")
    }
    layer = bpy.context.view_layer
    names["selected"] = sorted(o.name for o in layer.objects if o.select_get())
    names["active"] = layer.objects.active.name if layer.objects.active else None
    return names


def test_corrupt_file_leaves_the_scene_untouched_and_the_job_downloaded(addon: Addon) -> None:
    bpy.ops.mesh.primitive_cube_add()  # something selected and active, to be kept as it is
    assert bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True, import_result=False) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]
    with open(record.file_path, "r+b") as fh:  # keep the glTF magic, break the rest
        head = fh.read(12)
        fh.seek(0)
        fh.truncate()
        fh.write(head + b"\x00garbage" * 50)
    before = _scene_state()
    with pytest.raises(RuntimeError, match="could not be imported"):
        bpy.ops.hiptah.import_job(local_id=record.local_id)
    assert _scene_state() == before
    rt = addon.rt()
    assert rt.get(record.local_id).state.value == "downloaded"
    assert record.local_id in rt.import_errors
    assert "file is kept" in addon.last_report()
    import os

    assert os.path.isfile(record.file_path)


def test_partial_import_is_rolled_back(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    """An importer that creates data and then fails leaves nothing behind."""
    from hiptah_blender.blender import importers

    assert bpy.ops.hiptah.generate(prompt="a wooden chair", wait=True, import_result=False) == {"FINISHED"}
    record = addon.rt().scheduler.jobs()[0]

    def half_import(path: str, rec: Any) -> None:
        mesh = bpy.data.meshes.new("half")
        obj = bpy.data.objects.new("half", mesh)
        bpy.context.collection.objects.link(obj)
        obj.active_material = bpy.data.materials.new("half_mat")
        bpy.data.collections.new("half_coll")
        raise RuntimeError("Error: importer crashed half way")

    monkeypatch.setitem(importers.IMPORTERS, "glb", half_import)
    before = _scene_state()
    with pytest.raises(RuntimeError, match="importer crashed half way"):
        bpy.ops.hiptah.import_job(local_id=record.local_id)
    assert _scene_state() == before


def test_unwritable_download_folder(addon: Addon, tmp_path: Any) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    addon.prefs.download_dir = str(blocker / "models")
    text = generate_error(addon)
    assert "cannot be created" in text and "Download Folder" in text
