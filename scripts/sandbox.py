#!/usr/bin/env python3
"""Local HiPtah-compatible server (API + CDN) for development and tests.

    .venv/bin/python scripts/sandbox.py [--port 8765] [--latency 0] [--fault-rate 0.1] ...

Prints HIPTAH_BASE_URL / HIPTAH_API_KEY / HIPTAH_CDN_URL lines, then ``ready``.
Ctrl-C or SIGTERM stops it. Every flag: ``--help`` or docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    # bpy (used by the model generator) must never touch the user's Blender settings.
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hiptah-sandbox-bur-"))
    from sandbox.config import config_from_args
    from sandbox.serve import serve

    config = config_from_args(argv)
    logging.basicConfig(
        level=config.log_level.upper(), format="sandbox %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sandbox: cannot listen: {exc}", file=sys.stderr)
        return 2
    except (ImportError, AttributeError) as exc:
        print(
            f"sandbox: the model generator is not available ({exc!r}); "
            "use --models auto or --fake-models for tests",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
