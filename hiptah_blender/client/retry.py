"""Retry timing for API calls: exponential backoff with full jitter, and Retry-After.

Standard library only. The policy (docs/client.md): full-jitter backoff
uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**n)); a server's Retry-After
(delta-seconds or HTTP-date) wins, capped at RETRY_AFTER_CAP by the client.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

# Retry policy (see docs/client.md).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0


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


__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "RETRY_AFTER_CAP", "backoff_delay", "parse_retry_after"]
