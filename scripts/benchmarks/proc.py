"""Run one bench module in a fresh interpreter and collect its result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .stats import parse

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, args: list[str], *, timeout: float = 1800.0) -> dict[str, Any]:
    """``python -m <module> <args>`` with its own BLENDER_USER_RESOURCES (bpy must never
    touch the real user's config); stderr passes through so progress stays visible."""
    bur = tempfile.mkdtemp(prefix="hiptah-bench-bur-")
    env = {**os.environ, "BLENDER_USER_RESOURCES": bur, "PYTHONUNBUFFERED": "1"}
    # No PYTHONPATH: "-m" from ROOT puts the repo on sys.path already, and a repo root on
    # PYTHONPATH makes scripts/sandbox.py shadow the sandbox package in the sandbox child.
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(bur, ignore_errors=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        raise RuntimeError(f"{module} exited with {proc.returncode}:\n{tail}")
    return parse(proc.stdout)
