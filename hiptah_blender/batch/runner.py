"""The batch loop: rows in, scheduler jobs out, models into the library.

No bpy here: the asset library is handed in as a :class:`LibrarySink` (the real
one is :class:`hiptah_blender.blender.library.AssetLibrary`), so the loop is tested against
the sandbox in plain Python.

What the loop does, on the main thread, until every row is finished:

* ticks the add-on's :class:`Scheduler` (via ``run_until`` with a short timeout,
  which wakes as soon as a worker reports), so the scheduler's own concurrency
  limit, poll timing, retries and persistence apply unchanged;
* feeds rows to the scheduler a few at a time (at most ``concurrency`` waiting in
  it), so that when the plan limit (403) or a refused key (401) stops the batch,
  the unsent rows are simply not there: they stay pending in the state file;
* hands webhook deliveries from the receiver's queue to ``notify_completed``;
* imports downloaded models into the library and saves it every few seconds,
  marking the jobs imported only after the save (a crash in between re-imports
  the row, which the library replaces in place);
* keeps the manifest and the progress display current.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..jobs.records import JobEvent, JobRecord, JobState
from ..jobs.scheduler import Scheduler
from .inputs import Row
from .progress import Counts, Progress, SummaryRow, estimate_eta
from .receiver import WebhookReceiver
from .state import PENDING, BatchState, link_rows, manifest_entry, row_status

# Errors after which sending more rows cannot succeed: stop submitting, keep the rest.
STOP_KINDS = {
    "PlanLimitError": (
        "The plan's monthly generation limit was reached (403): no more rows are sent. "
        "Rows not sent stay pending in the state file; run the same command again after the "
        "monthly reset or a plan upgrade to finish them."
    ),
    "AuthenticationError": (
        "The API key was refused (401): no more rows are sent. Fix HIPTAH_API_KEY / --api-key "
        "and run the same command again to finish."
    ),
}


class LibrarySink(Protocol):
    dirty: bool

    def add(self, item: Any) -> str: ...

    def save(self) -> None: ...

    def find(self, row_key: str) -> object: ...


# Makes the library's item (hiptah_blender.blender.library.LibraryItem) from a row key and its job.
ItemFactory = Callable[[str, JobRecord], Any]


@dataclass
class RunResult:
    counts: Counts
    summary: list[SummaryRow]
    stopped: str | None = None  # why submitting stopped early
    webhook_notices: int = 0
    polls: dict[str, int] = field(default_factory=dict)  # row key -> polls of its job

    @property
    def ok(self) -> bool:
        return self.counts.failed == 0 and self.counts.running == 0 and self.counts.waiting == 0


class BatchRunner:
    def __init__(
        self,
        rows: Sequence[Row],
        scheduler: Scheduler,
        state: BatchState,
        *,
        concurrency: int,
        progress: Progress | None = None,
        library: LibrarySink | None = None,
        item_factory: ItemFactory | None = None,
        receiver: WebhookReceiver | None = None,
        save_interval: float = 5.0,
        step: float = 0.1,
        should_stop: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        key_for: Callable[[Row], str] | None = None,
    ) -> None:
        self.rows = list(rows)
        self.by_key = {row.key: row for row in self.rows}
        self.scheduler = scheduler
        self.state = state
        self.concurrency = max(1, concurrency)
        self.progress = progress
        self.library = library
        self.item_factory = item_factory
        if library is not None and item_factory is None:
            raise ValueError("a library needs an item_factory")
        self.receiver = receiver
        self.save_interval = save_interval
        self.step = step
        self.should_stop = should_stop
        self.clock = clock
        # The Idempotency-Key for a row's new job (batch.shards.idempotency_key); None: random.
        self.key_for = key_for

        self.records: dict[str, JobRecord] = {}  # row key -> latest snapshot
        self.assets: dict[str, str] = {}  # row key -> library collection name
        self.import_errors: dict[str, str] = {}
        self.to_feed: list[Row] = []
        self.to_import: list[str] = []
        self.unsaved: list[tuple[str, str, str]] = []  # (row key, local id, asset name)
        self.stopped: str | None = None
        self.webhook_notices = 0
        self._by_local: dict[str, str] = {}
        self._started = clock()
        self._finished_this_run = 0
        self._last_save = clock()
        self._last_manifest = float("-inf")

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Link rows to stored jobs; decide what to send, resume, retry and import."""
        manifest = self.state.load_manifest()
        linked = link_rows(self.rows, self.scheduler.jobs(), manifest)
        self.assets = {k: e.asset for k, e in manifest.items() if e.asset and k in self.by_key}
        for row in self.rows:
            record = linked.get(row.key)
            if record is None:
                self.to_feed.append(row)
                continue
            self._track(row.key, record)
            state = record.state
            if state in (JobState.FAILED, JobState.CANCELLED):
                if record.job_id:
                    # Polls or downloads the existing job again: never a new generation.
                    self._track(row.key, self.scheduler.retry(record.local_id))
                else:
                    self.to_feed.append(row)  # refused or never sent: re-sent in turn
            elif self.library is None:
                continue  # files only: a downloaded row is done
            elif state is JobState.DOWNLOADED:
                self.to_import.append(row.key)
            elif state is JobState.IMPORTED and self.library.find(row.key) is None:
                # Imported by an earlier run but missing from the library (file replaced).
                self.to_import.append(row.key)

    def _track(self, key: str, record: JobRecord) -> None:
        self.records[key] = record
        self._by_local[record.local_id] = key

    # ------------------------------------------------------------------ loop
    def run(self) -> RunResult:
        """Until every row is finished (or the batch stopped). KeyboardInterrupt (Ctrl-C,
        or ``should_stop``) propagates after the state is saved."""
        try:
            self._loop()
        finally:
            self._finish()
        return self.result()

    def _loop(self) -> None:
        while True:
            if self.should_stop is not None and self.should_stop():
                # A signal arrived: stop here, between steps, where everything is consistent.
                raise KeyboardInterrupt
            self._feed()
            active = [r.local_id for r in self.records.values() if r.state.is_active]
            self.scheduler.run_until(active, timeout=self.step, on_events=self._on_events)
            self._drain_webhooks()
            self._import_some()
            self._maybe_save()
            self._maybe_write_manifest()
            self._show()
            if self._done():
                return

    def _done(self) -> bool:
        if any(r.state.is_active for r in self.records.values()):
            return False
        if self.to_import or (self.library is not None and (self.library.dirty or self.unsaved)):
            return False
        return not (self.to_feed and self.stopped is None)

    def _feed(self) -> None:
        if self.stopped is not None:
            return
        waiting = sum(1 for r in self.records.values() if r.state is JobState.WAITING)
        while self.to_feed and waiting < self.concurrency:
            row = self.to_feed.pop(0)
            old = self.records.get(row.key)
            key = self.key_for(row) if self.key_for is not None else None
            if old is not None and not old.state.is_active and not (
                key is not None and not old.job_id and old.idempotency_key == key
            ):
                record = self.scheduler.retry(old.local_id)
            else:
                if old is not None:
                    # Sent under the derived key and refused or lost: send again under that
                    # same key (retry() would draw a new one after a refusal, and a worker
                    # that lost this state file could not know it).
                    self.scheduler.remove(old.local_id)
                    self._by_local.pop(old.local_id, None)
                record = self.scheduler.submit(
                    row.prompt,
                    format=row.format,
                    quality=row.quality,
                    meta={"row_key": row.key, "row_source": row.source},
                    idempotency_key=key,
                )
            self._track(row.key, record)
            waiting += 1

    def _on_events(self, events: list[JobEvent]) -> None:
        for event in events:
            key = self._by_local.get(event.job.local_id)
            if key is None:
                continue  # not ours (another batch's, or one we removed)
            if event.kind == "removed":
                self.records.pop(key, None)
                continue
            before = event.previous_state
            record = event.job
            self.records[key] = record
            if record.state is JobState.DOWNLOADED and before is not JobState.DOWNLOADED:
                if self.library is not None:
                    self.to_import.append(key)
                else:
                    self._finished_this_run += 1
                    self._log_done(key, record)
            elif record.state in (JobState.FAILED, JobState.CANCELLED) and before not in (
                JobState.FAILED,
                JobState.CANCELLED,
            ):
                self._finished_this_run += 1
                reason = record.error.user_text() if record.error else record.state.value
                self._log(f"failed  {self._label(key)}: {reason}")
                if record.error is not None and record.error.kind in STOP_KINDS:
                    self._stop(STOP_KINDS[record.error.kind])

    def _stop(self, reason: str) -> None:
        if self.stopped is not None:
            return
        self.stopped = reason
        self._log(reason)
        # Rows queued in the scheduler but not sent yet go back to pending. The
        # scheduler's own state decides (our snapshots may lag by one tick: a job it
        # just started sending must stay, or its row could be generated twice).
        for key, record in list(self.records.items()):
            current = self.scheduler.get(record.local_id)
            if current is not None and current.state is JobState.WAITING:
                self.scheduler.remove(record.local_id)
                del self.records[key]
                del self._by_local[record.local_id]
                self.to_feed.insert(0, self.by_key[key])

    def _drain_webhooks(self) -> None:
        if self.receiver is None:
            return
        for delivery in self.receiver.drain():
            self.webhook_notices += 1
            self.scheduler.notify_completed(delivery.event.job_id, delivery.event.model_url)

    def _import_some(self, budget: float = 0.5) -> None:
        """Import downloaded models, for at most ``budget`` seconds before ticking again."""
        if self.library is None or self.item_factory is None:
            return
        end = self.clock() + budget
        while self.to_import and self.clock() < end:
            key = self.to_import.pop(0)
            record = self.records[key]
            try:
                name = self.library.add(self.item_factory(key, record))
            except Exception as exc:  # LibraryError, a bpy importer's RuntimeError
                self.import_errors[key] = str(exc)
                self._finished_this_run += 1
                self._log(f"failed  {self._label(key)}: downloaded but not imported: {exc}")
                continue
            self.import_errors.pop(key, None)
            self.unsaved.append((key, record.local_id, name))

    def _maybe_save(self, force: bool = False) -> None:
        if self.library is None or not (self.library.dirty or self.unsaved):
            return
        now = self.clock()
        if not force and now - self._last_save < self.save_interval and (self.to_import or self._any_active()):
            return
        self.library.save()
        self._last_save = now
        for key, local_id, name in self.unsaved:
            self.assets[key] = name
            record = self.scheduler.get(local_id)
            if record is not None and record.state in (JobState.DOWNLOADED, JobState.IMPORTED):
                self.scheduler.mark_imported(local_id, [name])
                self._track(key, self.scheduler.get(local_id) or record)
                self._finished_this_run += 1
                self._log_done(key, record, name)
        self.unsaved.clear()

    def _any_active(self) -> bool:
        return any(r.state.is_active for r in self.records.values())

    def _maybe_write_manifest(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_manifest < 0.5:
            return
        self._last_manifest = now
        self.state.write_manifest(
            manifest_entry(row, self.records.get(row.key), self.state, self.assets.get(row.key))
            for row in self.rows
        )

    def _finish(self) -> None:
        """Leave everything on disk so that running again resumes."""
        try:
            # Also after Ctrl-C: finished imports are worth keeping (a half-done one
            # was rolled back by the library), and the jobs are marked imported after it.
            self._maybe_save(force=True)
        finally:
            self._on_events(self.scheduler.tick())  # the last results and state changes
            self.scheduler.flush()
            self._maybe_write_manifest(force=True)
            if self.progress is not None:
                self._show(force=True)
                self.progress.finish()

    # ------------------------------------------------------------------ reporting
    def counts(self) -> Counts:
        done = failed = running = waiting = 0
        for row in self.rows:
            record = self.records.get(row.key)
            if row.key in self.import_errors:
                failed += 1
            elif record is None:
                waiting += 1
            elif record.state is JobState.IMPORTED or (
                record.state is JobState.DOWNLOADED and self.library is None
            ):
                done += 1
            elif record.state is JobState.DOWNLOADED:
                running += 1  # importing
            elif record.state in (JobState.FAILED, JobState.CANCELLED):
                failed += 1
            elif record.state is JobState.WAITING:
                waiting += 1
            else:
                running += 1
        return Counts(done, failed, running, waiting)

    def _show(self, force: bool = False) -> None:
        if self.progress is None:
            return
        counts = self.counts()
        etas = [r.eta_seconds for r in self.records.values() if r.eta_seconds]
        elapsed = self.clock() - self._started
        eta = estimate_eta(
            counts,
            elapsed=elapsed,
            finished_this_run=self._finished_this_run,
            concurrency=self.concurrency,
            job_seconds=max(etas) if etas else None,
        )
        self.progress.update(counts, eta=eta, elapsed=elapsed, force=force)

    def _label(self, key: str) -> str:
        row = self.by_key[key]
        prompt = row.prompt if len(row.prompt) <= 50 else row.prompt[:49] + "…"
        return f"{row.source} {prompt!r}"

    def _log(self, line: str) -> None:
        if self.progress is not None:
            self.progress.log(line)

    def _log_done(self, key: str, record: JobRecord, asset: str | None = None) -> None:
        where = self.state.relative(record.file_path) or "?"
        extra = f" -> asset {asset!r}" if asset else ""
        self._log(f"done    {self._label(key)}: {record.job_id} {where}{extra}")

    def result(self) -> RunResult:
        summary: list[SummaryRow] = []
        polls: dict[str, int] = {}
        for row in self.rows:
            record = self.records.get(row.key)
            status = row_status(record) if record is not None else PENDING
            detail = ""
            if row.key in self.import_errors:
                status = "import-failed"
                detail = self.import_errors[row.key]
            elif record is not None and record.error is not None:
                detail = record.error.user_text()
            elif record is not None and record.file_path:
                detail = self.state.relative(record.file_path) or ""
                if row.key in self.assets:
                    detail += f"  [{self.assets[row.key]}]"
            elif record is None and self.stopped:
                detail = "not sent (batch stopped)"
            if record is not None:
                polls[row.key] = record.polls
            summary.append(
                SummaryRow(row.source, row.prompt, status, (record.job_id or "") if record else "", detail)
            )
        return RunResult(
            counts=self.counts(),
            summary=summary,
            stopped=self.stopped,
            webhook_notices=self.webhook_notices,
            polls=polls,
        )
