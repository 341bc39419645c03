"""Development entry point of ``blender -b -c hiptah merge`` (farm shards -> one library).

    .venv/bin/python scripts/merge.py --out out/library out/shards/

Runs :func:`hiptah_blender.blender.library_merge.run_merge` with the bpy module of
the checkout's .venv; users run ``blender -b -c hiptah merge ...`` (docs/farm.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hiptah_blender.blender.library_merge import run_merge  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="merge.py", description="Merge batch shard outputs into one library.")
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--allow-incomplete", action="store_true")
    args = p.parse_args(argv)
    return run_merge(args.out, list(args.folders), allow_incomplete=args.allow_incomplete)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
