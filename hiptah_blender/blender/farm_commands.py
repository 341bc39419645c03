"""The farm subcommands of ``blender -b -c hiptah``: ``merge`` and ``farm-submit``.

    blender -b -c hiptah merge --out farm/library farm/shards/
    blender -b -c hiptah farm-submit prompts.csv --manager http://flamenco:8080 --output-dir /mnt/farm/batch1

Kept apart from ``commands.py`` (which only adds these parsers and dispatches) so
the farm code stays in its own modules; see docs/farm.md.
"""

from __future__ import annotations

import argparse
from typing import Any

COMMANDS = ("merge", "farm-submit")


def add_parsers(sub: Any) -> None:
    merge = sub.add_parser(
        "merge",
        help="merge farm shard outputs (batch --rows/--shard) into one Asset Browser library",
        description="Append every shard's assets into one library: one asset per row, previews kept. "
        "Exit 1 when a row of the input is not finished in any shard.",
    )
    merge.add_argument("folders", nargs="+",
                       help="shard --out folders, or folders whose children are shard folders")
    merge.add_argument("--out", required=True, help="the merged library: a folder (hiptah_assets.blend in it) "
                       "or a .blend path")
    merge.add_argument("--allow-incomplete", action="store_true",
                       help="exit 0 even when some rows are missing (they are listed)")
    merge.add_argument("--verbose", action="store_true", help="let Blender's own output through")

    from ..batch.flamenco import add_arguments as add_submit_arguments

    submit = sub.add_parser(
        "farm-submit",
        help="submit a batch to a Flamenco Manager as one hiptah-batch job (shards + merge)",
        description="POST a hiptah-batch job to a Flamenco Manager's REST API and print its id. "
        "The API key is never sent: workers read HIPTAH_API_KEY from their own environment.",
    )
    add_submit_arguments(submit)


def run(args: argparse.Namespace) -> int:
    if args.command == "merge":
        from .library_merge import run_merge

        return run_merge(args.out, list(args.folders), allow_incomplete=args.allow_incomplete,
                         quiet=not args.verbose)
    from ..batch.flamenco import run_submit

    return run_submit(args)
