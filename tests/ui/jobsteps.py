"""Steps shared by the many-jobs and failure scenarios: buttons found once and
re-checked, row buttons of one job, screenshots after a repaint, the status line's
state as the panel reads it."""

from __future__ import annotations

import time
from typing import Any

from tests.ui.conftest import ADDON
from tests.ui.driver.session import GuiBlender

WAIT = 180.0  # generous: software GL on a shared machine; never a timing assertion


def shot(gui: GuiBlender, name: str) -> None:
    """A screenshot once Blender has painted the latest state (a redraw is asked for and
    two event-loop turns pass)."""
    rect = gui.region()
    gui.move(rect["x"] - 300, rect["y"] + 300)  # pointer over the viewport: no tooltip
    gui.call("for _a in sidebar()['window'].screen.areas: _a.tag_redraw()\nresult = 1")
    time.sleep(0.3)
    gui.call("result = 1")
    gui.screenshot(name)


def click_at(gui: GuiBlender, places: dict[str, tuple[int, int]], match: str) -> tuple[int, int]:
    """Click the sidebar button ``match``: where it was last time if a probe there still
    finds it (a scan costs ~150 probes), else where a new scan finds it."""
    pos = places.get(match)
    if pos is None or match not in gui.probe(*pos):
        pos = places[match] = gui.find_button(match)
    gui.move(*pos)  # hover first, as a hand does: Blender activates buttons on motion
    time.sleep(0.2)
    gui.click(*pos)
    return pos


def type_prompt(gui: GuiBlender, places: dict[str, tuple[int, int]], text: str) -> None:
    """Click the prompt field, select all, type, Return: as a person does."""
    click_at(gui, places, ".prompt")
    gui.key("ctrl+a")
    gui.type(text)
    gui.key("Return")
    gui.wait_until(f"result = bpy.context.scene.hiptah.prompt == {text!r}", timeout=30,
                   describe=f"the prompt field to read {text!r}")


def generate(gui: GuiBlender, places: dict[str, tuple[int, int]], prompt: str) -> str:
    """Type ``prompt``, click Generate; the new job's local id."""
    before = set(local_ids(gui))
    type_prompt(gui, places, prompt)
    click_at(gui, places, "hiptah.generate")
    new = gui.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        f"result = [j.local_id for j in _rt.peek().scheduler.jobs() if j.local_id not in {sorted(before)!r}]"
        " if _rt.peek() else []",
        timeout=30, describe=f"a job for {prompt!r} queued by the Generate button")
    assert len(new) == 1, new
    return str(new[0])


def local_ids(gui: GuiBlender) -> list[str]:
    return list(gui.call(f"from {ADDON}.blender import runtime as _rt\n"
                         "result = [j.local_id for j in _rt.peek().scheduler.jobs()] if _rt.peek() else []"))


def record(gui: GuiBlender, local_id: str) -> dict[str, Any]:
    """One job as the panel sees it: state, server job id, error, and the row's text."""
    return dict(gui.call(
        f"from {ADDON}.blender import runtime as _rt, panels as _p\nimport time\n"
        f"_j = _rt.peek().snapshots[{local_id!r}]\n"
        "result = dict(state=_j.state.value, job_id=_j.job_id, prompt=_j.prompt,\n"
        "    error=None if _j.error is None else dict(kind=_j.error.kind, message=_j.error.message),\n"
        "    row=_p.status_text(_j, time.time(), 10))\n"))


def wait_state(gui: GuiBlender, local_id: str, state: str, timeout: float = WAIT) -> dict[str, Any]:
    gui.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        f"_j = _rt.peek().snapshots.get({local_id!r}) if _rt.peek() else None\n"
        f"result = _j is not None and _j.state.value == {state!r}",
        timeout=timeout, describe=f"job {local_id} {state}")
    return record(gui, local_id)


def row_button(gui: GuiBlender, op: str, local_id: str, below: int = 0) -> tuple[int, int]:
    """The icon button ``op`` (cancel_job, retry_job) on the job list row of ``local_id``,
    scanning from screen row ``below`` down (the list is under the Generate button)."""
    top = max(0, below - gui.region()["y"])
    return gui.find_button(f'hiptah.{op}(local_id="{local_id}")', columns=(0.8, 0.86, 0.92, 0.74), top=top)


# What draw_status() decides, in its order: a configuration problem (no key, bad URL,
# online access off), else a server refusal kept by account.py, else a connection
# problem, else "N running" / "Ready".
STATUS = f"""
from {ADDON}.blender import account as _acc, runtime as _rt, panels as _p
from {ADDON}.blender.settings import read_settings as _rs
_s = _rs(bpy.context)
_pr = _s.configuration_error()
_rf = _acc.current(_s) if _pr is None else None
_r = _rt.peek()
_un = getattr(_p, 'connection_problem', None)
_un = _un(_r) if (_un is not None and _r is not None) else None
result = dict(
    problem=None if _pr is None else [type(_pr).__name__, _pr.message],
    refusal=None if _rf is None else [_rf.error.kind, _rf.error.message],
    unreachable=None if _un is None else [_un.kind, _un.message],
    paused=None if _r is None or _r.online.reason is None else _r.online.reason.message,
)
"""


def status_line(gui: GuiBlender) -> dict[str, Any]:
    return dict(gui.call(STATUS))
