"""Merge farm shard libraries into one Asset Browser library (bpy half of ``batch.merge``).

Each shard wrote its own ``hiptah_assets.blend``; the merge appends the chosen
asset collections (``batch.merge.plan_merge``: one per row, no duplicates) into the
target library, as they are: objects, meshes, materials, the asset's metadata,
tags, catalog and its rendered preview (an ID's preview is stored with it, so
append keeps it: nothing is imported or rendered again). Rows the target already
holds (same ``hiptah_row_key``) are skipped, so a merge can be run again after a
late shard finished. The target is saved once, at the end (Blender writes a
temporary file and renames it): an interrupted merge leaves the old library.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from mathutils import Vector

from .. import assets as asset_files
from ..batch.merge import MergePlan, Pick
from .library import GRID_COLUMNS, GRID_SPACING, quiet_stdout, root_collection


@dataclass
class MergeResult:
    added: int
    already: int  # rows the target held before
    failed: list[str]  # "row key: reason"
    assets: int  # asset collections in the target after the merge


def _by_row_key() -> dict[str, Any]:
    return {str(c["hiptah_row_key"]): c for c in bpy.data.collections if c.get("hiptah_row_key")}


def _place(coll: Any, slot: int) -> None:
    """Move the asset to grid cell ``slot`` (its objects and its instance offset)."""
    new = Vector(((slot % GRID_COLUMNS) * GRID_SPACING, -(slot // GRID_COLUMNS) * GRID_SPACING, 0.0))
    delta = new - Vector(coll.instance_offset)
    for obj in coll.all_objects:
        if obj.parent is None:
            obj.matrix_world.translation += delta
    coll.instance_offset = new
    coll["hiptah_slot"] = slot


def merge_libraries(target: str | Path, plan: MergePlan, *, quiet: bool = True) -> MergeResult:
    """Append every picked asset missing from ``target`` into it, and save it."""
    path = Path(target).resolve()
    with quiet_stdout(quiet):
        if path.exists():
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
        else:
            bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    root = root_collection()
    present = _by_row_key()
    already = sum(1 for p in plan.picks if p.row_key in present)
    todo: dict[Path, list[Pick]] = defaultdict(list)
    for pick in plan.picks:
        if pick.row_key not in present:
            todo[pick.library].append(pick)
    slots = [int(c["hiptah_slot"]) for c in bpy.data.collections if c.get("hiptah_slot") is not None]
    next_slot = max(slots, default=-1) + 1
    added = 0
    failed: list[str] = []
    for library, picks in todo.items():
        wanted = {p.asset: p for p in picks}
        if not library.is_file():
            failed += [f"{p.row_key}: {library} is missing" for p in picks]
            continue
        libraries: Any = bpy.data.libraries  # the stubs say load() returns None; it is a context manager
        with quiet_stdout(quiet), libraries.load(str(library), link=False) as (src, dst):
            names = [n for n in src.collections if n in wanted]
            dst.collections = list(names)  # Blender swaps the names in this list for the new IDs
        got = {name: coll for name, coll in zip(names, dst.collections, strict=True) if coll is not None}
        for name, pick in wanted.items():
            coll = got.get(name)
            if coll is None or coll.get("hiptah_row_key") != pick.row_key or coll.asset_data is None:
                failed.append(f"{pick.row_key}: asset {name!r} not found in {library}")
                if coll is not None:
                    bpy.data.collections.remove(coll)
                continue
            root.children.link(coll)
            _place(coll, next_slot)
            next_slot += 1
            added += 1
    bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=False, do_recursive=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The shards' catalogs (the root and one per month), so every merged asset keeps its place.
    catalogs = {asset_files.CATALOG_ROOT}
    for folder in {Path(pick.library).parent for pick in plan.picks}:
        catalogs.update(asset_files.read_catalogs(folder).values())
    asset_files.ensure_catalogs(path.parent, sorted(catalogs))
    with quiet_stdout(quiet):
        bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False, compress=True)
    assets = sum(1 for c in bpy.data.collections if c.get("hiptah_row_key") and c.asset_data is not None)
    return MergeResult(added, already, failed, assets)


def run_merge(out: str, folders: list[str], *, allow_incomplete: bool = False, quiet: bool = True) -> int:
    """The ``merge`` command: plan, report, merge; exit 0 complete, 1 rows missing, 2 bad input."""
    from ..batch.merge import MergeError, plan_merge
    from ..batch.state import LIBRARY_NAME

    target = Path(out)
    if target.suffix != ".blend":
        target = target / LIBRARY_NAME
    try:
        plan = plan_merge(folders, exclude=target.parent)
    except MergeError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 2
    print(plan.describe())
    result = merge_libraries(target, plan, quiet=quiet)
    print(f"merge: {result.added} asset(s) added, {result.already} already there; "
          f"{result.assets} asset(s) in {target.resolve()}")
    for line in result.failed:
        print(f"merge: failed {line}", file=sys.stderr)
    if result.failed or (not plan.complete and not allow_incomplete):
        return 1
    return 0
