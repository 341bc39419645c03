"""The interface in Simplified Chinese, Japanese, Spanish and German, in Debian's real
Blender 4.3.2 (background mode: the language switch and Blender's own catalogues work
there; the bpy module cannot switch language). The extension is installed from the
built archive as a user would; tests/ui/i18n_check.py does the work inside Blender."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer
from tests.ui.driver.session import inside

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["zh_HANS", "ja_JP", "es", "de_DE"]


def _blender(bur: Path, *args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root", "LANG": "C.UTF-8",
           "BLENDER_USER_RESOURCES": str(bur)}
    return subprocess.run(inside("blender", "-b", *map(str, args)), env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def report(extension_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bur = tmp_path_factory.mktemp("i18n-bur")
    proc = _blender(bur, "-c", "extension", "install-file", "--repo", "user_default", "--enable", extension_zip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with SandboxServer(latency=1, models="auto", seed=0) as sandbox:
        args = json.dumps({"root": str(ROOT), "base_url": sandbox.base_url, "api_key": sandbox.api_key,
                           "languages": LANGUAGES})
        proc = _blender(bur, "--python", ROOT / "tests" / "ui" / "i18n_check.py", "--", args)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("I18N=")]
    assert lines, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = ROOT / "out" / "ui" / "i18n_languages.json"  # what each language showed, for review
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json.loads(lines[-1][5:]), ensure_ascii=False, indent=1), encoding="utf-8")
    return json.loads(lines[-1][5:])  # type: ignore[no-any-return]


def test_no_problem_in_any_language(report: dict[str, Any]) -> None:
    assert report["problems"] == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_reports_and_panel_read_in_the_language(lang: str, report: dict[str, Any]) -> None:
    res = report["results"][lang]
    assert res["locale"] == lang
    refused = res["refused"]
    # The whole report body is translated, not only Blender's own "Error:" prefix.
    assert refused["expected"] != refused["english"]
    assert refused["expected"].replace(" ", "") in refused["error"].replace(" ", "").replace("\n", "")
    assert res["generate"]["shown"] != res["generate"]["english"]
    assert res["ready_label"] != "Ready"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_data_stays_english(lang: str, report: dict[str, Any]) -> None:
    english, there = report["results"]["en_US"]["scene"], report["results"][lang]["scene"]
    assert there == english
    assert "HiPtah" in there["collections"]
    roots = [props for *_, props in there["objects"] if "hiptah_prompt" in props]
    assert roots and all(props["hiptah_prompt"] == "a wooden chair" for props in roots)  # sent and kept as typed


def test_blender_terms_read_as_blender_has_them(report: dict[str, Any]) -> None:
    terms = json.loads((ROOT / "scripts" / "i18n_blender_terms.json").read_text(encoding="utf-8"))
    for lang in LANGUAGES:
        for term, shown in report["results"][lang]["terms"].items():
            assert shown == terms[term][lang], (lang, term, shown)
