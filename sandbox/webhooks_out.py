"""Outgoing webhook deliveries, signed per Standard Webhooks, retried with backoff.

A scheduler thread keeps a heap of due attempts and hands them to a small thread
pool, so one slow receiver does not hold up the others. Every attempt is signed
afresh (new timestamp, same webhook-id, as the scheme expects for retries) and
recorded in a delivery log that the admin state exposes.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

# The reference implementation signs, not the client's own sign_webhook: the sandbox
# is what the client's verifier is tested against, so it must not share its code.
from standardwebhooks import Webhook

USER_AGENT = "HiPtah-Sandbox-Webhooks/1"
LOG_LIMIT = 2000


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}`` with the decoded secret."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body)


@dataclass
class Delivery:
    delivery_id: str  # the webhook-id header: constant across retries
    url: str
    secrets: list[str]  # every matching signature goes in webhook-signature, space-separated
    body: str
    event: str
    job_id: str
    webhook_id: str | None  # None for a job's callback_url
    attempts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"  # pending | delivered | failed

    def public(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "webhook_id": self.webhook_id,
            "url": self.url,
            "event": self.event,
            "job_id": self.job_id,
            "body": self.body,
            "status": self.status,
            "attempts": list(self.attempts),
        }


class WebhookSender:
    def __init__(
        self, *, retries: int, backoff: float, timeout: float, ca_bundle: str | None
    ) -> None:
        self.retries = max(0, retries)
        self.backoff = backoff
        self.timeout = timeout
        self.verify: bool | str = ca_bundle or True
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._log: deque[Delivery] = deque(maxlen=LOG_LIMIT)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-webhook")
        self._stopped = False
        self._generation = 0  # bumped by reset(): attempts of older deliveries are dropped
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def enqueue(
        self, *, url: str, secrets_: list[str], payload: dict[str, Any], webhook_id: str | None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":"))
        delivery = Delivery(
            delivery_id="msg_" + secrets.token_hex(12),
            url=url,
            secrets=secrets_,
            body=body,
            event=str(payload.get("event")),
            job_id=str(payload.get("job_id")),
            webhook_id=webhook_id,
        )
        with self._wake:
            self._log.append(delivery)
            heapq.heappush(self._heap, (time.monotonic(), next(self._seq), delivery))
            self._wake.notify()

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.public() for d in self._log]

    def reset(self) -> None:
        with self._wake:
            self._heap.clear()
            self._log.clear()
            self._generation += 1

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout=wait)
                if self._stopped:
                    return
                _, _, delivery = heapq.heappop(self._heap)
                generation = self._generation
            try:
                self._pool.submit(self._attempt, delivery, generation)
            except RuntimeError:  # pool shut down while stopping
                return

    def _attempt(self, delivery: Delivery, generation: int) -> None:
        timestamp = int(time.time())
        signature = " ".join(
            sign(s, delivery.delivery_id, timestamp, delivery.body) for s in delivery.secrets
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        record: dict[str, Any] = {"time": time.time(), "status": None, "error": None}
        try:
            resp = requests.post(
                delivery.url,
                data=delivery.body.encode(),
                headers=headers,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
            )
            record["status"] = resp.status_code
            ok = 200 <= resp.status_code < 300
            resp.close()
        except requests.RequestException as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            ok = False
        with self._wake:
            if generation != self._generation:
                return
            delivery.attempts.append(record)
            if ok:
                delivery.status = "delivered"
                return
            if len(delivery.attempts) > self.retries:
                delivery.status = "failed"
                return
            delay = self.backoff * (2 ** (len(delivery.attempts) - 1))
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
            self._wake.notify()
