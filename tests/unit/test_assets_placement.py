"""The asset library's files (catalogs, file names, atomic replacement) and the size,
facing and row placement rules, without Blender."""

from __future__ import annotations

import datetime
import math
import os
import time
from pathlib import Path

import pytest

from hiptah_blender import assets, placement
from hiptah_blender.placement import RowPlacer, SizeChoice


def ts(year: int, month: int, day: int = 15) -> float:
    return datetime.datetime(year, month, day, 12, tzinfo=datetime.UTC).timestamp()


def test_catalog_per_month() -> None:
    assert assets.catalog_path(ts(2026, 12)) == "HiPtah/2026-12"
    assert assets.catalog_path(ts(2027, 1, 1)) == "HiPtah/2027-01"
    # Fixed ids: every library, re-run and machine agrees; months differ.
    assert assets.catalog_id("HiPtah/2026-12") == assets.catalog_id("HiPtah/2026-12")
    assert assets.catalog_id("HiPtah/2026-12") != assets.catalog_id("HiPtah/2027-01")
    # The root keeps the id batch libraries have always used.
    assert assets.catalog_id("HiPtah") == "3c68e12d-d7e4-5798-bb39-463c1289aa49"


def test_catalog_file_is_created_with_parents(tmp_path: Path) -> None:
    assert assets.ensure_catalogs(tmp_path, ["HiPtah/2026-12"])
    text = (tmp_path / assets.CATALOG_FILE).read_text()
    assert text.startswith("# This is an Asset Catalog Definition file for Blender.")
    assert "\nVERSION 1\n" in text
    catalogs = assets.read_catalogs(tmp_path)
    assert sorted(catalogs.values()) == ["HiPtah", "HiPtah/2026-12"]
    assert catalogs[assets.catalog_id("HiPtah/2026-12")] == "HiPtah/2026-12"
    line = next(x for x in text.splitlines() if x.startswith(assets.catalog_id("HiPtah/2026-12")))
    assert line.endswith(":HiPtah/2026-12:HiPtah-2026-12")  # UUID:path:simple name


def test_catalog_file_keeps_the_users_catalogs_and_adds_once(tmp_path: Path) -> None:
    user = "# mine\nVERSION 1\n\n11111111-2222-3333-4444-555555555555:Props/Rocks:Props-Rocks"  # no final newline
    (tmp_path / assets.CATALOG_FILE).write_text(user)
    assert assets.ensure_catalogs(tmp_path, ["HiPtah/2026-12"])
    assert not assets.ensure_catalogs(tmp_path, ["HiPtah/2026-12"])  # already there: untouched
    assert assets.ensure_catalogs(tmp_path, ["HiPtah/2027-01"])
    text = (tmp_path / assets.CATALOG_FILE).read_text()
    assert text.startswith(user + "\n")
    catalogs = assets.read_catalogs(tmp_path)
    assert sorted(catalogs.values()) == ["HiPtah", "HiPtah/2026-12", "HiPtah/2027-01", "Props/Rocks"]
    assert text.count(assets.catalog_id("HiPtah")) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_asset_file_is_one_per_job(tmp_path: Path) -> None:
    a = assets.asset_file(tmp_path, "gen_O9WFlWmYkFEYyzTT")
    assert a == tmp_path / "hiptah_gen_O9WFlWmYkFEYyzTT.blend"
    assert assets.asset_file(tmp_path, "gen_O9WFlWmYkFEYyzTT") == a
    assert assets.asset_file(tmp_path, "../../evil").parent == tmp_path
    assert assets.asset_file(tmp_path, "..").name == "hiptah_job.blend"
    partial = assets.partial_file(a)
    assert partial.parent == tmp_path and not partial.name.endswith(".blend")  # Blender never lists it


def test_publish_replaces_in_one_step(tmp_path: Path) -> None:
    final = assets.asset_file(tmp_path, "gen_1")
    final.write_bytes(b"old")
    partial = assets.partial_file(final)
    partial.write_bytes(b"new")
    assets.publish(partial, final)
    assert final.read_bytes() == b"new" and not partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]


def test_sweep_removes_only_old_partials(tmp_path: Path) -> None:
    old = tmp_path / f".hiptah_gen_1.123{assets.PARTIAL_SUFFIX}"
    new = tmp_path / f".hiptah_gen_2.124{assets.PARTIAL_SUFFIX}"
    keep = tmp_path / "hiptah_gen_3.blend"
    for path in (old, new, keep):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert assets.sweep_partials(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, keep.name])
    assert assets.sweep_partials(tmp_path / "missing") == 0


def test_default_library_is_outside_the_extension(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(tmp_path / "bur"))
    assert assets.default_library_dir() == str(tmp_path / "bur" / "HiPtah Library")
    monkeypatch.delenv("BLENDER_USER_RESOURCES")
    assert assets.default_library_dir() == str(tmp_path / "Blender" / "HiPtah Library")
    (tmp_path / "Documents").mkdir()
    assets._default_for.cache_clear()  # the folder appeared: what a new session would see
    assert assets.default_library_dir() == str(tmp_path / "Documents" / "Blender" / "HiPtah Library")


def test_size_choice() -> None:
    keep = SizeChoice()
    assert keep.scale_for(3.0) == 1.0 and keep.turn == 0.0
    tall = SizeChoice(size=placement.SIZE_HEIGHT, height=1.8)
    assert tall.scale_for(0.9) == pytest.approx(2.0)
    assert tall.scale_for(0.0) == 1.0  # flat: never scaled
    assert SizeChoice(facing=placement.FACING_POS_Y).turn == pytest.approx(math.pi)


def test_size_choice_from_meta_falls_back() -> None:
    prefs = SizeChoice(size=placement.SIZE_HEIGHT, height=2.0, facing=placement.FACING_POS_Y)
    assert SizeChoice.from_meta({}, prefs) == prefs  # jobs from before the option
    stored = SizeChoice(size=placement.SIZE_KEEP, height=1.5, facing=placement.FACING_NEG_Y)
    assert SizeChoice.from_meta(dict(stored.to_meta()), prefs) == stored
    bad = {"size": "HUGE", "target_height": "tall", "facing": "UP"}
    assert SizeChoice.from_meta(bad, prefs) == prefs
    assert SizeChoice.from_meta({"target_height": -1}, prefs).height == 2.0


def test_row_places_side_by_side_until_the_cursor_moves() -> None:
    row = RowPlacer(gap_ratio=0.25, min_gap=0.1)
    cursor = (1.0, 2.0, 0.0)
    first, new = row.place("scene", cursor, 2.0)
    assert first == cursor and new
    second, new = row.place("scene", cursor, 1.0)
    # left edge of the second = right edge of the first (2.0) + gap 0.5
    assert not new and second == pytest.approx((2.0 + 0.5 + 0.5, 2.0, 0.0))
    third, _ = row.place("scene", cursor, 4.0)
    assert third[0] - 2.0 > second[0] + 0.5  # no overlap: left edge beyond the second's right edge
    moved = (5.0, 5.0, 1.0)
    assert row.place("scene", moved, 1.0) == (moved, True)
    assert row.place("other scene", moved, 1.0) == (moved, True)
    assert row.place("other scene", moved, 1.0, row_alive=False) == (moved, True)  # all deleted: start again
