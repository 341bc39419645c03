"""The HiPtah API client: ``HiptahClient``, one method per endpoint, polling, downloads.

Pure Python on top of ``requests`` and the pydantic models; no bpy. The shape
follows openai-python and stripe-python: one method per endpoint, one
exception type per cause (``errors.py``), automatic retries of what is safe to
retry, with exponential backoff and full jitter that honours ``Retry-After``.

The parts live next to it: ``transport.py`` (how a call travels: sessions, TLS,
proxies, per-origin credentials, redirects, retries), ``retry.py`` (backoff and
Retry-After), ``error_responses.py`` (error bodies and status mapping),
``download.py`` (model downloads). The API key is registered with
``errors.register_secret`` so no error text, repr or log line can contain it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ValidationError

from ..i18n import N_
from . import download as _download
from .error_responses import _request_id, parse_error_body
from .errors import (
    DownloadError,
    HiptahError,
    InvalidPromptError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    UnexpectedResponseError,
    is_retryable,
    register_secret,
)
from .models import (
    GenerateRequest,
    GenerateResponse,
    Job,
    JobStatus,
    WebhookRegistration,
    WebhookRequest,
)
from .retry import backoff_delay, parse_retry_after
from .transport import ApiTransport
from .validation import DEFAULT_BASE_URL, clean_api_key, clean_base_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0

# Polling schedule from the contract: every poll_interval, growing after 120 s.
POLL_BACKOFF_AFTER = 120.0
POLL_GROWTH = 1.5
POLL_CAP = 30.0
# Longest single sleep while a cancel callable must be watched.
CANCEL_CHECK_SECONDS = 0.25

CHECK_CONNECTION_JOB_ID = "hiptah-connection-check"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

M = TypeVar("M", bound=BaseModel)
CancelSignal = Callable[[], bool] | threading.Event


def _is_cancelled(cancel: CancelSignal | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class HiptahClient(ApiTransport):
    """Talks to one HiPtah API base URL with one API key.

    Thread-safe: every thread gets its own ``requests.Session`` unless a
    ``session`` is given (then the caller owns it and its thread-safety).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | tuple[float, float] = 30.0,
        max_retries: int = 4,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        user_agent: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key = clean_api_key(api_key)
        register_secret(key)
        self._api_key = key
        self.base_url = clean_base_url(base_url)
        self._origin = _download.origin(self.base_url)
        if isinstance(timeout, tuple):
            self.timeout: tuple[float, float] = (float(timeout[0]), float(timeout[1]))
        else:
            self.timeout = (min(CONNECT_TIMEOUT, float(timeout)), float(timeout))
        self.max_retries = max(0, int(max_retries))
        self._given_session = session
        self.ca_bundle = ca_bundle
        self.user_agent = user_agent or f"hiptah-blender python-requests/{requests.__version__}"
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HiptahClient(base_url={self.base_url!r}, api_key={self.masked_key!r})"

    @property
    def masked_key(self) -> str:
        """The key as it may be shown: its last 4 characters only."""
        return "***" + self._api_key[-4:] if len(self._api_key) >= 12 else "***"

    def __enter__(self) -> HiptahClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- answers -----------------------------------------------------------------------

    @staticmethod
    def _parse(response: requests.Response, body: bytes, model: type[M], **defaults: Any) -> M:
        """A 2xx body as ``model``; anything else is UnexpectedResponseError, never a crash."""
        request_id = _request_id(response.headers)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            preview = parse_error_body(body, response.headers.get("Content-Type", ""))[0]
            raise UnexpectedResponseError(
                f"The server's answer is not JSON (it starts: {preview[:80]})." if preview
                else "The server's answer is not JSON.",
                status=response.status_code, request_id=request_id,
            ) from None
        if not isinstance(data, dict):
            raise UnexpectedResponseError(
                f"The server answered with a JSON {type(data).__name__}, not an object.",
                status=response.status_code, request_id=request_id,
            )
        for name, value in defaults.items():
            data.setdefault(name, value)
        try:
            parsed = model.model_validate(data)
        except (ValidationError, RecursionError, TypeError, OverflowError) as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()}) \
                if isinstance(exc, ValidationError) else ["body"]
            raise UnexpectedResponseError(
                f"The server's answer lacks or garbles the field(s): {', '.join(fields[:5])}.",
                status=response.status_code, request_id=request_id,
            ) from None
        except HiptahError as exc:  # a validator may raise our own types
            raise UnexpectedResponseError(
                f"The server's answer is not valid: {exc.message}", status=response.status_code, request_id=request_id
            ) from None
        job_id = getattr(parsed, "job_id", None)
        if job_id is not None and not str(job_id).strip():
            raise UnexpectedResponseError(
                "The server's answer has an empty job_id.", status=response.status_code, request_id=request_id
            )
        if job_id is not None and str(job_id).strip() in (".", ".."):
            # Not a path segment that can be sent back (see _quote_id): say so now, instead
            # of a misleading "job not found" at the first poll.
            raise UnexpectedResponseError(
                f"The server's answer has the unusable job_id {str(job_id).strip()!r}.",
                status=response.status_code, request_id=request_id,
            )
        return parsed

    # --- endpoints ---------------------------------------------------------------------

    def generate(
        self,
        request: GenerateRequest | Mapping[str, Any],
        idempotency_key: str | None = None,
        *,
        deadline: float | None = None,
    ) -> GenerateResponse:
        """POST /generate. Retried (429/5xx/network) with the same Idempotency-Key, so at most one job is made."""
        if not isinstance(request, GenerateRequest):
            try:
                request = GenerateRequest.model_validate(dict(request))
            except ValidationError as exc:
                raise InvalidPromptError(f"The generation request is not valid: {_validation_summary(exc)}.") from None
        key = idempotency_key or str(uuid.uuid4())
        if not _IDEMPOTENCY_KEY.match(key):
            raise ValueError("idempotency_key must be 1-255 visible ASCII characters")
        response, body = self._request(
            "POST", "/generate", body=request.to_json(), headers={"Idempotency-Key": key}, deadline=deadline
        )
        return self._parse(response, body, GenerateResponse)

    def get_job(self, job_id: str, *, deadline: float | None = None) -> Job:
        """GET /job/{job_id}."""
        response, body = self._request("GET", f"/job/{_quote_id(job_id)}", deadline=deadline)
        # job_id is [seed] in this answer, but the one we asked for is as good.
        return self._parse(response, body, Job, job_id=job_id)

    def wait(
        self,
        job_id: str,
        *,
        poll_interval: float = 2.0,
        deadline: float = 600.0,
        eta: float | None = None,
        on_update: Callable[[Job], None] | None = None,
        cancel: CancelSignal | None = None,
    ) -> Job:
        """Poll a job until it completes; return it.

        ``deadline`` is seconds from now (not a clock value). The first poll is at
        ``eta`` (the job's estimated_time_seconds) when given, else at once; then
        every ``poll_interval``, growing x1.5 up to 30 s after 120 s. Network
        errors, 429 and 5xx do not end the wait: polling continues with backoff
        until the deadline. Never submits a new job.

        Raises JobFailedError, JobTimeoutError, JobCancelledError, or the
        non-retryable error that ended it (401, 404, ...).
        """
        start = self._clock()
        end = start + max(0.0, deadline)
        interval = max(0.05, poll_interval)
        next_poll = min(start + max(0.0, eta or 0.0), end)
        failures = 0
        answers = 0
        last_job: Job | None = None
        last_error: HiptahError | None = None
        while True:
            self._pause_until(next_poll, cancel)
            try:
                job = self.get_job(job_id, deadline=end)
            except HiptahError as exc:
                if not is_retryable(exc):
                    raise
                failures += 1
                last_error = exc
                # Never faster than the normal schedule; get_job already retried inside.
                delay = max(interval, self._retry_delay(exc, failures - 1))
                log.info("polling %s failed (%s, %d in a row); trying again in %.1f s", job_id, exc.kind, failures, delay)
            else:
                failures = 0
                answers += 1
                last_job = job
                if on_update is not None:
                    on_update(job)
                if job.status is JobStatus.COMPLETED:
                    return job
                if job.status is JobStatus.FAILED:
                    raise _job_failed(job)
                if answers == 1 and eta is None and job.estimated_time_seconds:
                    # No ETA was passed: the first answer's estimate sets the next poll.
                    delay = max(interval, job.estimated_time_seconds - (self._clock() - start))
                else:
                    if self._clock() - start >= POLL_BACKOFF_AFTER:
                        interval = min(POLL_CAP, interval * POLL_GROWTH)
                    delay = interval
            now = self._clock()
            if now >= end:
                raise _job_timeout(job_id, deadline, last_job, last_error)
            next_poll = min(now + delay, end)

    def _pause_until(self, when: float, cancel: CancelSignal | None) -> None:
        """Sleep until ``when`` (a clock value), raising JobCancelledError as soon as cancel is seen."""
        while True:
            if _is_cancelled(cancel):
                raise JobCancelledError("Waiting for the job was cancelled.")
            remaining = when - self._clock()
            if remaining <= 0:
                return
            if isinstance(cancel, threading.Event) and self._sleep is time.sleep:
                cancel.wait(remaining)  # wakes up at once when set
            elif cancel is not None:
                self._sleep(min(remaining, CANCEL_CHECK_SECONDS))
            else:
                self._sleep(remaining)

    def download(
        self,
        job: Job,
        dest_dir: str | os.PathLike[str],
        *,
        on_progress: Callable[[int, int | None], None] | None = None,
        max_bytes: int = _download.DEFAULT_MAX_BYTES,
        filename: str | None = None,
    ) -> Path:
        """Stream a completed job's model into ``dest_dir``; return the file's path.

        Checked (size cap, Content-Length, magic bytes, structure) and renamed into
        place only when complete. An expired link (403/404/410) is refreshed once
        with GET /job. The API key is sent only to the API's own origin.
        """
        fmt = _download.pick_format(job.format, job.model_url)
        name = filename if filename is not None else f"{_download.safe_filename(job.job_id)}.{fmt}"
        dest = _download.prepare_dest(dest_dir, name)
        current = job
        if not current.model_url:
            current = self.get_job(job.job_id)
        refreshed = current is not job
        while True:
            if not current.model_url:
                raise DownloadError(
                    f"The server gave no model URL for job {job.job_id} (status {current.status.value})."
                )
            try:
                return _download.fetch_to_file(
                    self._cdn_session(),
                    current.model_url,
                    dest,
                    fmt=fmt,
                    auth_headers_for=self._auth_headers_for,
                    proxies_for=self._proxies_for,
                    timeout=self.timeout,
                    verify=self.verify,
                    max_bytes=max_bytes,
                    on_progress=on_progress,
                    user_agent=self.user_agent,
                )
            except DownloadError as exc:
                if refreshed or exc.status not in _download.EXPIRED_STATUSES:
                    raise
                log.info("model link of %s refused (%s); fetching a fresh one", job.job_id, exc.status)
                current = self.get_job(job.job_id)
                refreshed = True

    def register_webhook(self, url: str, events: list[str] | None = None) -> WebhookRegistration:
        """POST /webhooks. Carries an Idempotency-Key so a retried call registers once."""
        try:
            request = WebhookRequest(url=url) if events is None else WebhookRequest(url=url, events=list(events))
        except ValidationError as exc:
            raise InvalidPromptError(f"The webhook registration is not valid: {_validation_summary(exc)}.") from None
        response, body = self._request(
            "POST", "/webhooks", body=request.model_dump(), headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        registration = self._parse(response, body, WebhookRegistration)
        if registration.secret:
            register_secret(registration.secret)
        return registration

    def check_connection(self) -> str:
        """For "Test connection": GET a job that does not exist. 404 means the key works.

        Raises AuthenticationError (401), TLSError, APIConnectionError, ... otherwise.
        """
        host = urlsplit(self.base_url).netloc
        deadline = self._clock() + 20.0
        with contextlib.suppress(NotFoundError):
            self._request("GET", f"/job/{CHECK_CONNECTION_JOB_ID}", deadline=deadline, max_retries=1)
        return N_(f"Connected to {host}: the API key was accepted.")


# --- module helpers ------------------------------------------------------------------


def _quote_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id.strip():
        raise NotFoundError("No job id was given.")
    # "." and ".." are path segments a proxy may collapse (requests un-escapes %2E),
    # so they cannot be sent; every other id is one quoted segment.
    if job_id.strip() in (".", ".."):
        raise NotFoundError(f"{job_id!r} is not a job id.")
    return quote(job_id, safe="")


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()[:3])


def _job_failed(job: Job) -> JobFailedError:
    server_message = job.error.message if job.error else None
    return JobFailedError(
        f"Job {job.job_id} failed on the server.",
        server_message=server_message,
        code=job.error.code if job.error else None,
    )


def _job_timeout(job_id: str, deadline: float, last_job: Job | None, last_error: HiptahError | None) -> JobTimeoutError:
    state = f"last status: {last_job.status.value}" if last_job else "no answer yet"
    if last_error is not None:
        state += f"; last error: {last_error.message}"
    return JobTimeoutError(
        f"Job {job_id} did not finish within {deadline:.0f} s ({state}).",
        retry_after=last_error.retry_after if last_error else None,
    )


__all__ = ["HiptahClient", "backoff_delay", "parse_error_body", "parse_retry_after"]
