"""The record's half of what the user and the process do to a job: send it (and
build each operation for a worker), cancel, retry, resume after a restart, a
webhook's "finished", the import.

Pure like ``transitions``: each function changes one record (and its Runtime) and
writes what else it changed into an Effects; the scheduler owns the queues and
indexes and replays those effects. The scheduler's public methods keep the lock,
the guards and the Runtime bookkeeping.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from ..client import errors
from . import failures
from .ops import Context, Effects, Operation, Runtime, SchedulerConfig, SubmitSpec
from .records import JobRecord, JobState, move
from .transitions import fail_record

log = logging.getLogger("hiptah")


def start_submit(record: JobRecord, rt: Runtime, ctx: Context, fx: Effects) -> None:
    """A waiting job leaves the queue: its deadline starts now."""
    previous = record.state
    move(record, JobState.SUBMITTING)
    rt.deadline = ctx.now + ctx.config.job_deadline
    record.deadline_at = ctx.wall + ctx.config.job_deadline
    record.note("submitting", at=ctx.wall)
    fx.event("state", record, previous)


def cancel(record: JobRecord, wall: float, fx: Effects) -> None:
    """Stop an active job locally (its runtime is already dropped)."""
    previous = record.state
    move(record, JobState.CANCELLED)
    record.finished_at = wall
    if previous is JobState.WAITING:
        record.note("cancelled before it was sent; nothing was charged", at=wall)
    elif previous is JobState.DOWNLOADING:
        record.note("cancelled during the download; retry downloads it again", at=wall)
    else:
        target = f"job {record.job_id}" if record.job_id else "the job (if the server accepted it)"
        record.note(f"cancelled locally; the server may still finish and charge {target}", at=wall)
    fx.event("state", record, previous)
    log.info("job %s cancelled (was %s)", record.local_id, previous.value)


def retry(record: JobRecord, rt: Runtime, ctx: Context, fx: Effects) -> None:
    """Make a FAILED or CANCELLED job active again with the fresh ``rt``, never
    generating twice: poll (or download again) the server job it has, else queue it
    again under the same idempotency key (a new one only after a definitive refusal)."""
    now, wall, config = ctx.now, ctx.wall, ctx.config
    previous = record.state
    old_error = record.error
    record.error = None
    record.finished_at = None
    if record.job_id:
        rt.deadline = now + config.job_deadline
        record.deadline_at = wall + config.job_deadline
        rt.t0 = now - max(0.0, wall - (record.submitted_at or wall))
        if record.completed_at is not None or record.model_url:
            move(record, JobState.DOWNLOADING)
            rt.refetch = True
            record.progress = None
            record.note(
                f"retry: downloading job {record.job_id} again (no new generation)", at=wall
            )
        else:
            move(
                record,
                JobState.PROCESSING if record.server_status == "processing" else JobState.QUEUED,
            )
            record.note(f"retry: polling job {record.job_id} again (no new generation)", at=wall)
    else:
        if failures.refused_outright(old_error):
            # The server refused the request outright, so no job exists under the
            # old key; a new key keeps the server from replaying the cached refusal.
            record.idempotency_key = str(uuid.uuid4())
            record.note(
                "retry: queued again with a new idempotency key (the last attempt was refused)",
                at=wall,
            )
        else:
            record.note("retry: queued again with the same idempotency key", at=wall)
        move(record, JobState.WAITING)
        fx.enqueue.append((rt.seq, record.local_id))
    fx.event("state", record, previous)
    log.info("job %s retried (%s -> %s)", record.local_id, previous.value, record.state.value)


def resume(record: JobRecord, seqs: Iterator[int], ctx: Context, fx: Effects) -> Runtime | None:
    """After a restart: the Runtime of a stored active job (None if it stays as it is,
    or fails because it cannot go on). Waiting jobs go back to the queue."""
    now, wall = ctx.now, ctx.wall
    state = record.state
    if not state.is_active:
        return None
    if state in (JobState.QUEUED, JobState.PROCESSING, JobState.DOWNLOADING) and not record.job_id:
        if state is JobState.DOWNLOADING:
            fail_record(
                record, errors.UnexpectedResponseError("The stored job has no server id."), wall, fx
            )
            return None
        move(record, JobState.SUBMITTING)  # accepted state without an id: ask again
        state = record.state
    rt = Runtime(seq=next(seqs), due=now)
    if state is JobState.WAITING:
        fx.enqueue.append((rt.seq, record.local_id))
        return rt
    remaining = (record.deadline_at - wall) if record.deadline_at else ctx.config.job_deadline
    rt.deadline = now + remaining
    if record.submitted_at is not None:
        rt.t0 = now - max(0.0, wall - record.submitted_at)
    if state is JobState.SUBMITTING:
        what = "resumed after restart: sending again with the same idempotency key"
    elif state is JobState.DOWNLOADING:
        rt.refetch = True
        what = "resumed after restart: downloading again"
    else:
        what = "resumed after restart: polling"
    record.note(what, at=wall)
    fx.dirty.add(record.local_id)
    log.info("job %s %s", record.local_id, what)
    return rt


def mark_imported(record: JobRecord, object_names: list[str], wall: float, fx: Effects) -> None:
    """The Blender layer imported the downloaded model (again, for IMPORTED)."""
    if record.state not in (JobState.DOWNLOADED, JobState.IMPORTED):
        raise ValueError(f"Job {record.local_id} is {record.state.value}, not downloaded.")
    previous = record.state
    move(record, JobState.IMPORTED)
    record.meta["imported_objects"] = list(object_names)
    shown = ", ".join(object_names[:3]) + (" …" if len(object_names) > 3 else "")
    record.note(f"imported ({shown})" if object_names else "imported", at=wall)
    fx.event("state", record, previous)


def webhook(record: JobRecord, rt: Runtime, now: float, wall: float) -> bool:
    """A webhook said the job finished: poll it now (or right after the poll under way).
    True if the record changed."""
    if record.state not in (JobState.QUEUED, JobState.PROCESSING, JobState.SUBMITTING):
        return False
    if rt.busy:
        rt.poll_again = True
    else:
        rt.due = min(rt.due, now)
    record.note("webhook: job finished on the server", at=wall)
    return True


def submit_op(record: JobRecord, rt: Runtime, token: int, config: SchedulerConfig) -> Operation:
    """The (re-)send of a job, under its idempotency key; the worker never sees the record."""
    rt.token = token
    spec = SubmitSpec(
        prompt=record.prompt,
        format=record.format,
        quality=record.quality,
        image_path=record.image_path,
        callback_url=record.callback_url,
        idempotency_key=record.idempotency_key,
    )
    return Operation("submit", record.local_id, token, (spec, config.request_timeout))


def poll_op(
    record: JobRecord, rt: Runtime, token: int, now: float, config: SchedulerConfig
) -> Operation:
    rt.token = token
    record.polls += 1
    budget = max(1.0, min(config.request_timeout, rt.deadline - now + config.poll_interval))
    return Operation("poll", record.local_id, token, (record.job_id or "", budget))


def download_op(record: JobRecord, rt: Runtime, token: int, config: SchedulerConfig) -> Operation:
    """A download; with ``rt.refetch`` the worker first asks for the job (a fresh link)."""
    rt.token = token
    rt.download_attempts += 1
    job = None if rt.refetch else rt.job
    return Operation(
        "download",
        record.local_id,
        token,
        (record.job_id or "", job, config.download_dir, config.request_timeout),
    )


__all__ = [
    "cancel",
    "download_op",
    "mark_imported",
    "poll_op",
    "resume",
    "retry",
    "start_submit",
    "submit_op",
    "webhook",
]
