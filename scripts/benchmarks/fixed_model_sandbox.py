"""The sandbox server with one fixed model file served for every job (figure 8).

    python -m bench.fixed_model_sandbox --model statue.glb -- --latency 0 --plan enterprise --port 0

The real sandbox (sandbox.serve: API, CDN, job lifecycle, idempotency) with its model
generator replaced by "return these bytes" (``Sandbox(generator=...)``), so a batch
can be timed on a chosen model (the 101k-triangle GLB of figure 6) with no generation
cost on the measuring machine. Prints the same lines as scripts/sandbox.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the GLB file every job gets")
    ns, rest = parser.parse_known_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hiptah-bench-sb-bur-"))
    from sandbox.config import config_from_args
    from sandbox.serve import serve

    with open(ns.model, "rb") as fh:
        data = fh.read()

    def fixed(prompt: str, fmt: str, quality: str, *, image: Any = None, seed: int = 0) -> bytes:
        if fmt != "glb":
            raise NotImplementedError(f"the benchmark sandbox serves glb only, not {fmt}")
        return data

    config = config_from_args([a for a in rest if a != "--"])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, generator=fixed))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
