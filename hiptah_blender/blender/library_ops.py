"""Asset library operators: Add Past Generations (back-fill the personal library)."""
# mypy: disable-error-code="valid-type"

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty

from ..i18n import N_
from ..jobs.records import JobState
from . import personal_library, runtime
from .i18n import rpt
from .settings import read_settings

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

    Result = set[OperatorReturnItems]


class HIPTAH_OT_add_past_generations(bpy.types.Operator):
    """Save the job history's generations whose model files are still on disk to the HiPtah asset library"""

    bl_idname = "hiptah.add_past_generations"
    bl_label = "Add Past Generations"
    bl_options = {"REGISTER"}

    replace: BoolProperty(
        name="Replace Saved Ones",
        description="Save again the generations the library already has (else they are skipped)",
        default=False,
        options={"SKIP_SAVE"},
    )

    def execute(self, context: Any) -> Result:
        settings = read_settings(context)
        if not runtime.history_exists() and runtime.peek() is None:
            self._report("INFO", N_("HiPtah: the job history is empty; nothing to add."))
            return {"CANCELLED"}
        rt = runtime.get(context)
        records = [r for r in rt.snapshots.values() if r.state in (JobState.DOWNLOADED, JobState.IMPORTED)]
        records.sort(key=lambda r: r.created_at)
        window = context.window_manager
        window.progress_begin(0, max(1, len(records)))
        try:
            saved, problems = personal_library.backfill(context, settings, records, force=self.replace)
        finally:
            window.progress_end()
        for problem in problems[:5]:  # "{problem}" is translated in turn (catalog._NESTED)
            self._report("WARNING", N_(f"HiPtah: not added: {problem}"))
        folder, count = settings.library_dir, len(problems)
        if saved == 1:
            text = N_(f"HiPtah: added 1 past generation to the asset library ({folder}).")
        else:
            text = N_(f"HiPtah: added {saved} past generations to the asset library ({folder}).")
        if count == 1:
            text = N_(f"HiPtah: added {saved} past generation(s) to the asset library ({folder}); 1 could not be added.")
        elif count:
            text = N_(f"HiPtah: added {saved} past generation(s) to the asset library ({folder}); "
                      f"{count} could not be added.")
        self._report("WARNING" if problems else "INFO", text)
        return {"FINISHED"}

    def _report(self, level: str, text: str) -> None:
        # English in runtime.REPORTS, the interface's language on screen (docs/i18n.md).
        self.report({level}, rpt(runtime.add_report(level, text)))  # type: ignore[arg-type]


CLASSES: tuple[type, ...] = (HIPTAH_OT_add_past_generations,)
