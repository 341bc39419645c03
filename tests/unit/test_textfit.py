"""Word wrap to a pixel width (hiptah_blender.textfit), with a fake font: no bpy."""

from __future__ import annotations

import itertools

import pytest

from hiptah_blender import textfit

# A proportional fake font: narrow i/l/space, wide m/w, 7 px otherwise.
WIDTHS = {"i": 3.0, "l": 3.0, " ": 3.5, ".": 3.0, "m": 11.0, "w": 10.0}


def measure(text: str) -> float:
    return sum(WIDTHS.get(c, 7.0) for c in text)


MESSAGE = (
    "The HiPtah API key was refused. Server said: The API key is not valid. Check the key in "
    "Edit > Preferences > Add-ons > HiPtah (HiPtah dashboard > Settings > API Keys)."
)


@pytest.mark.parametrize("width", [120.0, 180.0, 250.0, 400.0, 1000.0])
def test_every_line_fits_and_no_word_is_lost(width: float) -> None:
    lines = textfit.wrap(MESSAGE, width, measure)
    assert all(measure(line) <= width for line in lines)
    assert " ".join(lines).split() == MESSAGE.split()  # same words, same order, no "…"
    assert all(line == line.strip() and line for line in lines)


def test_lines_are_filled_greedily() -> None:
    lines = textfit.wrap(MESSAGE, 180.0, measure)
    for line, following in itertools.pairwise(lines):
        # The next line's first word would not have fitted on this one.
        assert measure(f"{line} {following.split()[0]}") > 180.0


def test_short_text_stays_one_line() -> None:
    assert textfit.wrap("Ready", 100.0, measure) == ["Ready"]


def test_empty_and_blank_give_one_empty_line() -> None:
    assert textfit.wrap("", 100.0, measure) == [""]
    assert textfit.wrap("   ", 100.0, measure) == [""]


def test_newlines_are_kept() -> None:
    assert textfit.wrap("first line\nsecond", 1000.0, measure) == ["first line", "second"]


def test_a_word_wider_than_the_line_is_split_between_characters() -> None:
    url = "https://api.hiptah.example/v1/some/very/long/path/that/does/not/fit"
    lines = textfit.wrap(f"Base URL {url} refused", 90.0, measure)
    assert all(measure(line) <= 90.0 for line in lines)
    assert "".join(lines).replace(" ", "") == f"BaseURL{url}refused"


def test_a_line_narrower_than_one_character_still_makes_progress() -> None:
    assert textfit.wrap("mm", 1.0, measure) == ["m", "m"]


def test_label_width_follows_the_region_and_the_ui_scale() -> None:
    narrow = textfit.label_width(300, 1.0)
    assert 150 < narrow < 300
    assert textfit.label_width(300, 1.0, boxes=1) < narrow  # a box takes padding
    assert textfit.label_width(300, 1.0, icon=False) == pytest.approx(narrow + 20)
    # At 2x UI scale the margins double: a region twice as wide leaves twice the text width.
    assert textfit.label_width(600, 2.0) == pytest.approx(2 * narrow)
    assert textfit.label_width(10, 1.0) == 40  # never below two units


def test_menus_side_by_side_only_when_the_widest_text_fits_half_the_room() -> None:
    # 291 px region at scale 1: about 229 px for two menu buttons, 24 px of each is arrow/margin.
    assert textfit.fit_in_columns(291, 1.0, [80.0, 85.0], 2)
    assert textfit.fit_in_columns(291, 1.0, [90.5], 2) and not textfit.fit_in_columns(291, 1.0, [91.0], 2)
    assert not textfit.fit_in_columns(210, 1.0, [80.0, 85.0], 2)
    assert textfit.fit_in_columns(210, 1.0, [80.0, 85.0], 1)  # one a line always fits better
    # Twice the UI scale, twice the pixels: the same answer.
    assert textfit.fit_in_columns(291, 1.0, [85.0], 2) == textfit.fit_in_columns(582, 2.0, [170.0], 2)
