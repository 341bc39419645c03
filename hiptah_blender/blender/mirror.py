"""The WindowManager list the job UIList draws: a session-only mirror of the
scheduler's jobs (identity, state, label; the rows read the rest from snapshots).
Split from runtime.py, which refills it after each step."""

from __future__ import annotations

import bpy

from ..jobs.records import JobRecord


def sync_mirror(jobs: list[JobRecord]) -> None:
    wm = bpy.context.window_manager
    items = getattr(wm, "hiptah_jobs", None) if wm is not None else None
    if items is None:
        return
    wanted = [(job.local_id, job.state.value, job.label(60)) for job in jobs]
    if [(i.local_id, i.state, i.label) for i in items] == wanted:
        return
    index = wm.hiptah_jobs_index  # type: ignore[union-attr]
    selected = items[index].local_id if 0 <= index < len(items) else ""
    items.clear()
    for local_id, state, label in wanted:
        item = items.add()
        item.local_id, item.state, item.label = local_id, state, label
        item.name = label  # the UIList's built-in name filter searches this
    ids = [w[0] for w in wanted]
    wm.hiptah_jobs_index = ids.index(selected) if selected in ids else 0  # type: ignore[union-attr]


def update_mirror(jobs: list[JobRecord]) -> bool:
    """Refresh the mirror items of ``jobs`` in place, writing only what changed. False
    when one of them has no item (the caller then rebuilds the whole list)."""
    wm = bpy.context.window_manager
    items = getattr(wm, "hiptah_jobs", None) if wm is not None else None
    if items is None:
        return True
    wanted = {job.local_id: (job.state.value, job.label(60)) for job in jobs}
    found = 0
    for item in items:
        new = wanted.get(item.local_id)
        if new is None:
            continue
        found += 1
        if (item.state, item.label) != new:
            item.state, item.label = new
            item.name = new[1]  # the UIList's built-in name filter searches this
    return found == len(wanted)
