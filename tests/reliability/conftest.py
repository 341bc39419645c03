"""Fixtures of the reliability suite: one fake-model sandbox for the module's cases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.harness import SandboxServer
from tests.reliability.harness.cases import sandbox_flags


@pytest.fixture(scope="module")
def fault_sandbox() -> Iterator[SandboxServer]:
    """The sandbox the shared cases run against (each case resets it first)."""
    server = SandboxServer(**sandbox_flags())
    try:
        yield server.start()
    finally:
        server.stop()
