"""The modal job monitor: a thin shell that calls ``runtime.step()`` on a window timer.

All logic is in :func:`on_timer` (and the runtime), which tests call directly:
background Blender has no event loop, so modal operators never run there.
At most one monitor runs; it ends, removing its timer, when no job is active,
and ``load_post`` restarts it when a loaded session still has active jobs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import bpy
from bpy.app.handlers import persistent

from . import previews, runtime
from .i18n import rpt

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Result = set[OperatorReturnItems]

TIMER_INTERVAL = 0.15  # seconds: often enough for smooth progress, cheap when idle


class _MonitorState:
    timer: Any = None
    window: Any = None
    heartbeat: float = 0.0  # time.monotonic() of the last TIMER step

    @classmethod
    def alive(cls) -> bool:
        # A monitor killed without cancel() (e.g. its window closed) stops beating.
        return cls.timer is not None and time.monotonic() - cls.heartbeat < 2.0


def on_timer(context: Any) -> tuple[bool, list[tuple[str, str]]]:
    """One monitor step. Returns (keep running, reports to show)."""
    _MonitorState.heartbeat = time.monotonic()
    rt = runtime.peek()
    if rt is None:
        return False, []
    rt.step(context)
    # A thumbnail still drawing on its worker needs a later step to be collected: the
    # last job's import must not stop the monitor before its picture arrives.
    return rt.has_active() or previews.busy(), rt.take_notices()


class HIPTAH_OT_monitor(bpy.types.Operator):
    """Watch HiPtah jobs: poll, download and import in the background while you keep working"""

    bl_idname = "hiptah.monitor"
    bl_label = "HiPtah: Watch Jobs"

    _timer: Any = None

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.window is not None and not bpy.app.background

    def invoke(self, context: Any, event: Any) -> Result:
        if _MonitorState.alive():
            return {"CANCELLED"}  # one monitor per session
        wm = context.window_manager
        # A stale monitor (no beat for 2 s, e.g. Blender was busy) is superseded: it sees
        # that the current timer is not its own and ends at its next event.
        stop_timer(wm)
        self._timer = wm.event_timer_add(TIMER_INTERVAL, window=context.window)
        _MonitorState.timer = self._timer
        _MonitorState.window = context.window
        _MonitorState.heartbeat = time.monotonic()
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> Result:
        if _MonitorState.timer is not self._timer:
            return {"FINISHED"}  # superseded or stopped (unregister): its timer is already gone
        if event.type != "TIMER" or time.monotonic() - _MonitorState.heartbeat < TIMER_INTERVAL * 0.5:
            return {"PASS_THROUGH"}
        keep, notices = on_timer(context)
        for level, text in notices:
            self.report({level}, rpt(text))  # type: ignore[arg-type]
        if not keep:
            stop_timer(context.window_manager)
            return {"FINISHED"}
        return {"PASS_THROUGH"}

    def cancel(self, context: Any) -> None:
        if _MonitorState.timer is self._timer:
            stop_timer(context.window_manager)


def stop_timer(wm: Any = None) -> None:
    timer, _MonitorState.timer = _MonitorState.timer, None
    _MonitorState.window = None
    if timer is not None:
        wm = wm or bpy.context.window_manager
        if wm is not None:
            wm.event_timer_remove(timer)


def ensure_monitor(context: Any = None) -> bool:
    """Start the monitor if jobs need it and it is not running. False in background
    Blender (no event loop: scripts use wait=True, tests call runtime.step())."""
    if bpy.app.background or _MonitorState.alive():
        return _MonitorState.alive()
    context = context or bpy.context
    wm = context.window_manager
    window = context.window or (wm.windows[0] if wm is not None and wm.windows else None)
    if window is None:
        return False
    with context.temp_override(window=window):
        bpy.ops.hiptah.monitor("INVOKE_DEFAULT")  # type: ignore[attr-defined]
    return _MonitorState.alive()


def resume(context: Any = None) -> None:
    """Bring back the runtime for the job history and watch active jobs."""
    if runtime.resume_if_needed(context):
        ensure_monitor(context)


@persistent
def on_load_post(*_args: Any) -> None:
    # Loading a file replaces the window manager (empty job mirror) and ends modal operators.
    resume()


def _deferred_resume() -> None:
    # Runs once, from the event loop, shortly after the add-on is enabled (a window exists).
    resume()


def register_handlers() -> None:
    bpy.app.handlers.load_post.append(on_load_post)
    if not bpy.app.background:
        bpy.app.timers.register(_deferred_resume, first_interval=0.5)


def unregister_handlers() -> None:
    stop_timer()
    if on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(on_load_post)
    if bpy.app.timers.is_registered(_deferred_resume):
        bpy.app.timers.unregister(_deferred_resume)


CLASSES: tuple[type, ...] = (HIPTAH_OT_monitor,)
