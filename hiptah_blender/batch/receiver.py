"""A small webhook receiver for batch runs: HiPtah tells us when a job ends.

A threaded ``http.server`` accepts POSTs on one path. Every delivery is verified
with :func:`hiptah_blender.client.webhooks.verify_webhook` (Standard Webhooks:
HMAC signature over id, timestamp and raw body; timestamp within the tolerance)
before anything in it is believed:

* forged, tampered, unsigned or stale (older than the tolerance, so a replay
  captured earlier) -> 401, nothing happens;
* malformed requests (no or huge body, wrong path/method) -> 400/413/404/405;
* a verified delivery whose ``webhook-id`` was already seen -> 200 but ignored.
  Senders retry with the same id whenever they miss our answer, and a 4xx would
  make them keep retrying; acknowledging stops them while the duplicate still
  changes nothing. Ids are remembered for twice the tolerance window (older ones
  fail the timestamp check anyway) and at most ``max_ids`` of them: bounded memory.

Handler threads never touch the scheduler: verified events go into a queue that
the batch's main loop drains (:meth:`drain`), so ``notify_completed`` runs on the
same thread as ``tick``. Nothing here logs headers or the secret.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..client.models import WebhookEvent

MAX_BODY_BYTES = 256 * 1024  # a job event is a few hundred bytes
DEFAULT_MAX_IDS = 10_000
DEFAULT_TOLERANCE = 300.0


@dataclass
class ReceiverStats:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0  # failed verification (forged, stale, ...)
    malformed: int = 0  # wrong path/method/size: never reached verification


@dataclass(frozen=True)
class Delivery:
    """A verified, first-seen delivery."""

    webhook_id: str
    event: WebhookEvent
    received_at: float


class WebhookReceiver:
    """Listens on ``host:port`` (port 0 picks a free one); start() before registering."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = "/hooks",
        secret: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        max_ids: int = DEFAULT_MAX_IDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.path = "/" + path.strip("/") if path.strip("/") else "/"
        self.tolerance = tolerance
        self.max_ids = max(1, max_ids)
        self.clock = clock
        self.stats = ReceiverStats()
        self._secret = secret
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()  # webhook-id -> time seen
        self._queue: queue.Queue[Delivery] = queue.Queue()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> tuple[str, int]:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="hiptah-webhooks", daemon=True
        )
        self._thread.start()
        return self.host, self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def local_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    def set_secret(self, secret: str) -> None:
        """The signing secret POST /webhooks returned (known only after listening)."""
        with self._lock:
            self._secret = secret

    # ------------------------------------------------------------------ consumer side
    def drain(self) -> list[Delivery]:
        """Every delivery verified since the last call (main thread)."""
        out: list[Delivery] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    # ------------------------------------------------------------------ handler side
    def handle(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None) -> tuple[int, str]:
        """Decide the answer for one request; called on a handler thread."""
        if urlsplit(path).path.rstrip("/") != self.path.rstrip("/"):
            return self._malformed(HTTPStatus.NOT_FOUND, "unknown path")
        if method != "POST":
            return self._malformed(HTTPStatus.METHOD_NOT_ALLOWED, "POST only")
        if body is None:
            return self._malformed(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body missing or too large")
        with self._lock:
            secret = self._secret
        if secret is None:
            # Deliveries before registration finished cannot be checked; the sender retries.
            return HTTPStatus.SERVICE_UNAVAILABLE, "not ready"

        from ..client.errors import HiptahError
        from ..client.webhooks import verify_webhook

        now = self.clock()
        try:
            event = verify_webhook(secret, headers, body, tolerance=self.tolerance, now=now)
        except HiptahError as exc:
            with self._lock:
                self.stats.rejected += 1
            return HTTPStatus.UNAUTHORIZED, exc.message
        webhook_id = next((v.strip() for k, v in headers if k.lower() == "webhook-id"), "")
        with self._lock:
            # Only verified ids are remembered: a forger cannot pre-block a real delivery.
            self._forget_old(now)
            if webhook_id in self._seen:
                self.stats.duplicates += 1
                return HTTPStatus.OK, "duplicate ignored"
            self._seen[webhook_id] = now
            while len(self._seen) > self.max_ids:
                self._seen.popitem(last=False)
            self.stats.accepted += 1
        self._queue.put(Delivery(webhook_id, event, now))
        return HTTPStatus.OK, "ok"

    def _forget_old(self, now: float) -> None:
        horizon = now - 2 * self.tolerance
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if seen_at >= horizon:
                break
            del self._seen[oldest_id]

    def _malformed(self, status: HTTPStatus, text: str) -> tuple[int, str]:
        with self._lock:
            self.stats.malformed += 1
        return status, text

    def seen_count(self) -> int:
        with self._lock:
            return len(self._seen)


class _Handler(BaseHTTPRequestHandler):
    owner: WebhookReceiver
    server_version = "HiPtahBatchReceiver/1"
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that opens a connection and stalls must not hold a thread

    def _read_body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text is not None else -1
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would corrupt keep-alive
            return None
        return self.rfile.read(length)

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode("utf-8", "replace")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._read_body()
        status, text = self.owner.handle("POST", self.path, list(self.headers.items()), body)
        self._answer(status, text)

    def _other(self) -> None:
        status, text = self.owner.handle(self.command, self.path, list(self.headers.items()), b"")
        self._answer(status, text)

    do_GET = do_PUT = do_DELETE = do_PATCH = _other

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr, over the progress bar.
        pass
