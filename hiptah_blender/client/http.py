"""The HiPtah API client: session, auth, timeouts, retries, error mapping, polling, downloads.

Pure Python on top of ``requests`` and the pydantic models; no bpy. The shape
follows openai-python and stripe-python: one method per endpoint, one
exception type per cause (``errors.py``), automatic retries of what is safe to
retry, with exponential backoff and full jitter that honours ``Retry-After``.

Security rules kept here, in one place:
- the API key goes only to the base URL's origin (scheme + host + port): API
  calls never follow redirects on their own, model downloads decide per hop;
- TLS verification is always on (``ca_bundle`` or the environment may add CAs);
- the key is registered with ``errors.register_secret`` so no error text, repr
  or log line can contain it.
"""

from __future__ import annotations

import contextlib
import email.utils
import html
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
from pydantic import BaseModel, ValidationError

from . import download as _download
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DownloadError,
    HiptahError,
    InvalidImageError,
    InvalidPromptError,
    InvalidQualityError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    TLSError,
    UnexpectedResponseError,
    UnsupportedFormatError,
    error_for_status,
    is_retryable,
    redact,
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
from .validation import DEFAULT_BASE_URL, clean_api_key, clean_base_url, is_loopback_host

log = logging.getLogger(__name__)

# Retry policy (see docs/client.md).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0
CONNECT_TIMEOUT = 10.0
MAX_API_REDIRECTS = 5
# API answers are small JSON documents; anything bigger is not one.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# Polling schedule from the contract: every poll_interval, growing after 120 s.
POLL_BACKOFF_AFTER = 120.0
POLL_GROWTH = 1.5
POLL_CAP = 30.0
# Longest single sleep while a cancel callable must be watched.
CANCEL_CHECK_SECONDS = 0.25

CHECK_CONNECTION_JOB_ID = "hiptah-connection-check"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)

M = TypeVar("M", bound=BaseModel)
CancelSignal = Callable[[], bool] | threading.Event


# --- small pure helpers (unit-tested on their own) ---------------------------------


def backoff_delay(retry_number: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  rng: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**n)), n from 0."""
    return rng(0.0, min(cap, base * (2 ** min(retry_number, 32))))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _short_text(text: str, limit: int = 200) -> str | None:
    cleaned = " ".join(text.split())
    if not cleaned:
        return None
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def _html_text(body: str) -> str | None:
    title = _TITLE.search(body)
    if title and title.group(1).strip():
        return _short_text(html.unescape(_TAGS.sub(" ", title.group(1))))
    return _short_text(html.unescape(_TAGS.sub(" ", body)))


def _detail_text(detail: Any) -> str | None:
    if isinstance(detail, str):
        return _short_text(detail)
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc", "msg", ...}]
        parts = [str(item.get("msg")) if isinstance(item, dict) and item.get("msg") else str(item) for item in detail]
        return _short_text("; ".join(parts))
    if isinstance(detail, dict):
        return _short_text(str(detail.get("message") or detail.get("msg") or json.dumps(detail)))
    return None if detail is None else _short_text(str(detail))


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str | None, str | None]:
    """(server message, error code) from any error body: JSON of several shapes, HTML, text, nothing.

    Never raises: whatever the server sent, the user gets at most a short line.
    """
    try:
        # Redact before anything is shortened, so a cut can never leave part of a key.
        text = redact(body[:65536].decode("utf-8", errors="replace")).strip()
        if not text:
            return None, None
        if text[:1] in "{[" or "json" in content_type.lower():
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                data = None  # truncated or broken JSON: fall through to plain text
            if isinstance(data, dict):
                return _error_fields(data)
            if data is not None:
                return _short_text(json.dumps(data)), None
        if "html" in content_type.lower() or text[:1] == "<":
            return _html_text(text), None
        return _short_text(text), None
    except Exception:  # a body must never turn into a crash
        return None, None


def _error_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(message, code) from the shapes seen in the wild: {"error": {...}}, {"error": "..."},
    {"message"}, {"detail"} (FastAPI, also a list of validation errors), {"title"} (RFC 7807)."""
    error = data.get("error")
    nested = error if isinstance(error, dict) else {}
    code = nested.get("code", data.get("code"))
    message = (
        _detail_text(nested.get("message"))
        or (_detail_text(error) if isinstance(error, str) else None)
        or _detail_text(data.get("message"))
        or _detail_text(data.get("detail"))
        or _detail_text(data.get("title"))
    )
    code_text = _short_text(str(code), 80) if isinstance(code, str | int) and not isinstance(code, bool) else None
    return message, code_text


def _request_id(headers: Mapping[str, str]) -> str | None:
    value = headers.get("X-Request-Id") or headers.get("Request-Id")
    return _short_text(redact(value), 120) if value else None


def _refine_error_type(cls: type[HiptahError], code: str | None) -> type[HiptahError]:
    """A more precise subtype from the server's error code, when it gives one."""
    lowered = (code or "").lower()
    if cls is InvalidPromptError and "image" in lowered:
        return InvalidImageError
    if cls is UnsupportedFormatError and "quality" in lowered:
        return InvalidQualityError
    return cls


def _is_cancelled(cancel: CancelSignal | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class HiptahClient:
    """Talks to one HiPtah API base URL with one API key.

    Thread-safe: every thread gets its own ``requests.Session`` unless a
    ``session`` is given (then the caller owns it and its thread-safety).
    """

    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    retry_after_cap: float = RETRY_AFTER_CAP

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

    # --- sessions -----------------------------------------------------------------

    def _thread_session(self, kind: str) -> requests.Session:
        session: requests.Session | None = getattr(self._local, kind, None)
        if session is None:
            session = requests.Session()
            setattr(self._local, kind, session)
            with self._lock:
                self._sessions.append(session)
        return session

    def _api_session(self) -> requests.Session:
        return self._given_session or self._thread_session("api")

    def _cdn_session(self) -> requests.Session:
        # Always a plain session of our own: a caller's session may carry auth or
        # default headers that must never reach a CDN.
        return self._thread_session("cdn")

    def close(self) -> None:
        """Close the sessions this client opened (not a session passed in)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __enter__(self) -> HiptahClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- transport settings ---------------------------------------------------------

    @property
    def verify(self) -> bool | str:
        """What requests verifies TLS against: never False.

        An explicit ``ca_bundle`` wins; otherwise requests itself honours
        REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (trust_env), and we add SSL_CERT_FILE,
        which requests ignores (it ships certifi's bundle) but OpenSSL users expect.
        """
        if self.ca_bundle:
            return self.ca_bundle
        if not (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")):
            cert_file = os.environ.get("SSL_CERT_FILE")
            if cert_file and os.path.isfile(cert_file):
                return cert_file
        return True

    @staticmethod
    def _proxies_for(url: str) -> dict[str, Any] | None:
        """Loopback traffic never goes through a proxy, even without NO_PROXY.

        requests honours HTTP(S)_PROXY/NO_PROXY itself; on Linux a proxy set
        without NO_PROXY would otherwise receive sandbox (127.0.0.1) traffic.
        None values remove the environment's proxies for this one request.
        """
        if is_loopback_host(urlsplit(url).hostname):
            return {"http": None, "https": None, "all": None}
        return None

    def _auth_headers_for(self, url: str) -> dict[str, str]:
        if _download.origin(url) == self._origin:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    def _url(self, path: str) -> str:
        return self.base_url + path

    # --- requests with retries --------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
    ) -> tuple[requests.Response, bytes]:
        """Send one API call, retrying what is safe to retry; return a 2xx response and its body.

        ``deadline`` (absolute ``clock()`` value) bounds the retries: a retry whose
        wait would end after it is not made and the last error is raised now.
        """
        retries = self.max_retries if max_retries is None else max_retries
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        send_headers = {"Accept": "application/json", "User-Agent": self.user_agent, **(headers or {})}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                return self._send_once(method, self._url(path), data, send_headers)
            except HiptahError as exc:
                if not is_retryable(exc) or attempt >= retries:
                    raise
                delay = self._retry_delay(exc, attempt)
                if deadline is not None and self._clock() + delay > deadline:
                    log.debug("%s %s: not retrying, the deadline comes first", method, path)
                    raise
                attempt += 1
                log.info("%s %s failed (%s); retry %d/%d in %.2f s", method, path, exc.kind, attempt, retries, delay)
                self._sleep(delay)

    def _retry_delay(self, exc: HiptahError, attempt: int) -> float:
        if exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_cap)
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap)

    def _send_once(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[requests.Response, bytes]:
        """One request (plus same-origin redirects); errors mapped to HiptahError types."""
        for _hop in range(MAX_API_REDIRECTS + 1):
            response, body = self._transport(method, url, data, {**headers, **self._auth_headers_for(url)})
            status = response.status_code
            if 200 <= status < 300:
                return response, body
            if status in (301, 302, 303, 307, 308):
                url, method, data = self._redirect_target(response, url, method, data)
                continue
            raise self._status_error(response, body)
        raise UnexpectedResponseError(f"The server redirected more than {MAX_API_REDIRECTS} times.")

    def _redirect_target(
        self, response: requests.Response, url: str, method: str, data: bytes | None
    ) -> tuple[str, str, bytes | None]:
        location = response.headers.get("Location")
        request_id = _request_id(response.headers)
        if not location:
            raise UnexpectedResponseError(
                f"The server answered {response.status_code} without a Location.",
                status=response.status_code, request_id=request_id,
            )
        try:
            target = urljoin(url, location)
            target_origin = _download.origin(target)
        except ValueError:  # "https://[" or a port out of range
            raise UnexpectedResponseError(
                f"The server redirected to an invalid address ({location[:80]!r}).",
                status=response.status_code, request_id=request_id,
            ) from None
        if target_origin != self._origin:
            # Following would hand the API key to another host; refuse instead.
            raise UnexpectedResponseError(
                f"The server redirected the request to {urlsplit(target).hostname or 'another address'}, "
                "which is not the configured API host; the API key is not sent there.",
                status=response.status_code, request_id=request_id,
                hint="Check the base URL in the preferences (maybe the service moved to a new address).",
            )
        if response.status_code in (307, 308):
            return target, method, data  # method and body must be kept
        if method != "GET":
            # 301/302/303 would turn a POST into a GET and lose the request.
            raise UnexpectedResponseError(
                f"The server answered {method} with a {response.status_code} redirect.",
                status=response.status_code, request_id=request_id,
            )
        return target, method, data

    def _transport(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[requests.Response, bytes]:
        host = urlsplit(url).hostname
        try:
            response = self._api_session().request(
                method,
                url,
                data=data,
                headers=dict(headers),
                timeout=self.timeout,
                allow_redirects=False,
                verify=self.verify,
                proxies=self._proxies_for(url),
                stream=True,
            )
            with response:
                body = self._read_body(response)
        except requests.exceptions.SSLError as exc:
            raise TLSError(
                f"The TLS certificate of {host} could not be verified ({_ssl_reason(exc)}). "
                "The connection was refused to protect your API key."
            ) from None
        except requests.exceptions.ProxyError as exc:
            raise APIConnectionError(
                f"The proxy refused or failed the connection to {host} ({type(exc).__name__})."
            ) from None
        except requests.exceptions.Timeout as exc:
            phase = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "answer"
            raise APITimeoutError(f"{host} did not {phase} in time.") from None
        except requests.exceptions.RequestException as exc:
            raise APIConnectionError(f"Could not reach {host} ({type(exc).__name__}).") from None
        except ValueError as exc:
            # requests parses a redirect's Location even when not following it; a
            # malformed one ("https://[") raises a bare ValueError.
            raise UnexpectedResponseError(f"{host} sent an answer that cannot be parsed ({exc}).") from None
        log.debug("%s %s -> %d", method, urlsplit(url).path, response.status_code)
        return response, body

    @staticmethod
    def _read_body(response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise UnexpectedResponseError(
                    f"The server's answer is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MB; it is not an API response.",
                    status=response.status_code, request_id=_request_id(response.headers),
                )
            chunks.append(chunk)
        # urllib3 2 enforces Content-Length itself; Blender's bundled urllib3 1.26 does
        # not, so a cut answer is caught here (and retried as a connection error).
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if declared.isdigit() and encoding in ("", "identity") and size != int(declared):
            raise APIConnectionError(f"The server's answer was cut short ({size} of {declared} bytes).")
        return b"".join(chunks)

    def _status_error(self, response: requests.Response, body: bytes) -> HiptahError:
        status = response.status_code
        server_message, code = parse_error_body(body, response.headers.get("Content-Type", ""))
        cls = _refine_error_type(error_for_status(status), code)
        if cls is APIStatusError:
            message = f"The HiPtah server answered with the unexpected status {status}."
        elif status >= 500:
            message = f"The HiPtah server had an error ({status})."
        else:
            message = None  # the type's own sentence says it best
        return cls(
            message,
            status=status,
            server_message=server_message,
            code=code,
            request_id=_request_id(response.headers),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    @staticmethod
    def _parse(response: requests.Response, body: bytes, model: type[M], **defaults: Any) -> M:
        """A 2xx body as ``model``; anything else is UnexpectedResponseError, never a crash."""
        request_id = _request_id(response.headers)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            preview = parse_error_body(body, response.headers.get("Content-Type", ""))[0]
            raise UnexpectedResponseError(
                "The server's answer is not JSON" + (f" (it starts: {preview[:80]})" if preview else "") + ".",
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
        return f"Connected to {host}: the API key was accepted."


# --- module helpers ------------------------------------------------------------------


def _quote_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id.strip():
        raise NotFoundError("No job id was given.")
    # "." and ".." are path segments a proxy may collapse (requests un-escapes %2E),
    # so they cannot be sent; every other id is one quoted segment.
    if job_id.strip() in (".", ".."):
        raise NotFoundError(f"{job_id!r} is not a job id.")
    return quote(job_id, safe="")


def _ssl_reason(exc: requests.exceptions.SSLError) -> str:
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname mismatch",
                   "self-signed certificate", "self signed certificate", "certificate has expired",
                   "unable to get local issuer certificate", "WRONG_VERSION_NUMBER", "wrong version number"):
        if marker.lower() in text.lower():
            match = re.search(r"certificate verify failed: ([^(\"')]+)", text)
            return redact(match.group(1).strip() if match else marker)
    return "TLS handshake failed"


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
