"""Operators (all ``hiptah.*``, reachable from F3 through the Add > HiPtah menu).

Thin: each validates its arguments, calls the runtime and turns HiptahError into
an ERROR report with the cause and what to do (``user_text()``). Every report is
also kept in ``runtime.REPORTS`` so scripts and tests can read what the user saw.
"""
# mypy: disable-error-code="valid-type"

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from ..client import errors, validation
from ..jobs.records import JobState
from . import image_input, monitor, runtime
from .i18n import iface, rpt
from .preferences import FACING_ITEMS, FORMAT_ITEMS, QUALITY_ITEMS, SIZE_ITEMS
from .properties import DEFAULT_ITEM, effective_size, job_items, scene_settings
from .settings import ADDON_ID, read_settings, user_dir

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Result = set[OperatorReturnItems]


def report(op: Any, level: str, text: str) -> None:
    # REPORTS keeps the English (what scripts and tests read); the user reads it translated.
    op.report({level}, rpt(runtime.add_report(level, text)))


def report_library_warning(op: Any, rt: Any, local_id: str) -> None:
    """The job's asset-library warning, if any ("{problem}" is translated in turn)."""
    problem = rt.library_warnings.get(local_id)
    if problem:
        report(op, "WARNING", f"HiPtah: {problem}")


def report_error(op: Any, exc: errors.HiptahError) -> Result:
    report(op, "ERROR", exc.user_text())
    return {"CANCELLED"}



def effective_choice(context: Any, fmt: str, quality: str) -> tuple[str, str]:
    """Format and quality a job gets: the operator's own choice, else the panel's,
    else the preferences' defaults ("default" at each level defers to the next)."""
    ui = scene_settings(context.scene)
    settings = read_settings(context)
    fmt = fmt if fmt != "default" else ui.format
    quality = quality if quality != "default" else ui.quality
    return (
        settings.default_format if fmt == "default" else fmt,
        settings.default_quality if quality == "default" else quality,
    )

class _JobOperator:
    """Shared by the row actions: ``local_id`` names the job; empty means the job
    selected in the panel's list (so F3 can run them too)."""

    local_id: StringProperty(name="Job", description="Local id of the job; empty for the selected job")

    def resolve(self, context: Any) -> str | None:
        if self.local_id:
            return str(self.local_id)
        wm = context.window_manager
        items = job_items(wm)
        index = wm.hiptah_jobs_index
        return str(items[index].local_id) if 0 <= index < len(items) else None

    def runtime_and_id(self, context: Any) -> tuple[runtime.Runtime, str] | None:
        local_id = self.resolve(context)
        rt = runtime.peek() if local_id else None
        if rt is None or local_id is None or rt.get(local_id) is None:
            report(self, "ERROR", "No such HiPtah job; select one in the HiPtah panel's job list.")
            return None
        return rt, local_id


class HIPTAH_OT_generate(bpy.types.Operator):
    """Generate a 3D model from the prompt with HiPtah and import it when it is ready"""

    bl_idname = "hiptah.generate"
    bl_label = "Generate 3D Model"
    bl_options = {"REGISTER", "UNDO"}

    prompt: StringProperty(
        name="Prompt",
        description="What to generate; empty uses the prompt in the HiPtah panel",
        default="",
        options={"SKIP_SAVE"},  # never reuse a script's last prompt for the panel's button
    )
    format: EnumProperty(
        name="Format", items=[DEFAULT_ITEM, *FORMAT_ITEMS], default="default", options={"SKIP_SAVE"}
    )
    quality: EnumProperty(
        name="Quality", items=[DEFAULT_ITEM, *QUALITY_ITEMS], default="default", options={"SKIP_SAVE"}
    )
    wait: BoolProperty(
        name="Wait",
        description="Block until the model is ready and imported (the default in background mode); "
        "otherwise queue the job and return at once",
        default=False,
        options={"SKIP_SAVE"},
    )
    import_result: BoolProperty(
        name="Import Result",
        description="Import the model when it is ready (default: the preference 'Import When Done')",
        default=True,
        options={"SKIP_SAVE"},
    )
    image_path: StringProperty(
        name="Image",
        description="Optional PNG, JPEG or WebP image for image-to-3D (the prompt may then be empty)",
        default="",
        subtype="FILE_PATH",
        options={"SKIP_SAVE"},
    )
    image_name: StringProperty(
        name="Blender Image",
        description="Name of an image in this file for image-to-3D (packed, generated or edited ones "
        "are sent as PNG)",
        default="",
        options={"SKIP_SAVE"},
        search=lambda self, context, text: [i.name for i in bpy.data.images if text.lower() in i.name.lower()],
    )
    size: EnumProperty(name="Size", items=[DEFAULT_ITEM, *SIZE_ITEMS], default="default", options={"SKIP_SAVE"})
    target_height: FloatProperty(
        name="Height", description="Height in metres for Size 'Height' (0: the panel's or the preferences')",
        default=0.0, min=0.0, subtype="DISTANCE", unit="LENGTH", options={"SKIP_SAVE"},
    )
    facing: EnumProperty(name="Facing", items=[DEFAULT_ITEM, *FACING_ITEMS], default="default", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context: Any) -> bool:
        # Only the panel's button is greyed out (it sets "hiptah_settings"); scripts and
        # F3 always get to execute() and receive a report saying what is wrong.
        panel_settings = getattr(context, "hiptah_settings", None)
        if panel_settings is None:
            return True
        problem = panel_problem(context, panel_settings)
        if problem:
            cls.poll_message_set(iface(problem))
            return False
        return True

    def invoke(self, context: Any, event: Any) -> Result:
        ui = scene_settings(context.scene)
        panel_has_input = ui.prompt.strip() or (ui.source == "IMAGE" and any(image_input.selection(ui)))
        if not (self.prompt or self.image_path or self.image_name or panel_has_input):
            return context.window_manager.invoke_props_dialog(self, width=480)  # type: ignore[no-any-return]
        return self.execute(context)

    def _image(self, context: Any) -> tuple[str, image_input.PreparedImage | None]:
        """The prompt and the image to send: the operator's own arguments first, else the
        panel's (its image only in Image mode). A datablock becomes a file here."""
        ui = scene_settings(context.scene)
        if self.image_path and self.image_name:
            raise errors.InvalidImageError(
                "Give either image_path or image_name, not both.", hint="image_name names an image in bpy.data.images."
            )
        if self.image_path:
            return self.prompt, image_input.prepare_file(bpy.path.abspath(self.image_path))
        if self.image_name:
            image = bpy.data.images.get(self.image_name)
            if image is None:
                raise errors.InvalidImageError(
                    f"There is no image named {self.image_name!r} in this file.",
                    hint="Use a name from bpy.data.images (the name shown in the Image Editor).",
                )
            return self.prompt, image_input.prepare_datablock(image, user_dir("tmp"))
        if self.prompt or ui.source != "IMAGE":
            return self.prompt or ui.prompt, None
        path, image = image_input.selection(ui)
        if image is not None:
            return ui.prompt, image_input.prepare_datablock(image, user_dir("tmp"))
        if path is not None:
            return ui.prompt, image_input.prepare_file(path)
        raise errors.InvalidImageError(image_input.NOTHING_CHOSEN, hint="Pick one in the HiPtah panel (Image).")

    def _resolved(self, context: Any) -> tuple[str, str]:
        return effective_choice(context, self.format, self.quality)

    def execute(self, context: Any) -> Result:
        fmt, quality = self._resolved(context)
        wait = self.wait if self.properties.is_property_set("wait") else bpy.app.background
        if self.properties.is_property_set("import_result"):
            auto_import = self.import_result
        else:
            auto_import = read_settings(context).auto_import
        image: image_input.PreparedImage | None = None
        try:
            rt = runtime.get(context)
            rt.refresh_settings(context).check()  # no key / bad URL: say so before saving any image
            prompt, image = self._image(context)
            record = rt.submit(
                context,
                prompt,
                fmt=fmt,
                quality=quality,
                image_path=image.path if image else None,
                image_name=image.name if image else None,
                temp_image=bool(image and image.temp),
                auto_import=auto_import,
                size=effective_size(context, rt.settings, self.size, self.target_height, self.facing),
            )
        except errors.HiptahError as exc:
            if image is not None:
                image.discard()  # refused before anything was sent: no job will delete it
            return report_error(self, exc)
        if not wait:
            monitor.ensure_monitor(context)
            report(self, "INFO", f"HiPtah: queued “{record.label(40)}” ({fmt}, {quality}).")
            return {"FINISHED"}
        record = rt.wait_for(record.local_id, context=context)
        for level, text in rt.take_notices(exclude=record.local_id):  # other jobs that moved meanwhile
            self.report({level}, rpt(text))  # type: ignore[arg-type]
        return self._finish_blocking(rt, record)

    def _finish_blocking(self, rt: runtime.Runtime, record: Any) -> Result:
        label = record.label(40)
        if record.state is JobState.IMPORTED:
            names = ", ".join(str(n) for n in record.meta.get("imported_objects", []))
            if names:
                report(self, "INFO", f"HiPtah: imported “{label}” as {names}.")
            else:
                report(self, "INFO", f"HiPtah: imported “{label}”.")
            report_library_warning(self, rt, record.local_id)
            return {"FINISHED"}
        if record.state is JobState.DOWNLOADED:
            problem = rt.import_errors.get(record.local_id)
            if problem is not None:
                report(self, "ERROR", f"HiPtah: “{label}”: {problem.user_text()}")
                return {"CANCELLED"}
            report(self, "INFO", f"HiPtah: “{label}” downloaded to {record.file_path}.")
            return {"FINISHED"}
        if record.state is JobState.FAILED and record.error is not None:
            report(self, "ERROR", f"HiPtah: “{label}” failed: {record.error.user_text()}")
        elif record.state is JobState.CANCELLED:
            report(self, "ERROR", f"HiPtah: “{label}” was cancelled.")
        elif (unreachable := rt.unreachable_error(record)) is not None:
            report(
                self,
                "ERROR",
                f"HiPtah: “{label}” could not be sent: {unreachable.user_text()} The job is kept "
                "with its idempotency key and is sent (once, never charged twice) when HiPtah "
                "answers again; the HiPtah panel shows it.",
            )
        else:
            report(
                self,
                "ERROR",
                f"HiPtah: “{label}” is still {record.state.value} after waiting; it continues in the "
                "background and can be imported from the HiPtah panel.",
            )
        return {"CANCELLED"}


def generate_problem(context: Any, prompt: str, image_path: str = "") -> str | None:
    """Why the panel's Generate cannot run now (shown greyed out with this reason)."""
    settings = read_settings(context)
    problem = settings.configuration_error()
    if problem is not None:
        return problem.message
    return validation.prompt_problem(prompt, allow_empty=bool(image_path))


def panel_problem(context: Any, ui: Any) -> str | None:
    """generate_problem() for the panel's current mode. Image mode: the image must be
    chosen and valid (cheap: cached header checks), the prompt is optional."""
    if ui.source != "IMAGE":
        return generate_problem(context, ui.prompt)
    problem = read_settings(context).configuration_error()
    if problem is not None:
        return problem.message
    return image_input.selection_problem(ui) or validation.prompt_problem(ui.prompt, allow_empty=True)


class HIPTAH_OT_pick_image(bpy.types.Operator):
    """Choose a PNG, JPEG or WebP image file for image-to-3D"""

    bl_idname = "hiptah.pick_image"
    bl_label = "Choose Image"
    bl_options = {"REGISTER", "INTERNAL"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default=image_input.FILTER_GLOB, options={"HIDDEN"})
    filter_image: BoolProperty(default=True, options={"HIDDEN"})
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context: Any, event: Any) -> Result:
        current = scene_settings(context.scene).image_file
        if current:
            self.filepath = bpy.path.abspath(current)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> Result:
        ui = scene_settings(context.scene)
        ui.image_file = self.filepath
        ui.source = "IMAGE"
        problem = image_input.file_info(bpy.path.abspath(self.filepath)).problem if self.filepath else None
        if problem:
            report(self, "WARNING", f"HiPtah: {problem}")
        return {"FINISHED"}


class HIPTAH_OT_cancel_job(_JobOperator, bpy.types.Operator):
    """Stop a HiPtah job (a job already running on the server may still count against your quota)"""

    bl_idname = "hiptah.cancel_job"
    bl_label = "Cancel HiPtah Job"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> Result:
        found = self.runtime_and_id(context)
        if found is None:
            return {"CANCELLED"}
        rt, local_id = found
        rt.cancel(local_id)
        report(self, "INFO", "HiPtah: job cancelled.")
        return {"FINISHED"}


class HIPTAH_OT_retry_job(_JobOperator, bpy.types.Operator):
    """Retry a failed or cancelled job: keeps polling the same server job (no new charge) and
    downloads the model again"""

    bl_idname = "hiptah.retry_job"
    bl_label = "Retry HiPtah Job"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> Result:
        found = self.runtime_and_id(context)
        if found is None:
            return {"CANCELLED"}
        rt, local_id = found
        try:
            record = rt.retry(context, local_id)
        except errors.HiptahError as exc:
            return report_error(self, exc)
        except ValueError as exc:  # already downloaded: nothing to retry
            report(self, "ERROR", f"HiPtah: {exc} Use Import instead.")
            return {"CANCELLED"}
        monitor.ensure_monitor(context)
        report(self, "INFO", f"HiPtah: retrying “{record.label(40)}”.")
        return {"FINISHED"}


class HIPTAH_OT_import_job(_JobOperator, bpy.types.Operator):
    """Import the job's downloaded model (again) into the current scene"""

    bl_idname = "hiptah.import_job"
    bl_label = "Import HiPtah Model"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> Result:
        found = self.runtime_and_id(context)
        if found is None:
            return {"CANCELLED"}
        rt, local_id = found
        try:
            roots = rt.import_job(context, local_id, push_undo=False)  # the UNDO flag makes the step
        except errors.HiptahError as exc:
            return report_error(self, exc)
        report(self, "INFO", f"HiPtah: imported {', '.join(o.name for o in roots)}.")
        report_library_warning(self, rt, local_id)
        return {"FINISHED"}


class HIPTAH_OT_remove_job(_JobOperator, bpy.types.Operator):
    """Remove the job from the list (the downloaded file is kept unless Delete File is on)"""

    bl_idname = "hiptah.remove_job"
    bl_label = "Remove HiPtah Job"
    bl_options = {"REGISTER"}

    delete_file: BoolProperty(name="Delete File", description="Also delete the downloaded model file")

    def execute(self, context: Any) -> Result:
        found = self.runtime_and_id(context)
        if found is None:
            return {"CANCELLED"}
        rt, local_id = found
        record = rt.get(local_id)
        rt.remove(local_id)
        if self.delete_file and record is not None and record.file_path and os.path.isfile(record.file_path):
            try:
                os.remove(record.file_path)
            except OSError as exc:
                report(self, "WARNING", f"HiPtah: the file {record.file_path} could not be deleted ({exc}).")
        return {"FINISHED"}


class HIPTAH_OT_clear_finished(bpy.types.Operator):
    """Remove every finished job (imported, downloaded, failed, cancelled) from the list; files are kept"""

    bl_idname = "hiptah.clear_finished"
    bl_label = "Clear Finished HiPtah Jobs"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> Result:
        rt = runtime.peek()
        count = rt.clear_finished() if rt is not None else 0
        if count == 1:
            report(self, "INFO", "HiPtah: removed 1 finished job.")
        else:
            report(self, "INFO", f"HiPtah: removed {count} finished jobs.")
        return {"FINISHED"}


class HIPTAH_OT_test_connection(bpy.types.Operator):
    """Check that the base URL answers and the API key is accepted (waits up to 10 seconds)"""

    bl_idname = "hiptah.test_connection"
    bl_label = "Test Connection"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> Result:
        try:
            message = runtime.test_connection(context)
        except errors.HiptahError as exc:
            return report_error(self, exc)
        report(self, "INFO", f"HiPtah: {message}")
        return {"FINISHED"}


class HIPTAH_OT_open_folder(bpy.types.Operator):
    """Open the folder where HiPtah saves downloaded models"""

    bl_idname = "hiptah.open_folder"
    bl_label = "Open HiPtah Download Folder"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> Result:
        folder = read_settings(context).download_dir
        os.makedirs(folder, exist_ok=True)
        bpy.ops.wm.path_open(filepath=folder)
        report(self, "INFO", f"HiPtah: models are saved in {folder}")
        return {"FINISHED"}


class HIPTAH_OT_open_preferences(bpy.types.Operator):
    """Open the HiPtah add-on preferences (API key, base URL, plan)"""

    bl_idname = "hiptah.open_preferences"
    bl_label = "HiPtah Preferences"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> Result:
        bpy.ops.preferences.addon_show(module=ADDON_ID)
        return {"FINISHED"}


class VIEW3D_MT_hiptah(bpy.types.Menu):
    """Add > HiPtah: makes every operator reachable from F3 menu search"""

    bl_idname = "VIEW3D_MT_hiptah"
    bl_label = "HiPtah"

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        layout.operator_context = "INVOKE_DEFAULT"
        layout.operator(HIPTAH_OT_generate.bl_idname, text="Generate 3D Model…", icon="MESH_MONKEY")
        layout.operator("hiptah.batch_generate", text="Generate from List…", icon="TEXT")
        layout.separator()
        layout.operator(HIPTAH_OT_import_job.bl_idname, text="Import Selected Job", icon="IMPORT")
        layout.operator(HIPTAH_OT_retry_job.bl_idname, text="Retry Selected Job", icon="FILE_REFRESH")
        layout.operator(HIPTAH_OT_cancel_job.bl_idname, text="Cancel Selected Job", icon="X")
        layout.operator(HIPTAH_OT_remove_job.bl_idname, text="Remove Selected Job", icon="TRASH")
        layout.operator(HIPTAH_OT_clear_finished.bl_idname, text="Clear Finished Jobs")
        layout.separator()
        layout.operator(monitor.HIPTAH_OT_monitor.bl_idname, text="Watch Jobs", icon="TIME")
        layout.operator(HIPTAH_OT_test_connection.bl_idname, icon="URL")
        layout.operator(HIPTAH_OT_open_folder.bl_idname, text="Open Download Folder", icon="FILE_FOLDER")
        layout.operator("hiptah.add_past_generations", icon="ASSET_MANAGER")
        layout.operator(HIPTAH_OT_open_preferences.bl_idname, text="Preferences…", icon="PREFERENCES")


def menu_add(self: Any, context: Any) -> None:
    self.layout.menu(VIEW3D_MT_hiptah.bl_idname, icon="MESH_MONKEY")


CLASSES: tuple[type, ...] = (
    HIPTAH_OT_generate,
    HIPTAH_OT_pick_image,
    HIPTAH_OT_cancel_job,
    HIPTAH_OT_retry_job,
    HIPTAH_OT_import_job,
    HIPTAH_OT_remove_job,
    HIPTAH_OT_clear_finished,
    HIPTAH_OT_test_connection,
    HIPTAH_OT_open_folder,
    HIPTAH_OT_open_preferences,
    VIEW3D_MT_hiptah,
)


def register_menus() -> None:
    bpy.types.VIEW3D_MT_add.append(menu_add)  # type: ignore[arg-type]


def unregister_menus() -> None:
    bpy.types.VIEW3D_MT_add.remove(menu_add)  # type: ignore[arg-type]
