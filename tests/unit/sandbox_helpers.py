"""Small request helpers shared by the sandbox tests."""

from __future__ import annotations

import time
from typing import Any

import requests

from sandbox.harness import SandboxServer


def post(
    sb: SandboxServer, body: Any, *, key: str | None = None, idem: str | None = None, **kw: Any
) -> requests.Response:
    headers = {"Authorization": f"Bearer {key or sb.api_key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return requests.post(f"{sb.base_url}/generate", json=body, headers=headers, timeout=30, **kw)


def get_job(sb: SandboxServer, job_id: str, key: str | None = None) -> requests.Response:
    return requests.get(
        f"{sb.base_url}/job/{job_id}",
        headers={"Authorization": f"Bearer {key or sb.api_key}"},
        timeout=30,
    )


def wait_done(sb: SandboxServer, job_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = get_job(sb, job_id).json()
        if data["status"] in ("completed", "failed"):
            return data
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")
