"""Slices of a batch (farm shards) and the idempotency key each row is sent with.

A render farm (Flamenco, Deadline Cloud) runs one batch as many tasks, each a
slice of the input's rows into its own output folder:

    --rows 101-200     the 101st to the 200th prompt (1-based, inclusive; prompts are
                       counted after blank lines and comments are skipped, not file lines)
    --shard 3/20       the 3rd of 20 near-equal contiguous slices (sizes differ by at most 1)

The farm may retry a task on another worker, maybe with a fresh output folder
(the state file lost). That must not create a second server job for a row that
was already submitted, so a row's ``Idempotency-Key`` is *derived* from the batch
and the row, not drawn at random: every worker computes the same key for the same
row and the server answers with the job it already has.

What the contract (``hiptah-api-v1.md``) says, and how the derivation honours it:

* The key is a ``uuid4`` in form: the derived 128 bits carry the version-4 and
  variant bits, so it is indistinguishable from a random uuid4 to the server.
* "the same key sent again within 24 h returns the first job": a shard rerun
  within 24 h of its first submission costs nothing. After 24 h the server may
  create (and charge) a new job for a row whose state file was lost; with its state
  file a rerun never re-submits (it polls the stored job id), at any age.
* Same key, different body: the contract is silent; the sandbox answers 422. The
  row key already hashes the row's prompt, format and quality (``inputs.row_key``),
  so a changed row gets a new key, never a reused one with another body. Batches
  never send a per-job ``callback_url`` (webhooks are registered once), so the
  body of a row is the same on every worker.
* Keys are scoped to the account on the server; two accounts running the same
  file do not collide.

The batch identity is, by default, a hash of *all* the input's row keys in
order, so every shard of one input agrees without coordination, and a different
input file (even one sharing a prompt) is a different batch. ``--batch-id`` names
it explicitly (the farm job's name, say); a new ``--batch-id`` is how to ask for
fresh generations of the same file within 24 h.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .inputs import Row
from .state import atomic_write_text

KEY_NAMESPACE = "hiptah-batch-idempotency/v1"
_ROWS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """A --rows or --shard value that cannot be used (the message says how to fix it)."""


@dataclass(frozen=True)
class Slice:
    """Rows ``start`` (0-based, inclusive) to ``stop`` (exclusive) of the input."""

    start: int
    stop: int
    label: str  # for messages: "rows 101-200 of 1000", "shard 3/20 (rows 101-150 of 1000)"

    def take(self, rows: Sequence[Row]) -> list[Row]:
        return list(rows[self.start : self.stop])

    @property
    def count(self) -> int:
        return self.stop - self.start


def parse_rows(text: str, total: int) -> Slice:
    """``"101-200"`` or ``"7"`` (1-based, inclusive) against an input of ``total`` prompts."""
    m = _ROWS.match(text)
    if m is None:
        raise ShardError(f"--rows wants FIRST-LAST (1-based, inclusive), such as 101-200, not {text!r}")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    if first < 1 or last < first:
        raise ShardError(f"--rows {text}: FIRST must be at least 1 and LAST at least FIRST")
    if first > total:
        raise ShardError(f"--rows {text}: the input has only {total} prompt(s)")
    # A last row past the end is allowed: a farm splitting by a fixed chunk size
    # gives the final chunk whatever is left.
    stop = min(last, total)
    return Slice(first - 1, stop, f"rows {first}-{stop} of {total}")


def parse_shard(text: str, total: int) -> Slice:
    """``"3/20"``: the 3rd of 20 contiguous slices whose sizes differ by at most one."""
    m = _SHARD.match(text)
    if m is None:
        raise ShardError(f"--shard wants INDEX/COUNT (1-based), such as 3/20, not {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ShardError(f"--shard {text}: INDEX must be between 1 and COUNT, and COUNT at least 1")
    start, stop = shard_bounds(index, count, total)
    span = f"rows {start + 1}-{stop} of {total}" if stop > start else f"no rows: {total} prompt(s) in all"
    return Slice(start, stop, f"shard {index}/{count} ({span})")


def shard_bounds(index: int, count: int, total: int) -> tuple[int, int]:
    """0-based [start, stop) of shard ``index`` (1-based) of ``count`` over ``total`` rows."""
    base, extra = divmod(total, count)
    start = (index - 1) * base + min(index - 1, extra)
    return start, start + base + (1 if index <= extra else 0)


def batch_identity(rows: Sequence[Row]) -> str:
    """The default batch id: a hash of every row key of the whole input, in order."""
    digest = hashlib.sha256("\n".join(row.key for row in rows).encode()).hexdigest()
    return f"input-{digest[:16]}"


def idempotency_key(batch_id: str, row: Row) -> str:
    """The row's Idempotency-Key: the same on every worker, a uuid4 in form."""
    digest = hashlib.sha256(f"{KEY_NAMESPACE}\x00{batch_id}\x00{row.key}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


SHARD_INFO_NAME = "hiptah_shard.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--rows / --shard / --batch-id on the batch command's parser."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rows", metavar="FIRST-LAST", default=None,
                       help="run only these prompts (1-based, inclusive, e.g. 101-200): one farm shard")
    group.add_argument("--shard", metavar="INDEX/COUNT", default=None,
                       help="run only the INDEX-th of COUNT near-equal slices of the input (e.g. 3/20)")
    p.add_argument("--batch-id", default=None,
                   help="the batch's identity, part of every row's idempotency key (default: a hash of "
                        "the whole input); a new id asks for new generations of the same rows")


def select(rows: Sequence[Row], rows_opt: str | None, shard_opt: str | None) -> tuple[list[Row], Slice | None]:
    """The rows this run handles, and the slice (None: the whole input). ShardError on a bad value."""
    if rows_opt is not None:
        part = parse_rows(rows_opt, len(rows))
    elif shard_opt is not None:
        part = parse_shard(shard_opt, len(rows))
    else:
        return list(rows), None
    return part.take(rows), part


def write_shard_info(out_dir: Path, *, batch_id: str, part: Slice | None, total: int, rows: Sequence[Row]) -> None:
    """What this output folder holds, for ``merge``: the batch id and the slice of the input.

    A shard folder keeps its batch: a different batch id there is refused (two batches'
    rows would end in one shard library). A whole-input folder just takes the new id:
    re-running with an extended input file is how rows are added to a batch.
    """
    info = {
        "version": 1,
        "batch_id": batch_id,
        "start": part.start if part else 0,
        "stop": part.stop if part else total,
        "total": total,
        "label": part.label if part else f"all {total} rows",
        "row_keys": [row.key for row in rows],
    }
    body = json.dumps(info, indent=1) + "\n"
    path = out_dir / SHARD_INFO_NAME
    try:
        if path.read_text(encoding="utf-8") == body:
            return
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if part is not None and isinstance(old, dict) and old.get("batch_id") not in (None, batch_id):
        raise ShardError(
            f"{out_dir} holds shard output of batch {old.get('batch_id')!r}, not {batch_id!r}; "
            "use another --out folder for another batch (or the same --batch-id)."
        )
    atomic_write_text(path, body)
