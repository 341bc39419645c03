"""Asset library operators: Add Past Generations (back-fill the personal library)."""
# mypy: disable-error-code="valid-type"

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty

from ..jobs.records import JobState
from . import personal_library, runtime
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
            self._report("INFO", "HiPtah: the job history is empty; nothing to add.")
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
        for problem in problems[:5]:
            self._report("WARNING", f"HiPtah: not added: {problem}")
        level = "WARNING" if problems else "INFO"
        self._report(
            level,
            f"HiPtah: added {saved} past generation{'s' if saved != 1 else ''} to the asset library "
            f"({settings.library_dir})" + (f"; {len(problems)} could not be added." if problems else "."),
        )
        return {"FINISHED"}

    def _report(self, level: str, text: str) -> None:
        self.report({level}, runtime.add_report(level, text))  # type: ignore[arg-type]


CLASSES: tuple[type, ...] = (HIPTAH_OT_add_past_generations,)
