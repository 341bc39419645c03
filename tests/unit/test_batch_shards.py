"""Farm shards (batch.shards) and the merge plan (batch.merge), without Blender or a server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from hiptah_blender.batch.inputs import Row, row_key
from hiptah_blender.batch.merge import MergeError, plan_merge
from hiptah_blender.batch.shards import (
    ShardError,
    batch_identity,
    idempotency_key,
    parse_rows,
    parse_shard,
    select,
    shard_bounds,
    write_shard_info,
)
from hiptah_blender.batch.state import BatchState, RowState


def make_rows(n: int) -> list[Row]:
    return [Row(row_key(f"a chair {i}", "glb", "high", 1), f"a chair {i}", "glb", "high", f"line {i + 1}")
            for i in range(n)]


def test_rows_option_is_one_based_and_inclusive() -> None:
    rows = make_rows(10)
    taken, part = select(rows, "3-5", None)
    assert [r.prompt for r in taken] == ["a chair 2", "a chair 3", "a chair 4"]
    assert part is not None and part.label == "rows 3-5 of 10"
    assert parse_rows("7", 10).count == 1
    assert parse_rows("9-100", 10).count == 2  # the last chunk takes what is left
    for bad in ("0-3", "5-4", "11-12", "a-b", "3-"):
        with pytest.raises(ShardError):
            parse_rows(bad, 10)


@pytest.mark.parametrize("total", [0, 1, 7, 20, 101])
@pytest.mark.parametrize("count", [1, 3, 20])
def test_shards_cover_every_row_once_in_near_equal_slices(total: int, count: int) -> None:
    bounds = [shard_bounds(i, count, total) for i in range(1, count + 1)]
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(total))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_shard_option_errors_say_how() -> None:
    assert parse_shard("2/4", 8).label == "shard 2/4 (rows 3-4 of 8)"
    assert "no rows" in parse_shard("5/5", 3).label
    for bad in ("0/3", "4/3", "3", "1/0"):
        with pytest.raises(ShardError, match="INDEX"):
            parse_shard(bad, 10)


def test_idempotency_key_is_a_stable_uuid4_per_batch_and_row() -> None:
    rows = make_rows(3)
    batch = batch_identity(rows)
    key = idempotency_key(batch, rows[0])
    assert uuid.UUID(key).version == 4 and str(uuid.UUID(key)) == key
    assert key == idempotency_key(batch_identity(make_rows(3)), make_rows(3)[0])  # any worker, any time
    assert len({idempotency_key(batch, r) for r in rows}) == 3
    assert idempotency_key("another batch", rows[0]) != key
    # Same prompt, different body (format): a different row key, so never the same key with
    # another body (the sandbox answers 422 to that).
    other = Row(row_key("a chair 0", "fbx", "high", 1), "a chair 0", "fbx", "high", "line 1")
    assert idempotency_key(batch, other) != key
    # The batch id covers the whole input: a shard does not change it; another input does.
    assert batch_identity(make_rows(4)) != batch
    assert batch_identity(rows) == batch


def shard_folder(tmp_path: Path, name: str, rows: list[Row], start: int, stop: int, *,
                 imported: int | None = None, batch: str = "b1") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    part = parse_rows(f"{start + 1}-{stop}", len(rows))
    mine = part.take(rows)
    write_shard_info(folder, batch_id=batch, part=part, total=len(rows), rows=mine)
    state = BatchState(folder)
    done = mine if imported is None else mine[:imported]
    state.write_manifest(
        RowState(r.key, r.prompt, r.format, r.quality, r.source,
                 status="imported" if r in done else "queued",
                 asset=r.prompt.title() if r in done else None, job_id=f"gen_{r.key}")
        for r in mine
    )
    return folder


def test_merge_plan_takes_each_row_once_and_lists_holes(tmp_path: Path) -> None:
    rows = make_rows(10)
    shard_folder(tmp_path, "s1", rows, 0, 4)
    shard_folder(tmp_path, "s2", rows, 4, 7, imported=2)
    shard_folder(tmp_path, "s2-again", rows, 4, 7)  # the same shard rerun elsewhere
    plan = plan_merge([tmp_path])
    assert len(plan.picks) == 7 and len({p.row_key for p in plan.picks}) == 7
    assert plan.duplicates == 2
    assert plan.missing == []
    assert plan.uncovered == [(8, 10)]
    assert not plan.complete and "input rows 8-10" in plan.describe()
    # Without the rerun one row of shard 2 is missing.
    plan = plan_merge([tmp_path / "s1", tmp_path / "s2"])
    assert plan.missing == [rows[6].key]


def test_merge_refuses_mixed_batches_and_foreign_folders(tmp_path: Path) -> None:
    rows = make_rows(4)
    shard_folder(tmp_path, "a", rows, 0, 2, batch="one")
    shard_folder(tmp_path, "b", rows, 2, 4, batch="two")
    with pytest.raises(MergeError, match="different batches"):
        plan_merge([tmp_path])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MergeError, match="not a shard output folder"):
        plan_merge([tmp_path / "empty"])


def test_a_shard_folder_keeps_its_batch(tmp_path: Path) -> None:
    rows = make_rows(4)
    part = parse_shard("1/2", 4)
    write_shard_info(tmp_path, batch_id="one", part=part, total=4, rows=rows[:2])
    write_shard_info(tmp_path, batch_id="one", part=part, total=4, rows=rows[:2])  # same: fine
    with pytest.raises(ShardError, match="another --out folder"):
        write_shard_info(tmp_path, batch_id="two", part=part, total=4, rows=rows[:2])
    assert json.loads((tmp_path / "hiptah_shard.json").read_text())["batch_id"] == "one"
    # A whole-input folder follows its input (an extended file is a new batch id).
    whole = tmp_path / "whole"
    write_shard_info(whole, batch_id="one", part=None, total=4, rows=rows)
    write_shard_info(whole, batch_id="two", part=None, total=5, rows=make_rows(5))
    assert json.loads((whole / "hiptah_shard.json").read_text())["batch_id"] == "two"
