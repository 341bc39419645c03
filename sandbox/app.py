"""The API server: a FastAPI app factory over :class:`Sandbox` (state + generator + webhooks).

Routes under ``/v1`` follow ``/work/shared/hiptah-api-v1.md``; admin routes under
``/_sandbox`` (no auth, loopback only) let tests inspect and steer the server.
Request bodies are parsed by hand rather than by pydantic models so that every
malformed input gets the contract's error body and status instead of FastAPI's
default 422 shape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hiptah_blender.client.errors import InvalidImageError
from hiptah_blender.client.images import MAX_IMAGE_BYTES, check_data_uri
from hiptah_blender.client.validation import FORMATS, QUALITIES, is_loopback_host, prompt_problem

from .config import SandboxConfig
from .faults import ApiFault, FaultInjector
from .generator import GenerateFn, ModelGenerator
from .state import EVENTS, ApiError, Job, SandboxState, start_ticker
from .webhooks_out import WebhookSender

log = logging.getLogger("sandbox.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 16 * 1024 * 1024  # a 10 MB image as base64 plus the rest of the body
MAX_URL_CHARS = 2048
# How long POST /generate waits for the first model of a format it has not produced yet,
# to answer 422 if the generator cannot make that format at all.
FORMAT_PROBE_SECONDS = 30.0
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class Sandbox:
    """The running sandbox's parts, shared by the API app, the CDN app and the runner."""

    def __init__(self, config: SandboxConfig, *, generator: GenerateFn | None = None) -> None:
        self.config = config
        self.faults = FaultInjector(config)
        self.sender = WebhookSender(
            retries=config.webhook_retries,
            backoff=config.webhook_backoff,
            timeout=config.webhook_timeout,
            ca_bundle=config.webhook_ca,
        )
        self.state = SandboxState(config, self.faults, self.sender)
        self.models = ModelGenerator(config.models, generator=generator, seed=0)
        self.blob_heads: dict[str, bytes] = {}  # blob job id -> GLB bytes before the padding
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        self.models.start()
        path = self.config.state_file
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            count = self.state.load(
                data, lambda job: self.models.request(job.prompt, job.format, job.quality, job.image)
            )
            # The CDN serves a completed job's model as soon as it listens: have them ready.
            for job in list(self.state.jobs.values()):
                if job.status == "completed" and job.model is not None:
                    concurrent.futures.wait([job.model], timeout=120)
            log.info("restored %d job(s) from %s", count, path)
        self._ticker = start_ticker(
            self.state,
            self._stop,
            on_error=lambda exc: log.exception("ticker failed", exc_info=exc),
        )

    def stop(self) -> None:
        self._stop.set()
        self.sender.stop()
        self.models.stop()
        if self.config.state_file:
            self.save_state(self.config.state_file)

    def save_state(self, path: str) -> None:
        """Write the state file atomically (what the next start with the same file loads)."""
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.state.dump(), fh)
        os.replace(tmp, path)


def error_body(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if request_id:
        body["error"]["request_id"] = request_id
    return body


def _request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    # ASCII-escaped: a lone surrogate echoed from hostile input cannot break the encoder.
    raw = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return Response(raw, status_code=status, headers=headers, media_type="application/json")


async def _read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise ApiError(
            413, "payload_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes."
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(
                413, "payload_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes."
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from "\\ud800" escapes
        return False
    return True


def _check_url(value: Any, field: str) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_URL_CHARS
        or not _encodable(value)
    ):
        raise ApiError(400, f"invalid_{field}", f"{field} must be an https:// URL.")
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ApiError(400, f"invalid_{field}", f"{field} is not a valid URL.") from None
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))
    ):
        raise ApiError(
            400, f"invalid_{field}", f"{field} must be an https:// URL (http:// only for loopback)."
        )
    return url


def _decode_image(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "invalid_image", "image must be a data URI string.")
    try:
        check_data_uri(value)  # the contract's shape, declared type and size, as the client checks
    except InvalidImageError as exc:
        raise ApiError(400, "invalid_image", exc.message) from None
    # The client only sniffs the head; the server decodes all of it.
    payload = re.sub(r"\s+", "", value.split(",", 1)[1])
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_image", "The image data is not valid base64.") from None
    if not data or len(data) > MAX_IMAGE_BYTES:
        raise ApiError(400, "invalid_image", "The image must be 1 byte to 10 MB.")
    return data


def _parse_generate(body: Any) -> tuple[str, str, str, str | None, bytes | None]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    image = None if body.get("image") in (None, "") else _decode_image(body.get("image"))
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError(400, "invalid_prompt", "prompt must be a string.")
    if prompt is not None and not _encodable(prompt):
        raise ApiError(400, "invalid_prompt", "prompt is not valid Unicode text.")
    problem = prompt_problem(prompt, allow_empty=image is not None)
    if problem:
        raise ApiError(400, "invalid_prompt", problem + ".")
    fmt = _choice(body, "format", "glb", FORMATS)
    quality = _choice(body, "quality", "high", QUALITIES)
    callback = body.get("callback_url")
    callback_url = None if callback in (None, "") else _check_url(callback, "callback_url")
    return (prompt or "").strip(), fmt, quality, callback_url, image


def _choice(body: dict[str, Any], field: str, default: str, allowed: tuple[str, ...]) -> str:
    """``body[field]`` normalised (missing or null: ``default``), or 422 unsupported_<field>."""
    value = body.get(field, default)
    value = default if value is None else value
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise ApiError(
            422,
            f"unsupported_{field}",
            f"{field.capitalize()} {str(value)[:40]!r} is not supported; use {', '.join(allowed)}.",
        )
    return value.strip().lower()


def _fingerprint(body: Any) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


async def _wait_future(fut: concurrent.futures.Future[bytes], timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
    except (TimeoutError, asyncio.CancelledError):
        raise
    except BaseException:  # the outcome is read from the future itself
        pass


def _transport_of(send: Send) -> asyncio.Transport | None:
    """uvicorn's ``send`` is a bound method of its request cycle, which holds the transport."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


def reset_connection(send: Send) -> bool:
    """Abort the connection with an RST ("connection reset by peer"); False if impossible."""
    transport = _transport_of(send)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of an orderly FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


class ApiMiddleware:
    """Request ids, the request log and API fault injection, as plain ASGI.

    Plain ASGI (not BaseHTTPMiddleware) so a "drop" can send the headers and part
    of the body and then end without completing: uvicorn then closes the connection
    mid-response, which is what a client sees when a server or proxy dies.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope.get("path", "")
        is_api = path == "/v1" or path.startswith("/v1/")
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        if is_api and self.sandbox.faults.offline():
            # Network down: reset the connection before reading or answering anything.
            # Not logged and no fault drawn, so the fault sequence after the outage is
            # the same as without it.
            reset_connection(send)
            return
        fault = self.sandbox.faults.draw_api() if is_api else ApiFault(None, 0.0)
        started = time.time()
        status = [0]
        sent = [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            elif message["type"] == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        try:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.kind == "error":
                await self._send_json(
                    send_with_id,
                    500,
                    error_body(
                        "internal_error",
                        "Injected server error (sandbox --fault-rate).",
                        request_id,
                    ),
                )
            elif fault.kind == "rate_limit":
                await self._send_json(
                    send_with_id,
                    429,
                    error_body(
                        "rate_limited",
                        "Injected rate limit (sandbox --rate-limit-rate).",
                        request_id,
                    ),
                    {"Retry-After": str(fault.retry_after)},
                )
            elif fault.kind == "drop":
                await self._drop(scope, receive, send_with_id, send, fault.reset_early)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if is_api:
                self.sandbox.state.log_request(
                    {
                        "time": started,
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": path,
                        "status": status[0],
                        "host": headers.get("host"),
                        "had_auth": "authorization" in headers,
                        "idempotency_key": headers.get("idempotency-key"),
                        "fault": fault.label,
                        "duration": round(time.time() - started, 4),
                    }
                )

    @staticmethod
    async def _send_json(
        send: Send, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        raw = json.dumps(body).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": raw})

    async def _drop(
        self, scope: Scope, receive: Receive, send: Send, raw_send: Send, early: bool
    ) -> None:
        # Let the app do its work (a job may be created: the realistic "response lost"
        # case an Idempotency-Key exists for), then reset the connection before any
        # byte, or cut the answer in half.
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start is None:
            return
        transport = _transport_of(raw_send)
        if early and transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends RST, the client sees "connection reset by peer".
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send(
            {"type": "http.response.body", "body": bytes(body[: len(body) // 2]), "more_body": True}
        )
        # Returning now, with the response incomplete, makes uvicorn close the connection.


def create_app(
    config: SandboxConfig | None = None,
    *,
    sandbox: Sandbox | None = None,
    generator: GenerateFn | None = None,
) -> FastAPI:
    """The API app. ``generator`` replaces sandbox.modelgen (tests); the CLI never passes one."""
    if sandbox is None:
        sandbox = Sandbox(config or SandboxConfig(), generator=generator)
    sb = sandbox
    state = sb.state
    app = FastAPI(title="HiPtah sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sb

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _json(
            exc.status, error_body(exc.code, exc.message, _request_id(request)), exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json(
            exc.status_code,
            error_body(code, str(exc.detail), _request_id(request)),
            dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return _json(
            500,
            error_body(
                "internal_error", "The sandbox hit an unexpected error.", _request_id(request)
            ),
        )

    # --- /v1 -----------------------------------------------------------------------------

    @app.post("/v1/generate")
    async def generate(request: Request) -> Response:
        account = state.authenticate(request.headers.get("authorization"))
        body = await _read_json(request)
        idem = request.headers.get("idempotency-key")
        if idem is not None and not _IDEMPOTENCY_KEY.match(idem):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 printable characters.",
            )
        prompt, fmt, quality, callback_url, image = _parse_generate(body)
        if idem is not None:
            entry = state.idempotency_begin(account, idem, _fingerprint(body))
            if entry is not None:
                return _json(200, entry.body, {"Idempotent-Replayed": "true"})
        try:
            state.check_limits(account)
            fut = sb.models.request(prompt, fmt, quality, image)
            if fmt in state.model_formats_missing:
                raise ApiError(
                    422, "unsupported_format", f"The sandbox cannot produce {fmt} models."
                )
            if fmt not in state.model_formats_ok:
                # First model in this format: wait for it, so a format the generator
                # cannot produce is a 422 now rather than a failed job later.
                with contextlib.suppress(TimeoutError):
                    await _wait_future(fut, FORMAT_PROBE_SECONDS)
                if fut.done() and isinstance(fut.exception(), NotImplementedError):
                    state.model_formats_missing.add(fmt)
                    raise ApiError(
                        422, "unsupported_format", f"The sandbox cannot produce {fmt} models."
                    )
                if fut.done() and fut.exception() is None:
                    state.model_formats_ok.add(fmt)
                state.check_limits(account)  # others may have started jobs while we waited
            job = state.create_job(
                account,
                prompt=prompt,
                fmt=fmt,
                quality=quality,
                image_sha=hashlib.sha256(image).hexdigest() if image else None,
                callback_url=callback_url,
                idempotency_key=idem,
                model=fut,
                image=image,
            )
        except BaseException:
            if idem is not None:
                state.idempotency_abort(account, idem)
            raise
        out = {
            "job_id": job.job_id,
            "status": "queued",
            "estimated_time_seconds": math.ceil(job.latency),
        }
        if idem is not None:
            state.idempotency_finish(account, idem, job, 201, out)
        return _json(201, out, {"Location": f"/v1/job/{job.job_id}"})

    @app.get("/v1/job/{job_id}")
    async def get_job(job_id: str, request: Request) -> Response:
        account = state.authenticate(request.headers.get("authorization"))
        job = state.get_job(account, job_id, count_poll=True)
        return _json(200, state.job_view(job))

    @app.post("/v1/webhooks")
    async def register_webhook(request: Request) -> Response:
        account = state.authenticate(request.headers.get("authorization"))
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
        url = _check_url(body.get("url"), "url")
        events = body.get("events", list(EVENTS))
        if events is None:
            events = list(EVENTS)
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e in EVENTS for e in events)
        ):
            raise ApiError(
                400, "invalid_events", f"events must be a non-empty list of {', '.join(EVENTS)}."
            )
        hook = state.add_webhook(account, url, list(dict.fromkeys(events)))
        return _json(
            201,
            {
                "webhook_id": hook.webhook_id,
                "secret": hook.secret,
                "url": hook.url,
                "events": hook.events,
            },
        )

    # --- /_sandbox admin (no auth: loopback dev tool) -----------------------------------

    async def _admin_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(
                400, "invalid_json", "The admin request body is not valid JSON."
            ) from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "The admin request body must be a JSON object.")
        return body

    def _opt_int(body: dict[str, Any], name: str) -> int | None:
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ApiError(400, "invalid_request", f"{name} must be an integer >= 0.")
        return value

    @app.get("/_sandbox/health")
    async def health() -> Response:
        return _json(200, {"ok": True, "generator": sb.models.kind})

    @app.get("/_sandbox/state")
    async def get_state() -> Response:
        return _json(200, state.snapshot(sb.models.kind))

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        body = await _admin_body(request)
        try:
            return _json(200, {"faults": sb.faults.update(body)})
        except ValueError as exc:
            raise ApiError(400, "invalid_fault", str(exc)) from None

    @app.post("/_sandbox/reset")
    async def reset() -> Response:
        state.reset()
        sb.models.cancel_pending()
        return _json(200, {"ok": True})

    @app.post("/_sandbox/forget")
    async def forget() -> Response:
        forgotten = state.forget()
        sb.models.cancel_pending()
        return _json(200, {"forgotten": forgotten})

    @app.post("/_sandbox/expire")
    async def expire(request: Request) -> Response:
        body = await _admin_body(request)
        job_id = body.get("job_id")
        if job_id is not None and not isinstance(job_id, str):
            raise ApiError(400, "invalid_request", "job_id must be a string.")
        return _json(200, {"expired_urls": state.expire(job_id)})

    @app.post("/_sandbox/plan")
    async def set_plan(request: Request) -> Response:
        body = await _admin_body(request)
        plan = body.get("plan")
        if plan is not None and not isinstance(plan, str):
            raise ApiError(400, "invalid_plan", "plan must be a string.")
        key = body.get("key")
        if key is not None and not isinstance(key, str):
            raise ApiError(400, "invalid_request", "key must be a string.")
        accounts = state.set_plan(
            plan,
            _opt_int(body, "quota"),
            _opt_int(body, "used"),
            _opt_int(body, "concurrency"),
            key,
        )
        return _json(200, {"accounts": accounts})

    @app.post("/_sandbox/keys")
    async def keys(request: Request) -> Response:
        body = await _admin_body(request)
        lists: dict[str, list[str]] = {}
        for name in ("add", "revoke", "unrevoke"):
            value = body.get(name, [])
            if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                raise ApiError(400, "invalid_request", f"{name} must be a list of keys.")
            lists[name] = value
        return _json(200, state.manage_keys(lists["add"], lists["revoke"], lists["unrevoke"]))

    async def _force(job_id: str, outcome: str, error: dict[str, str] | None) -> Response:
        with state.lock:
            job: Job | None = state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "job_not_found", f"No job {job_id[:80]!r}.")
        if outcome == "complete" and job.model is not None and not job.model.done():
            # Completing needs the model file: wait for the generator (bounded).
            try:
                await _wait_future(job.model, 120.0)
            except TimeoutError:
                raise ApiError(
                    409, "model_not_ready", "The generator has not produced this model yet."
                ) from None
        job = state.force(job_id, outcome, error)
        return _json(200, state.job_view(job))

    @app.post("/_sandbox/jobs/{job_id}/complete")
    async def complete(job_id: str) -> Response:
        return await _force(job_id, "complete", None)

    @app.post("/_sandbox/jobs/{job_id}/fail")
    async def fail(job_id: str, request: Request) -> Response:
        body = await _admin_body(request)
        error = {
            "code": str(body.get("code") or "generation_failed"),
            "message": str(body.get("message") or "Failed by the sandbox admin."),
        }
        return await _force(job_id, "fail", error)

    @app.post("/_sandbox/blob")
    async def blob(request: Request) -> Response:
        body = await _admin_body(request)
        size_mb = body.get("size_mb", 100)
        if (
            isinstance(size_mb, bool)
            or not isinstance(size_mb, (int, float))
            or not 0 < size_mb <= 2048
        ):
            raise ApiError(400, "invalid_request", "size_mb must be a number in (0, 2048].")
        from .cdn import padded_glb_head  # the CDN owns the padded layout

        base = sb.models.request("a simple cube", "glb", "draft", None)
        try:
            await _wait_future(base, 120.0)
        except TimeoutError:
            raise ApiError(
                503, "generator_busy", "The generator did not produce the base model in time."
            ) from None
        if base.exception() is not None:
            raise ApiError(500, "generator_error", f"The generator failed: {base.exception()!r}")
        head, total = padded_glb_head(base.result(), int(size_mb * 1024 * 1024))
        account = state.accounts[sb.config.api_key]
        job = state.create_job(
            account,
            prompt=f"padded {size_mb} MB benchmark model",
            fmt="glb",
            quality="draft",
            image_sha=None,
            callback_url=None,
            idempotency_key=None,
            model=None,
            source="blob",
            blob_size=total,
            charge=False,
            latency=0.0,
        )
        job.forced = "complete"
        sb.blob_heads[job.job_id] = head
        view = state.job_view(job)
        return _json(
            201,
            {
                "job_id": job.job_id,
                "model_url": view.get("model_url"),
                "expires_at": view.get("expires_at"),
                "size": total,
                "format": "glb",
            },
        )

    return app


def wrap(app: FastAPI, sandbox: Sandbox) -> ASGIApp:
    """The API app inside the request-id / log / fault middleware (what uvicorn serves)."""
    return ApiMiddleware(app, sandbox)
