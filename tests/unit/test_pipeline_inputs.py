"""hiptah_blender.batch.inputs: text/CSV/JSON rows, templates, validation, stable row keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hiptah_blender.batch.inputs import (
    InputError,
    expand_template,
    load_rows,
    row_key,
    template_fields,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_text_file_skips_blanks_and_comments(tmp_path: Path) -> None:
    path = write(tmp_path, "p.txt", "# header comment\n\na red chair\n   \n  # indented comment\n a blue lamp  \n")
    rows = load_rows(path)
    assert [r.prompt for r in rows] == ["a red chair", "a blue lamp"]
    assert [r.source for r in rows] == ["line 3", "line 6"]
    assert all(r.format == "glb" and r.quality == "high" for r in rows)


def test_csv_template_expands_columns_and_honours_format_quality(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "color,material,object,format,Quality\n"
        "red,wooden,chair,fbx,draft\n"
        "blue,metal,table,,\n"
        ",glass,vase,stl,standard\n",
    )
    rows = load_rows(path, template="a {color} {material} {object}", default_quality="standard")
    assert [r.prompt for r in rows] == ["a red wooden chair", "a blue metal table", "a glass vase"]
    assert [(r.format, r.quality) for r in rows] == [("fbx", "draft"), ("glb", "standard"), ("stl", "standard")]
    assert rows[0].fields["color"] == "red"
    assert rows[0].source == "row 2"


def test_csv_without_template_uses_prompt_column(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "prompt,format\na stone well,3mf\n\nan oak tree,\n")
    rows = load_rows(path, default_format="usdz")
    assert [(r.prompt, r.format) for r in rows] == [("a stone well", "3mf"), ("an oak tree", "usdz")]


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffprompt\na teapot\n".encode())
    assert load_rows(path)[0].prompt == "a teapot"


def test_template_missing_column_is_reported_once_with_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "color,object\nred,chair\nblue,lamp\n")
    with pytest.raises(InputError) as info:
        load_rows(path, template="a {color} {material} {object}")
    assert len(info.value.problems) == 1
    text = info.value.describe()
    assert "material" in text and "color, object" in text


def test_csv_without_prompt_column_or_template(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "color,object\nred,chair\n")
    with pytest.raises(InputError, match="no 'prompt' column"):
        load_rows(path)


def test_every_bad_row_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "prompt,format,quality\n"
        "a good chair,glb,high\n"
        "<b>bold</b> chair,glb,high\n"
        f"{'x' * 501},glb,high\n"
        "a lamp,obj,high\n"
        "a desk,glb,ultra\n"
        ",glb,high\n",
    )
    with pytest.raises(InputError) as info:
        load_rows(path)
    problems = info.value.problems
    assert len(problems) == 5
    assert problems[0].startswith("row 3:") and "HTML" in problems[0]
    assert "501 characters" in problems[1]
    assert "'obj'" in problems[2] and "glb, fbx" in problems[2]
    assert "'ultra'" in problems[3]
    assert problems[4].startswith("row 7:")


def test_json_strings_and_objects(tmp_path: Path) -> None:
    data = [
        "a red chair",
        {"prompt": "a blue lamp", "format": "stl"},
        {"color": "green", "object": "vase", "quality": "draft"},
    ]
    path = write(tmp_path, "p.json", json.dumps(data))
    with pytest.raises(InputError) as info:
        load_rows(path)  # the third item has no prompt and there is no template
    assert info.value.problems == ["item 3: no 'prompt' field"]
    rows = load_rows(write(tmp_path, "q.json", json.dumps({"prompts": data[:2]})))
    assert [(r.prompt, r.format, r.source) for r in rows] == [
        ("a red chair", "glb", "item 1"),
        ("a blue lamp", "stl", "item 2"),
    ]


def test_json_template_and_bad_items(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", json.dumps([{"color": "red", "n": 3}, 42, {"color": "blue"}]))
    with pytest.raises(InputError) as info:
        load_rows(path, template="{n} {color} cubes")
    assert info.value.problems == [
        "item 2: expected a string or an object, got int",
        "item 3: no value for {n} (fields: color)",
    ]
    rows = load_rows(write(tmp_path, "q.json", json.dumps([{"color": "red", "n": 3}])), template="{n} {color} cubes")
    assert rows[0].prompt == "3 red cubes"


def test_invalid_json_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        load_rows(write(tmp_path, "p.json", "[1,"))
    with pytest.raises(InputError, match="no prompts found"):
        load_rows(write(tmp_path, "p.txt", "# only a comment\n\n"))
    with pytest.raises(InputError, match="does not exist"):
        load_rows(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="not supported"):
        load_rows(write(tmp_path, "ok.txt", "a chair\n"), default_format="obj")


@pytest.mark.parametrize(
    ("template", "message"),
    [("a {} chair", "named fields"), ("a {0} chair", "named fields"), ("a {x.y}", "plain column"),
     ("no fields", "no {column}"), ("a {x", "not valid")],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        template_fields(template)


def test_expand_template_collapses_space_of_empty_cells() -> None:
    assert expand_template("a {color}  {object}", {"color": "", "object": "lamp"}) == "a lamp"
    with pytest.raises(KeyError):
        expand_template("a {color}", {})


def test_duplicates_are_kept_with_distinct_stable_keys(tmp_path: Path) -> None:
    rows = load_rows(write(tmp_path, "p.txt", "a chair\na lamp\na chair\na chair\n"))
    keys = [r.key for r in rows]
    assert len(set(keys)) == 4
    assert keys[2] == keys[0] + "-2" and keys[3] == keys[0] + "-3"
    # Inserting and reordering rows does not change the keys of the others.
    again = load_rows(write(tmp_path, "q.txt", "a new table\na lamp\na chair\na chair\na chair\n"))
    by_prompt = {(r.prompt, r.key) for r in again}
    assert {(r.prompt, r.key) for r in rows} <= by_prompt


def test_same_prompt_in_another_format_is_another_row(tmp_path: Path) -> None:
    rows = load_rows(write(tmp_path, "p.csv", "prompt,format\na chair,glb\na chair,stl\n"))
    assert rows[0].key != rows[1].key and "-" not in rows[1].key


@given(
    prompt=st.text(min_size=1, max_size=40),
    fmt=st.sampled_from(["glb", "stl"]),
    n=st.integers(min_value=1, max_value=5),
)
def test_row_key_is_deterministic_and_occurrence_specific(prompt: str, fmt: str, n: int) -> None:
    assert row_key(prompt, fmt, "high", n) == row_key(prompt, fmt, "high", n)
    assert row_key(prompt, fmt, "high", n) != row_key(prompt, fmt, "high", n + 1)
    assert row_key(prompt, fmt, "high", n) != row_key(prompt, fmt, "draft", n)
