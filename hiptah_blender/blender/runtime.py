"""The process-wide job runtime: one Scheduler, stepped on Blender's main thread.

Nothing here runs by itself. The modal monitor (interactive Blender), the
blocking ``wait_for`` (scripts, background mode) and tests all call ``step()``:
``scheduler.tick()`` (never blocks; HTTP happens on the scheduler's workers),
then the main-thread part of each event: import downloaded models (side by side
while the 3D cursor stays put), save them to the asset library, refresh the job list
mirror, redraw the sidebar.

The Scheduler (and with it requests and pydantic) is created only when a job is
submitted or the job history on disk has jobs, never at registration.

Homes of what this module re-exports for its callers: the report log and redraws in
``reports.py``, the client's construction and the add-on version in ``connection.py``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import bpy

from ..client import errors
from ..i18n import N_
from ..jobs.records import ErrorInfo, JobEvent, JobRecord, JobState
from ..placement import SizeChoice
from . import account, connection, image_input, online, personal_library, previews

# REPORTS and addon_version are re-exported: callers use runtime.REPORTS, runtime.addon_version().
from .connection import addon_version as addon_version
from .importers import ModelImportError, import_model
from .mirror import sync_mirror, update_mirror
from .reports import REPORTS as REPORTS
from .reports import add_report, tag_redraw
from .rows import SideBySide
from .settings import Settings, read_settings, store_path, user_dir

if TYPE_CHECKING:
    from ..client.http import HiptahClient
    from ..jobs.scheduler import Scheduler, SchedulerConfig

_REDRAW_EVERY = 0.25  # seconds between sidebar redraws while jobs run (progress bars)
# A blocking generate stops waiting for a server it cannot reach after this long (the
# job is kept and sent later); a whole job deadline (600 s) would look like a hang.
UNREACHABLE_GRACE = 60.0
_UNREACHABLE_KINDS = ("APIConnectionError", "APITimeoutError")
_runtime: Runtime | None = None


def _ensure_folder(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise errors.StorageError(
            f"The download folder {path} cannot be created ({exc.strerror or exc}).",
            hint="Choose a writable Download Folder in Edit > Preferences > Add-ons > HiPtah.",
        ) from None


class Runtime:
    """The add-on's jobs in this Blender session. Main thread only, except
    ``_make_client``, which the scheduler calls on a worker thread: it reads
    ``self.settings``, a frozen snapshot that only the main thread replaces
    (refresh_settings, the online-access watcher), and never bpy."""

    def __init__(self, settings: Settings) -> None:
        from ..jobs.scheduler import Scheduler
        from ..jobs.store import JobStore

        self.settings = settings
        self.user_agent = connection.user_agent()
        _ensure_folder(settings.download_dir)
        self.scheduler: Scheduler = Scheduler(self._make_client, JobStore(store_path()), self._config(settings))
        self.snapshots: dict[str, JobRecord] = {}
        # Import failures are local to this session (the job stays DOWNLOADED, file kept).
        self.import_errors: dict[str, ErrorInfo] = {}
        # Downloaded jobs waiting for the main thread, imported one per step: ten models
        # finishing together froze the UI 1.3-4.5 s in one step (bench figure 7).
        self.import_queue: deque[tuple[str, bool]] = deque()
        # (level, text, local id): what happened to jobs while stepping, for whoever shows
        # it (the monitor reports each; a blocking generate reports its own job itself).
        self.notices: list[tuple[str, str, str]] = []
        self.undo_pushes = 0
        self._last_redraw = 0.0
        # Models arriving one after another go side by side (until the cursor moves).
        self.rows = SideBySide()  # models that finish together stand side by side
        # Imported models waiting to be saved to the personal asset library.
        self.library = personal_library.LibrarySaves()
        # Why a job's model was imported but not saved to the library (for its operator).
        self.library_warnings: dict[str, str] = {}
        # Online access off (remote URL) pauses the scheduler, also for jobs resumed from
        # the history before their first request.
        self.online = online.OnlineWatch()
        self._watch_online()
        # Active jobs retrying through an unreachable server (network down, server
        # stopped): the rows and the status line say so while it lasts (draw reads this).
        self.unreachable: dict[str, ErrorInfo] = {}
        previews.warm_up()
        if self.scheduler.warning:
            self._notice("", "WARNING", self.scheduler.warning)
        self.sync()
        # Temporary images of jobs that ended while Blender was not running (or crashed).
        image_input.sweep(
            self.temp_folder(),
            keep=[j.image_path for j in self.snapshots.values() if j.image_path and not _image_done(j)],
        )

    @staticmethod
    def temp_folder() -> str:
        """Where datablocks are saved as images for sending (deleted when their job is done)."""
        return user_dir("tmp", create=False)

    # ------------------------------------------------------------------ settings
    def _config(self, settings: Settings) -> SchedulerConfig:
        from ..jobs.scheduler import SchedulerConfig

        base = getattr(getattr(self, "scheduler", None), "config", None) or SchedulerConfig(
            download_dir=settings.download_dir
        )
        return dataclasses.replace(
            base,
            max_concurrent=settings.max_concurrent,
            poll_interval=settings.poll_interval,
            job_deadline=settings.job_deadline,
            download_dir=settings.download_dir,
        )

    def refresh_settings(self, context: Any = None) -> Settings:
        """Re-read preferences + environment (main thread) and hand changes to the
        scheduler: it rebuilds its client lazily, operations under way finish as they are."""
        settings = read_settings(context)
        if settings != self.settings:
            _ensure_folder(settings.download_dir)
            self.settings = settings
            self.scheduler.reconfigure(client_factory=self._make_client, config=self._config(settings))
        return self.settings

    def _make_client(self) -> HiptahClient:
        """Called by the scheduler (maybe on a worker thread): uses the settings
        snapshot taken on the main thread, never bpy. No key, a bad URL or online
        access off raise here: the job fails with the fix."""
        return connection.make_client(self.settings, self.user_agent)

    # ------------------------------------------------------------------ jobs
    def submit(
        self,
        context: Any,
        prompt: str,
        *,
        fmt: str,
        quality: str,
        image_path: str | None = None,
        image_name: str | None = None,
        temp_image: bool = False,
        auto_import: bool = True,
        size: SizeChoice | None = None,
    ) -> JobRecord:
        """Queue a generation (validated; raises HiptahError with the user's fix).
        ``image_name``: what the UI calls the image; ``temp_image``: ``image_path`` is
        our temporary file, deleted once the job no longer needs it."""
        settings = self.refresh_settings(context)
        settings.check()
        scene = context.scene
        meta: dict[str, Any] = {"scene": scene.name, "blend": bpy.data.filepath, "auto_import": auto_import}
        if image_path and image_name:
            meta["image_name"] = image_name
        if image_path and temp_image:
            meta["temp_image"] = True
        if size is None:
            from .properties import effective_size

            size = effective_size(context, settings, "default", 0.0, "default")
        meta.update(size.to_meta())  # applied at import, even after a restart
        record = self.scheduler.submit(
            prompt,
            format=fmt,
            quality=quality,
            image_path=image_path or None,
            meta=meta,
        )
        self.sync()
        return record

    def has_active(self) -> bool:
        return self.scheduler.has_active() or bool(self.import_queue) or self.library.busy()

    def get(self, local_id: str) -> JobRecord | None:
        return self.scheduler.get(local_id)

    def cancel(self, local_id: str) -> None:
        self.scheduler.cancel(local_id)
        self.step()

    def retry(self, context: Any, local_id: str) -> JobRecord:
        self.refresh_settings(context)
        self.settings.check()
        self.import_errors.pop(local_id, None)
        record = self.scheduler.retry(local_id)
        self.step(context)
        return record

    def remove(self, local_id: str) -> None:
        self.scheduler.remove(local_id)
        self.import_errors.pop(local_id, None)
        self.step()

    def clear_finished(self) -> int:
        count = self.scheduler.clear_finished()
        self.import_errors = {k: v for k, v in self.import_errors.items() if k in self.snapshots}
        self.step()
        return count

    def import_job(self, context: Any, local_id: str, *, scene: Any = None, push_undo: bool) -> list[Any]:
        """Import a downloaded job's file on the main thread. Raises ModelImportError
        (kept in ``import_errors`` for the panel); the job stays DOWNLOADED then."""
        record = self.scheduler.get(local_id)
        if record is None:
            raise ModelImportError("This job is no longer in the list.", hint="")
        if record.state not in (JobState.DOWNLOADED, JobState.IMPORTED) or not record.file_path:
            raise ModelImportError(
                "This job has no downloaded model yet.", hint="Wait until it is downloaded, or retry it."
            )
        settings = self.refresh_settings(context)
        try:
            roots = import_model(
                context,
                record.file_path,
                record.format,
                record=record,
                scene=scene,
                collection_name=settings.collection_name,
                placement=settings.placement,
                size=SizeChoice.from_meta(record.meta, settings.size),
                spot=self.rows.spot(scene or context.scene),
            )
        except ModelImportError as exc:
            self.import_errors[local_id] = ErrorInfo.from_exception(exc)
            self.sync()
            raise
        self.import_errors.pop(local_id, None)
        self.scheduler.mark_imported(local_id, [o.name for o in roots])  # kept in meta["imported_objects"]
        self.rows.placed(o.name for o in roots)
        previews.request(local_id, roots)  # the detail box's thumbnail, drawn on a worker
        problem = self.library.request(context, settings, record, roots)
        self.library_warnings.pop(local_id, None)
        if problem:  # "{problem}" is translated in the report too (catalog._NESTED)
            self.library_warnings[local_id] = problem
            self._notice(local_id, "WARNING", f"HiPtah: {problem}")
        if push_undo:
            # One undo step for the whole import when no operator with the UNDO flag wraps it.
            bpy.ops.ed.undo_push(message="HiPtah import")
            self.undo_pushes += 1
        self.sync()
        return roots

    # ------------------------------------------------------------------ stepping
    def step(self, context: Any = None, *, push_undo: bool = True) -> list[JobEvent]:
        """One main-thread step: tick the scheduler, import what finished downloading,
        refresh the job list and the sidebar. Cheap when nothing happened."""
        context = context or bpy.context
        gate_changed = self._watch_online()
        events = self.scheduler.tick()
        for event in events:
            self._apply(context, event, push_undo)
        if self.import_queue:
            local_id, undo = self.import_queue.popleft()
            self._auto_import(context, local_id, undo)
            gate_changed = True  # the list changed: redraw now
        elif self.library.busy():
            previews.collect()  # the thumbnail a pending save waits for
            failed = self.library.step(context, self.settings)
            if failed is not None:
                failed_id, problem = failed
                self.library_warnings[failed_id] = problem
                self._notice(failed_id, "WARNING", f"HiPtah: {problem}")
        now = time.monotonic()
        if events:
            self.sync(events)
        if gate_changed:
            self.sync()  # timelines say "paused" / "resumed"
        gate_changed |= previews.collect()  # a thumbnail arrived: redraw
        due = bool(self.snapshots) and now - self._last_redraw >= _REDRAW_EVERY and self.has_active()
        if events or due or self.unreachable:
            gate_changed |= self._watch_unreachable()
        if events or gate_changed or due:
            self._last_redraw = now
            tag_redraw()
        return events

    def _watch_online(self) -> bool:
        """Hand Allow Online Access (read every step: it can change at any time) to the
        scheduler's pause gate. True when the gate opened or closed."""
        allowed = bool(bpy.app.online_access)
        if not self.online.update(self.scheduler, allowed, self.settings.base_url):
            return False
        # The client factory checks this snapshot on a worker: keep it current.
        self.settings = dataclasses.replace(self.settings, online_access=allowed)
        return True

    def _watch_unreachable(self) -> bool:
        """Refresh ``unreachable`` from the scheduler (at the redraw rate, not per draw).
        True when the set of jobs in it changed."""
        found: dict[str, ErrorInfo] = {}
        if self.scheduler.paused is None:  # paused: the offline message says it all
            for local_id, job in self.snapshots.items():
                if job.state.is_active:
                    error = self.scheduler.transient_error(local_id)
                    if error is not None and error.kind in _UNREACHABLE_KINDS:
                        found[local_id] = error
        changed = found.keys() != self.unreachable.keys()
        self.unreachable = found
        return changed

    def _apply(self, context: Any, event: JobEvent, push_undo: bool) -> None:
        job = event.job
        if event.kind == "removed" or _image_done(job):
            self._drop_temp_image(job)
        if event.kind == "removed":
            self.import_errors.pop(job.local_id, None)
            return
        if event.previous_state is JobState.SUBMITTING and job.state in (JobState.QUEUED, JobState.PROCESSING):
            account.note_success()  # the server took a job: key and plan are fine
        if job.state is JobState.FAILED and event.previous_state is not JobState.FAILED:
            account.note_failure(job.error, self.settings)  # 401/403: the status line keeps it
            reason = job.error.user_text() if job.error else N_("The job failed.")
            self._notice(job.local_id, "ERROR", f"HiPtah: “{job.label(30)}” failed: {reason}")
        elif job.state is JobState.DOWNLOADED and event.previous_state is not JobState.DOWNLOADED:
            self.import_queue.append((job.local_id, push_undo))  # imported by step(), one a step

    def _auto_import(self, context: Any, local_id: str, push_undo: bool) -> None:
        record = self.scheduler.get(local_id)
        if record is None or record.state is not JobState.DOWNLOADED:
            return  # already imported (several events for one job in one tick)
        meta = record.meta
        if not meta.get("auto_import", True):
            self._notice(local_id, "INFO", f"HiPtah: “{record.label(30)}” is downloaded; import it from the HiPtah panel.")
            return
        scene = bpy.data.scenes.get(meta.get("scene", ""))
        if scene is None or meta.get("blend", "") != bpy.data.filepath:
            # Another file is open now: never drop a model into an unrelated scene.
            self._notice(
                local_id,
                "INFO",
                f"HiPtah: “{record.label(30)}” is downloaded; its scene is not open, import it from the panel.",
            )
            return
        try:
            roots = self.import_job(context, local_id, scene=scene, push_undo=push_undo)
        except errors.HiptahError as exc:
            self._notice(local_id, "ERROR", f"HiPtah: “{record.label(30)}”: {exc.user_text()}")
            return
        self._notice(local_id, "INFO", f"HiPtah: imported “{record.label(30)}” as {roots[0].name}.")

    def _drop_temp_image(self, job: JobRecord) -> None:
        if job.meta.get("temp_image") and image_input.is_temp_image(job.image_path, self.temp_folder()):
            image_input.remove_quietly(str(job.image_path))

    def _notice(self, local_id: str, level: str, text: str) -> None:
        self.notices.append((level, errors.redact(text), local_id))

    def take_notices(self, *, exclude: str | None = None) -> list[tuple[str, str]]:
        """Pending notices as (level, text), recorded in REPORTS; ``exclude`` drops those
        about one job (its blocking operator reports the outcome itself)."""
        notices, self.notices = self.notices, []
        return [(level, add_report(level, text)) for level, text, local_id in notices if local_id != exclude or not exclude]

    def wait_for(
        self,
        local_id: str,
        timeout: float | None = None,
        *,
        context: Any = None,
        interval: float = 0.05,
        unreachable_grace: float | None = None,
    ) -> JobRecord:
        """Step until the job is finished (imported when it auto-imports), or ``timeout``
        (default: the job deadline plus a margin) passes. Blocks the caller.

        A job the server never accepted because it cannot be reached (connection errors,
        timeouts) stops the wait after ``unreachable_grace`` seconds instead of the whole
        job deadline: a script learns at once that HiPtah is unreachable. The job itself
        is kept, with its idempotency key, and is sent when the server answers again."""
        grace = UNREACHABLE_GRACE if unreachable_grace is None else unreachable_grace
        started = time.monotonic()
        limit = started + (self.settings.job_deadline + 60.0 if timeout is None else timeout)
        while True:
            self.step(context, push_undo=False)
            record = self.scheduler.get(local_id)
            if record is None:
                raise ModelImportError("The job was removed while waiting for it.", hint="")
            now = time.monotonic()
            queued = any(lid == local_id for lid, _ in self.import_queue)  # imported next step
            queued = queued or local_id in self.library.pending  # saved to the library next
            if (record.state.is_finished and not queued) or now >= limit or self.scheduler.paused is not None:
                return record
            if now - started >= grace and self.unreachable_error(record) is not None:
                return record
            time.sleep(interval)

    def unreachable_error(self, record: JobRecord) -> ErrorInfo | None:
        """Why a not-yet-accepted job cannot be sent (the server is unreachable), or None."""
        if record.job_id is not None or record.state not in (JobState.WAITING, JobState.SUBMITTING):
            return None
        if self.scheduler.paused is not None:
            return self.scheduler.paused
        error = self.scheduler.transient_error(record.local_id)
        if error is None or error.kind not in _UNREACHABLE_KINDS:
            return None
        return error

    # ------------------------------------------------------------------ the list mirror
    def sync(self, events: list[JobEvent] | None = None) -> None:
        """Refresh snapshots and the WindowManager collection the UIList draws.

        With a step's ``events`` only the jobs they name are read again, so a step costs
        O(changed jobs), not O(all jobs): copying 100 records and rebuilding the list
        took ~8 ms of main-thread time per step (bench figure 1). Jobs keep their place
        (the list is ordered by creation time), so only new or removed jobs need the
        full refresh.
        """
        if events and self._sync_changed(events):
            return
        jobs = self.scheduler.jobs()
        self.snapshots = {job.local_id: job for job in jobs}
        sync_mirror(jobs)

    def _sync_changed(self, events: list[JobEvent]) -> bool:
        """Update the snapshots and mirror items of the jobs in ``events``; False when a
        full refresh is needed (a job added, removed or missing from the mirror)."""
        changed = list(dict.fromkeys(e.job.local_id for e in events))
        if any(e.kind == "removed" for e in events) or not all(i in self.snapshots for i in changed):
            return False
        fresh = [self.scheduler.get(i) for i in changed]
        if any(job is None for job in fresh):
            return False
        jobs = [job for job in fresh if job is not None]
        if not update_mirror(jobs):
            return False
        self.snapshots.update((job.local_id, job) for job in jobs)
        return True

    def counts(self) -> dict[JobState, int]:
        out: dict[JobState, int] = {}
        for job in self.snapshots.values():
            out[job.state] = out.get(job.state, 0) + 1
        return out

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
        personal_library.shutdown()  # lets a save in progress finish its rename


def _image_done(job: JobRecord) -> bool:
    """The job's image will never be sent again: a finished download cannot be retried
    (failed and cancelled jobs can, with the same image, until they are removed)."""
    return job.state in (JobState.DOWNLOADED, JobState.IMPORTED)


# ---------------------------------------------------------------------- module API
def peek() -> Runtime | None:
    """The runtime if one exists (never creates it: for draw code)."""
    return _runtime


def get(context: Any = None) -> Runtime:
    """The runtime, created on first use (imports the scheduler, loads the history)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(read_settings(context))
    return _runtime


def step(context: Any = None, *, push_undo: bool = True) -> list[JobEvent]:
    runtime = _runtime
    return runtime.step(context, push_undo=push_undo) if runtime is not None else []


def wait_for(local_id: str, timeout: float | None = None, *, context: Any = None) -> JobRecord:
    return get(context).wait_for(local_id, timeout, context=context)


def has_active() -> bool:
    return _runtime is not None and _runtime.has_active()


def history_exists() -> bool:
    path = store_path()
    return os.path.isfile(path) and os.path.getsize(path) > 0


def resume_if_needed(context: Any = None) -> bool:
    """After a restart or on file load: bring up the runtime when the history has jobs
    (unfinished ones resume). Returns True when jobs are active."""
    if _runtime is None:
        if not history_exists():
            return False
        get(context)
    else:
        _runtime.sync()  # a loaded file brings a new WindowManager: refill the mirror
    return has_active()


def shutdown() -> None:
    """Stop the scheduler and forget the runtime (unregister); the history stays on disk."""
    global _runtime
    runtime, _runtime = _runtime, None
    account.note_success()  # a refusal is about this session's settings
    previews.clear()
    if runtime is not None:
        runtime.shutdown()


def test_connection(context: Any = None, *, timeout: float = 10.0) -> str:
    """Check key + URL synchronously with a short timeout. Raises HiptahError."""
    settings = _runtime.refresh_settings(context) if _runtime is not None else read_settings(context)
    return connection.check(settings, timeout=timeout)
