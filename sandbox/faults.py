"""Fault injection: which request gets which fault, chosen by a seeded RNG.

One RNG for API requests and one for CDN downloads, each drawn in arrival order
under a lock, so a given ``--seed`` and request sequence always gives the same
faults. API faults are exclusive per request (500, 429 or a dropped connection);
a slow delay is drawn independently and can come on top.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from .config import FAULT_FIELDS, SandboxConfig


@dataclass(frozen=True)
class ApiFault:
    kind: str | None  # None | "error" (500) | "rate_limit" (429) | "drop" (cut response)
    delay: float  # seconds to wait before answering (0 = not slow)
    retry_after: int = 1
    reset_early: bool = False  # a drop: reset before any byte (else cut mid-body)

    @property
    def label(self) -> str | None:
        kind = self.kind
        if kind == "drop":
            kind = "drop-reset" if self.reset_early else "drop-partial"
        parts = [p for p in (kind, "slow" if self.delay else None) if p]
        return "+".join(parts) or None


@dataclass(frozen=True)
class CdnFault:
    kind: str | None  # None | "truncate" | "corrupt"
    delay: float

    @property
    def label(self) -> str | None:
        parts = [p for p in (self.kind, "slow" if self.delay else None) if p]
        return "+".join(parts) or None


class FaultInjector:
    """Holds the current fault settings (changeable at runtime) and draws faults."""

    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.Lock()
        self._start = config.faults()
        self._seed = config.seed
        self.settings: dict[str, Any] = dict(self._start)
        self._api_rng = random.Random(f"api-{self._seed}")
        self._cdn_rng = random.Random(f"cdn-{self._seed}")
        self._job_rng = random.Random(f"job-{self._seed}")

    def reset(self) -> None:
        with self._lock:
            self.settings = dict(self._start)
            self._api_rng = random.Random(f"api-{self._seed}")
            self._cdn_rng = random.Random(f"cdn-{self._seed}")
            self._job_rng = random.Random(f"job-{self._seed}")

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply runtime changes; ValueError names the bad field."""
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "seed":
                continue
            if name not in FAULT_FIELDS:
                raise ValueError(
                    f"unknown fault setting {name!r}; known: {', '.join(FAULT_FIELDS)}"
                )
            if name == "latency" and value is None:
                clean[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number")
            number = float(value)
            if not number >= 0 or number == float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0")
            if (name.endswith("_rate") or name in ("offline", "hold")) and number > 1:
                raise ValueError(f"{name} is a fraction between 0 and 1")
            clean[name] = int(number) if name == "retry_after" else number
        with self._lock:
            if "seed" in changes:
                seed = changes["seed"]
                if isinstance(seed, bool) or not isinstance(seed, int):
                    raise ValueError("seed must be an integer")
                self._seed = seed
                self._api_rng = random.Random(f"api-{seed}")
                self._cdn_rng = random.Random(f"cdn-{seed}")
                self._job_rng = random.Random(f"job-{seed}")
            self.settings.update(clean)
            return dict(self.settings)

    def get(self, name: str) -> Any:
        with self._lock:
            return self.settings[name]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.settings) | {"seed": self._seed}

    def draw_api(self) -> ApiFault:
        with self._lock:
            s = self.settings
            u = self._api_rng.random()
            slow = self._api_rng.random() < s["slow_rate"]
            early = self._api_rng.random() < 0.5
            kind: str | None = None
            edge = s["fault_rate"]
            if u < edge:
                kind = "error"
            elif u < (edge := edge + s["rate_limit_rate"]):
                kind = "rate_limit"
            elif u < edge + s["drop_rate"]:
                kind = "drop"
            return ApiFault(
                kind,
                float(s["slow_seconds"]) if slow else 0.0,
                int(s["retry_after"]),
                reset_early=early,
            )

    def offline(self) -> bool:
        """The network is "down": connections are reset before any byte, state is kept."""
        with self._lock:
            return bool(self.settings["offline"])

    def draw_cdn(self) -> CdnFault:
        with self._lock:
            s = self.settings
            u = self._cdn_rng.random()
            slow = self._cdn_rng.random() < s["slow_rate"]
            kind: str | None = None
            if u < s["truncate_rate"]:
                kind = "truncate"
            elif u < s["truncate_rate"] + s["corrupt_rate"]:
                kind = "corrupt"
            return CdnFault(kind, float(s["slow_seconds"]) if slow else 0.0)

    def draw_job_failure(self) -> bool:
        with self._lock:
            return self._job_rng.random() < self.settings["fail_rate"]
