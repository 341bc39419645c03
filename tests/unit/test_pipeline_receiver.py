"""hiptah_blender.batch.receiver over real HTTP: verified deliveries queue, everything else is refused."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import requests

from hiptah_blender.batch.receiver import WebhookReceiver
from hiptah_blender.client.webhooks import sign_webhook

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"z" * 32).decode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver("127.0.0.1", 0, path="/hooks", secret=SECRET, max_ids=50) as rx:
        yield rx


def body_for(job_id: str, event: str = "job.completed") -> bytes:
    return json.dumps({"event": event, "job_id": job_id, "model_url": f"http://cdn/{job_id}.glb"}).encode()


def post(
    rx: WebhookReceiver,
    body: bytes,
    *,
    msg_id: str = "msg_1",
    secret: str = SECRET,
    timestamp: int | None = None,
    path: str = "/hooks",
    signature: str | None = None,
) -> requests.Response:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature or sign_webhook(secret, msg_id, stamp, body),
        "Content-Type": "application/json",
    }
    return requests.post(f"http://127.0.0.1:{rx.port}{path}", data=body, headers=headers, timeout=5)


def test_verified_delivery_is_queued(receiver: WebhookReceiver) -> None:
    resp = post(receiver, body_for("gen_1"))
    assert resp.status_code == 200
    [delivery] = receiver.drain()
    assert delivery.event.job_id == "gen_1" and delivery.event.event == "job.completed"
    assert delivery.webhook_id == "msg_1"
    assert receiver.drain() == []
    assert receiver.local_url == f"http://127.0.0.1:{receiver.port}/hooks"


def test_forged_tampered_and_stale_deliveries_are_refused(receiver: WebhookReceiver) -> None:
    assert post(receiver, body_for("gen_1"), secret=OTHER).status_code == 401
    signed_for_other = sign_webhook(SECRET, "msg_2", int(time.time()), body_for("gen_other"))
    assert post(receiver, body_for("gen_1"), msg_id="msg_2", signature=signed_for_other).status_code == 401
    old = int(time.time()) - 3600
    assert post(receiver, body_for("gen_1"), msg_id="msg_3", timestamp=old).status_code == 401
    assert post(receiver, body_for("gen_1"), msg_id="msg_4", signature="v1,bm90IGEgc2ln").status_code == 401
    assert receiver.drain() == []
    assert receiver.stats.rejected == 4 and receiver.stats.accepted == 0


def test_replayed_delivery_is_acknowledged_but_ignored(receiver: WebhookReceiver) -> None:
    body = body_for("gen_1")
    stamp = int(time.time())
    first = post(receiver, body, msg_id="msg_r", timestamp=stamp)
    again = post(receiver, body, msg_id="msg_r", timestamp=stamp)
    resigned = post(receiver, body, msg_id="msg_r")  # a sender retry: same id, new timestamp
    assert (first.status_code, again.status_code, resigned.status_code) == (200, 200, 200)
    assert "duplicate" in again.text
    assert len(receiver.drain()) == 1
    assert receiver.stats.duplicates == 2


def test_a_forgery_cannot_burn_the_id_of_a_real_delivery(receiver: WebhookReceiver) -> None:
    assert post(receiver, body_for("gen_1"), msg_id="msg_x", secret=OTHER).status_code == 401
    assert post(receiver, body_for("gen_1"), msg_id="msg_x").status_code == 200
    assert len(receiver.drain()) == 1


def test_malformed_requests(receiver: WebhookReceiver) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    assert post(receiver, body_for("gen_1"), path="/other").status_code == 404
    assert requests.get(base + "/hooks", timeout=5).status_code == 405
    huge = b"{" + b" " * (300 * 1024) + b"}"
    assert post(receiver, huge).status_code == 413
    assert post(receiver, b"not json").status_code == 401  # signed garbage is still refused
    assert receiver.drain() == []


def test_not_ready_until_the_secret_is_known() -> None:
    with WebhookReceiver("127.0.0.1", 0) as rx:
        assert post(rx, body_for("gen_1")).status_code == 503
        rx.set_secret(SECRET)
        assert post(rx, body_for("gen_1")).status_code == 200


def test_seen_ids_are_bounded() -> None:
    clock_now = [time.time()]
    with WebhookReceiver("127.0.0.1", 0, secret=SECRET, max_ids=5, clock=lambda: clock_now[0]) as rx:
        for n in range(12):
            assert post(rx, body_for(f"gen_{n}"), msg_id=f"msg_{n}").status_code == 200
        assert rx.seen_count() == 5
        # Ids older than twice the tolerance are forgotten: their timestamps are stale anyway.
        clock_now[0] += 2 * rx.tolerance + 1
        stale = post(rx, body_for("gen_x"), msg_id="msg_new", timestamp=int(clock_now[0]))
        assert stale.status_code == 200
        assert rx.seen_count() == 1
