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


# The finished states' line in a job's details (one msgid each: "Imported after 12 s").
STATE_AFTER: dict[JobState, str] = {
    JobState.DOWNLOADED: N_("Downloaded after {after}"),
    JobState.IMPORTED: N_("Imported after {after}"),
    JobState.FAILED: N_("Failed after {after}"),
    JobState.CANCELLED: N_("Cancelled after {after}"),
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


def status_text(record: JobRecord, now: float, max_concurrent: int) -> str:
    """Short state for a row: what is happening and how long it takes (English; the
    panel shows it through ``iface``: one template per state, so it can be translated)."""
    state = record.state
    if state is JobState.WAITING:
        return N_(f"waiting (plan allows {max_concurrent} at once)")
    if state is JobState.SUBMITTING:
        return N_("sending")
    if state in (JobState.QUEUED, JobState.PROCESSING):
        done = f"{record.progress:.0f}%" if record.progress is not None else duration(record.elapsed(now))
        text = N_(f"queued {done}") if state is JobState.QUEUED else N_(f"processing {done}")
        left = record.remaining(now)
        if left is not None:  # "{text}" is itself translated (catalog._NESTED)
            text = N_(f"{text}, ~{duration(left)} left") if left > 0 else N_(f"{text}, any moment")
        return text
    if state is JobState.DOWNLOADING:
        return N_("downloading")
    if state is JobState.DOWNLOADED:
        return N_(f"ready ({duration(record.elapsed(now))})")
    if state is JobState.IMPORTED:
        return N_(f"imported ({duration(record.elapsed(now))})")
    if state is JobState.FAILED:
        return record.error.message if record.error else N_("failed")
    return N_("cancelled")


def row_text(rt: Any, record: JobRecord) -> str:
    """The text of a job's row in the list (the progress bar's or the label's)."""
    if record.state.is_active and rt.online.reason is not None:
        return N_(f"paused: {rt.online.reason.message}")
    lost = rt.unreachable.get(record.local_id)
    if record.state.is_active and lost is not None:
        return N_(f"retrying: {lost.message}")
    import_error = rt.import_errors.get(record.local_id)
    if import_error is not None and not record.state.is_active:
        return str(import_error.message)
    return status_text(record, time.time(), rt.settings.max_concurrent)


def connection_problem(rt: Any) -> Any:
    """The error of a job retrying through an unreachable server (the status line's), or None."""
    return next(iter(rt.unreachable.values()), None) if rt is not None else None


def _wrap(layout: Any, context: Any, text: str, *, icon: str = "NONE", boxes: int = 0, translate: bool = True) -> None:
    # Wrapped to the region's real width with the UI font: a label never ends in "…";
    # shown in the interface's language (translate=False for the user's own words).
    ui_text.wrap_label(layout, context, text, icon=icon, boxes=boxes, translate=translate)


def _row_actions(layout: Any, record: JobRecord, *, emboss: bool = False) -> None:
    state = record.state
    if state.is_active:
        layout.operator("hiptah.cancel_job", text="", icon="X", emboss=emboss).local_id = record.local_id
    if state in (JobState.FAILED, JobState.CANCELLED):
        layout.operator("hiptah.retry_job", text="", icon="FILE_REFRESH", emboss=emboss).local_id = record.local_id
    if state in (JobState.DOWNLOADED, JobState.IMPORTED):
        layout.operator("hiptah.import_job", text="", icon="IMPORT", emboss=emboss).local_id = record.local_id
    if state.is_finished:
        layout.operator("hiptah.remove_job", text="", icon="TRASH", emboss=emboss).local_id = record.local_id


class HIPTAH_UL_jobs(bpy.types.UIList):
    """The job list, newest first (the runtime keeps the mirror in that order)."""

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
        if record is None:
            layout.label(text=item.label, icon="QUESTION", translate=False)  # the prompt
            return
        now = time.time()
        max_concurrent = rt.settings.max_concurrent if rt is not None else 10
        split = layout.split(factor=0.45, align=True)
        split.label(text=record.label(40), icon=STATE_ICONS[record.state], translate=False)  # the prompt
        right = split.row(align=True)
        status = status_text(record, now, max_concurrent)
        fraction = record.estimated_fraction(now)
        import_error = rt.import_errors.get(record.local_id) if rt is not None else None
        held = rt.online.reason if rt is not None and record.state.is_active else None
        lost = rt.unreachable.get(record.local_id) if rt is not None else None
        if held is not None or lost is not None:  # offline / server unreachable: the job waits
            sub = right.row(align=True)
            sub.alert = True
            sub.progress(factor=fraction or 0.0, type="BAR", text=iface(row_text(rt, record)))
        elif record.state.is_active:
            right.progress(factor=fraction or 0.0, type="BAR", text=iface(status))
        elif record.state is JobState.FAILED or import_error is not None:
            sub = right.row(align=True)
            sub.alert = True
            sub.label(text=iface(import_error.message if import_error is not None else status), translate=False)
        else:
            right.label(text=iface(status), translate=False)
        _row_actions(right, record)


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

        row = layout.row(align=True)
        row.prop(ui, "format", text="")
        row.prop(ui, "quality", text="")
        row = layout.row(align=True)  # size and facing (issue 16; the layout may move)
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
        row = box.row()
        row.alert = True  # a badge that stands out: results come from a test server
        row.label(text=fmt(N_("Sandbox: {url}"), url=settings.base_url), icon="EXPERIMENTAL", translate=False)
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
        box.operator("screen.userpref_show", text="Open System Preferences", icon="PREFERENCES").section = "SYSTEM"
    elif problem is not None:
        col = box.column()
        col.alert = True
        _wrap(col, context, problem.message, icon="ERROR", boxes=1)
        op = box.operator("preferences.addon_show", text="Open Add-on Preferences", icon="PREFERENCES")
        op.module = ADDON_ID
    elif refusal is not None:
        # The server refused the key or the plan: every job would fail the same way.
        col = box.column()
        col.alert = True
        _wrap(col, context, refusal.error.message, icon="ERROR", boxes=1)
        if refusal.error.hint:
            _wrap(box, context, refusal.error.hint, icon="INFO", boxes=1)
        op = box.operator("preferences.addon_show", text="Open Add-on Preferences", icon="PREFERENCES")
        op.module = ADDON_ID
    elif rt is not None and (lost := connection_problem(rt)) is not None:
        # Jobs under way cannot reach the server: they are kept and go on when it answers.
        col = box.column()
        col.alert = True
        _wrap(col, context, lost.message, icon="ERROR", boxes=1)
        count = len(rt.unreachable)
        text = N_("1 job retrying: it goes on when HiPtah answers again.") if count == 1 else \
            fmt(N_("{count} jobs retrying: they go on when HiPtah answers again."), count=count)
        _wrap(box, context, text, icon="INFO", boxes=1)
    else:
        counts = rt.counts() if rt is not None else {}
        running = sum(n for state, n in counts.items() if state.is_active and state is not JobState.WAITING)
        waiting = counts.get(JobState.WAITING, 0)
        if running or waiting:
            if waiting:
                text = fmt(N_("{running} running, {waiting} waiting (plan limit {limit})"),
                           running=running, waiting=waiting, limit=settings.max_concurrent)
            else:
                text = fmt(N_("{running} running (plan limit {limit})"), running=running, limit=settings.max_concurrent)
            box.label(text=text, icon="TIME", translate=False)
        else:
            box.label(text="Ready", icon="CHECKMARK")


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
            layout.label(text="No jobs yet: generated models appear here.", icon="INFO")
            return
        layout.template_list("HIPTAH_UL_jobs", "", wm, "hiptah_jobs", wm, "hiptah_jobs_index", rows=3)
        index = wm.hiptah_jobs_index
        record = rt.snapshots.get(items[index].local_id) if 0 <= index < len(items) else None
        if record is not None:
            draw_job_details(layout.box(), context, rt, record)
        row = layout.row()
        row.operator("hiptah.clear_finished", text="Clear Finished", icon="TRASH")
        row.operator("hiptah.open_folder", text="", icon="FILE_FOLDER")


def draw_job_details(box: Any, context: Any, rt: Any, record: JobRecord) -> None:
    now = time.time()
    _wrap(box, context, record.label(1000), icon=STATE_ICONS[record.state], boxes=1, translate=False)
    icon = previews.icon_for(record) if record.state is JobState.IMPORTED else 0
    if icon:
        box.template_icon(icon_value=icon, scale=5.0)
    quality = record.quality
    if record.job_id:
        box.label(text=fmt(N_("{format}, {quality}, job {job_id}"), format=record.format.upper(), quality=quality,
                           job_id=record.job_id), translate=False)
    else:
        box.label(text=fmt(N_("{format}, {quality}"), format=record.format.upper(), quality=quality), translate=False)
    if record.state.is_active:
        fraction = record.estimated_fraction(now)
        box.progress(factor=fraction or 0.0, type="BAR", text=iface(status_text(record, now, rt.settings.max_concurrent)))
    else:
        after = STATE_AFTER.get(record.state, N_("Finished after {after}"))
        box.label(text=fmt(after, after=duration(record.elapsed(now))), translate=False)
    problem = rt.import_errors.get(record.local_id) or (record.error if record.state is JobState.FAILED else None)
    if problem is None and record.state.is_active:
        problem = rt.online.reason or rt.unreachable.get(record.local_id)  # offline / unreachable
    if problem is not None:
        col = box.column(align=True)
        col.alert = True
        _wrap(col, context, problem.message, icon="ERROR", boxes=1)
        if problem.hint:
            _wrap(box, context, problem.hint, icon="INFO", boxes=1)
    row = box.row(align=True)
    _row_actions(row, record, emboss=True)


CLASSES: tuple[type, ...] = (HIPTAH_UL_jobs, VIEW3D_PT_hiptah, VIEW3D_PT_hiptah_jobs)
