"""pytest plugin (loaded by tests/conftest.py): sandbox server fixtures.

- ``sandbox``: one server for the whole session (latency 0), reset before each
  test that uses it, restarted if a test stopped it.
- ``make_sandbox(**flags)``: a fresh server with custom flags, stopped at teardown
  (fake models unless ``models="auto"``: it is for protocol behaviour).
- ``blender_user_resources``: a temporary BLENDER_USER_RESOURCES for this test.

Models come from ``sandbox.modelgen`` when it is usable (``--models auto``), else
from the tiny fake generator; ``HIPTAH_SANDBOX_MODELS=fake|real`` forces one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.harness import SandboxServer

MakeSandbox = Callable[..., SandboxServer]


def sandbox_defaults() -> dict[str, Any]:
    """Flags every test sandbox starts with, unless a test overrides them."""
    return {
        "latency": 0,
        "models": os.environ.get("HIPTAH_SANDBOX_MODELS", "auto"),
        "webhook_backoff": 0.1,
        "webhook_timeout": 2,
        "seed": 0,
    }


def factory_defaults() -> dict[str, Any]:
    # Factory sandboxes test protocol behaviour, not geometry: the fake generator
    # starts about two seconds faster. Pass models="auto" to get real models.
    return {**sandbox_defaults(), "models": os.environ.get("HIPTAH_SANDBOX_MODELS", "fake")}


@pytest.fixture(scope="session")
def _sandbox_session() -> Iterator[SandboxServer]:
    server = SandboxServer(**sandbox_defaults())
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def sandbox(_sandbox_session: SandboxServer) -> SandboxServer:
    """The shared sandbox, reset to its start flags (no jobs, quota unused, no faults)."""
    if not _sandbox_session.running:
        _sandbox_session.start()
    _sandbox_session.reset()
    return _sandbox_session


@pytest.fixture
def make_sandbox() -> Iterator[MakeSandbox]:
    """Factory: ``make_sandbox(fault_rate=0.5, plan="pro")`` -> a started SandboxServer."""
    started: list[SandboxServer] = []

    def factory(*, ca_bundle: str | None = None, **flags: Any) -> SandboxServer:
        server = SandboxServer(ca_bundle=ca_bundle, **{**factory_defaults(), **flags})
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def blender_user_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BLENDER_USER_RESOURCES for this test (set before anything imports bpy)."""
    path = tmp_path / "blender-user-resources"
    path.mkdir()
    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(path))
    return path
