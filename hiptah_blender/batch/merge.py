"""Which shard holds which row: the plan for merging shard outputs into one library.

Pure Python (reads each shard folder's ``hiptah_shard.json`` and manifest); the bpy
half, ``blender/library_merge.py``, appends the chosen assets into one library.

Rules:

* Every folder must come from the same batch (same batch id); mixing batches would
  put another input's rows into this library, so it is refused.
* A row is taken from a shard whose manifest says it is imported (its asset is in
  that shard's library). A row found in two shards (overlapping ``--rows``, or a
  shard rerun into a second folder) is taken once: no duplicates.
* Rows of the input that no shard finished are listed (``missing``), and input
  ranges that no shard even covered (``uncovered``), so a merge task can fail
  loudly instead of publishing a library with holes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..jobs.records import JobState
from .shards import SHARD_INFO_NAME
from .state import BatchState


class MergeError(ValueError):
    """The folders cannot be merged (the message says why and what to do)."""


@dataclass(frozen=True)
class Pick:
    row_key: str
    folder: Path
    library: Path
    asset: str  # collection name in that shard's library
    prompt: str
    job_id: str | None


@dataclass
class MergePlan:
    batch_id: str
    total: int
    shards: list[Path]
    picks: list[Pick] = field(default_factory=list)
    duplicates: int = 0  # rows finished in more than one shard (taken once)
    missing: list[str] = field(default_factory=list)  # covered rows no shard finished
    uncovered: list[tuple[int, int]] = field(default_factory=list)  # 1-based inclusive input ranges

    @property
    def complete(self) -> bool:
        return not self.missing and not self.uncovered

    def describe(self) -> str:
        lines = [f"batch {self.batch_id}: {len(self.shards)} shard folder(s), {len(self.picks)} of "
                 f"{self.total} row(s) finished"]
        if self.duplicates:
            lines.append(f"{self.duplicates} row(s) finished in more than one shard: taken once")
        if self.missing:
            shown = ", ".join(self.missing[:10]) + (" ..." if len(self.missing) > 10 else "")
            lines.append(f"{len(self.missing)} row(s) not finished by their shard: {shown} "
                         "(rerun those shards, then merge again)")
        if self.uncovered:
            spans = ", ".join(f"{a}-{b}" for a, b in self.uncovered)
            lines.append(f"input rows {spans} are in no shard folder given")
        return "\n".join(lines)


def shard_folders(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Each path is a shard folder, or a folder whose direct children are shard folders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).resolve()
        if (path / SHARD_INFO_NAME).is_file():
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if (p / SHARD_INFO_NAME).is_file()) if path.is_dir() else []
        if not children:
            raise MergeError(f"{path} is not a shard output folder (no {SHARD_INFO_NAME}) and holds none; "
                             "give the --out folders of the batch's shards.")
        found.extend(children)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise MergeError("no shard folders given")
    return unique


def _read_info(folder: Path) -> dict[str, object]:
    try:
        info = json.loads((folder / SHARD_INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{folder / SHARD_INFO_NAME} cannot be read ({exc}); rerun that shard.") from None
    if not isinstance(info, dict) or not isinstance(info.get("batch_id"), str):
        raise MergeError(f"{folder / SHARD_INFO_NAME} is not a shard description; rerun that shard.")
    return info


def plan_merge(folders: Iterable[str | os.PathLike[str]], *, exclude: Path | None = None) -> MergePlan:
    shards = [f for f in shard_folders(folders) if exclude is None or f != exclude.resolve()]
    infos = {folder: _read_info(folder) for folder in shards}
    batch_ids = sorted({str(info["batch_id"]) for info in infos.values()})
    if len(batch_ids) != 1:
        raise MergeError(f"the folders come from different batches ({', '.join(batch_ids)}); "
                         "merge the shards of one batch at a time.")
    totals = {int(str(info.get("total", 0))) for info in infos.values()}
    if len(totals) != 1:
        raise MergeError("the shard folders disagree on the input's length; were they run on the same file?")
    plan = MergePlan(batch_ids[0], totals.pop(), shards)

    covered = [False] * plan.total
    chosen: dict[str, Pick] = {}
    finished_in: dict[str, int] = {}
    wanted: list[str] = []
    for folder, info in infos.items():
        start, stop = int(str(info.get("start", 0))), int(str(info.get("stop", 0)))
        for i in range(max(0, start), min(stop, plan.total)):
            covered[i] = True
        keys = info.get("row_keys")
        if isinstance(keys, list):
            wanted.extend(k for k in keys if isinstance(k, str))
        state = BatchState(folder)
        for key, entry in state.load_manifest().items():
            if entry.status != JobState.IMPORTED.value or not entry.asset:
                continue
            finished_in[key] = finished_in.get(key, 0) + 1
            chosen.setdefault(key, Pick(key, folder, state.library_path, entry.asset, entry.prompt, entry.job_id))
    plan.picks = list(chosen.values())
    plan.duplicates = sum(1 for n in finished_in.values() if n > 1)
    plan.missing = [k for k in dict.fromkeys(wanted) if k not in chosen]
    plan.uncovered = _spans([i for i, c in enumerate(covered) if not c])
    return plan


def _spans(indexes: list[int]) -> list[tuple[int, int]]:
    """0-based indexes -> 1-based inclusive ranges."""
    spans: list[tuple[int, int]] = []
    for i in indexes:
        if spans and spans[-1][1] == i:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i + 1, i + 1))
    return spans
