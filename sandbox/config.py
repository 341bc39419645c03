"""Sandbox settings: one dataclass, built from the command line (or from kwargs in tests)."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any

from hiptah_blender.client.validation import is_loopback_host

# Plans from the seed guide: (generations a month, concurrent jobs). Enterprise is
# "negotiated": these are just the sandbox's defaults, change them with --quota/--concurrency.
PLANS: dict[str, tuple[int, int]] = {
    "creator": (100, 10),
    "pro": (300, 30),
    "enterprise": (10_000, 100),
}

# The seed says "most jobs complete in 25-40 seconds": without --latency each job
# takes a deterministic (per request) duration in this range.
REALISTIC_LATENCY = (25.0, 40.0)

# Fault names settable at runtime through POST /_sandbox/faults.
FAULT_FIELDS: tuple[str, ...] = (
    "fault_rate",
    "rate_limit_rate",
    "slow_rate",
    "slow_seconds",
    "drop_rate",
    "truncate_rate",
    "corrupt_rate",
    "fail_rate",
    "latency",
    "latency_spread",
    "expire_seconds",
    "retry_after",
    "offline",
    "hold",
)


def generate_api_key() -> str:
    return "hp_sandbox_" + secrets.token_urlsafe(24)


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    cdn_host: str = "127.0.0.2"
    cdn_port: int = 0
    api_key: str = ""  # empty -> a generated key (printed at start)
    extra_key: list[str] = field(default_factory=list)
    revoked_key: list[str] = field(default_factory=list)
    plan: str = "creator"
    quota: int | None = None  # None -> the plan's
    concurrency: int | None = None  # None -> the plan's
    used: int = 0  # generations already used this month at start
    latency: float | None = None  # None -> realistic 25-40 s; 0 -> immediate
    latency_spread: float = 0.0  # +- seconds around --latency, deterministic per request
    expire_seconds: float = 3600.0
    expired_status: int = 403  # what the CDN answers for an expired URL (403 or 410)
    fault_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: int = 1  # Retry-After seconds of injected 429s
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    fail_rate: float = 0.0
    # 1 = the network is down: every API and CDN connection is reset before any byte,
    # while jobs keep their state (admin routes still answer). Set at runtime only.
    offline: float = 0.0
    # 1 = jobs past their due time stay "processing" (progress 99) until the admin
    # completes or fails them: tests decide when each job ends. Set at runtime only.
    hold: float = 0.0
    seed: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    models: str = "real"  # real | fake | auto (fake only for tests: tiny valid files)
    webhook_retries: int = 5
    webhook_backoff: float = 1.0  # first retry delay; doubles each time
    webhook_timeout: float = 5.0
    webhook_ca: str | None = None  # CA bundle for https webhook receivers
    log_level: str = "warning"
    exit_with_parent: bool = False  # harness children must not outlive a killed test run
    state_file: str | None = None  # jobs etc. loaded at start, written at a clean stop

    def __post_init__(self) -> None:
        if not self.api_key:
            self.api_key = generate_api_key()
        if self.plan not in PLANS:
            raise ValueError(f"unknown plan {self.plan!r}; use one of {', '.join(PLANS)}")
        if self.models not in ("real", "fake", "auto"):
            raise ValueError("models must be real, fake or auto")
        if self.expired_status not in (403, 410):
            raise ValueError("expired_status must be 403 or 410")
        # Admin endpoints have no auth: the sandbox must never listen beyond this machine.
        for host in (self.host, self.cdn_host):
            if not is_loopback_host(host):
                raise ValueError(f"{host!r} is not a loopback address; the sandbox is local only")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        for name in FAULT_FIELDS:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")
        for name in (
            "fault_rate",
            "rate_limit_rate",
            "slow_rate",
            "drop_rate",
            "truncate_rate",
            "corrupt_rate",
            "fail_rate",
            "offline",
            "hold",
        ):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} is a fraction between 0 and 1")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def plan_limits(self) -> tuple[int, int]:
        quota, concurrency = PLANS[self.plan]
        return (
            quota if self.quota is None else self.quota,
            concurrency if self.concurrency is None else self.concurrency,
        )

    def faults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FAULT_FIELDS}

    def replace(self, **changes: Any) -> SandboxConfig:
        return dataclasses.replace(self, **changes)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a fraction between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("a number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox.py",
        description="Local HiPtah-compatible API + CDN server for development and tests.",
    )
    a = p.add_argument
    a("--host", default="127.0.0.1", help="API host (loopback only; default 127.0.0.1)")
    a("--port", type=int, default=8765, help="API port (0 = a free port; default 8765)")
    a("--cdn-host", default="127.0.0.2", help="CDN host, a different origin (default 127.0.0.2)")
    a("--cdn-port", type=int, default=0, help="CDN port (0 = a free port; default 0)")
    a("--api-key", default="", help="the accepted API key (default: generated and printed)")
    a("--extra-key", action="append", default=[], help="another accepted key (repeatable)")
    a(
        "--revoked-key",
        action="append",
        default=[],
        help="a key answered 401 'revoked' (repeatable)",
    )
    a("--plan", choices=sorted(PLANS), default="creator", help="plan limits (default creator)")
    a("--quota", type=int, default=None, help="generations a month (default: the plan's)")
    a("--concurrency", type=int, default=None, help="concurrent jobs (default: the plan's)")
    a("--used", type=int, default=0, help="generations already used this month (default 0)")
    a(
        "--latency",
        type=_non_negative,
        default=None,
        help="seconds from submission to completion (default: 25-40 s per job; 0 = immediate)",
    )
    a(
        "--latency-spread",
        type=_non_negative,
        default=0.0,
        help="+- seconds around --latency, deterministic per request (default 0)",
    )
    a(
        "--expire-seconds",
        type=_non_negative,
        default=3600.0,
        help="model URL lifetime (default 3600)",
    )
    a(
        "--expired-status",
        type=int,
        choices=(403, 410),
        default=403,
        help="CDN status for an expired URL (default 403)",
    )
    a("--fault-rate", type=_fraction, default=0.0, help="fraction of API requests answering 500")
    a("--rate-limit-rate", type=_fraction, default=0.0, help="fraction answering 429 + Retry-After")
    a("--retry-after", type=int, default=1, help="Retry-After seconds of injected 429s (default 1)")
    a(
        "--slow-rate",
        type=_fraction,
        default=0.0,
        help="fraction of requests delayed --slow-seconds",
    )
    a("--slow-seconds", type=_non_negative, default=5.0, help="delay of slow requests (default 5)")
    a(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        help="fraction of API responses cut off mid-body (connection closed)",
    )
    a(
        "--truncate-rate",
        type=_fraction,
        default=0.0,
        help="fraction of CDN downloads sending fewer bytes than Content-Length",
    )
    a(
        "--corrupt-rate",
        type=_fraction,
        default=0.0,
        help="fraction of CDN downloads with garbage bytes",
    )
    a("--fail-rate", type=_fraction, default=0.0, help="fraction of jobs that end 'failed'")
    a("--seed", type=int, default=0, help="seed of every random choice (faults, latencies)")
    a("--tls-cert", default=None, help="PEM certificate: serve https (API and CDN)")
    a("--tls-key", default=None, help="PEM private key for --tls-cert")
    a(
        "--models",
        choices=("real", "fake", "auto"),
        default="real",
        help="model generator: real (sandbox.modelgen), fake (tiny files, tests only), auto",
    )
    a(
        "--fake-models",
        dest="models",
        action="store_const",
        const="fake",
        help="same as --models fake (tests only)",
    )
    a(
        "--webhook-retries",
        type=int,
        default=5,
        help="delivery retries after the first try (default 5)",
    )
    a(
        "--webhook-backoff",
        type=_non_negative,
        default=1.0,
        help="first retry delay in seconds, doubling each time (default 1)",
    )
    a("--webhook-timeout", type=_non_negative, default=5.0, help="per-delivery timeout (default 5)")
    a("--webhook-ca", default=None, help="CA bundle for https webhook receivers")
    a(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="uvicorn log level on stderr (default warning)",
    )
    a(
        "--state-file",
        default=None,
        metavar="PATH",
        help="keep jobs, model URLs, idempotency keys, webhooks and quota use across restarts: "
        "loaded at start if PATH exists, written when the server stops cleanly (SIGTERM/Ctrl-C)",
    )
    a(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process dies (the test harness sets this)",
    )
    return p


def config_from_args(argv: list[str] | None = None) -> SandboxConfig:
    parser = build_parser()
    ns = parser.parse_args(argv)
    values = vars(ns)
    try:
        return SandboxConfig(**values)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # parser.error exits; keeps mypy sure this returns
