"""Batch input files -> validated rows, each with a stable key.

Three kinds of input, chosen by the file's suffix:

* ``.csv`` / ``.tsv``: a header row, then one row per model. Without a template
  the ``prompt`` column is the prompt; with ``--template "a {color} {object}"`` the
  prompt is the template filled from the row's columns. Optional ``format`` and
  ``quality`` columns override the defaults per row.
* ``.json``: a list of strings (prompts) or objects (same fields as a CSV row).
* anything else: plain text, one prompt a line; blank lines and ``#`` comments are
  skipped. A template sees the line as ``{prompt}``.

Every row is validated (prompt, format, quality) before anything is sent, and all
problems are reported at once, so a 500-row file is fixed in one pass.

Duplicates are kept (asking twice for the same thing may be deliberate: two
variations), but each row gets a key derived from its content and its occurrence
number, not its line number: inserting or reordering rows in the file does not
change the keys of the others, so a re-run resumes the right jobs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client.errors import HiptahError
from ..client.validation import (
    FORMATS,
    QUALITIES,
    clean_format,
    clean_prompt,
    clean_quality,
)
from ..i18n import N_

# Shown in error messages: more would drown the useful first lines.
MAX_REPORTED_PROBLEMS = 50


class InputError(ValueError):
    """The input file cannot be used; ``problems`` lists every reason, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self.describe())

    def describe(self) -> str:
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        lines = [N_(f"{self.source}: {len(self.problems)} problem(s):")]
        lines += [f"  {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class Row:
    """One model to generate."""

    key: str  # stable identity across runs (see module docstring)
    prompt: str  # validated, as it will be sent
    format: str
    quality: str
    source: str  # where it came from, for messages: "line 4", "row 7", "item 2"
    fields: Mapping[str, str] = field(default_factory=dict)  # the row's own columns


@dataclass
class _RawRow:
    source: str
    fields: dict[str, str]
    prompt: str | None  # None: comes from the template


def row_key(prompt: str, fmt: str, quality: str, occurrence: int) -> str:
    """Content hash + occurrence number: the nth identical row keeps the nth key."""
    digest = hashlib.sha256(f"{prompt}\x00{fmt}\x00{quality}".encode()).hexdigest()[:12]
    return digest if occurrence == 1 else f"{digest}-{occurrence}"


def template_fields(template: str) -> list[str]:
    """The named fields a template uses, in order; refuses positional or nested fields."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InputError("--template", [N_(f"the template is not valid: {exc}")]) from None
    for _literal, name, spec, _conv in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise InputError(
                "--template", [N_("use named fields such as {color}, not {} or {0}")]
            )
        if spec and "{" in spec:
            raise InputError("--template", [N_(f"nested fields are not supported in {{{name}:{spec}}}")])
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if base != name:
            raise InputError("--template", [N_(f"use plain column names, not {{{name}}}")])
        if name not in names:
            names.append(name)
    if not names:
        raise InputError("--template", [N_("the template has no {column} fields")])
    return names


class _MissingColumn(KeyError):
    pass


class _RowValues(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise _MissingColumn(key)


def expand_template(template: str, values: Mapping[str, str]) -> str:
    """``template`` filled from ``values``; white space runs collapse (empty cells)."""
    try:
        text = template.format_map(_RowValues(values))
    except _MissingColumn as exc:
        raise KeyError(exc.args[0]) from None
    return " ".join(text.split())


# --- readers -----------------------------------------------------------------------


def _read_text(text: str) -> list[_RawRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        rows.append(_RawRow(N_(f"line {number}"), {"prompt": stripped}, stripped))
    return rows


def _norm_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key is None:  # csv: extra cells beyond the header
            continue
        name = str(key).strip()
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        out[name] = "" if value is None else str(value).strip()
    return out


def _read_csv(text: str, delimiter: str) -> tuple[list[_RawRow], list[str], list[str]]:
    """Rows, header columns, problems."""
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or []) if h is not None]
    problems: list[str] = []
    if not header:
        return [], [], [N_("the CSV file has no header row (e.g. prompt,format,quality)")]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        problems.append(N_(f"the header repeats column(s) {', '.join(dupes)}"))
    rows = []
    try:
        for record in reader:
            fields = _norm_fields(record)
            if not any(fields.values()):
                continue  # a blank line inside the CSV
            # line_num is the physical line of the row's end: what an editor shows.
            rows.append(_RawRow(N_(f"row {reader.line_num}"), fields, fields.get("prompt")))
    except csv.Error as exc:
        problems.append(N_(f"line {reader.line_num}: not valid CSV ({exc})"))
    return rows, header, problems


def _read_json(text: str) -> tuple[list[_RawRow], list[str]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [], [N_(f"not valid JSON ({exc})")]
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        data = data["prompts"]  # {"prompts": [...]} is a common wrapping
    if not isinstance(data, list):
        return [], [N_("expected a JSON list of prompts (strings) or objects")]
    rows: list[_RawRow] = []
    problems: list[str] = []
    for index, item in enumerate(data, start=1):
        where = N_(f"item {index}")
        if isinstance(item, str):
            rows.append(_RawRow(where, {"prompt": item.strip()}, item))
        elif isinstance(item, dict):
            fields = _norm_fields(item)
            rows.append(_RawRow(where, fields, fields.get("prompt")))
        else:
            problems.append(N_(f"{where}: expected a string or an object, got {type(item).__name__}"))
    return rows, problems


def _lookup(fields: Mapping[str, str], name: str) -> str | None:
    """A column by name, case-insensitively (Format, QUALITY ...); empty -> None."""
    for key, value in fields.items():
        if key.lower() == name:
            return value or None
    return None


# --- entry point -------------------------------------------------------------------


def load_rows(
    path: str | Path,
    *,
    template: str | None = None,
    default_format: str | None = None,
    default_quality: str | None = None,
) -> list[Row]:
    """Read, expand and validate every row; InputError lists all problems at once."""
    file = Path(path)
    source = str(file)
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(source, [N_("the file does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, [N_(f"cannot be read as UTF-8 text ({exc})")]) from None

    try:
        fmt_default = clean_format(default_format)
        quality_default = clean_quality(default_quality)
    except HiptahError as exc:
        raise InputError("options", [exc.message]) from None
    needed = template_fields(template) if template is not None else []

    suffix = file.suffix.lower()
    header: list[str] | None = None
    problems: list[str] = []
    if suffix in (".csv", ".tsv"):
        raws, header, problems = _read_csv(text, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".json":
        raws, problems = _read_json(text)
    else:
        raws = _read_text(text)

    if header is not None:
        # Say once that a column is missing, not once per row.
        if template is not None:
            absent = [n for n in needed if n not in header]
            if absent:
                problems.append(N_(
                    f"the template needs column(s) {', '.join(absent)}; "
                    f"the header has {', '.join(header) or 'nothing'}"
                ))
        elif "prompt" not in header:
            problems.append(N_(
                f"no 'prompt' column (the header has {', '.join(header)}); "
                "add one or set a template such as \"a {column} ...\" (--template, or Template in the panel)"
            ))
        if problems:
            raise InputError(source, problems)

    rows: list[Row] = []
    occurrences: dict[tuple[str, str, str], int] = {}
    for raw in raws:
        row_problems: list[str] = []
        if template is not None:
            try:
                prompt_text: str | None = expand_template(template, raw.fields)
            except KeyError as exc:
                row_problems.append(N_(
                    f"{raw.source}: no value for {{{exc.args[0]}}} "
                    f"(fields: {', '.join(raw.fields) or 'none'})"
                ))
                prompt_text = None
        else:
            prompt_text = raw.prompt
            if prompt_text is None:
                row_problems.append(N_(f"{raw.source}: no 'prompt' field"))
        prompt = ""
        if prompt_text is not None:
            try:
                prompt = clean_prompt(prompt_text)
            except HiptahError as exc:
                shown = prompt_text if len(prompt_text) <= 60 else prompt_text[:59] + "…"
                row_problems.append(N_(f"{raw.source}: {exc.message.rstrip('.')} ({shown!r})"))
        try:
            fmt = clean_format(_lookup(raw.fields, "format") or fmt_default)
        except HiptahError as exc:
            row_problems.append(N_(f"{raw.source}: {exc.message.rstrip('.')}; use {', '.join(FORMATS)}"))
            fmt = fmt_default
        try:
            quality = clean_quality(_lookup(raw.fields, "quality") or quality_default)
        except HiptahError as exc:
            row_problems.append(N_(f"{raw.source}: {exc.message.rstrip('.')}; use {', '.join(QUALITIES)}"))
            quality = quality_default
        if row_problems:
            problems.extend(row_problems)
            continue
        ident = (prompt, fmt, quality)
        occurrences[ident] = occurrences.get(ident, 0) + 1
        rows.append(
            Row(
                key=row_key(prompt, fmt, quality, occurrences[ident]),
                prompt=prompt,
                format=fmt,
                quality=quality,
                source=raw.source,
                fields=dict(raw.fields),
            )
        )
    if not rows and not problems:
        problems.append(N_("no prompts found (blank lines and # comments are skipped)"))
    if problems:
        raise InputError(source, problems)
    return rows

