"""Webhook registration and signed deliveries (verified with the standardwebhooks package)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook, WebhookVerificationError

from sandbox.harness import SandboxServer
from tests.unit.sandbox_helpers import post


class Receiver:
    """A loopback HTTP endpoint that records deliveries and answers a scripted status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered in order; 204 once exhausted
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= count, f"got {len(self.received)} deliveries, wanted {count}"
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def register(sb: SandboxServer, url: str, events: list[str] | None = None) -> requests.Response:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    return requests.post(f"{sb.base_url}/webhooks", json=body, headers=sb.auth_headers, timeout=10)


def generate(sb: SandboxServer, **body: Any) -> str:
    resp = post(sb, {"prompt": "a cube", **body})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["job_id"])


def test_register_returns_id_and_whsec_secret(sandbox):
    resp = register(sandbox, "https://example.com/hooks/hiptah", ["job.completed"])
    assert resp.status_code == 201
    body = resp.json()
    assert body["webhook_id"].startswith("wh_") and body["secret"].startswith("whsec_")
    Webhook(body["secret"])  # valid base64 secret
    assert body["events"] == ["job.completed"]
    for bad in (
        {"url": "http://example.com/h"},
        {"url": 5},
        {"url": "https://a.b/h", "events": ["job.nope"]},
        {"url": "https://a.b/h", "events": []},
        {},
    ):
        resp = requests.post(
            f"{sandbox.base_url}/webhooks", json=bad, headers=sandbox.auth_headers, timeout=10
        )
        assert resp.status_code == 400, (bad, resp.text)


def test_completed_job_is_delivered_signed_and_verifiable(sandbox, receiver):
    secret = register(sandbox, receiver.url).json()["secret"]
    job_id = generate(sandbox)
    headers, body = receiver.wait(1)[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["event"] == "job.completed" and payload["job_id"] == job_id
    assert payload["model_url"].startswith(sandbox.cdn_url)
    assert headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert headers["webhook-signature"].startswith("v1,")
    assert "authorization" not in headers
    # A wrong secret or a tampered body is refused.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"completed", b"failed"), headers)
    # The model URL in the event downloads without a key.
    assert requests.get(payload["model_url"], timeout=10).status_code == 200


def test_signature_matches_the_contract_formula(sandbox, receiver):
    import base64
    import hashlib
    import hmac

    secret = register(sandbox, receiver.url).json()["secret"]
    generate(sandbox)
    headers, body = receiver.wait(1)[0]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}".encode()
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert expected in headers["webhook-signature"].split(" ")


def test_failed_job_sends_job_failed(sandbox, receiver):
    secret = register(sandbox, receiver.url, ["job.failed"]).json()["secret"]
    sandbox.set_faults(fail_rate=1.0)
    job_id = generate(sandbox)
    headers, body = receiver.wait(1)[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["event"] == "job.failed" and payload["job_id"] == job_id
    assert payload["model_url"] is None and payload["error"]["code"] == "generation_failed"


def test_events_filter(sandbox, receiver):
    register(sandbox, receiver.url, ["job.failed"])
    generate(sandbox)  # completes: no job.failed subscriber for it
    time.sleep(0.5)
    assert receiver.received == []


def test_callback_url_gets_deliveries_signed_with_the_account_secret(sandbox, receiver):
    job_id = generate(sandbox, callback_url=receiver.url)
    headers, body = receiver.wait(1)[0]
    account_secret = sandbox.state()["plan"]["signing_secret"]
    assert Webhook(account_secret).verify(body, headers)["job_id"] == job_id


def test_callback_url_also_verifies_with_a_registered_secret(sandbox, receiver):
    secret = register(sandbox, "https://example.invalid/other").json()["secret"]
    job_id = generate(sandbox, callback_url=receiver.url)
    headers, body = receiver.wait(1)[0]
    assert Webhook(secret).verify(body, headers)["job_id"] == job_id


def test_non_2xx_is_retried_with_backoff_and_logged(sandbox, receiver):
    register(sandbox, receiver.url)
    receiver.statuses = [500, 503]
    generate(sandbox)
    received = receiver.wait(3)
    assert len({h["webhook-id"] for h, _ in received}) == 1  # same message id on every retry
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        deliveries = sandbox.deliveries()
        if deliveries and deliveries[0]["status"] == "delivered":
            break
        time.sleep(0.05)
    (delivery,) = deliveries
    assert delivery["status"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 204]
    gaps = [
        b["time"] - a["time"]
        for a, b in zip(delivery["attempts"], delivery["attempts"][1:], strict=False)
    ]
    assert gaps[1] > gaps[0] * 1.3  # backoff grows


def test_unreachable_receiver_gives_up_after_retries(make_sandbox):
    sb = make_sandbox(webhook_retries=2, webhook_backoff=0.05)
    register(sb, "http://127.0.0.1:9/nothing-listens-here")
    generate(sb)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        deliveries = sb.deliveries()
        if deliveries and deliveries[0]["status"] == "failed":
            break
        time.sleep(0.05)
    assert deliveries[0]["status"] == "failed" and len(deliveries[0]["attempts"]) == 3
    assert all(a["error"] for a in deliveries[0]["attempts"])
    json.dumps(sb.state())  # the admin state stays serialisable
