"""Webhook signatures: cross-checked with the standardwebhooks reference package in both directions."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from hiptah_blender.client import HiptahError
from hiptah_blender.client.models import JobStatus
from hiptah_blender.client.webhooks import WebhookVerificationError, sign_webhook, verify_webhook

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
NOW = 1_750_000_000
BODY = json.dumps(
    {"event": "job.completed", "job_id": "gen_1", "model_url": "https://cdn/x.glb"}
).encode()


def headers(signature: str, *, msg_id: str = "msg_1", ts: int = NOW) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_round_trip() -> None:
    sig = sign_webhook(SECRET, "msg_1", NOW, BODY)
    assert sig.startswith("v1,")
    event = verify_webhook(SECRET, headers(sig), BODY, now=NOW)
    assert event.event == "job.completed" and event.job_id == "gen_1"


def test_their_signature_verifies_with_ours() -> None:
    theirs = standardwebhooks.Webhook(SECRET).sign(
        "msg_9", datetime.fromtimestamp(NOW, tz=UTC), BODY.decode()
    )
    assert verify_webhook(SECRET, headers(theirs, msg_id="msg_9"), BODY, now=NOW).job_id == "gen_1"
    assert theirs == sign_webhook(SECRET, "msg_9", NOW, BODY)


def test_our_signature_verifies_with_theirs() -> None:
    now = int(datetime.now(tz=UTC).timestamp())  # their verify uses the real clock
    ours = sign_webhook(SECRET, "msg_2", now, BODY)
    payload = standardwebhooks.Webhook(SECRET).verify(BODY, headers(ours, msg_id="msg_2", ts=now))
    assert payload["job_id"] == "gen_1"


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    msg_id=st.text(st.characters(codec="ascii", exclude_characters=" "), min_size=1, max_size=30),
    body=st.binary(max_size=300),
)
def test_signatures_match_the_reference_for_any_input(key: bytes, msg_id: str, body: bytes) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return  # the reference signs str bodies only
    theirs = standardwebhooks.Webhook(secret).sign(
        msg_id, datetime.fromtimestamp(NOW, tz=UTC), text
    )
    assert sign_webhook(secret, msg_id, NOW, body) == theirs
    assert sign_webhook(key, msg_id, NOW, body) == theirs  # raw bytes key


def test_secret_forms() -> None:
    raw = base64.b64decode(SECRET.removeprefix("whsec_"))
    sig = sign_webhook(raw, "msg_1", NOW, BODY)
    assert sign_webhook(SECRET, "msg_1", NOW, BODY) == sig
    assert sign_webhook(SECRET.removeprefix("whsec_"), "msg_1", NOW, BODY) == sig  # bare base64
    assert sign_webhook(SECRET.rstrip("="), "msg_1", NOW, BODY) == sig  # unpadded
    verify_webhook(raw, headers(sig), BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="not valid"):
        verify_webhook("whsec_***not base64***", headers(sig), BODY, now=NOW)
    with pytest.raises(WebhookVerificationError, match="empty"):
        verify_webhook("whsec_", headers(sig), BODY, now=NOW)


def test_header_names_are_case_insensitive_and_pairs_accepted() -> None:
    sig = sign_webhook(SECRET, "msg_1", NOW, BODY)
    upper = {"Webhook-Id": "msg_1", "WEBHOOK-TIMESTAMP": str(NOW), "Webhook-Signature": sig}
    verify_webhook(SECRET, upper, BODY, now=NOW)
    verify_webhook(SECRET, list(upper.items()), BODY, now=NOW)


def test_str_body_is_accepted() -> None:
    sig = sign_webhook(SECRET, "msg_1", NOW, BODY.decode())
    verify_webhook(SECRET, headers(sig), BODY.decode(), now=NOW)


def test_multiple_signatures_any_v1_match() -> None:
    good = sign_webhook(SECRET, "msg_1", NOW, BODY)
    rotated = sign_webhook(OTHER_SECRET, "msg_1", NOW, BODY)
    value = f"v1a,{base64.b64encode(os.urandom(64)).decode()} {rotated} v1,not-base64!! {good}"
    verify_webhook(SECRET, headers(value), BODY, now=NOW)
    verify_webhook(OTHER_SECRET, headers(value), BODY, now=NOW)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h, b: (h, b + b" "),  # tampered body
        lambda h, b: (h, b.replace(b"gen_1", b"gen_2")),
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),  # replayed under another id
        lambda h, b: ({**h, "webhook-timestamp": str(NOW - 1)}, b),  # timestamp not the signed one
        lambda h, b: (
            {**h, "webhook-signature": "v1," + base64.b64encode(b"\x00" * 32).decode()},
            b,
        ),
        lambda h, b: (
            {**h, "webhook-signature": "v2," + h["webhook-signature"][3:]},
            b,
        ),  # wrong version
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"][3:]}, b),  # no version
        lambda h, b: ({**h, "webhook-signature": "v1,"}, b),
    ],
)
def test_forgeries_are_rejected(mutate) -> None:  # type: ignore[no-untyped-def]
    good = headers(sign_webhook(SECRET, "msg_1", NOW, BODY))
    forged_headers, forged_body = mutate(good, BODY)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(SECRET, forged_headers, forged_body, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    sig = sign_webhook(OTHER_SECRET, "msg_1", NOW, BODY)
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(SECRET, headers(sig), BODY, now=NOW)
    assert isinstance(info.value, HiptahError)
    for text in (str(info.value), repr(info.value), info.value.user_text()):
        assert SECRET not in text and SECRET.removeprefix("whsec_") not in text


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "future"), (-10_000, "old")])
def test_stale_and_future_timestamps_are_rejected(offset: int, word: str) -> None:
    ts = NOW + offset
    sig = sign_webhook(SECRET, "msg_1", ts, BODY)
    with pytest.raises(WebhookVerificationError, match=word):
        verify_webhook(SECRET, headers(sig, ts=ts), BODY, now=NOW)
    verify_webhook(SECRET, headers(sig, ts=ts), BODY, now=NOW, tolerance=abs(offset) + 1)


def test_timestamps_at_the_tolerance_edge_pass() -> None:
    for ts in (NOW - 300, NOW + 300):
        verify_webhook(
            SECRET, headers(sign_webhook(SECRET, "m", ts, BODY), msg_id="m", ts=ts), BODY, now=NOW
        )


@pytest.mark.parametrize("ts", ["", "soon", "1.5e9", "-5", "١٢٣"])
def test_malformed_timestamps_are_rejected(ts: str) -> None:
    h = headers(sign_webhook(SECRET, "msg_1", NOW, BODY))
    h["webhook-timestamp"] = ts
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, h, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_named(missing: str) -> None:
    h = headers(sign_webhook(SECRET, "msg_1", NOW, BODY))
    del h[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        verify_webhook(SECRET, h, BODY, now=NOW)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"event": "job.completed"}', b"\xff\xfe"])
def test_signed_but_unusable_bodies(body: bytes) -> None:
    sig = sign_webhook(SECRET, "msg_1", NOW, body)
    with pytest.raises(WebhookVerificationError, match="not a HiPtah event"):
        verify_webhook(SECRET, headers(sig), body, now=NOW)


def test_event_fields_are_parsed_leniently() -> None:
    body = json.dumps(
        {
            "event": "job.failed",
            "job_id": "gen_1",
            "status": "FAILED",
            "error": {"code": 7, "message": "nope"},
            "extra": [1],
        }
    ).encode()
    event = verify_webhook(
        SECRET, headers(sign_webhook(SECRET, "m", NOW, body), msg_id="m"), body, now=NOW
    )
    assert event.status is JobStatus.FAILED
    assert event.error is not None and event.error.code == "7"


def test_sign_accepts_datetime() -> None:
    when = datetime.fromtimestamp(NOW, tz=UTC)
    assert sign_webhook(SECRET, "m", when, BODY) == sign_webhook(SECRET, "m", NOW, BODY)
