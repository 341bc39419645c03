"""Generate from List…: every prompt of a file queued into the panel's job list.

The file formats are the batch command's (``..batch.inputs``: a prompt a line, CSV/TSV
with a ``prompt`` column or a template, JSON), read and validated in full first: a
file with any problem is reported with every problem and queues nothing. Each row
then becomes a job exactly like pressing Generate (same scheduler, plan limit,
auto import), with the row's own format and quality when it has them.

For big lists, an Asset Browser library and resuming, the command line
``blender -b -c hiptah batch`` is the tool (docs/batch.md).
"""
# mypy: disable-error-code="valid-type"

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import EnumProperty, StringProperty

from ..client import errors
from . import monitor, runtime
from .operators import effective_choice, report, report_error
from .preferences import FORMAT_ITEMS, QUALITY_ITEMS
from .properties import DEFAULT_ITEM
from .settings import read_settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Result = set[OperatorReturnItems]

FILTER_GLOB = "*.txt;*.csv;*.tsv;*.json"


class HIPTAH_OT_batch_generate(bpy.types.Operator):
    """Queue every prompt of a text (one a line), CSV, TSV or JSON file as HiPtah jobs"""

    bl_idname = "hiptah.batch_generate"
    bl_label = "Generate from List"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default=FILTER_GLOB, options={"HIDDEN"})
    template: StringProperty(
        name="Template",
        description='Build each prompt from CSV/JSON columns, e.g. "a {color} {material} {object}"; '
        "empty: the file's prompt column (text files: each line)",
        default="",
    )
    format: EnumProperty(
        name="Format",
        description="For rows without a format column (Default: the panel's choice)",
        items=[DEFAULT_ITEM, *FORMAT_ITEMS],
        default="default",
    )
    quality: EnumProperty(
        name="Quality",
        description="For rows without a quality column (Default: the panel's choice)",
        items=[DEFAULT_ITEM, *QUALITY_ITEMS],
        default="default",
    )

    def invoke(self, context: Any, event: Any) -> Result:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def _defaults(self, context: Any) -> tuple[str, str]:
        return effective_choice(context, self.format, self.quality)

    def execute(self, context: Any) -> Result:
        from ..batch.inputs import InputError, load_rows  # not at register: keeps enabling light

        if not self.filepath:
            report(self, "ERROR", "HiPtah: choose a .txt, .csv, .tsv or .json file of prompts.")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        fmt, quality = self._defaults(context)
        try:
            rt = runtime.get(context)
            rt.refresh_settings(context).check()  # no key / offline: say so before reading
        except errors.HiptahError as exc:
            return report_error(self, exc)
        try:
            rows = load_rows(path, template=self.template.strip() or None, default_format=fmt,
                             default_quality=quality)
        except InputError as exc:
            report(self, "ERROR", f"HiPtah: nothing was queued. {exc.describe()}\nFix the file and try again.")
            return {"CANCELLED"}

        auto_import = read_settings(context).auto_import
        queued: list[str] = []
        try:
            for row in rows:
                record = rt.submit(context, row.prompt, fmt=row.format, quality=row.quality,
                                   auto_import=auto_import)
                queued.append(record.local_id)
        except errors.HiptahError as exc:
            # All or nothing, as for a bad file: nothing has been sent yet (jobs wait for a tick).
            for local_id in queued:
                rt.remove(local_id)
            report(self, "ERROR", f"HiPtah: nothing was queued from {os.path.basename(path)} "
                                  f"({row.source}): {exc.user_text()}")
            return {"CANCELLED"}
        monitor.ensure_monitor(context)
        name = os.path.basename(path)
        if len(queued) == 1:
            report(self, "INFO", f"HiPtah: queued 1 job from {name}.")
        else:
            report(self, "INFO", f"HiPtah: queued {len(queued)} jobs from {name}.")
        return {"FINISHED"}


CLASSES: tuple[type, ...] = (HIPTAH_OT_batch_generate,)
