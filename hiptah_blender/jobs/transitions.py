"""Applying a finished operation to its job: the scheduler's state machine.

Pure: no threads, queues, clocks or files of its own. Each function takes the
record, its Runtime, the worker's Result and a Context (times, settings), changes
the record and the Runtime, and writes everything else it changes into an Effects
(events, finished jobs, the job-id index, re-queued jobs, the submission pause) that
the scheduler replays. Tests can drive it with plain data.

What happens when a poll answers 429, 5xx or a network error: ``apply_poll`` (retried
with backoff until the deadline). When a submission answers 429: ``apply_submit``
(back to the queue, all submissions held for Retry-After). Every state a job may
move to is listed in ``records.TRANSITIONS``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..client import errors
from ..i18n import N_
from . import failures, timing
from .ops import Context, Effects, Result, Runtime
from .records import ErrorInfo, JobRecord, JobState, move

if TYPE_CHECKING:
    from ..client.models import Job

log = logging.getLogger("hiptah")


def apply(
    record: JobRecord, rt: Runtime | None, result: Result, ctx: Context, fx: Effects
) -> str | None:
    """Apply one drained Result to its job (``rt``: the job's Runtime, None if it is no
    longer active). Returns the path of a downloaded file to delete, if any."""
    if rt is None or rt.token != result.token:
        if (
            result.finished_download
            and rt is not None
            and not rt.busy
            and record.state is JobState.DOWNLOADING
        ):
            # Completed before a pause could stop it: keep the file rather than
            # fetch it again after the pause.
            _guarded(apply_download, record, rt, result, ctx, fx)
            return None
        return apply_stale(record, result, ctx, fx)
    if result.op == "progress":
        apply_download_progress(record, result, fx)
        return None
    rt.token = 0
    step = _APPLY.get(result.op)
    if step is not None:
        _guarded(step, record, rt, result, ctx, fx)
    return None


def _guarded(
    step: Callable[[JobRecord, Runtime, Result, Context, Effects], None],
    record: JobRecord,
    rt: Runtime,
    result: Result,
    ctx: Context,
    fx: Effects,
) -> None:
    try:
        step(record, rt, result, ctx, fx)
    except Exception as exc:  # a bug here must not stop every other job
        log.exception("job %s: could not apply a %s result", record.local_id, result.op)
        if record.state.is_active:  # else it already ended (FAILED would be no legal move)
            fail(record, exc, ctx, fx)


def apply_submit(record: JobRecord, rt: Runtime, result: Result, ctx: Context, fx: Effects) -> None:
    now, wall, config = ctx.now, ctx.wall, ctx.config
    if result.error is None:
        response = result.value
        previous = record.state
        record.job_id = response.job_id
        fx.index[response.job_id] = record.local_id
        record.eta_seconds = response.estimated_time_seconds
        # Acceptance time: when the answer arrived, not when this tick noticed it.
        record.submitted_at = wall - max(0.0, now - result.at)
        record.deadline_at = record.submitted_at + config.job_deadline
        rt.t0 = result.at
        rt.deadline = result.at + config.job_deadline
        rt.errors = 0
        rt.last_error = None
        status = getattr(response.status, "value", str(response.status))
        record.server_status = status
        move(record, JobState.PROCESSING if status == "processing" else JobState.QUEUED)
        if status in ("completed", "failed"):
            rt.due = now  # an idempotent replay of a finished job: look at once
        else:
            rt.due = result.at + timing.first_poll_delay(
                response.estimated_time_seconds, ctx.policy
            )
        eta = (
            f", ETA {response.estimated_time_seconds:g} s"
            if response.estimated_time_seconds
            else ""
        )
        record.note(f"accepted as {response.job_id} ({status}{eta})", at=wall)
        fx.event("state", record, previous)
        log.info("job %s accepted as %s", record.local_id, response.job_id)
        return
    exc = result.error
    if isinstance(exc, errors.RateLimitError):
        # Server-side concurrency (or request rate) is full: back to the head of the
        # queue, and hold all submissions until the server's Retry-After.
        rt.errors += 1
        delay = timing.error_backoff(
            rt.errors, base=config.poll_interval, retry_after=exc.retry_after
        )
        fx.submit_pause_until = max(fx.submit_pause_until, now + delay)
        previous = record.state
        move(record, JobState.WAITING)
        fx.enqueue.append((rt.seq, record.local_id))
        record.note(f"rate limited by the server (429); waiting {delay:.0f} s", at=wall)
        fx.event("state", record, previous)
        log.info("job %s: 429 on submit, waiting %.1f s", record.local_id, delay)
        return
    if failures.is_transient(exc) and not isinstance(
        exc, (errors.UnexpectedResponseError, ValueError)
    ):
        rt.errors += 1
        rt.last_error = exc
        if now >= rt.deadline:
            fail(record, exc, ctx, fx, note="gave up sending after the job deadline")
            return
        delay = timing.error_backoff(
            rt.errors, base=config.poll_interval, retry_after=failures.retry_after(exc)
        )
        rt.due = min(now + delay, rt.deadline)
        if rt.errors == 1 or rt.errors % 5 == 0:
            record.note(
                f"could not send ({failures.kind(exc)}); retrying with the same key", at=wall
            )
            fx.dirty.add(record.local_id)
        log.info(
            "job %s: submit failed (%s), retry in %.1f s",
            record.local_id,
            failures.describe(exc),
            delay,
        )
        return
    if not isinstance(exc, errors.HiptahError):
        log.error(
            "job %s: unexpected error while sending: %s", record.local_id, failures.describe(exc)
        )
    fail(record, exc, ctx, fx)


def apply_poll(record: JobRecord, rt: Runtime, result: Result, ctx: Context, fx: Effects) -> None:
    now, wall, config = ctx.now, ctx.wall, ctx.config
    if result.error is not None:
        exc = result.error
        if isinstance(exc, errors.NotFoundError):
            fail(record, failures.job_gone(record, exc), ctx, fx)
            return
        if failures.is_transient(exc):
            rt.errors += 1
            rt.last_error = exc
            if now >= rt.deadline:
                timeout(record, ctx, fx, last_error=exc)
                return
            delay = max(
                timing.interval_at(elapsed(rt, result.at), ctx.policy),
                timing.error_backoff(
                    rt.errors, base=config.poll_interval, retry_after=failures.retry_after(exc)
                ),
            )
            rt.due = min(result.at + delay, rt.deadline)
            if rt.errors == 1:
                record.note(f"poll failed ({failures.kind(exc)}); retrying", at=wall)
                fx.dirty.add(record.local_id)
            log.info(
                "job %s: poll failed (%s), retry in %.1f s",
                record.local_id,
                failures.describe(exc),
                delay,
            )
            return
        fail(record, exc, ctx, fx)
        return

    job = result.value
    if rt.errors:
        record.note(f"poll succeeded again after {rt.errors} failure(s)", at=wall)
        rt.errors = 0
        rt.last_error = None
        fx.dirty.add(record.local_id)
    status = getattr(job.status, "value", str(job.status))
    previous = record.state
    progress_changed = job.progress is not None and job.progress != record.progress
    status_changed = status != record.server_status
    if job.progress is not None:
        record.progress = job.progress
    record.server_status = status
    if job.estimated_time_seconds is not None and record.eta_seconds is None:
        record.eta_seconds = job.estimated_time_seconds

    if status == "completed":
        record.completed_at = wall - max(0.0, now - result.at)
        record.model_url = job.model_url
        record.expires_at = job.expires_at.isoformat() if job.expires_at else None
        if config.auto_download:
            move(record, JobState.DOWNLOADING)
            record.progress = None  # from here on: the download's percent
            rt.job = job
            rt.refetch = not job.model_url
            rt.download_attempts = 0
            rt.due = now
            record.note("completed on the server; downloading", at=wall)
        else:
            move(record, JobState.DOWNLOADED)
            record.finished_at = wall
            fx.finished.append(record.local_id)
            record.note("completed on the server (automatic download is off)", at=wall)
        fx.event("state", record, previous)
        return
    if status == "failed":
        fail(record, _server_failure(job), ctx, fx)
        return
    if status == "queued":
        move(record, JobState.QUEUED)
    elif status == "processing":
        move(record, JobState.PROCESSING)
    # Any other status: still running, state unchanged.
    if now >= rt.deadline or result.at >= rt.deadline:
        timeout(record, ctx, fx)
        return
    if rt.poll_again:
        rt.poll_again = False
        rt.due = now
    else:
        rt.due = result.at + timing.next_poll_delay(
            elapsed(rt, result.at), ctx.policy, until_deadline=rt.deadline - result.at
        )
    if record.state is not previous:
        record.note(f"status {status}", at=wall)
        fx.event("state", record, previous)
    elif progress_changed or status_changed:
        fx.event("progress", record, previous)


def apply_download_progress(record: JobRecord, result: Result, fx: Effects) -> None:
    if record.state is JobState.DOWNLOADING and record.progress != result.value:
        record.progress = float(result.value)
        fx.event("progress", record, record.state)


def apply_download(
    record: JobRecord, rt: Runtime, result: Result, ctx: Context, fx: Effects
) -> None:
    now, wall, config = ctx.now, ctx.wall, ctx.config
    previous = record.state
    if result.error is None:
        job, path, size = result.value
        if path is None:  # the re-fetched job is not (or no longer) completed
            status = getattr(job.status, "value", str(job.status))
            if status == "failed":
                fail(record, _server_failure(job), ctx, fx)
            elif status == "completed":  # completed without a URL
                fail(
                    record,
                    errors.DownloadError("The server reported no model URL for this job."),
                    ctx,
                    fx,
                )
            else:
                move(record, JobState.PROCESSING)
                record.server_status = status
                rt.due = now
                record.note(f"server says {status}; polling again", at=wall)
                fx.event("state", record, previous)
            return
        record.model_url = job.model_url
        record.expires_at = job.expires_at.isoformat() if job.expires_at else record.expires_at
        record.file_path = os.fspath(path)
        record.file_size = size
        record.progress = 100.0
        move(record, JobState.DOWNLOADED)
        record.finished_at = wall
        fx.finished.append(record.local_id)
        record.note(f"downloaded {size_text(size)}", at=wall)
        fx.event("downloaded", record, previous)
        log.info("job %s downloaded (%s)", record.local_id, size_text(size))
        return
    exc = result.error
    if isinstance(exc, errors.NotFoundError) and rt.refetch:
        fail(record, failures.job_gone(record, exc), ctx, fx)
        return
    if (
        failures.is_transient(exc)
        and not isinstance(exc, errors.DownloadError)
        and (record.deadline_at is None or wall < record.deadline_at)
    ):
        # The API call for a fresh link failed (slow, 5xx, network): like a poll, that
        # is retried until the job's deadline and does not use up a download attempt.
        rt.download_attempts = max(0, rt.download_attempts - 1)
    if failures.download_retryable(exc) and rt.download_attempts <= config.download_retries:
        rt.errors += 1
        rt.refetch = True  # the URL may have expired meanwhile: ask for a fresh one
        delay = timing.error_backoff(
            rt.errors, base=config.poll_interval, retry_after=failures.retry_after(exc)
        )
        rt.due = now + delay
        record.note(f"download failed ({failures.kind(exc)}); retrying", at=wall)
        fx.dirty.add(record.local_id)
        return
    fail(record, exc, ctx, fx)


def apply_stale(record: JobRecord, result: Result, ctx: Context, fx: Effects) -> str | None:
    """A result for an operation the job no longer waits for (cancelled, retried).

    Returns the path of a downloaded file to delete (the user cancelled that download).
    """
    if result.op == "submit" and result.error is None and record.job_id is None:
        # Cancelled while the POST was under way: remember the server's job, so a
        # retry polls it instead of generating again.
        response = result.value
        record.job_id = response.job_id
        fx.index[response.job_id] = record.local_id
        record.note(
            f"the server had accepted it as job {response.job_id} (not polled)", at=ctx.wall
        )
        fx.dirty.add(record.local_id)
    elif result.op == "download" and result.error is None and record.state is JobState.CANCELLED:
        _job, path, _size = result.value
        if path and str(path) != record.file_path:
            return os.fspath(path)
    return None


def timeout(
    record: JobRecord, ctx: Context, fx: Effects, last_error: BaseException | None = None
) -> None:
    deadline = ctx.config.job_deadline
    if last_error is None:
        text = N_(f"Job {record.job_id} did not finish within {deadline:g} s.")
    else:  # one template per form; "{failures.describe(...)}" is translated in turn (catalog._NESTED)
        text = N_(f"Job {record.job_id} did not finish within {deadline:g} s. "
                  f"Last error: {failures.describe(last_error)}.")
    fail(record, errors.JobTimeoutError(text), ctx, fx)


def fail(
    record: JobRecord, exc: BaseException, ctx: Context, fx: Effects, note: str | None = None
) -> None:
    """The job ends FAILED (its runtime is dropped); the event says so."""
    previous = record.state
    fail_record(record, exc, ctx.wall, fx, note)
    fx.finished.append(record.local_id)
    fx.event("failed", record, previous)
    log.warning("job %s failed: %s", record.local_id, failures.describe(exc))


def fail_record(
    record: JobRecord, exc: BaseException, wall: float, fx: Effects, note: str | None = None
) -> None:
    """Only the record's half of ``fail`` (no event): used on resume as well."""
    record.error = ErrorInfo.from_exception(exc)
    move(record, JobState.FAILED)
    record.finished_at = wall
    record.note(note or f"failed: {record.error.kind}: {record.error.message}", at=wall)
    fx.dirty.add(record.local_id)


def elapsed(rt: Runtime, at: float) -> float:
    """Seconds since the server accepted the job (the poll schedule's origin)."""
    return 0.0 if rt.t0 is None else max(0.0, at - rt.t0)


def size_text(size: int | None) -> str:
    if size is None:
        return "?"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


def _server_failure(job: Job) -> errors.JobFailedError:
    error = job.error
    return errors.JobFailedError(
        server_message=error.message if error else None, code=error.code if error else None
    )


_APPLY: dict[str, Callable[[JobRecord, Runtime, Result, Context, Effects], None]] = {
    "submit": apply_submit,
    "poll": apply_poll,
    "download": apply_download,
}


__all__ = [
    "apply",
    "apply_download",
    "apply_download_progress",
    "apply_poll",
    "apply_stale",
    "apply_submit",
    "elapsed",
    "fail",
    "fail_record",
    "size_text",
    "timeout",
]
