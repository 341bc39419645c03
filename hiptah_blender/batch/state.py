"""The batch's state on disk, next to its output, so a re-run resumes.

Layout of the output folder (``--out``, default ``out/batch``)::

    hiptah_assets.blend          the asset library (hiptah_blender.blender.library)
    models/                      every downloaded model file
    hiptah_batch_jobs.json       the scheduler's own JobStore: the source of truth
    hiptah_batch_state.json      manifest: row key -> local id, idempotency key, job id,
                                 status, file, asset (a readable view, rewritten atomically)
    hiptah_batch_webhooks.json   webhook registrations (mode 0600: holds signing secrets)
    .hiptah_batch.lock           held while a batch runs: one writer per folder

Why the scheduler's store is the state file: it already persists every job the
moment it is queued (idempotency key on disk before the first POST), and it
resumes each job from its stored state (WAITING submits, SUBMITTING re-sends
with the same key, QUEUED/PROCESSING polls, DOWNLOADING downloads again). The
batch only has to remember which row each job belongs to; it does so twice:
in each record's ``meta["row_key"]`` (written atomically with the record, so
it survives a kill -9 at any instant) and in the manifest (for people and tools).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

from ..jobs.records import JobRecord, JobState
from .inputs import Row

MANIFEST_NAME = "hiptah_batch_state.json"
STORE_NAME = "hiptah_batch_jobs.json"
WEBHOOKS_NAME = "hiptah_batch_webhooks.json"
LIBRARY_NAME = "hiptah_assets.blend"
MODELS_DIR = "models"
LOCK_NAME = ".hiptah_batch.lock"
MANIFEST_VERSION = 1

# Manifest status of a row the scheduler has no job for (never queued, or put back
# after the plan limit stopped the batch).
PENDING = "pending"
# A row whose submission the server refused for the plan limit: re-running retries it.
PLAN_LIMIT = "plan-limit"


class BatchLockedError(RuntimeError):
    """Another batch process is writing to the same output folder."""


@dataclass
class RowState:
    """One manifest entry."""

    key: str
    prompt: str
    format: str
    quality: str
    source: str
    status: str = PENDING  # a JobState value, PENDING or PLAN_LIMIT
    local_id: str | None = None
    idempotency_key: str | None = None
    job_id: str | None = None
    file: str | None = None  # relative to the output folder when inside it
    asset: str | None = None  # collection name in the library
    error: str | None = None
    updated_at: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowState | None:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**values)
        except TypeError:
            return None


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """tmp + fsync + os.replace: a reader (or a crash) sees the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is None else mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            # Ordinary files get the usual permissions (umask), not the 0600 of the tmp.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class BatchState:
    """Paths of one output folder, plus the manifest and webhook files."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.manifest_path = self.out_dir / MANIFEST_NAME
        self.store_path = self.out_dir / STORE_NAME
        self.webhooks_path = self.out_dir / WEBHOOKS_NAME
        self.library_path = self.out_dir / LIBRARY_NAME
        self.models_dir = self.out_dir / MODELS_DIR
        self.lock_path = self.out_dir / LOCK_NAME
        self._lock_file: IO[str] | None = None
        self._last_manifest = ""

    # ------------------------------------------------------------------ lock
    def acquire_lock(self) -> None:
        """Exclusive, non-blocking; released by the OS if the process dies (kill -9)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        try:
            _lock_exclusive(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise BatchLockedError(
                f"Another batch (pid {holder}) is writing to {self.out_dir}; wait for it to finish "
                "or use another --out folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                _unlock(self._lock_file)
            self._lock_file.close()
            self._lock_file = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[BatchState]:
        self.acquire_lock()
        try:
            yield self
        finally:
            self.release_lock()

    # ------------------------------------------------------------------ manifest
    def load_manifest(self) -> dict[str, RowState]:
        """Row key -> entry. Missing or unreadable -> {} (the store's meta rebuilds it)."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            rows = data.get("rows", {}) if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}
        out: dict[str, RowState] = {}
        if isinstance(rows, dict):
            for key, entry in rows.items():
                if isinstance(entry, dict):
                    state = RowState.from_dict({**entry, "key": key})
                    if state is not None:
                        out[key] = state
        return out

    def write_manifest(self, entries: Iterable[RowState]) -> bool:
        """Write when the content changed; True when it wrote."""
        rows = {e.key: {k: v for k, v in asdict(e).items() if k not in ("key", "updated_at")} for e in entries}
        body = json.dumps({"version": MANIFEST_VERSION, "store": STORE_NAME, "rows": rows}, indent=1, ensure_ascii=False)
        if body == self._last_manifest:
            return False
        stamped = json.loads(body)
        stamped["saved_at"] = time.time()
        atomic_write_text(self.manifest_path, json.dumps(stamped, indent=1, ensure_ascii=False) + "\n")
        self._last_manifest = body
        return True

    def relative(self, path: str | None) -> str | None:
        """A path inside the output folder as relative (the folder can be moved)."""
        if not path:
            return None
        try:
            return str(Path(path).resolve().relative_to(self.out_dir))
        except ValueError:
            return path

    # ------------------------------------------------------------------ webhooks
    def saved_webhook(self, base_url: str, api_key: str, public_url: str) -> dict[str, str] | None:
        """A registration made by an earlier run for the same account and URL."""
        try:
            data = json.loads(self.webhooks_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        entry = data.get(_webhook_slot(base_url, api_key, public_url)) if isinstance(data, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("secret"), str):
            return {k: str(v) for k, v in entry.items()}
        return None

    def save_webhook(self, base_url: str, api_key: str, public_url: str, webhook_id: str | None, secret: str) -> None:
        try:
            data = json.loads(self.webhooks_path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        data[_webhook_slot(base_url, api_key, public_url)] = {
            "url": public_url,
            "webhook_id": webhook_id or "",
            "secret": secret,
            "registered_at": str(int(time.time())),
        }
        atomic_write_text(self.webhooks_path, json.dumps(data, indent=1) + "\n", mode=0o600)


def _webhook_slot(base_url: str, api_key: str, public_url: str) -> str:
    # A hash of the key tells accounts apart without writing the key to disk.
    account = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"{base_url.rstrip('/')}|{account}|{public_url}"


def _lock_exclusive(handle: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(handle: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- rows <-> records -------------------------------------------------------------------


def link_rows(
    rows: Iterable[Row], records: Iterable[JobRecord], manifest: Mapping[str, RowState]
) -> dict[str, JobRecord]:
    """Row key -> the scheduler record that belongs to it.

    The record's own ``meta["row_key"]`` wins (it is written with the record); the
    manifest's local id is the fallback for records made by an older version. When
    several records claim one row (should not happen), the one that got furthest
    (has a job id, then newest) is kept: never a second generation for one row.
    """
    wanted = {row.key for row in rows}
    by_local = {r.local_id: r for r in records}
    claims: dict[str, list[JobRecord]] = {}
    for record in by_local.values():
        key = record.meta.get("row_key")
        if isinstance(key, str) and key in wanted:
            claims.setdefault(key, []).append(record)
    for key, entry in manifest.items():
        if key in wanted and key not in claims and entry.local_id in by_local:
            claims[key] = [by_local[entry.local_id]]
    return {
        key: max(found, key=lambda r: (r.job_id is not None, r.created_at))
        for key, found in claims.items()
    }


def row_status(record: JobRecord | None) -> str:
    if record is None:
        return PENDING
    if record.state is JobState.FAILED and record.error is not None and record.error.kind == "PlanLimitError":
        return PLAN_LIMIT
    return record.state.value


def manifest_entry(row: Row, record: JobRecord | None, state: BatchState, asset: str | None) -> RowState:
    return RowState(
        key=row.key,
        prompt=row.prompt,
        format=row.format,
        quality=row.quality,
        source=row.source,
        status=row_status(record),
        local_id=record.local_id if record else None,
        idempotency_key=record.idempotency_key if record else None,
        job_id=record.job_id if record else None,
        file=state.relative(record.file_path) if record else None,
        asset=asset,
        error=record.error.user_text() if record and record.error else None,
    )
