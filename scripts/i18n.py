"""Extract every string the user reads, keep the .po catalogues up to date, check them.

    .venv/bin/python scripts/i18n.py update   # extract; add new msgids (empty msgstr) to
                                              # every hiptah_blender/locale/<lang>.po, keep the
                                              # old ones as obsolete (#~); list what is missing
    .venv/bin/python scripts/i18n.py check    # exit 1 if a catalogue is out of date, a msgid
                                              # has no translation, a translation drops or
                                              # changes a placeholder ({n}, %s), or misses a
                                              # term Blender itself translates (see terms)
    .venv/bin/python scripts/i18n.py terms --locale DIR   # refresh scripts/i18n_blender_terms.json
                                              # from Blender's own catalogues (Debian's Blender:
                                              # <ui-root>/usr/share/locale/<lang>/LC_MESSAGES)

What is extracted (docs/i18n.md): strings and f-strings in the places the user reads,
found by position (bl_label, operator and panel docstrings, property name/description/
enum items, text=/placeholder=/help=/description= arguments, report(), error classes'
default_message/hint and the first argument of ``...Error(...)``), plus anything wrapped
in the markers ``N_``, ``iface``, ``rpt``, ``fmt`` and ``rpt_fmt``. An f-string's msgid is
its template: ``f"{n} running"`` -> ``{n} running`` (flag python-brace-format).
"""

from __future__ import annotations

import argparse
import ast
import gettext
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hiptah_blender.i18n.catalog import (  # noqa: E402
    BRACE_FLAG,
    LANGUAGES,
    Entry,
    placeholders,
    read_po,
    write_po,
)

PACKAGE = ROOT / "hiptah_blender"
LOCALE = PACKAGE / "locale"
TERMS_FILE = ROOT / "scripts" / "i18n_blender_terms.json"
SKIP_DIRS = {"i18n", "locale", "__pycache__"}
# The command line stays English (docs/i18n.md: read by scripts and farm managers, like
# Blender's own command-line output): its help and progress lines are not extracted.
# The farm's shard/merge/farm-submit modules are used by the command line only.
SKIP_FILES = {
    "hiptah_blender/batch/cli.py", "hiptah_blender/batch/progress.py", "hiptah_blender/blender/commands.py",
    "hiptah_blender/batch/shards.py", "hiptah_blender/batch/merge.py", "hiptah_blender/batch/flamenco.py",
    "hiptah_blender/blender/farm_commands.py",
}
SKIP_COMMENT = "# no-i18n"  # on a line: its strings are not for the user (thread names, internal errors)

# Blender's own words this add-on uses: a translation must spell them as Blender does.
BLENDER_TERMS = [
    "Asset Browser", "Preferences", "Add-ons", "Allow Online Access", "Get Extensions",
    "System", "Network", "Edit",
]
# Blender's catalogue folder for each of our language ids.
MO_FOLDERS = {"zh_HANS": "zh_HANS", "ja_JP": "ja", "es": "es", "de_DE": "de"}

KWARGS = {"text", "name", "description", "placeholder", "hint", "message"}
CLASS_ATTRS = {"bl_label", "bl_description", "default_message", "hint"}
BUILTIN_ERRORS = {"ValueError", "TypeError", "AttributeError", "KeyError", "RuntimeError", "OSError", "ImportError"}
MARKERS = {"N_", "iface", "rpt", "fmt", "rpt_fmt"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UPPER = re.compile(r"^[A-Z0-9_]+$")


@dataclass
class Found:
    msgid: str
    brace: bool
    refs: list[str] = field(default_factory=list)


def _template(node: ast.JoinedStr) -> str:
    out: list[str] = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(str(part.value).replace("{", "{{").replace("}", "}}"))
        elif isinstance(part, ast.FormattedValue):
            expr = ast.unparse(part.value)
            conv = "" if part.conversion == -1 else "!" + chr(part.conversion)
            spec = ""
            if isinstance(part.format_spec, ast.JoinedStr):
                spec = ":" + "".join(str(v.value) for v in part.format_spec.values if isinstance(v, ast.Constant))
            out.append("{" + expr + conv + spec + "}")
    return "".join(out)


def strings_in(node: ast.AST | None) -> Iterator[tuple[str, bool]]:
    """(text, is_template) for every string a value can be: literals, f-strings, both arms
    of ``a if c else b``, ``x or "default"``, ``"..." .format(...)``, ``"a" + "b"``."""
    if node is None:
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value, False
    elif isinstance(node, ast.JoinedStr):
        yield _template(node), True
    elif isinstance(node, ast.IfExp):
        yield from strings_in(node.body)
        yield from strings_in(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from strings_in(value)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        for text, _ in strings_in(node.func.value):
            yield text, True
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MARKERS:
        if node.args:
            yield from strings_in(node.args[0])
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = list(strings_in(node.left)), list(strings_in(node.right))
        if len(left) == 1 and len(right) == 1:
            yield left[0][0] + right[0][0], left[0][1] or right[0][1]


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


class Extractor(ast.NodeVisitor):
    def __init__(self, rel: str, lines: list[str]) -> None:
        self.rel = rel
        self.lines = lines
        self.found: list[tuple[str, bool, int]] = []
        self.marked: set[str] = set()  # given to a marker: wanted even if it looks like a word

    def add(self, node: ast.expr | None, line: int) -> None:
        if node is not None and any(SKIP_COMMENT in self.lines[i - 1]
                                    for i in range(node.lineno, (node.end_lineno or node.lineno) + 1)):
            return
        for text, brace in strings_in(node):
            self.found.append((text, brace, line))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        names = {t.id for stmt in node.body if isinstance(stmt, ast.Assign) for t in stmt.targets
                 if isinstance(t, ast.Name)}
        # Blender shows an operator's or panel's docstring as its tooltip.
        # Blender keeps it cleaned like inspect.cleandoc (no common indentation).
        if "bl_idname" in names and "bl_description" not in names:
            doc = ast.get_docstring(node, clean=True)
            if doc and SKIP_COMMENT not in self.lines[node.body[0].lineno - 1]:
                self.found.append((doc, False, node.lineno))
        for stmt in node.body:
            if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id in CLASS_ATTRS
                                                    for t in stmt.targets)) or (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                    and stmt.target.id in CLASS_ATTRS):
                self.add(stmt.value, stmt.lineno)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if name in MARKERS and node.args:
            self.add(node.args[0], node.lineno)
            self.marked |= {text for text, _ in strings_in(node.args[0])}
        elif name in ("report", "_notice"):
            for arg in node.args:
                if not (isinstance(arg, ast.Constant) and _UPPER.match(str(arg.value))):
                    self.add(arg, node.lineno)
        elif name.endswith("Error") and name not in BUILTIN_ERRORS and node.args:
            self.add(node.args[0], node.lineno)
        for kw in node.keywords:
            if kw.arg in KWARGS:
                self.add(kw.value, node.lineno)
        self.generic_visit(node)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        # Enum items: ("ident", "Name", "Description"[, icon][, number]).
        elts = node.elts
        if len(elts) >= 3 and all(isinstance(e, (ast.Constant, ast.JoinedStr)) for e in elts[:3]):
            first = elts[0]
            second = elts[1]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and _IDENT.match(first.value or "x") \
                    and isinstance(second, ast.Constant) and str(second.value)[:1].isupper():
                self.add(elts[1], node.lineno)
                self.add(elts[2], node.lineno)
        self.generic_visit(node)


def wanted(text: str) -> bool:
    """Worth translating: has a letter outside its placeholders and is not an identifier."""
    bare = re.sub(r"\{[^{}]*\}", "", text)
    if " " not in text.strip() and not text[:1].isupper():
        return False  # "prompt", "fbx", "--template": a value or an identifier, not a sentence
    if re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+", text):
        return False  # a class name ("DownloadError")
    return bool(re.search(r"[A-Za-z]{2,}", bare))


def extract() -> dict[str, Found]:
    found: dict[str, Found] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if SKIP_DIRS & set(path.relative_to(PACKAGE).parts[:-1]):
            continue
        rel = path.relative_to(ROOT).as_posix()
        if rel in SKIP_FILES:
            continue
        source = path.read_text(encoding="utf-8")
        ex = Extractor(rel, source.splitlines())
        ex.visit(ast.parse(source, filename=str(path)))
        for text, brace, line in ex.found:
            if not (wanted(text) or (text in ex.marked and re.search(r"[A-Za-z]{2,}", text))):
                continue
            entry = found.setdefault(text, Found(text, brace))
            entry.brace = entry.brace or brace
            entry.refs.append(f"{rel}:{line}")
    return found


def update(quiet: bool = False) -> dict[str, list[str]]:
    """Bring every catalogue in line with the code; returns the untranslated msgids."""
    found = extract()
    LOCALE.mkdir(exist_ok=True)
    missing: dict[str, list[str]] = {}
    for language, title in LANGUAGES.items():
        path = LOCALE / f"{language}.po"
        header, old = read_po(path) if path.exists() else ({}, [])
        by_id = {e.msgid: e for e in old}
        # The same words with other spacing (a re-indented docstring) keep their translation.
        by_words = {" ".join(e.msgid.split()): e for e in old if e.msgstr}
        entries: list[Entry] = []
        for msgid, f in found.items():
            prev = by_id.pop(msgid, None)
            if prev is None and " ".join(msgid.split()) in by_words:
                prev = by_words[" ".join(msgid.split())]
                by_id.pop(prev.msgid, None)
            flags = ({BRACE_FLAG} if f.brace else set()) | ((prev.flags - {BRACE_FLAG}) if prev else set())
            entries.append(Entry(msgid, prev.msgstr if prev else "", flags, sorted(set(f.refs)),
                                 prev.comments if prev else []))
        # Keep what was translated for strings the code no longer has (a renamed string
        # can take its old translation back); drop obsolete entries never translated.
        entries += [Entry(e.msgid, e.msgstr, e.flags, [], e.comments, obsolete=True)
                    for e in by_id.values() if e.msgstr]
        header = {
            "Project-Id-Version": "HiPtah for Blender",
            "Language": language,
            "Language-Team": title,
            "MIME-Version": "1.0",
            "Content-Type": "text/plain; charset=UTF-8",
            "Content-Transfer-Encoding": "8bit",
            **{k: v for k, v in header.items() if k == "Last-Translator"},
        }
        write_po(path, header, entries)
        missing[language] = [e.msgid for e in entries if not e.obsolete and not e.msgstr]
    if not quiet:
        for language, ids in missing.items():
            print(f"{language}: {len(found) - len(ids)}/{len(found)} translated"
                  + (f"; {len(ids)} to fill in hiptah_blender/locale/{language}.po:" if ids else ""))
            for msgid in ids:
                print(f"  {msgid!r}")
    return missing


def problems() -> list[str]:
    out: list[str] = []
    found = extract()
    terms = json.loads(TERMS_FILE.read_text(encoding="utf-8")) if TERMS_FILE.exists() else {}
    for language in LANGUAGES:
        path = LOCALE / f"{language}.po"
        if not path.exists():
            out.append(f"{language}: {path.relative_to(ROOT)} is missing (run scripts/i18n.py update)")
            continue
        entries = {e.msgid: e for e in read_po(path)[1] if not e.obsolete}
        for msgid in found.keys() - entries.keys():
            out.append(f"{language}: not in the catalogue (run scripts/i18n.py update): {msgid!r}")
        for msgid, e in entries.items():
            if msgid not in found:
                out.append(f"{language}: no longer in the code (run scripts/i18n.py update): {msgid!r}")
                continue
            if not e.msgstr:
                out.append(f"{language}: untranslated: {msgid!r}")
                continue
            brace = found[msgid].brace
            if placeholders(msgid, brace=brace) != placeholders(e.msgstr, brace=brace):
                out.append(f"{language}: placeholders differ: {msgid!r} -> {e.msgstr!r}")
            for term, by_language in terms.items():
                theirs = by_language.get(language) or term
                if re.search(rf"\b{re.escape(term)}\b", msgid) and theirs not in e.msgstr:
                    out.append(f"{language}: Blender calls {term!r} {theirs!r}: {msgid!r} -> {e.msgstr!r}")
    return out


def blender_terms(locale: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    catalogs = {}
    for language, folder in MO_FOLDERS.items():
        with (locale / folder / "LC_MESSAGES" / "blender.mo").open("rb") as fh:
            catalogs[language] = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
    for term in BLENDER_TERMS:
        # Blender's English where its catalogue has no entry: the UI shows the English.
        out[term] = {lang: str(cat.get(term, term)) for lang, cat in catalogs.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("update")
    sub.add_parser("check")
    terms = sub.add_parser("terms")
    terms.add_argument("--locale", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "update":
        update()
        return 0
    if args.command == "terms":
        TERMS_FILE.write_text(json.dumps(blender_terms(args.locale), ensure_ascii=False, indent=2) + "\n",
                              encoding="utf-8")
        print(f"wrote {TERMS_FILE.relative_to(ROOT)}")
        return 0
    found = problems()
    for line in found:
        print(line)
    print(f"i18n check: {len(found)} problem(s) in {len(LANGUAGES)} catalogues")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
