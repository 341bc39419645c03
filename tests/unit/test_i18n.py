"""Translations: the catalogues are complete and keep every placeholder, the extractor
finds what the user reads, and formatted English text is translated at display time
without touching the user's own words (prompts, names, paths)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hiptah_blender.client import errors
from hiptah_blender.i18n import LANGUAGES, N_, Catalog, load_catalogs, placeholders
from hiptah_blender.i18n.catalog import BRACE_FLAG, Entry, read_po, write_po
from scripts import i18n as tool

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalogs() -> dict[str, Catalog]:
    return load_catalogs(ROOT / "hiptah_blender" / "locale")


def test_shipped_catalogues_are_complete_and_keep_placeholders() -> None:
    """The check the lead reruns after merging: a string without translation in a shipped
    language, a dropped or changed placeholder, a stale catalogue, or a Blender term
    spelled differently from Blender's own translation fails here."""
    assert tool.problems() == []


def test_all_four_languages_ship(catalogs: dict[str, Catalog]) -> None:
    assert set(catalogs) == {"zh_HANS", "ja_JP", "es", "de_DE"} == set(LANGUAGES)


def test_check_reports_missing_and_changed_placeholders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = {"{count} jobs": tool.Found("{count} jobs", True), "Ready": tool.Found("Ready", False),
             "Hello %s": tool.Found("Hello %s", False)}
    monkeypatch.setattr(tool, "extract", lambda: found)
    monkeypatch.setattr(tool, "LOCALE", tmp_path)
    for lang in LANGUAGES:
        write_po(tmp_path / f"{lang}.po", {"Language": lang}, [
            Entry("{count} jobs", "{n} Aufträge", {BRACE_FLAG}),  # placeholder renamed
            Entry("Ready", ""),  # untranslated
            Entry("Hello %s", "Hallo"),  # %s dropped
        ])
    out = "\n".join(tool.problems())
    for lang in LANGUAGES:
        assert f"{lang}: placeholders differ: '{{count}} jobs'" in out
        assert f"{lang}: untranslated: 'Ready'" in out
        assert f"{lang}: placeholders differ: 'Hello %s'" in out


def test_po_round_trip(tmp_path: Path) -> None:
    entries = [Entry('say "hi"\\ok', "line one\nline two", {BRACE_FLAG}, ["a.py:1"], ["note"]),
               Entry("gone", "weg", obsolete=True)]
    write_po(tmp_path / "x.po", {"Language": "de_DE"}, entries)
    header, back = read_po(tmp_path / "x.po")
    assert header["Language"] == "de_DE"
    assert [(e.msgid, e.msgstr, e.flags, e.obsolete) for e in back] == [
        (e.msgid, e.msgstr, e.flags, e.obsolete) for e in entries]


def test_extractor_finds_templates_markers_and_positions(tmp_path: Path) -> None:
    source = '''
class HIPTAH_OT_x:
    """Tooltip of x"""
    bl_idname = "hiptah.x"
    bl_label = "Do X"
    flag: BoolProperty(name="Flag", description="What the flag does")
    def execute(self, context):
        report(self, "ERROR", f"HiPtah: {count} jobs failed: {exc.user_text()}")
        layout.label(text="Ready" if ok else "Not ready")
        thread = Thread(name="hiptah-thread")
        raise errors.InvalidPromptError(f"Prompt is {n} long", hint="Shorten it.")
        text = N_("format")
        other = f"Object {oid}"  # no-i18n
        items = [("glb", "GLB", "Binary glTF")]
'''
    ex = tool.Extractor("x.py", source.splitlines())
    ex.visit(ast.parse(source))
    got = {t for t, _, _ in ex.found if tool.wanted(t) or t in ex.marked}
    assert got == {"Tooltip of x", "Do X", "Flag", "What the flag does",
                   "HiPtah: {count} jobs failed: {exc.user_text()}", "Ready", "Not ready",
                   "Prompt is {n} long", "Shorten it.", "format", "GLB", "Binary glTF"}
    assert ("HiPtah: {count} jobs failed: {exc.user_text()}", True, 8) in ex.found


def test_formatted_errors_translate_but_user_words_do_not(catalogs: dict[str, Catalog]) -> None:
    ja = catalogs["ja_JP"]
    # An error's one-line text: message then hint, each matched to its entry.
    text = errors.AuthenticationError().user_text()
    assert ja.covers(text)
    assert ja.translate(text) == "HiPtah の API キーが拒否されました。編集 > プリファレンス > アドオン > HiPtah でキーを確認してください（HiPtah ダッシュボード > Settings > API Keys）。"
    # A report template: the prompt label stays as typed even when it reads like a msgid;
    # the nested error is translated.
    report = f"HiPtah: “Ready”: {errors.PlanLimitError().user_text()}"
    out = ja.translate(report)
    assert out.startswith("HiPtah: 「Ready」: HiPtah プランの生成回数の上限に達しました。")
    assert ja.covers(report)
    # A prompt is never looked up by itself (the Blender layer passes translate=False),
    # and unknown text comes back unchanged.
    assert ja.translate("a medieval wooden cart") == "a medieval wooden cart"
    assert not ja.covers("a medieval wooden cart")


def test_values_in_templates_are_kept_verbatim(catalogs: dict[str, Catalog]) -> None:
    de = catalogs["de_DE"]
    msg = "The model file /tmp/Ready.glb is missing."
    assert de.translate(msg) == "Die Modelldatei /tmp/Ready.glb fehlt."
    zh = catalogs["zh_HANS"]
    assert zh.translate("queued 40%, ~12 s left") == "排队中 40%，剩余约 12 s"
    lines = "list.csv: 1 problem(s):\n  line 3: no 'prompt' field"
    assert zh.translate(lines) == "list.csv：1 个问题：\n  第 3 行：没有 'prompt' 字段"


@pytest.mark.parametrize("cls", [getattr(errors, n) for n in errors.__all__
                                 if isinstance(getattr(errors, n), type)
                                 and issubclass(getattr(errors, n), errors.HiptahError)])
def test_every_api_error_reads_in_every_language(cls: type[errors.HiptahError], catalogs: dict[str, Catalog]) -> None:
    exc = cls()
    for lang, cat in catalogs.items():
        assert cat.covers(exc.user_text()), (lang, exc.user_text())
        if lang != "de_DE" or cls is not errors.HiptahError:
            assert cat.translate(exc.message) != exc.message, (lang, exc.message)


def test_marker_changes_nothing() -> None:
    assert N_("Ready") == "Ready"
    assert placeholders("{a} and %s and {{x}}") == ["%s", "{a}"]


def test_pure_i18n_never_imports_bpy() -> None:
    code = "import sys, hiptah_blender.i18n, hiptah_blender.client.errors; print('bpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
