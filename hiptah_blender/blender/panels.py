"""View3D > Sidebar > HiPtah: status, prompt, Generate, and the job list.

draw() runs on every redraw, so it only reads properties, plain-Python snapshots
from the runtime and ``time.time()``: no pydantic, no I/O, no scheduler calls.
"""

from __future__ import annotations

import time
from typing import Any

import bpy

from ..client import errors, validation
from ..i18n import N_
from ..jobs.records import JobRecord, JobState
from . import account, image_input, previews, runtime, ui_text
from .i18n import fmt, iface
from .operators import panel_problem
from .properties import job_items, scene_settings
from .settings import ADDON_ID, read_settings

STATE_ICONS: dict[JobState, str] = {
    JobState.WAITING: "SORTTIME",
    JobState.SUBMITTING: "EXPORT",
    JobState.QUEUED: "TIME",
    JobState.PROCESSING: "MOD_REMESH",
    JobState.DOWNLOADING: "IMPORT",
    JobState.DOWNLOADED: "FILE_3D",
    JobState.IMPORTED: "CHECKMARK",
    JobState.FAILED: "ERROR",
    JobState.CANCELLED: "CANCEL",
}


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def state_words(record: JobRecord, now: float, max_concurrent: int) -> tuple[str, str]:
    """A job's state in two parts: what it is doing ("processing 40%", short enough for a
    progress bar at any sidebar width) and the rest ("~12 s left"; may be ""). A finished
    job's state is one sentence ("Imported after 41 s"), in the first part. English, one
    template per state: the panel shows each part through ``iface``."""
    state = record.state
    took = duration(record.elapsed(now))
    if state is JobState.WAITING:
        return N_("waiting"), N_(f"plan allows {max_concurrent} at once")
    if state is JobState.SUBMITTING:
        return N_("sending"), ""
    if state in (JobState.QUEUED, JobState.PROCESSING):
        done = f"{record.progress:.0f}%" if record.progress is not None else took
        head = N_(f"queued {done}") if state is JobState.QUEUED else N_(f"processing {done}")
        left = record.remaining(now)
        if left is None:
            return head, ""
        return head, (N_(f"~{duration(left)} left") if left > 0 else N_("any moment"))
    if state is JobState.DOWNLOADING:
        return N_("downloading"), ""
    after = took  # the name the catalogue's "... after {after}" entries use
    if state is JobState.DOWNLOADED:
        return N_(f"Ready after {after}"), ""
    if state is JobState.IMPORTED:
        return N_(f"Imported after {after}"), ""
    if state is JobState.FAILED:
        return N_(f"Failed after {after}"), ""
    return N_("Cancelled"), ""


def status_text(record: JobRecord, now: float, max_concurrent: int) -> str:
    """A job's state in one line: "processing 40%, ~12 s left", "imported (41 s)", or a
    failed job's error message (English; shown through ``iface``)."""
    state = record.state
    if state is JobState.FAILED:
        return record.error.message if record.error else N_("failed")
    if state is JobState.DOWNLOADED:
        return N_(f"ready ({duration(record.elapsed(now))})")
    if state is JobState.IMPORTED:
        return N_(f"imported ({duration(record.elapsed(now))})")
    if state is JobState.CANCELLED:
        return N_("cancelled")
    if state is JobState.WAITING:
        return N_(f"waiting (plan allows {max_concurrent} at once)")
    text, _ = state_words(record, now, max_concurrent)
    left = record.remaining(now) if state in (JobState.QUEUED, JobState.PROCESSING) else None
    if left is not None:  # "{text}" is itself translated (catalog._NESTED)
        text = N_(f"{text}, ~{duration(left)} left") if left > 0 else N_(f"{text}, any moment")
    return text


def row_text(rt: Any, record: JobRecord) -> str:
    """A job's state in one line as the panel sees it: paused or retrying while the server
    cannot be reached, a failed import's message, else status_text()."""
    if record.state.is_active and rt.online.reason is not None:
        return N_(f"paused: {rt.online.reason.message}")
    lost = rt.unreachable.get(record.local_id)
    if record.state.is_active and lost is not None:
        return N_(f"retrying: {lost.message}")
    import_error = rt.import_errors.get(record.local_id)
    if import_error is not None and not record.state.is_active:
        return str(import_error.message)
    return status_text(record, time.time(), rt.settings.max_concurrent)


def job_problem(rt: Any, record: JobRecord) -> Any:
    """The error that concerns a job now (ErrorInfo), or None: a failed import, the job's
    own failure, or why an active job is held (online access off, server unreachable)."""
    problem = rt.import_errors.get(record.local_id)
    if problem is None and record.state is JobState.FAILED:
        problem = record.error
    if problem is None and record.state.is_active:
        problem = rt.online.reason or rt.unreachable.get(record.local_id)
    return problem


def connection_problem(rt: Any) -> Any:
    """The error of a job retrying through an unreachable server (the status line's), or None."""
    return next(iter(rt.unreachable.values()), None) if rt is not None else None


def status_error(settings: Any, rt: Any) -> tuple[str, str] | None:
    """(kind, message) of the error the status line shows, or None: the detail box then
    points up instead of repeating it."""
    problem = settings.configuration_error()
    if problem is not None:
        return type(problem).__name__, str(problem.message)
    refusal = account.current(settings)
    if refusal is not None:
        return refusal.error.kind, refusal.error.message
    lost = connection_problem(rt)
    return (lost.kind, lost.message) if lost is not None else None


def row_icon(rt: Any, record: JobRecord) -> str:
    if record.state.is_active and rt.online.reason is not None:
        return "PAUSE"
    if record.state.is_active and record.local_id in rt.unreachable:
        return "FILE_REFRESH"
    if record.local_id in rt.import_errors and not record.state.is_active:
        return "ERROR"
    return STATE_ICONS[record.state]


def _wrap(layout: Any, context: Any, text: str, *, icon: str = "NONE", boxes: int = 0, translate: bool = True) -> None:
    # Wrapped to the region's real width with the UI font: a label never ends in "…";
    # shown in the interface's language (translate=False for the user's own words).
    ui_text.wrap_label(layout, context, text, icon=icon, boxes=boxes, translate=translate)


def _row_actions(layout: Any, record: JobRecord, *, emboss: bool = False, remove: bool = True) -> None:
    state = record.state
    if state.is_active:
        layout.operator("hiptah.cancel_job", text="", icon="X", emboss=emboss).local_id = record.local_id
    if state in (JobState.FAILED, JobState.CANCELLED):
        layout.operator("hiptah.retry_job", text="", icon="FILE_REFRESH", emboss=emboss).local_id = record.local_id
    if state in (JobState.DOWNLOADED, JobState.IMPORTED):
        layout.operator("hiptah.import_job", text="", icon="IMPORT", emboss=emboss).local_id = record.local_id
    if state.is_finished and remove:
        layout.operator("hiptah.remove_job", text="", icon="TRASH", emboss=emboss).local_id = record.local_id


class HIPTAH_UL_jobs(bpy.types.UIList):
    """The job list, newest first (the runtime keeps the mirror in that order).

    A row is the job's state at a glance and what tells jobs apart: the state's icon, the
    prompt over all the width left (red when something is wrong), the percentage done
    while it runs, and the row's buttons. Words (state, time, error, hint) are in the
    detail box."""

    bl_idname = "HIPTAH_UL_jobs"

    def draw_item(
        self,
        context: Any,
        layout: Any,
        data: Any,
        item: Any,
        icon: int | None,
        active_data: Any,
        active_property: str | None,
        index: int | None = 0,
        flt_flag: int | None = 0,
    ) -> None:
        rt = runtime.peek()
        record = rt.snapshots.get(item.local_id) if rt is not None else None
        if rt is None or record is None:
            layout.label(text=item.label, icon="QUESTION", translate=False)  # the prompt
            return
        row = layout.row(align=True)
        sub = row.row(align=True)
        held = record.state.is_active and (rt.online.reason is not None or record.local_id in rt.unreachable)
        sub.alert = held or job_problem(rt, record) is not None
        # The prompt, as typed; Blender clips it, the box has it all.
        sub.label(text=record.label(200), icon=row_icon(rt, record), translate=False)
        fraction = record.estimated_fraction(time.time()) if record.state.is_active and not held else None
        if fraction is not None:
            tag = row.row(align=True)
            tag.alignment = "RIGHT"
            tag.ui_units_x = 2.0  # "100%" fits; the prompt keeps the rest of the row
            tag.label(text=f"{fraction * 100:.0f}%", translate=False)
        # A narrow sidebar keeps the prompt readable: Remove stays in the detail box only.
        _row_actions(row, record, remove=not ui_text.narrow(context))


class VIEW3D_PT_hiptah(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "HiPtah"
    bl_label = "HiPtah"
    bl_idname = "VIEW3D_PT_hiptah"

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        settings = read_settings(context)
        ui = scene_settings(context.scene)
        draw_status(layout, context, settings)

        row = layout.row(align=True)
        row.prop(ui, "source", expand=True)
        image_mode = ui.source == "IMAGE"
        if image_mode:
            draw_image_input(layout, ui)

        col = layout.column(align=True)
        col.prop(
            ui,
            "prompt",
            text="",
            icon="OUTLINER_OB_FONT",
            placeholder="Optional prompt (tints the model)" if image_mode else "Describe the model",
        )
        prompt = ui.prompt.strip()
        row = col.row()
        row.alignment = "RIGHT"
        row.alert = len(prompt) > validation.MAX_PROMPT_CHARS
        row.label(text=f"{len(prompt)} / {validation.MAX_PROMPT_CHARS}", translate=False)

        names = [bpy.types.UILayout.enum_item_name(ui, name, getattr(ui, name)) for name in ("format", "quality")]
        # Side by side when both names fit ("GLB (default)"), else one a line: never "GLB (de…".
        row = layout.row(align=True) if ui_text.side_by_side(context, names) else layout.column(align=True)
        row.prop(ui, "format", text="")
        row.prop(ui, "quality", text="")
        # Size (and the height when scaled to one) and facing: the same rule, never "As Gen…".
        names = [bpy.types.UILayout.enum_item_name(ui, name, getattr(ui, name)) for name in ("size", "facing")]
        if ui.size == "HEIGHT":
            names.insert(1, f"{ui.target_height:.2f} m")  # about what the field shows
        row = layout.row(align=True) if ui_text.side_by_side(context, names) else layout.column(align=True)
        row.prop(ui, "size", text="")
        if ui.size == "HEIGHT":
            row.prop(ui, "target_height", text="")
        row.prop(ui, "facing", text="")

        col = layout.column()
        col.context_pointer_set("hiptah_settings", ui)
        row = col.row()
        row.scale_y = 1.4
        row.operator("hiptah.generate", text="Generate", icon="MESH_MONKEY")
        problem = panel_problem(context, ui)
        if problem and settings.configuration_error() is None:
            sub = col.column(align=True)
            # A chosen image that cannot be sent is an error; "nothing chosen yet" is a hint.
            sub.alert = image_mode and problem != image_input.NOTHING_CHOSEN and any(image_input.selection(ui))
            _wrap(sub, context, problem, icon="ERROR" if sub.alert else "INFO")
        layout.operator("hiptah.batch_generate", text="Generate from List…", icon="TEXT")


def draw_image_input(layout: Any, ui: Any) -> None:
    """Image mode: a file (path field + filtered browser) or an image loaded in Blender."""
    box = layout.box()
    col = box.column(align=True)
    col.label(text="Image file:")
    row = col.row(align=True)
    row.prop(ui, "image_file", text="", placeholder="PNG, JPEG or WebP, up to 10 MB")
    row.operator("hiptah.pick_image", text="", icon="FILE_IMAGE")
    path, image = image_input.selection(ui)
    if path is not None:
        info = image_input.file_info(path)
        if info.problem is None and info.kind is not None:
            col.label(text=fmt(N_("{kind} image, {size}"), kind=info.kind.upper(), size=_size(info.size)),
                      icon="CHECKMARK", translate=False)
    col = box.column(align=True)
    col.label(text="or an image in Blender:")
    col.template_ID(ui, "image", open="image.open")
    if image is not None and image_input.datablock_problem(image) is None:
        col.label(text=iface(image_input.describe_datablock(image)), icon="CHECKMARK", translate=False)


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{max(1, round(size / 1000))} KB"


def draw_status(layout: Any, context: Any, settings: Any) -> None:
    """One line saying whether generation can run, and the button that fixes it when not."""
    box = layout.box()
    problem = settings.configuration_error()
    if settings.is_sandbox and not settings.base_url_error:
        col = box.column()
        col.alert = True  # a badge that stands out: results come from a test server
        _wrap(col, context, fmt(N_("Sandbox: {url}"), url=settings.base_url), icon="EXPERIMENTAL", boxes=1,
              translate=False)
    rt = runtime.peek()
    refusal = account.current(settings) if problem is None else None
    if isinstance(problem, errors.OnlineAccessDisabledError):
        col = box.column()
        col.alert = True
        col.label(text="Online access is off", icon="INTERNET_OFFLINE")
        _wrap(col, context, problem.message, boxes=1)
        _wrap(box, context, problem.hint, icon="INFO", boxes=1)
        held = sum(1 for job in rt.snapshots.values() if job.state.is_active) if rt is not None else 0
        if held:
            text = N_("1 job paused: it goes on when it is back on.") if held == 1 else \
                fmt(N_("{count} jobs paused: they go on when it is back on."), count=held)
            _wrap(box, context, text, boxes=1)
        text = N_("Open System Preferences")
        if not ui_text.fits(context, text, boxes=1):  # measured in the interface's language
            text = "Preferences"  # a narrow sidebar: the short name, never "Open System Pref…"
        box.operator("screen.userpref_show", text=text, icon="PREFERENCES").section = "SYSTEM"
    elif problem is not None:
        col = box.column()
        col.alert = True
        _wrap(col, context, problem.message, icon="ERROR", boxes=1)
        _addon_prefs_button(box, context)
    elif refusal is not None:
        # The server refused the key or the plan: every job would fail the same way.
        col = box.column()
        col.alert = True
        _wrap(col, context, refusal.error.message, icon="ERROR", boxes=1)
        if refusal.error.hint:
            _wrap(box, context, refusal.error.hint, icon="INFO", boxes=1)
        _addon_prefs_button(box, context)
    elif rt is not None and (lost := connection_problem(rt)) is not None:
        # Jobs under way cannot reach the server: they are kept and go on when it answers.
        col = box.column()
        col.alert = True
        _wrap(col, context, lost.message, icon="ERROR", boxes=1)
        if lost.hint:
            _wrap(box, context, lost.hint, icon="INFO", boxes=1)
        count = len(rt.unreachable)
        text = N_("1 job retrying: it goes on when HiPtah answers again.") if count == 1 else \
            fmt(N_("{count} jobs retrying: they go on when HiPtah answers again."), count=count)
        _wrap(box, context, text, icon="TIME", boxes=1)
    else:
        counts = rt.counts() if rt is not None else {}
        running = sum(n for state, n in counts.items() if state.is_active and state is not JobState.WAITING)
        waiting = counts.get(JobState.WAITING, 0)
        if running or waiting:
            limit = settings.max_concurrent
            if waiting:
                text = fmt(N_("{running} running, {waiting} waiting (plan limit {limit})"),
                           running=running, waiting=waiting, limit=limit)
            else:
                text = fmt(N_("{running} running (plan limit {limit})"), running=running, limit=limit)
            _wrap(box, context, text, icon="TIME", boxes=1, translate=False)
        else:
            box.label(text="Ready", icon="CHECKMARK")


def _addon_prefs_button(layout: Any, context: Any) -> None:
    text = N_("Open Add-on Preferences")
    if not ui_text.fits(context, text, boxes=1):
        text = "Preferences"  # a narrow sidebar: the short name, never "Open Add-on Prefe…"
    layout.operator("preferences.addon_show", text=text, icon="PREFERENCES").module = ADDON_ID


class VIEW3D_PT_hiptah_jobs(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "HiPtah"
    bl_label = "Jobs"
    bl_idname = "VIEW3D_PT_hiptah_jobs"
    bl_parent_id = "VIEW3D_PT_hiptah"

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        wm = context.window_manager
        items = job_items(wm)
        rt = runtime.peek()
        if rt is None or len(items) == 0:
            _wrap(layout, context, N_("No jobs yet: generated models appear here."), icon="INFO")
            return
        layout.template_list("HIPTAH_UL_jobs", "", wm, "hiptah_jobs", wm, "hiptah_jobs_index", rows=3)
        index = wm.hiptah_jobs_index
        record = rt.snapshots.get(items[index].local_id) if 0 <= index < len(items) else None
        if record is not None:
            draw_job_details(layout.box(), context, rt, record, status_error(read_settings(context), rt))
        row = layout.row()
        row.operator("hiptah.clear_finished", text="Clear Finished", icon="TRASH")
        row.operator("hiptah.open_folder", text="", icon="FILE_FOLDER")


def draw_job_details(box: Any, context: Any, rt: Any, record: JobRecord, shown_above: tuple[str, str] | None) -> None:
    """The selected job: its whole prompt, thumbnail, state and progress, format, the error
    and hint (once: when the status line shows that same error, a pointer to it), buttons."""
    now = time.time()
    _wrap(box.column(), context, record.label(1000), icon=row_icon(rt, record), boxes=1, translate=False)
    icon = previews.icon_for(record) if record.state is JobState.IMPORTED else 0
    if icon:
        box.template_icon(icon_value=icon, scale=5.0)
    col = box.column(align=True)  # state, progress and format read as one paragraph
    head, rest = state_words(record, now, rt.settings.max_concurrent)
    if record.state.is_active:
        col.progress(factor=record.estimated_fraction(now) or 0.0, type="BAR", text=iface(head))
    else:
        _wrap(col, context, head, boxes=1)
    if rest:
        _wrap(col, context, rest, boxes=1)
    if record.job_id:
        meta = fmt(N_("{format}, {quality}, job {job_id}"), format=record.format.upper(), quality=record.quality,
                   job_id=record.job_id)
    else:
        meta = fmt(N_("{format}, {quality}"), format=record.format.upper(), quality=record.quality)
    _wrap(col, context, meta, boxes=1, translate=False)
    problem = job_problem(rt, record)
    if problem is not None and (problem.kind, problem.message) == shown_above:
        _wrap(box.column(), context, N_("Cause: the message at the top of the panel."), icon="INFO", boxes=1)
    elif problem is not None:
        col = box.column()
        col.alert = True
        _wrap(col, context, problem.message, icon="ERROR", boxes=1)
        if problem.hint:
            _wrap(box.column(), context, problem.hint, icon="INFO", boxes=1)
    row = box.row(align=True)
    _row_actions(row, record, emboss=True)


CLASSES: tuple[type, ...] = (HIPTAH_UL_jobs, VIEW3D_PT_hiptah, VIEW3D_PT_hiptah_jobs)
