"""The ``blender -c hiptah`` command's callback, called in this bpy process (the bpy
module cannot parse ``-c``; tests/ui/test_cli_batch.py runs the real binary)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ADDON, Addon, bpy, disable_addon

pytestmark = pytest.mark.blender


def commands() -> ModuleType:
    return importlib.import_module(f"{ADDON}.blender.commands")


def test_registered_while_enabled_and_help(addon: Addon, capsys: pytest.CaptureFixture[str]) -> None:
    assert commands()._handle is not None
    assert commands().execute(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: blender -b -c hiptah" in out
    assert all(f"    {name} " in out for name in ("batch", "generate", "status", "version"))
    assert commands().execute([]) == 2  # no command: the help, as a usage error
    assert commands().execute(["batch"]) == 2  # argparse: the input file is missing
    assert "required: input" in capsys.readouterr().err
    assert commands().execute(["version"]) == 0
    assert f"Blender {bpy.app.version_string}" in capsys.readouterr().out
    assert commands().execute(["status"]) == 0
    assert "(sandbox)" in capsys.readouterr().out
    disable_addon()
    assert commands()._handle is None


def test_batch_takes_key_and_url_from_the_preferences(addon: Addon, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("HIPTAH_API_KEY")
    monkeypatch.delenv("HIPTAH_BASE_URL")
    addon.prefs.api_key = addon.sandbox.api_key
    addon.prefs.base_url = addon.sandbox.base_url
    # A panel job in the add-on's history: the batch must not bring it back to life when
    # it loads its library file (load_post), nor touch it.
    from hiptah_blender.jobs.records import JobRecord, JobState
    from hiptah_blender.jobs.store import JobStore

    store = importlib.import_module(f"{ADDON}.blender.settings").store_path()
    os.makedirs(os.path.dirname(store), exist_ok=True)
    JobStore(store).save([JobRecord(prompt="a panel job", state=JobState.QUEUED, job_id="gen_elsewhere")])
    runtime = importlib.import_module(f"{ADDON}.blender.runtime")
    assert runtime.peek() is None

    prompts = tmp_path / "p.txt"
    prompts.write_text("a stone pillar\na brass key\n", encoding="utf-8")
    out = tmp_path / "out"
    code = commands().execute(["batch", str(prompts), "--out", str(out), "--no-render", "--quality", "draft"])
    assert code == 0
    # It says where the key came from (tests/conftest.py leaves keyring no keychain), never the key.
    err = capsys.readouterr().err
    assert "batch: API key in Blender's preferences: no keychain found" in err
    assert addon.sandbox.api_key not in err
    assert sorted(j["prompt"] for j in addon.sandbox.jobs()) == ["a brass key", "a stone pillar"]
    assert (out / "hiptah_assets.blend").is_file()
    assert runtime.peek() is None  # the history was not resumed
    assert any("on_load_post" in getattr(f, "__name__", "") for f in bpy.app.handlers.load_post)  # put back


def test_batch_failure_exit_codes(addon: Addon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"prompt": "a chair", "quality": "ultra"}]', encoding="utf-8")
    assert commands().execute(["batch", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "item 1" in capsys.readouterr().err
    addon.sandbox.set_faults(fail_rate=1.0)
    good = tmp_path / "p.txt"
    good.write_text("a stone pillar\n", encoding="utf-8")
    assert commands().execute(["batch", str(good), "--out", str(tmp_path / "o"), "--no-render"]) == 1
    assert "0 done, 1 failed" in capsys.readouterr().out


def test_online_access_off_says_how_to_turn_it_on(addon: Addon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HIPTAH_BASE_URL", "https://api.hiptah.example/v1")
    bpy.context.preferences.system.use_online_access = False
    assert commands().execute(["generate", "a chair"]) == 1
    assert "--online-mode" in capsys.readouterr().err
    prompts = tmp_path / "p.txt"
    prompts.write_text("a chair\n", encoding="utf-8")
    assert commands().execute(["batch", str(prompts), "--out", str(tmp_path / "o")]) == 2
    assert "--online-mode" in capsys.readouterr().err
    assert commands().execute(["status"]) == 2
    assert addon.sandbox.jobs() == []
