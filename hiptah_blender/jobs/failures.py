"""How the scheduler classifies a failed operation: pure functions of the exception.

The error types and the statuses they stand for are defined once, in
``client/errors.py`` (``RETRY_STATUSES``, ``DEFINITIVE_REJECTIONS``, ``is_retryable``);
this module only adds the job-level view: what is worth another try later without
the user, what deserves another download attempt, and how to name an error in the
job's timeline.

Two backoff formulas exist on purpose: ``client/retry.py:backoff_delay`` spaces the
client's quick retries inside one request (full jitter, Retry-After capped at 60 s);
``jobs/timing.py:error_backoff`` spaces the scheduler's retries of a job's next
operation, which may wait as long as the server asks (up to 300 s) within the job's
deadline.
"""

from __future__ import annotations

from ..client import errors
from .records import ErrorInfo, JobRecord


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later without the user: network, 5xx, 429, garbled answers."""
    if isinstance(exc, errors.HiptahError):
        return errors.is_retryable(exc) or isinstance(exc, errors.UnexpectedResponseError)
    # Not one of ours (a bug or an unexpected library error): retried until the
    # deadline for polls and downloads, which bounds it.
    return isinstance(exc, (OSError, ValueError))


def download_retryable(exc: BaseException) -> bool:
    """Worth another automatic download attempt (with a fresh link)?

    The client reports every CDN problem as DownloadError: connection refused or cut,
    timeouts, truncated or corrupt bodies, a link refused twice. Those are the CDN's
    hiccups, so they get ``download_retries`` more attempts; a full or unwritable disk
    (StorageError) needs the user and fails at once (retryable by hand).
    """
    if isinstance(exc, errors.StorageError):
        return False
    return is_transient(exc) or isinstance(exc, errors.DownloadError)


def refused_outright(error: ErrorInfo | None) -> bool:
    """The last attempt was refused (400/401/403/422): the server created no job."""
    return error is not None and error.status in errors.DEFINITIVE_REJECTIONS


def job_gone(record: JobRecord, exc: errors.NotFoundError) -> errors.NotFoundError:
    """A 404 for a job the server had accepted: it was forgotten (restart, expiry).
    The error type's hint says why and what to do, so the message only says what."""
    return errors.NotFoundError(
        f"The server no longer knows job {record.job_id}.",
        status=exc.status,
        request_id=exc.request_id,
    )


def retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, (int, float)) else None


def kind(exc: BaseException) -> str:
    return exc.kind if isinstance(exc, errors.HiptahError) else type(exc).__name__


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return errors.redact(f"{kind(exc)}: {exc}")


__all__ = [
    "describe",
    "download_retryable",
    "is_transient",
    "job_gone",
    "kind",
    "refused_outright",
    "retry_after",
]
