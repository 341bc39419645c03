"""Run inside a real Blender (``blender -b --python tests/ui/i18n_check.py -- JSON``) with
the extension installed: for English and each shipped language, switch Blender's
language, draw every panel state, run a generation and a refused key, and print one
``I18N=`` JSON line with what the user would read and any problem found.

Checked per language:
- every text the panels show (Blender's own lookup for fixed labels, ours for formatted
  ones) holds no English sentence that has a translation;
- the status line, job rows and details read in the language (expected strings);
- the refused key's ERROR report is the catalogue's translation of the English report;
- the imported objects, their collection, meshes, materials and custom properties are
  exactly those of the English run (names are data: never translated);
- tooltips (operator docstring, property description) translate through Blender.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bpy

ARGS = json.loads(sys.argv[sys.argv.index("--") + 1])
ADDON = "bl_ext.user_default.hiptah_blender"
sys.path.insert(0, str(Path(ARGS["root"]) / "tests" / "blender"))
from recording_layout import FakePanel, RecordingLayout  # noqa: E402

pkg = importlib.import_module(ADDON)
panels = importlib.import_module(ADDON + ".blender.panels")
runtime = importlib.import_module(ADDON + ".blender.runtime")
ui_i18n = importlib.import_module(ADDON + ".blender.i18n")
pure = importlib.import_module(ADDON + ".i18n")
CATS = pure.load_catalogs(Path(pkg.__file__).parent / "locale")
PROMPT = "a wooden chair"
T = bpy.app.translations
problems: list[str] = []


def ctx() -> SimpleNamespace:
    c = bpy.context
    return SimpleNamespace(scene=c.scene, window_manager=c.window_manager, preferences=c.preferences, region=None)


def shown_texts(layout: RecordingLayout) -> list[str]:
    """What the user reads: Blender translates text it is given unless translate=False."""
    out = []
    for call in layout.root.calls:
        text = call.kwargs.get("text")
        if not text:
            continue
        if call.kwargs.get("translate", True):
            text = T.pgettext_iface(text, "Operator") if call.method == "operator" else T.pgettext_iface(text)
        out.append(str(text))
    return out


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_no_english(lang: str, state: str, texts: list[str]) -> None:
    cat = CATS.get(lang)
    if cat is None:
        return
    joined = squash(" ".join(texts))
    for text in texts:
        if cat.covers(text) and cat.translate(text) != text:
            problems.append(f"{lang} {state}: English on screen: {text!r}")
    for msgid, msgstr in cat.exact.items():
        if len(msgid) > 15 and msgstr != msgid and "{" not in msgid and squash(msgid) in joined:
            problems.append(f"{lang} {state}: English (wrapped) on screen: {msgid!r}")


def draw(kind: str) -> list[str]:
    fake = FakePanel()
    if kind == "main":
        panels.VIEW3D_PT_hiptah.draw(fake, ctx())
    elif kind == "jobs":
        panels.VIEW3D_PT_hiptah_jobs.draw(fake, ctx())
        wm = bpy.context.window_manager
        for item in wm.hiptah_jobs:
            layout = RecordingLayout()
            panels.HIPTAH_UL_jobs.draw_item(SimpleNamespace(layout=layout), ctx(), layout, wm, item, 0, wm,
                                            "hiptah_jobs_index", 0, 0)
            fake.layout.calls.extend(layout.calls)
    else:
        prefs = bpy.context.preferences.addons[ADDON].preferences
        type(prefs).draw(_Proxy(prefs, fake.layout), ctx())
    return shown_texts(fake.layout)


class _Proxy:
    """The preferences object with a recording layout (draw() reads self.*)."""

    def __init__(self, prefs: Any, layout: RecordingLayout) -> None:
        object.__setattr__(self, "_prefs", prefs)
        object.__setattr__(self, "layout", layout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._prefs, name)


def scene_data() -> dict[str, Any]:
    """The imported data as it is named and tagged (compared with the English run)."""
    coll = bpy.data.collections.get("HiPtah")
    objects = sorted(coll.all_objects, key=lambda o: o.name) if coll else []
    return {
        "collections": sorted(c.name for c in bpy.data.collections),
        "objects": [(o.name, o.type, o.data.name if o.data else None,
                     {k: str(o[k]) for k in o.keys() if k not in ("hiptah_created", "hiptah_job_id")})  # noqa: SIM118
                    for o in objects],
        "materials": sorted(m.name for m in bpy.data.materials),
    }


def clear_scene() -> None:
    bpy.ops.hiptah.clear_finished()
    ids = [*bpy.data.objects, *bpy.data.meshes, *bpy.data.materials, *bpy.data.collections, *bpy.data.images]
    bpy.data.batch_remove(ids)


def run_language(lang: str) -> dict[str, Any]:
    view = bpy.context.preferences.view
    view.language = lang
    view.use_translate_interface = view.use_translate_tooltips = view.use_translate_reports = True
    view.use_translate_new_dataname = True  # the worst case for data names
    out: dict[str, Any] = {"locale": T.locale}
    cat = CATS.get(lang)
    prefs = bpy.context.preferences
    ap = prefs.addons[ADDON].preferences
    prefs.system.use_online_access = True
    ap.base_url = ARGS["base_url"]

    ap.api_key = ""
    out["no_key"] = draw("main")
    ap.api_key = ARGS["api_key"]
    ap.base_url = "https://api.hiptah.com/v1"
    prefs.system.use_online_access = False
    out["offline"] = draw("main")
    out["preferences"] = draw("prefs")
    prefs.system.use_online_access = True
    ap.base_url = ARGS["base_url"]
    clear_scene()
    out["ready"] = draw("main") + draw("jobs")

    # A generation: the report in the language, the data exactly as in English.
    bpy.context.scene.hiptah.prompt = PROMPT
    result = bpy.ops.hiptah.generate(prompt=PROMPT, format="glb", quality="draft", wait=True)
    english = runtime.REPORTS[-1][1]
    out["generate"] = {"result": sorted(result), "english": english, "shown": ui_i18n.rpt(english)}
    out["scene"] = scene_data()
    out["imported"] = draw("jobs")
    # A job under way: the row and the details while it runs.
    bpy.ops.hiptah.generate(prompt="a stone tower", format="glb", quality="draft", wait=False)
    out["running"] = draw("main") + draw("jobs")
    rt = runtime.peek()
    for job in list(rt.scheduler.jobs()):
        if job.state.is_active:
            runtime.wait_for(job.local_id, context=bpy.context)

    # A refused key: the ERROR report, the status line and the failed row.
    ap.api_key = "hp_wrong_key_0123456789"
    try:
        bpy.ops.hiptah.generate(prompt="a red cup", format="glb", quality="draft", wait=True)
        out["refused"] = {"error": None}
    except RuntimeError as exc:
        english = runtime.REPORTS[-1][1]
        out["refused"] = {"error": str(exc), "english": english,
                          "expected": cat.translate(english) if cat else english,
                          "covered": cat.covers(english) if cat else True}
    out["refused_panel"] = draw("main") + draw("jobs")
    ap.api_key = ARGS["api_key"]
    clear_scene()

    # Blender shows a Python operator's docstring as its tooltip (bl_rna.description stays "").
    doc = bpy.types.HIPTAH_OT_generate.__doc__
    out["tooltip"] = T.pgettext_tip(doc)
    prop = bpy.ops.hiptah.generate.get_rna_type().properties["wait"].description
    out["property_tooltip"] = T.pgettext_tip(prop)
    out["ready_label"] = T.pgettext_iface("Ready")
    out["terms"] = {t: T.pgettext_iface(t) for t in ("Preferences", "Add-ons", "Allow Online Access", "Asset Browser")}

    if cat is not None:
        for state in ("no_key", "offline", "preferences", "ready", "imported", "running", "refused_panel"):
            check_no_english(lang, state, out[state])
        if out["generate"]["shown"] == out["generate"]["english"] or not cat.covers(out["generate"]["english"]):
            problems.append(f"{lang}: generation report not translated: {out['generate']}")
        ref = out["refused"]
        if not ref.get("error") or not ref["covered"] or ref["expected"] == ref["english"] \
                or squash(ref["expected"]) not in squash(ref["error"]):
            problems.append(f"{lang}: refused-key report not in the language: {ref}")
        expect = {
            "ready": cat.exact["Ready"],
            "no_key": cat.exact["No HiPtah API key is set."],
            "offline": cat.exact["Online access is off"],
            "refused_panel": cat.exact["The HiPtah API key was refused."],
        }
        for state, text in expect.items():
            if squash(text) not in squash(" ".join(out[state])):
                problems.append(f"{lang} {state}: {text!r} not shown: {out[state]}")
        if out["tooltip"] != cat.exact[doc] or out["property_tooltip"] != cat.exact[prop]:
            problems.append(f"{lang}: tooltips not translated: {out['tooltip']!r}, {out['property_tooltip']!r}")
        # Every operator's name, tooltip and properties, as Blender looks them up.
        for name in dir(bpy.ops.hiptah):
            rna = getattr(bpy.ops.hiptah, name).get_rna_type()
            cls = getattr(bpy.types, rna.identifier, None)
            texts = [(rna.name, T.pgettext_iface(rna.name, "Operator")),
                     *[(p.name, T.pgettext_iface(p.name)) for p in rna.properties
                       if p.identifier != "rna_type" and not p.is_hidden and p.name != p.identifier],
                     *[(p.description, T.pgettext_tip(p.description)) for p in rna.properties
                       if p.identifier != "rna_type" and not p.is_hidden and p.description]]
            if cls is not None and cls.__doc__:
                texts.append((cls.__doc__, T.pgettext_tip(cls.__doc__)))
            for english, shown in texts:
                if english and shown == english and cat.exact.get(english, english) != english:
                    problems.append(f"{lang}: hiptah.{name}: {english!r} not translated by Blender")
                if english and english not in cat.exact and english not in ("HiPtah",):
                    problems.append(f"{lang}: hiptah.{name}: {english!r} is not in the catalogue")
    return out


def main() -> None:
    results: dict[str, Any] = {}
    try:
        results["en_US"] = run_language("en_US")
        for lang in ARGS["languages"]:
            results[lang] = run_language(lang)
            if results[lang]["scene"] != results["en_US"]["scene"]:
                problems.append(f"{lang}: imported data differ from English: {results[lang]['scene']} "
                                f"!= {results['en_US']['scene']}")
    except Exception:
        problems.append(traceback.format_exc())
    print("I18N=" + json.dumps({"problems": problems, "results": results}, ensure_ascii=False))


main()
