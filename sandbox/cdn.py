"""The CDN: a separate origin (own host and port) that serves model files by signed URL.

Plain ASGI for full control of what goes on the wire: a correct Content-Length
and Content-Type, bodies streamed in chunks (the flow control of uvicorn keeps
memory bounded, so a 2 GB padded blob costs a few MB), and the download faults
(truncated body, corrupt bytes, slow start). Every request is logged with
whether it carried an Authorization header: the API key must never reach here.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import struct
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .state import Job

if TYPE_CHECKING:
    from .app import Message, Receive, Sandbox, Scope, Send

CONTENT_TYPES: dict[str, str] = {
    "glb": "model/gltf-binary",
    "fbx": "application/octet-stream",
    "usdz": "model/vnd.usdz+zip",
    "stl": "model/stl",
    "3mf": "model/3mf",
}
CHUNK = 256 * 1024
PAD_CHUNK = 1024 * 1024
_ZEROS = bytes(PAD_CHUNK)


def padded_glb_head(base: bytes, target_size: int) -> tuple[bytes, int]:
    """A valid GLB of about ``target_size`` bytes: ``base`` plus one extra chunk of zeros.

    glTF 2.0 says readers must ignore chunks of unknown type after JSON and BIN, so
    the file still imports. Returns (bytes before the zeros, total size).
    """
    if len(base) < 12 or base[:4] != b"glTF" or len(base) % 4:
        raise ValueError("base model is not a GLB file")
    pad = max(0, target_size - len(base) - 8) // 4 * 4
    total = len(base) + 8 + pad
    if total >= 2**32:
        raise ValueError("a GLB file must be smaller than 4 GB")
    head = base[:8] + struct.pack("<I", total) + base[12:] + struct.pack("<I4s", pad, b"XPAD")
    return head, total


class CdnApp:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self.sandbox.faults.offline():
            from .app import reset_connection  # app imports this module

            reset_connection(send)
            return
        request_id = "req_" + secrets.token_hex(8)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        method = scope.get("method", "GET")
        path: str = scope.get("path", "")
        entry: dict[str, Any] = {
            "time": time.time(),
            "request_id": request_id,
            "method": method,
            "path": path,
            "host": headers.get("host"),
            "had_auth": "authorization" in headers,
            "user_agent": headers.get("user-agent"),
            "status": 0,
            "bytes_sent": 0,
            "content_length": None,
            "fault": None,
            "job_id": None,
        }
        try:
            await self._handle(scope, receive, send, method, path, request_id, entry)
        finally:
            self.sandbox.state.log_cdn(entry)

    async def _error(
        self,
        send: Send,
        status: int,
        code: str,
        message: str,
        request_id: str,
        entry: dict[str, Any],
    ) -> None:
        raw = json.dumps(
            {"error": {"code": code, "message": message, "request_id": request_id}}
        ).encode()
        entry["status"] = status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                    (b"x-request-id", request_id.encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        path: str,
        request_id: str,
        entry: dict[str, Any],
    ) -> None:
        if method not in ("GET", "HEAD"):
            await self._error(
                send,
                405,
                "method_not_allowed",
                "The CDN serves GET and HEAD only.",
                request_id,
                entry,
            )
            return
        if not path.startswith("/models/") or "/" in path[len("/models/") :]:
            await self._error(send, 404, "not_found", "No such file.", request_id, entry)
            return
        name = path[len("/models/") :]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [None])[0]
        state = self.sandbox.state
        job, code, status = state.resolve_token(name, token)
        if job is None:
            message = {
                "url_expired": "This download link has expired; ask the API for the job again.",
                "missing_token": "The download link is not signed.",
                "signature_mismatch": "The download link's signature does not match this file.",
            }.get(code or "", "No such file.")
            await self._error(send, status, code or "not_found", message, request_id, entry)
            return
        entry["job_id"] = job.job_id
        fault = self.sandbox.faults.draw_cdn()
        entry["fault"] = fault.label
        if fault.delay:
            await asyncio.sleep(fault.delay)
        size, body = self._body(job, fault.kind == "corrupt")
        limit = size // 2 if fault.kind == "truncate" else size
        entry["status"], entry["content_length"] = 200, size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (
                        b"content-type",
                        CONTENT_TYPES.get(job.format, "application/octet-stream").encode(),
                    ),
                    (b"content-length", str(size).encode()),
                    (
                        b"content-disposition",
                        f'attachment; filename="{job.job_id}.{job.format}"'.encode(),
                    ),
                    (b"cache-control", b"private, max-age=300"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            sent = 0
            async for chunk in body:
                if disconnected.is_set():
                    return
                if sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                entry["bytes_sent"] = sent
                if sent >= limit:
                    break
            if fault.kind == "truncate":
                # Return without the final message: uvicorn closes the connection with the
                # body short of its Content-Length, like a dropped download.
                return
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()

    def _body(self, job: Job, corrupt: bool) -> tuple[int, AsyncIterator[bytes]]:
        if job.blob_size is not None:
            head = self.sandbox.blob_heads.get(job.job_id, b"")
            return job.blob_size, self._blob_stream(head, job.blob_size, corrupt, job.job_id)
        assert job.model is not None and job.model.done()
        data = job.model.result()
        if corrupt:
            data = self._garbage(len(data), job.job_id)
        return len(data), self._chunks(data)

    @staticmethod
    def _garbage(size: int, salt: str) -> bytes:
        rng = random.Random(salt)
        # The marker up front guarantees no format's magic bytes survive.
        return (b"\xde\xad\xbe\xef" + rng.randbytes(max(0, size - 4)))[:size]

    @staticmethod
    async def _chunks(data: bytes) -> AsyncIterator[bytes]:
        view = memoryview(data)
        for i in range(0, len(data), CHUNK):
            yield bytes(view[i : i + CHUNK])

    async def _blob_stream(
        self, head: bytes, total: int, corrupt: bool, salt: str
    ) -> AsyncIterator[bytes]:
        filler = self._garbage(PAD_CHUNK, salt) if corrupt else _ZEROS
        first = self._garbage(len(head), salt) if corrupt else head
        yield first
        left = total - len(head)
        while left > 0:
            n = min(left, PAD_CHUNK)
            yield filler[:n]
            left -= n
