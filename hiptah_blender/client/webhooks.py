"""Webhook signatures, Standard Webhooks scheme (https://www.standardwebhooks.com).

A delivery carries three headers: ``webhook-id``, ``webhook-timestamp`` (unix
seconds) and ``webhook-signature`` (space-separated ``v1,<base64>`` entries, so
a sender can rotate secrets). The signature is HMAC-SHA256, keyed with the
base64-decoded part of ``whsec_<base64>``, over ``"{id}.{timestamp}.{raw body}"``.

Receivers must verify against the *raw* body bytes (re-serialised JSON would not
match), compare in constant time, and refuse timestamps more than ``tolerance``
seconds off to stop replays. No message here ever contains the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import ValidationError

from .errors import HiptahError
from .models import WebhookEvent

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300


class WebhookVerificationError(HiptahError):
    """A webhook delivery that must be ignored: unsigned, forged, tampered or replayed."""

    default_message = "The webhook delivery could not be verified."
    hint = "Ignore this delivery; check that the webhook secret matches the one HiPtah returned."


Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def _secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key: bytes as given; ``whsec_<base64>`` or bare base64 decoded."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = (secret or "").strip().removeprefix(SECRET_PREFIX)
        try:
            # Unpadded base64 is common in copied secrets; re-pad before decoding.
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError(
                "The webhook secret is not valid: expected 'whsec_' followed by base64.",
                hint="Copy the secret exactly as POST /webhooks returned it.",
            ) from None
    if not key:
        raise WebhookVerificationError("The webhook secret is empty.", hint="Set the webhook secret.")
    return key


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def sign_webhook(secret: str | bytes, msg_id: str, timestamp: int | float | datetime, body: bytes | str) -> str:
    """The ``webhook-signature`` value ``v1,<base64>`` for one delivery (used by the sandbox and tests)."""
    if isinstance(timestamp, datetime):
        timestamp = timestamp.timestamp()
    stamp = str(int(timestamp))
    digest = _signature(_secret_bytes(secret), msg_id, stamp, _as_bytes(body))
    return "v1," + base64.b64encode(digest).decode("ascii")


def _header_lookup(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(name).strip().lower(): str(value) for name, value in items}


def verify_webhook(
    secret: str | bytes,
    headers: Headers,
    raw_body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Check a delivery's signature and timestamp; return its parsed event.

    ``headers`` may be any mapping or list of pairs; names are matched
    case-insensitively. Raises WebhookVerificationError saying what was wrong.
    """
    key = _secret_bytes(secret)
    found = _header_lookup(headers)
    msg_id = found.get("webhook-id", "").strip()
    stamp = found.get("webhook-timestamp", "").strip()
    signatures = found.get("webhook-signature", "").strip()
    missing = [
        name
        for name, value in (("webhook-id", msg_id), ("webhook-timestamp", stamp), ("webhook-signature", signatures))
        if not value
    ]
    if missing:
        raise WebhookVerificationError(f"The webhook delivery lacks the header(s) {', '.join(missing)}.")

    if not stamp.isascii() or not stamp.isdigit():
        raise WebhookVerificationError("The webhook-timestamp header is not a unix time in seconds.")
    sent_at = int(stamp)
    current = time.time() if now is None else now
    if sent_at < current - tolerance:
        raise WebhookVerificationError(
            f"The webhook timestamp is {current - sent_at:.0f} s old (limit {tolerance:.0f} s); possible replay."
        )
    if sent_at > current + tolerance:
        raise WebhookVerificationError(
            f"The webhook timestamp is {sent_at - current:.0f} s in the future (limit {tolerance:.0f} s)."
        )

    body = _as_bytes(raw_body)
    expected = _signature(key, msg_id, stamp, body)
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue  # other schemes (e.g. v1a, asymmetric) are not ours to check
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Check every entry (no early exit) so timing does not reveal which one matched.
        matched = hmac.compare_digest(expected, candidate) or matched
    if not matched:
        raise WebhookVerificationError("No valid v1 signature matches this webhook delivery.")

    try:
        payload = json.loads(body)
        return WebhookEvent.model_validate(payload)
    except (ValueError, RecursionError, ValidationError):
        raise WebhookVerificationError(
            "The webhook delivery is signed correctly but its body is not a HiPtah event.",
            hint="Update the add-on if HiPtah changed its webhook format.",
        ) from None


__all__ = ["DEFAULT_TOLERANCE", "SECRET_PREFIX", "WebhookVerificationError", "sign_webhook", "verify_webhook"]
