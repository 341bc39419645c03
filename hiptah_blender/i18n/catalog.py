"""The .po catalogues, read and written, and the translation of one English text.

A catalogue maps each English msgid to its translation. Entries flagged
``python-brace-format`` are templates: ``{...}`` placeholders stand for values
(kept as written in the code: ``{count}``, ``{exc.user_text()}``). Text that reaches
the Blender layer already formatted (an error message from the pure core, a job's
stored error) is matched back to its template, the values are taken from the English
text and put into the translation. A value is itself translated only when its
placeholder names an error-like value (see ``_NESTED``): a prompt, a name or a path
never is.

Composite texts (a message followed by its hint, sentences joined with a space) are
translated sentence by sentence when the whole has no entry.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# Blender's language identifiers (Preferences > Interface > Translation > Language).
LANGUAGES: dict[str, str] = {
    "zh_HANS": "Simplified Chinese",
    "ja_JP": "Japanese",
    "es": "Spanish",
    "de_DE": "German",
}

BRACE_FLAG = "python-brace-format"
_TOKEN = re.compile(r"\{\{|\}\}|\{[^{}]*\}")
_PERCENT = re.compile(r"%(?:\([A-Za-z_]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc%]")
# Placeholders whose value is itself a message: translated in turn.
_NESTED = re.compile(r"error|reason|hint|problem|message|user_text|describe|detail|exc\b|why|source|where|^\{text\}$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_MIN_LITERAL = 3  # a template with less fixed text than this would match too much
_FULL_STOP = {"zh_HANS": "。", "ja_JP": "。"}


def placeholders(text: str, *, brace: bool = True) -> list[str]:
    """The placeholders of ``text``, sorted: ``{name}`` ones (when ``brace``) and ``%s`` ones."""
    found = [m for m in _TOKEN.findall(text) if m not in ("{{", "}}")] if brace else []
    found += [m for m in _PERCENT.findall(text) if m != "%%"]
    return sorted(found)


@dataclass
class Entry:
    msgid: str
    msgstr: str = ""
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # translator comments ("# ...")
    obsolete: bool = False

    @property
    def is_template(self) -> bool:
        return BRACE_FLAG in self.flags


# --- .po files ---------------------------------------------------------------------


_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def _unquote(line: str) -> str:
    body = line.strip()
    if not (body.startswith('"') and body.endswith('"')):
        raise ValueError(f"not a quoted .po string: {line!r}")
    body = body[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _quote(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\r", "\\r")
    if "\n" not in text:
        return '"' + text.replace("\n", "\\n") + '"'
    parts = text.split("\n")
    lines = [p + "\\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return '""\n' + "\n".join(f'"{p}"' for p in lines)


def read_po(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """The header's fields and the entries of a .po file (msgctxt is not used)."""
    entries: list[Entry] = []
    header: dict[str, str] = {}
    cur: Entry | None = None
    target: str | None = None
    pending = Entry("")

    def finish() -> None:
        nonlocal cur, pending
        if cur is not None:
            if cur.msgid == "" and not cur.obsolete:
                for line in cur.msgstr.splitlines():
                    key, _, value = line.partition(":")
                    header[key.strip()] = value.strip()
            else:
                entries.append(cur)
        cur = None
        pending = Entry("")

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
        if not line:
            finish()
            target = None
            continue
        if line.startswith("#,"):
            pending.flags |= {f.strip() for f in line[2:].split(",") if f.strip()}
        elif line.startswith("#:"):
            pending.references += line[2:].split()
        elif line.startswith("# ") or line == "#":
            pending.comments.append(line[2:])
        elif line.startswith("#"):
            continue
        elif line.startswith("msgid "):
            if cur is not None:
                finish()
            cur = Entry(_unquote(line[6:]), flags=pending.flags, references=pending.references,
                        comments=pending.comments, obsolete=obsolete)
            target = "msgid"
        elif line.startswith("msgstr "):
            if cur is None:
                raise ValueError(f"{path}: msgstr without msgid")
            cur.msgstr = _unquote(line[7:])
            target = "msgstr"
        elif line.startswith('"') and cur is not None and target is not None:
            setattr(cur, target, getattr(cur, target) + _unquote(line))
        elif line.startswith("msgctxt"):
            raise ValueError(f"{path}: msgctxt is not used by this project's catalogues")
    finish()
    return header, entries


def write_po(path: Path, header: dict[str, str], entries: list[Entry]) -> None:
    out = ['msgid ""', 'msgstr ""']
    out += [_quote(f"{k}: {v}\n") for k, v in header.items()]
    for e in entries:
        out.append("")
        prefix = "#~ " if e.obsolete else ""
        out += [f"# {c}".rstrip() for c in e.comments]
        if e.references and not e.obsolete:
            out.append("#: " + " ".join(e.references))
        if e.flags:
            out.append("#, " + ", ".join(sorted(e.flags)))
        for key, value in (("msgid", e.msgid), ("msgstr", e.msgstr)):
            lines = _quote(value).split("\n")
            out.append(f"{prefix}{key} {lines[0]}")
            out += [prefix + line for line in lines[1:]]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


# --- translating ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Template:
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    msgstr: str


def _compile(msgid: str, msgstr: str) -> _Template | None:
    parts: list[str] = []
    names: list[str] = []
    literal = 0
    pos = 0
    for m in _TOKEN.finditer(msgid):
        text = msgid[pos:m.start()]
        literal += len(text.strip())
        parts.append(re.escape(text))
        token = m.group()
        if token in ("{{", "}}"):
            parts.append(re.escape(token[0]))
            literal += 1
        else:
            parts.append("(.+?)")
            names.append(token)
        pos = m.end()
    literal += len(msgid[pos:].strip())
    parts.append(re.escape(msgid[pos:]))
    if not names or literal < _MIN_LITERAL:
        return None
    return _Template(re.compile("".join(parts), re.DOTALL), tuple(names), msgstr)


class Catalog:
    """One language's translations, and the lookup the Blender layer uses."""

    def __init__(self, language: str, entries: list[Entry]) -> None:
        self.language = language
        self.exact: dict[str, str] = {}
        self._template_entries: list[Entry] = []
        for e in entries:
            if e.obsolete or not e.msgstr:
                continue
            self.exact[e.msgid] = e.msgstr
            if e.is_template:
                self._template_entries.append(e)
        self._templates: list[_Template] | None = None
        self._cached = lru_cache(maxsize=2048)(self._translate)

    @property
    def templates(self) -> list[_Template]:
        """Compiled on first use: only the language in use pays for it (register() stays light)."""
        if self._templates is None:
            compiled = [(len(_TOKEN.sub("", e.msgid)), t) for e in self._template_entries
                        if (t := _compile(e.msgid, e.msgstr)) is not None]
            # The most specific template first: "retrying: {reason}" before "{n}: {reason}".
            self._templates = [t for _, t in sorted(compiled, key=lambda p: -p[0])]
        return self._templates

    def blender_dict(self) -> dict[tuple[str, str], str]:
        """The entries Blender translates by itself (labels, tooltips, enum items, operator
        names): every fixed text, in the default context and in the operators' one."""
        out: dict[tuple[str, str], str] = {}
        for msgid, msgstr in self.exact.items():
            out[("*", msgid)] = msgstr
            out[("Operator", msgid)] = msgstr
        return out

    def translate(self, text: str) -> str:
        """``text`` in this language; the parts no entry covers stay as they are."""
        return self.translate_all(text)[0]

    def covers(self, text: str) -> bool:
        """True when every part of ``text`` has a translation (the tests' check)."""
        return self.translate_all(text)[1]

    def translate_all(self, text: str) -> tuple[str, bool]:
        """(translation, whether every part of ``text`` was covered)."""
        if not text or text.isspace():
            return text, True
        return self._cached(text)

    def _translate(self, text: str) -> tuple[str, bool]:
        found = self._whole(text)
        if found is not None:
            return found, True
        if "\n" in text:  # a list of problems: line by line
            parts = [self.translate_all(line) for line in text.split("\n")]
            return "\n".join(p[0] for p in parts), all(p[1] for p in parts)
        return self._by_sentence(text)

    def _whole(self, text: str) -> str | None:
        if text in self.exact:
            return self.exact[text]
        core = text.strip()
        if core != text:
            inner = self._whole(core)
            return None if inner is None else text[: len(text) - len(text.lstrip())] + inner + text[len(text.rstrip()):]
        for template in self.templates:
            m = template.pattern.fullmatch(text)
            if m is not None:
                return self._fill(template, m.groups())
        # "The prompt is not valid" for the entry "The prompt is not valid." and back.
        if text.endswith(".") and text[:-1] in self.exact:
            return self._full_stop(self.exact[text[:-1]])
        if not text.endswith(".") and text + "." in self.exact:  # exc.message.rstrip(".")
            return self.exact[text + "."].rstrip(".。")
        return None

    def _fill(self, template: _Template, values: tuple[str, ...]) -> str:
        out = template.msgstr
        for name, value in zip(template.names, values, strict=True):
            if _NESTED.search(name):
                value = self.translate(value)
            out = out.replace(name, value)
        return out

    def _full_stop(self, text: str) -> str:
        if text.endswith((".", "。", "!", "?", "！", "？")):
            return text
        return text + _FULL_STOP.get(self.language, ".")

    def _by_sentence(self, text: str) -> tuple[str, bool]:
        pieces = _SENTENCE_END.split(text)
        if len(pieces) < 2:
            return text, False
        out: list[tuple[str, bool]] = []  # (text, translated)
        i = 0
        while i < len(pieces):
            for j in range(len(pieces), i, -1):
                found = self._whole(" ".join(pieces[i:j])) if j - i < len(pieces) else None
                if found is not None:
                    out.append((found, True))
                    i = j
                    break
            else:
                out.append((pieces[i], False))  # the server's own words, a value: as sent
                i += 1
        # Chinese and Japanese put no space between sentences; English pieces keep theirs.
        text = out[0][0]
        for (_, prev_done), (piece, done) in itertools.pairwise(out):
            text += ("" if self.language in _FULL_STOP and prev_done and done else " ") + piece
        return text, all(done for _, done in out)


def load_catalogs(folder: Path) -> dict[str, Catalog]:
    """The catalogue of every shipped language found in ``folder`` (``<language>.po``)."""
    out: dict[str, Catalog] = {}
    for language in LANGUAGES:
        path = folder / f"{language}.po"
        if path.is_file():
            out[language] = Catalog(language, read_po(path)[1])
    return out
