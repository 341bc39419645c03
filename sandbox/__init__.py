"""A local, HiPtah-compatible server for development and tests (never shipped).

``python scripts/sandbox.py`` runs it; :class:`sandbox.harness.SandboxServer` runs
it in a subprocess for tests. See ``docs/sandbox.md``.
"""

from __future__ import annotations
