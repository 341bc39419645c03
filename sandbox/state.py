"""Everything the sandbox remembers: accounts, jobs, idempotency keys, URLs, logs.

All of it sits behind one lock: request handlers (event loop thread), the ticker
thread and admin calls all go through :class:`SandboxState`, whose methods hold
the lock only briefly and never across an ``await``.
Job status is computed from the clock (queued -> processing -> completed/failed)
by :meth:`SandboxState.advance`, which the ticker calls every 50 ms, so
webhooks fire on time even when nobody polls.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import PLANS, REALISTIC_LATENCY, SandboxConfig
from .faults import FaultInjector
from .webhooks_out import WebhookSender, new_secret

IDEMPOTENCY_TTL = 24 * 3600.0
STATE_FILE_VERSION = 1
LOG_LIMIT = 5000
EVENTS = ("job.completed", "job.failed")


class ApiError(Exception):
    """An error answer: status, machine code, human message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_hint(key: str) -> str:
    # Enough to tell keys apart in the admin state without printing them whole.
    return key[:6] + "..." + key[-4:] if len(key) > 12 else key[:2] + "..."


@dataclass
class Account:
    key: str
    plan: str
    quota: int
    concurrency: int
    used: int
    signing_secret: str  # signs deliveries to a job's callback_url

    def public(self) -> dict[str, Any]:
        return {
            "key_hint": key_hint(self.key),
            "plan": self.plan,
            "quota": self.quota,
            "concurrency": self.concurrency,
            "used": self.used,
            "signing_secret": self.signing_secret,
        }


@dataclass
class Webhook:
    webhook_id: str
    owner: str
    url: str
    events: list[str]
    secret: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "owner": key_hint(self.owner),
            "url": self.url,
            "events": self.events,
            "secret": self.secret,
            "created_at": iso(self.created_at),
        }


@dataclass
class Job:
    job_id: str
    owner: str
    prompt: str
    format: str
    quality: str
    image_sha256: str | None
    callback_url: str | None
    idempotency_key: str | None
    created_at: float  # wall clock
    created_mono: float
    latency: float
    will_fail: bool
    model: concurrent.futures.Future[bytes] | None  # None for a blob job
    blob_size: int | None = None
    status: str = "queued"
    forced: str | None = None  # "complete" | "fail" from the admin endpoints
    forced_error: dict[str, str] | None = None
    completed_at: float | None = None
    error: dict[str, str] | None = None
    polls: int = 0
    token: str | None = None
    token_expires: float | None = None
    source: str = "api"
    image: bytes | None = field(default=None, repr=False)  # to make the model again after a restart

    @property
    def queued_for(self) -> float:
        # A short "queued" phase before "processing", as a busy service would show.
        return min(3.0, 0.15 * self.latency)

    @property
    def due_mono(self) -> float:
        return self.created_mono + self.latency

    @property
    def active(self) -> bool:
        return self.status in ("queued", "processing")

    def progress(self, now_mono: float) -> int:
        if self.status == "completed":
            return 100
        if self.status != "processing":
            return 0
        span = self.latency - self.queued_for
        if span <= 0:
            return 99
        done = (now_mono - self.created_mono - self.queued_for) / span
        return max(0, min(99, int(done * 100)))


# Job fields written to the state file as they are (created_mono, model and image are not).
_JOB_FIELDS = (
    "job_id", "owner", "prompt", "format", "quality", "image_sha256", "callback_url",
    "idempotency_key", "created_at", "latency", "will_fail", "status", "forced",
    "forced_error", "completed_at", "error", "polls", "token", "token_expires", "source",
)


@dataclass
class IdempotencyEntry:
    fingerprint: str
    created: float
    job_id: str | None = None  # None while the first request is still being handled
    status_code: int = 201
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Token:
    job_id: str
    expires: float
    issued: float


class SandboxState:
    def __init__(
        self, config: SandboxConfig, faults: FaultInjector, webhooks: WebhookSender
    ) -> None:
        self.config = config
        self.faults = faults
        self.sender = webhooks
        self.lock = threading.RLock()
        self.cdn_url = ""  # set by the runner once the CDN socket is bound
        self.base_url = ""
        self.model_formats_ok: set[str] = set()
        self.model_formats_missing: set[str] = set()
        self._reset_locked()

    # --- lifecycle of the whole state --------------------------------------------

    def _reset_locked(self) -> None:
        c = self.config
        quota, concurrency = c.plan_limits()
        self.keys: list[str] = [c.api_key, *[k for k in c.extra_key if k != c.api_key]]
        self.revoked: set[str] = set(c.revoked_key)
        self.accounts: dict[str, Account] = {}
        for key in self.keys:
            self.accounts[key] = Account(key, c.plan, quota, concurrency, c.used, new_secret())
        self.jobs: dict[str, Job] = {}
        self.idempotency: dict[tuple[str, str], IdempotencyEntry] = {}
        self.tokens: dict[str, Token] = {}
        self.webhooks: list[Webhook] = []
        self.requests_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.cdn_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.started_at = time.time()

    def reset(self) -> None:
        with self.lock:
            self._reset_locked()
        self.faults.reset()
        self.sender.reset()

    def forget(self) -> int:
        """Drop every job, URL and idempotency key, as a restart of a real server might."""
        with self.lock:
            count = len(self.jobs)
            self.jobs.clear()
            self.tokens.clear()
            self.idempotency.clear()
            return count

    # --- auth and accounts ---------------------------------------------------------

    def authenticate(self, header: str | None) -> Account:
        if not header:
            raise ApiError(
                401,
                "missing_api_key",
                "Send the API key as 'Authorization: Bearer <key>'.",
                {"WWW-Authenticate": "Bearer"},
            )
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                401,
                "invalid_authorization",
                "The Authorization header must be 'Bearer <key>'.",
                {"WWW-Authenticate": "Bearer"},
            )
        with self.lock:
            if key in self.revoked:
                raise ApiError(
                    401,
                    "revoked_api_key",
                    "This API key was revoked.",
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            account = self.accounts.get(key)
            if account is None:
                raise ApiError(
                    401,
                    "invalid_api_key",
                    "The API key is not valid.",
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            return account

    def manage_keys(self, add: list[str], revoke: list[str], unrevoke: list[str]) -> dict[str, Any]:
        with self.lock:
            primary = self.accounts[self.config.api_key]
            for key in add:
                if key and key not in self.accounts:
                    self.accounts[key] = Account(
                        key, primary.plan, primary.quota, primary.concurrency, 0, new_secret()
                    )
                    self.keys.append(key)
            self.revoked.update(k for k in revoke if k)
            self.revoked.difference_update(unrevoke)
            return {
                "keys": [key_hint(k) for k in self.keys],
                "revoked": [key_hint(k) for k in self.revoked],
            }

    def set_plan(
        self,
        plan: str | None,
        quota: int | None,
        used: int | None,
        concurrency: int | None,
        key: str | None,
    ) -> list[dict[str, Any]]:
        if plan is not None and plan not in PLANS:
            raise ApiError(400, "invalid_plan", f"Unknown plan {plan!r}; use {', '.join(PLANS)}.")
        with self.lock:
            if key is not None and key not in self.accounts:
                raise ApiError(404, "unknown_key", "No account has this key.")
            targets = [self.accounts[key]] if key is not None else list(self.accounts.values())
            for acc in targets:
                if plan is not None:
                    acc.plan = plan
                    acc.quota, acc.concurrency = PLANS[plan]
                if quota is not None:
                    acc.quota = quota
                if concurrency is not None:
                    acc.concurrency = concurrency
                if used is not None:
                    acc.used = used
            return [a.public() for a in targets]

    # --- jobs -------------------------------------------------------------------------

    def job_latency(self, prompt: str, fmt: str, quality: str, image_sha: str | None) -> float:
        """Deterministic per request: same seed and request -> same duration."""
        latency = self.faults.get("latency")
        spread = float(self.faults.get("latency_spread"))
        digest = hashlib.sha256(
            f"{self.config.seed}|{prompt}|{fmt}|{quality}|{image_sha}".encode()
        ).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        if latency is None:
            low, high = REALISTIC_LATENCY
            return round(low + (high - low) * u, 2)
        return round(max(0.0, float(latency) + spread * (2 * u - 1)), 2)

    def check_limits(self, account: Account) -> None:
        """403 when the month's quota is used up, 429 when too many jobs are in flight."""
        with self.lock:
            if account.used >= account.quota:
                raise ApiError(
                    403,
                    "plan_limit_reached",
                    f"The {account.plan} plan's {account.quota} generations this month are used up.",
                )
            now = time.monotonic()
            running = [
                j for j in self.jobs.values() if j.owner == account.key and self._advance(j, now)
            ]
            if len(running) >= account.concurrency:
                soonest = min(j.due_mono for j in running) - now
                wait = max(1, math.ceil(soonest))
                raise ApiError(
                    429,
                    "concurrency_limit",
                    f"{len(running)} jobs are already queued or processing; the {account.plan} plan "
                    f"allows {account.concurrency} at once.",
                    {"Retry-After": str(wait)},
                )

    def create_job(
        self,
        account: Account,
        *,
        prompt: str,
        fmt: str,
        quality: str,
        image_sha: str | None,
        callback_url: str | None,
        idempotency_key: str | None,
        model: concurrent.futures.Future[bytes] | None,
        source: str = "api",
        blob_size: int | None = None,
        charge: bool = True,
        latency: float | None = None,
        image: bytes | None = None,
    ) -> Job:
        with self.lock:
            job = Job(
                job_id="gen_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y"),
                owner=account.key,
                prompt=prompt,
                format=fmt,
                quality=quality,
                image_sha256=image_sha,
                callback_url=callback_url,
                idempotency_key=idempotency_key,
                created_at=time.time(),
                created_mono=time.monotonic(),
                latency=self.job_latency(prompt, fmt, quality, image_sha)
                if latency is None
                else latency,
                will_fail=self.faults.draw_job_failure() if source == "api" else False,
                model=model,
                blob_size=blob_size,
                source=source,
                image=image,
            )
            self.jobs[job.job_id] = job
            if charge:
                account.used += 1
            return job

    def get_job(self, account: Account, job_id: str, *, count_poll: bool = False) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
            # Another key's job is "not found": job ids must not leak across accounts.
            if job is None or job.owner != account.key:
                raise ApiError(404, "job_not_found", f"No job {job_id[:80]!r} for this key.")
            if count_poll:
                job.polls += 1
            return job

    def _advance(self, job: Job, now: float) -> bool:
        """Bring ``job.status`` up to ``now``; True while it is still queued/processing."""
        if not job.active:
            return False
        outcome: str | None = None
        error: dict[str, str] | None = None
        if job.forced == "fail":
            outcome, error = "failed", job.forced_error
        elif now - job.created_mono < job.queued_for and job.forced is None:
            job.status = "queued"
            return True
        elif job.forced is None and (now < job.due_mono or self.faults.get("hold")):
            job.status = "processing"  # the hold fault: until the admin ends it
            return True
        elif job.will_fail and job.forced is None:
            outcome = "failed"
            error = {
                "code": "generation_failed",
                "message": "The model could not be generated from this prompt.",
            }
        elif job.model is None:
            outcome = "completed"
        elif job.model.cancelled():
            outcome = "failed"
            error = {"code": "generation_cancelled", "message": "The sandbox was reset."}
        elif job.model.done():
            exc = job.model.exception()
            if exc is None:
                outcome = "completed"
            elif isinstance(exc, NotImplementedError):
                outcome = "failed"
                error = {
                    "code": "unsupported_format",
                    "message": f"The {job.format} format is not available.",
                }
            else:
                outcome = "failed"
                error = {
                    "code": "generation_error",
                    "message": "The generator failed on this prompt.",
                }
        else:
            job.status = "processing"  # past due but the generator is still working
            return True
        job.status = outcome
        job.error = error if outcome == "failed" else None
        job.completed_at = time.time()
        self._notify(job)
        return False

    def advance_all(self) -> None:
        with self.lock:
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if job.active:
                    self._advance(job, now)

    def force(self, job_id: str, outcome: str, error: dict[str, str] | None = None) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise ApiError(404, "job_not_found", f"No job {job_id[:80]!r}.")
            if not job.active:
                return job
            job.forced = outcome
            job.forced_error = error or {
                "code": "generation_failed",
                "message": "Failed by the sandbox admin.",
            }
            self._advance(job, time.monotonic())
            return job

    # --- model URLs ------------------------------------------------------------------

    def _model_url(self, job: Job, *, fresh: bool = False) -> tuple[str, float]:
        now = time.time()
        if fresh or job.token is None or job.token_expires is None or job.token_expires <= now:
            token = secrets.token_urlsafe(18)
            # Whole seconds: expires_at (ISO, to the second) is then exactly the deadline.
            expires = float(math.floor(now + float(self.faults.get("expire_seconds"))))
            self.tokens[token] = Token(job.job_id, expires, now)
            job.token, job.token_expires = token, expires
        assert job.token is not None and job.token_expires is not None
        url = f"{self.cdn_url}/models/{job.job_id}.{job.format}?expires={int(job.token_expires)}&token={job.token}"
        return url, job.token_expires

    def expire(self, job_id: str | None) -> int:
        with self.lock:
            past = time.time() - 1
            count = 0
            for token in self.tokens.values():
                if job_id is None or token.job_id == job_id:
                    token.expires = min(token.expires, past)
                    count += 1
            for job in self.jobs.values():
                if (job_id is None or job.job_id == job_id) and job.token_expires is not None:
                    job.token_expires = min(job.token_expires, past)
            return count

    def resolve_token(self, job_file: str, token: str | None) -> tuple[Job | None, str | None, int]:
        """For the CDN: (job, error code, status). Status 200 means serve the job's model."""
        with self.lock:
            if not token:
                return None, "missing_token", 403
            entry = self.tokens.get(token)
            if entry is None:
                return None, "not_found", 404
            job = self.jobs.get(entry.job_id)
            if job is None or job_file != f"{job.job_id}.{job.format}":
                return None, "signature_mismatch", 403
            if entry.expires <= time.time():
                return None, "url_expired", self.config.expired_status
            return job, None, 200

    # --- views -------------------------------------------------------------------------

    def job_view(self, job: Job) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            self._advance(job, now)
            view: dict[str, Any] = {
                "job_id": job.job_id,
                "status": job.status,
                "format": job.format,
                "quality": job.quality,
                "created_at": iso(job.created_at),
            }
            if job.active:
                view["progress"] = job.progress(now)
                view["estimated_time_seconds"] = max(0, math.ceil(job.due_mono - now))
            elif job.status == "completed":
                url, expires = self._model_url(job)
                view.update(
                    progress=100,
                    model_url=url,
                    expires_at=iso(expires),
                    completed_at=iso(job.completed_at),
                )
            else:
                view.update(error=job.error, completed_at=iso(job.completed_at))
            return view

    def _notify(self, job: Job) -> None:
        """Queue webhook deliveries for a job that just finished (lock held)."""
        event = "job.completed" if job.status == "completed" else "job.failed"
        payload: dict[str, Any] = {
            "event": event,
            "job_id": job.job_id,
            "model_url": None,
            "status": job.status,
        }
        if job.status == "completed":
            payload["model_url"], _ = self._model_url(job)
        else:
            payload["error"] = job.error
        hooks = [w for w in self.webhooks if w.owner == job.owner and event in w.events]
        for hook in hooks:
            self.sender.enqueue(
                url=hook.url, secrets_=[hook.secret], payload=payload, webhook_id=hook.webhook_id
            )
        if job.callback_url and all(h.url != job.callback_url for h in hooks):
            # The callback has no secret of its own: sign with the account's signing secret
            # and with every registered webhook secret (Standard Webhooks allows several).
            owner_hooks = [w.secret for w in self.webhooks if w.owner == job.owner]
            keys = (
                [self.accounts[job.owner].signing_secret, *owner_hooks]
                if job.owner in self.accounts
                else owner_hooks
            )
            if keys:
                self.sender.enqueue(
                    url=job.callback_url, secrets_=keys, payload=payload, webhook_id=None
                )

    def add_webhook(self, account: Account, url: str, events: list[str]) -> Webhook:
        with self.lock:
            hook = Webhook(
                "wh_" + secrets.token_hex(10), account.key, url, events, new_secret(), time.time()
            )
            self.webhooks.append(hook)
            return hook

    # --- idempotency -------------------------------------------------------------------

    def idempotency_begin(
        self, account: Account, key: str, fingerprint: str
    ) -> IdempotencyEntry | None:
        """None: go ahead (entry reserved). An entry: replay it. ApiError: conflict/mismatch."""
        with self.lock:
            now = time.time()
            slot = (account.key, key)
            entry = self.idempotency.get(slot)
            if entry is not None and now - entry.created > IDEMPOTENCY_TTL:
                entry = None
            if entry is None:
                self.idempotency[slot] = IdempotencyEntry(fingerprint, now)
                return None
            if entry.fingerprint != fingerprint:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used with a different request body.",
                )
            if entry.job_id is None:
                raise ApiError(
                    409,
                    "idempotency_key_in_use",
                    "A request with this Idempotency-Key is still being processed; retry shortly.",
                    {"Retry-After": "1"},
                )
            return entry

    def idempotency_finish(
        self, account: Account, key: str, job: Job, status_code: int, body: dict[str, Any]
    ) -> None:
        with self.lock:
            entry = self.idempotency.get((account.key, key))
            if entry is not None:
                entry.job_id, entry.status_code, entry.body = job.job_id, status_code, dict(body)

    def idempotency_abort(self, account: Account, key: str) -> None:
        with self.lock:
            entry = self.idempotency.get((account.key, key))
            if entry is not None and entry.job_id is None:
                del self.idempotency[(account.key, key)]

    # --- the state file (--state-file): jobs survive a restart ---------------------------

    def dump(self) -> dict[str, Any]:
        """What a restart keeps: jobs (not blob jobs: their padding is not kept), model
        URLs, idempotency keys, webhooks and each account's generations used. Times are
        wall-clock, so a job's due time keeps running while the server is down."""
        with self.lock:
            now_wall, now_mono = time.time(), time.monotonic()
            jobs = []
            for job in self.jobs.values():
                if job.blob_size is not None:
                    continue
                self._advance(job, now_mono)
                data = {
                    name: getattr(job, name)
                    for name in _JOB_FIELDS
                }
                data["created_at"] = now_wall - (now_mono - job.created_mono)
                data["image"] = base64.b64encode(job.image).decode() if job.image else None
                jobs.append(data)
            return {
                "version": STATE_FILE_VERSION,
                "jobs": jobs,
                "tokens": {t: vars(tok) for t, tok in self.tokens.items()
                           if tok.job_id in self.jobs and self.jobs[tok.job_id].blob_size is None},
                "idempotency": [
                    {"owner": owner, "key": key, **vars(entry)}
                    for (owner, key), entry in self.idempotency.items()
                    if entry.job_id is not None
                ],
                "webhooks": [vars(hook) for hook in self.webhooks],
                "used": {acc.key: acc.used for acc in self.accounts.values()},
            }

    def load(
        self, data: dict[str, Any],
        model_for: Callable[[Job], concurrent.futures.Future[bytes]],
    ) -> int:
        """Restore :meth:`dump`'s output; ``model_for`` asks the generator for a job's
        model again (it is deterministic). Answers how many jobs came back."""
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"state file version {data.get('version')!r}, expected {STATE_FILE_VERSION}")
        with self.lock:
            now_wall, now_mono = time.time(), time.monotonic()
            for item in data["jobs"]:
                fields = {name: item[name] for name in _JOB_FIELDS}
                fields["created_mono"] = now_mono - (now_wall - float(item["created_at"]))
                image = base64.b64decode(item["image"]) if item.get("image") else None
                job = Job(**fields, model=None, image=image)
                if job.status != "failed":
                    job.model = model_for(job)
                self.jobs[job.job_id] = job
            for token, tok in data["tokens"].items():
                if tok["job_id"] in self.jobs:
                    self.tokens[token] = Token(**tok)
            for entry in data["idempotency"]:
                owner, key = entry.pop("owner"), entry.pop("key")
                self.idempotency[(owner, key)] = IdempotencyEntry(**entry)
            self.webhooks = [Webhook(**hook) for hook in data["webhooks"]]
            for key, used in data["used"].items():
                if key in self.accounts:
                    self.accounts[key].used = int(used)
            return len(data["jobs"])

    # --- logs and admin state ------------------------------------------------------------

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            # A request that began before the last reset belongs to the previous test:
            # logging it now would leak into the fresh log.
            if entry.get("time", self.started_at) >= self.started_at:
                self.requests_log.append(entry)

    def log_cdn(self, entry: dict[str, Any]) -> None:
        with self.lock:
            if entry.get("time", self.started_at) >= self.started_at:
                self.cdn_log.append(entry)

    def snapshot(self, generator_kind: str) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            jobs = []
            for job in sorted(self.jobs.values(), key=lambda j: j.created_mono):
                self._advance(job, now)
                jobs.append(
                    {
                        "job_id": job.job_id,
                        "id": job.job_id,
                        "status": job.status,
                        "idempotency_key": job.idempotency_key,
                        "prompt": job.prompt,
                        "format": job.format,
                        "quality": job.quality,
                        "has_image": job.image_sha256 is not None,
                        "callback_url": job.callback_url,
                        "owner": key_hint(job.owner),
                        "source": job.source,
                        "created_at": iso(job.created_at),
                        "completed_at": iso(job.completed_at),
                        # Unix seconds with sub-second precision (the ISO fields round to
                        # the second): for timing measurements such as scripts/bench.py.
                        "created_unix": job.created_at,
                        "completed_unix": job.completed_at,
                        "latency": job.latency,
                        "progress": job.progress(now),
                        "polls": job.polls,
                        "error": job.error,
                        "will_fail": job.will_fail,
                        "blob_size": job.blob_size,
                    }
                )
            primary = self.accounts[self.config.api_key]
            return {
                "base_url": self.base_url,
                "cdn_url": self.cdn_url,
                "generator": generator_kind,
                "started_at": iso(self.started_at),
                "jobs": jobs,
                "generations_used": primary.used,
                "plan": primary.public(),
                "accounts": [a.public() for a in self.accounts.values()],
                "revoked": [key_hint(k) for k in self.revoked],
                "requests": list(self.requests_log),
                "cdn": list(self.cdn_log),
                "webhooks": [w.public() for w in self.webhooks],
                "deliveries": self.sender.deliveries(),
                "faults": self.faults.snapshot(),
            }


def start_ticker(
    state: SandboxState,
    stop: threading.Event,
    interval: float = 0.05,
    on_error: Callable[[BaseException], None] | None = None,
) -> threading.Thread:
    """Advance jobs in the background so completion webhooks fire without polling."""

    def run() -> None:
        while not stop.wait(interval):
            try:
                state.advance_all()
            except Exception as exc:  # never let the ticker die; report and go on
                if on_error is not None:
                    on_error(exc)

    thread = threading.Thread(target=run, name="sandbox-ticker", daemon=True)
    thread.start()
    return thread
