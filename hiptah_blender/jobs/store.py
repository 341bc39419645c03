"""Job history on disk: one JSON file, written atomically, plus a background writer.

The file holds plain :class:`JobRecord` dictionaries: the request as validated
(``image_path``, never image bytes), identity (local id, idempotency key, server
job id), state, timeline and outcome. It never holds the API key: records never
see it, and error messages are redacted where they are made.

Atomicity: a save writes a temporary file in the same folder, flushes and fsyncs
it, then ``os.replace``-s it over the real one (and fsyncs the folder on POSIX).
A process killed at any instant leaves either the old or the new file, never a
mix. A file that cannot be parsed anyway (disk damage, a hand edit) is renamed
aside as ``<name>.corrupt-<timestamp>`` and the history starts empty, with a
warning, rather than refusing to start.

:class:`StoreWriter` moves the JSON encoding and the fsync off Blender's main
thread: the scheduler hands it copies of changed records, a thread writes the
latest full set, coalescing any changes that arrive while a write is under way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..i18n import N_
from .records import JobRecord

log = logging.getLogger("hiptah")

STORE_VERSION = 1
_TMP_MARK = ".tmp-"
_STALE_TMP_SECONDS = 600.0


class JobStore:
    """A JSON file of job records. ``load`` never raises for bad content."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # Set by load() when the file was unreadable and set aside; the UI may show it.
        self.warning: str | None = None
        self._lock = threading.Lock()  # one save at a time per store (tmp name reuse)

    # ------------------------------------------------------------------ load
    def load(self) -> list[JobRecord]:
        """Records in file order. Missing file -> []. Corrupt file -> set aside, []."""
        self.warning = None
        self._clean_stale_tmp()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.warning = N_(f"The job history {self.path} cannot be read ({exc.strerror or exc}); starting empty.")
            log.warning("%s", self.warning)
            return []
        try:
            data = json.loads(raw.decode("utf-8"))
            entries = data["jobs"] if isinstance(data, dict) else data
            if not isinstance(entries, list):
                raise ValueError("'jobs' is not a list")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            aside = self._set_aside()
            self.warning = N_(
                f"The job history {self.path.name} was unreadable ({type(exc).__name__}) and was "
                f"renamed to {aside.name if aside else '(could not rename)'}; starting with an empty history."
            )
            log.warning("%s", self.warning)
            return []
        records: list[JobRecord] = []
        seen: dict[str, int] = {}
        bad = 0
        for entry in entries:
            try:
                if not isinstance(entry, dict):
                    raise TypeError("not an object")
                record = JobRecord.from_dict(entry)
            except (TypeError, ValueError) as exc:
                bad += 1
                log.warning("Skipping an unreadable job record in %s: %s", self.path.name, exc)
                continue
            if record.local_id in seen:  # duplicated id: the later entry wins
                records[seen[record.local_id]] = record
            else:
                seen[record.local_id] = len(records)
                records.append(record)
        if bad:
            # Keep a copy of the original: the next save drops the unreadable entries.
            aside = self._copy_aside(raw)
            self.warning = (
                f"{bad} unreadable job record(s) skipped; the original file was kept as {aside}."
            )
        return records

    # ------------------------------------------------------------------ save
    def save(self, records: Iterable[JobRecord]) -> None:
        """Write every record atomically (tmp + flush + fsync + os.replace)."""
        self.save_dicts([r.to_dict() for r in records])

    def save_dicts(self, entries: list[dict[str, Any]]) -> None:
        payload = {"version": STORE_VERSION, "saved_at": time.time(), "jobs": entries}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with self._lock:
            self._write_atomic(data)

    def _write_atomic(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}{_TMP_MARK}{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._replace(tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fsync_dir()

    def _replace(self, tmp: Path) -> None:
        # Windows refuses to replace a file another process (antivirus, backup) has
        # open for a moment; a few short retries get through. This runs on the
        # writer thread, never on Blender's main thread.
        for attempt in range(5):
            try:
                os.replace(tmp, self.path)
                return
            except PermissionError:
                if os.name != "nt" or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _fsync_dir(self) -> None:
        # Makes the rename itself durable on POSIX; folders cannot be opened on Windows.
        if os.name == "nt":
            return
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ helpers
    def _aside_name(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        return candidate

    def _set_aside(self) -> Path | None:
        target = self._aside_name()
        try:
            os.replace(self.path, target)
        except OSError as exc:
            log.warning("Could not rename the unreadable job history aside: %s", exc)
            return None
        return target

    def _copy_aside(self, raw: bytes) -> Path | None:
        target = self._aside_name()
        try:
            target.write_bytes(raw)
        except OSError:
            return None
        return target

    def _clean_stale_tmp(self) -> None:
        # A kill between writing the tmp file and the rename leaves it behind. Only
        # old ones are removed: a young one may belong to another Blender instance.
        try:
            siblings = list(self.path.parent.glob(f".{self.path.name}{_TMP_MARK}*"))
        except OSError:
            return
        cutoff = time.time() - _STALE_TMP_SECONDS
        for tmp in siblings:
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()


class StoreWriter:
    """Writes a :class:`JobStore` from a background thread, coalescing changes.

    ``update()`` is cheap (it only files the given record copies under a lock) and
    returns a generation number; ``wait_for(gen)`` blocks until a write containing
    that generation has reached the disk (the scheduler's workers use it so an
    idempotency key is on disk before the first POST that carries it).
    """

    def __init__(self, store: JobStore, records: Iterable[JobRecord] = ()) -> None:
        self.store = store
        # The writer's own copies, keyed by local id, in insertion order.
        self._records: dict[str, JobRecord] = {r.local_id: r.copy() for r in records}
        self._pending: dict[str, JobRecord | None] = {}  # None: removed
        self._cond = threading.Condition()
        self._requested = 0  # generation of the latest update()
        self._written = 0  # generation contained in the latest completed write
        self._failed_gen = 0  # generation of the latest failed write
        self._closed = False
        self.last_error: BaseException | None = None
        self.writes = 0
        self._thread = threading.Thread(target=self._run, name="hiptah-store", daemon=True)
        self._thread.start()

    def update(self, changed: Iterable[JobRecord] = (), removed: Iterable[str] = ()) -> int:
        """File copies of changed records (the caller must not mutate them later)."""
        with self._cond:
            for record in changed:
                self._pending[record.local_id] = record
            for local_id in removed:
                self._pending[local_id] = None
            self._requested += 1
            self._cond.notify_all()
            return self._requested

    def wait_for(self, generation: int, timeout: float | None = None) -> bool:
        """True once a write including ``generation`` is on disk (False on timeout/failure)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._written < generation:
                if self._failed_gen >= generation or (self._closed and not self._thread.is_alive()):
                    return False
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def flush(self, timeout: float | None = 10.0) -> bool:
        with self._cond:
            generation = self._requested
        return self.wait_for(generation, timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is pending, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while self._requested == self._written and not self._closed:
                    self._cond.wait()
                if self._requested == self._written and self._closed:
                    return
                generation = self._requested
                pending, self._pending = self._pending, {}
            for local_id, record in pending.items():
                if record is None:
                    self._records.pop(local_id, None)
                else:
                    self._records[local_id] = record
            try:
                self.store.save_dicts([r.to_dict() for r in self._records.values()])
            except Exception as exc:  # disk full, permissions: keep running, report
                failures += 1
                self.last_error = exc
                if failures == 1 or failures % 20 == 0:  # don't flood the log on a full disk
                    log.warning("Could not save the job history to %s: %s", self.store.path, exc)
                with self._cond:
                    self._failed_gen = generation
                    self._cond.notify_all()
                    if self._closed:
                        return
                    # Try again after a growing pause; a new update or close() wakes us sooner.
                    self._cond.wait(min(30.0, 0.5 * 2 ** min(failures - 1, 6)))
                    if self._closed and self._requested == generation:
                        return
                    if self._requested == generation:
                        self._requested += 1  # write again even without new updates
                continue
            if failures:
                log.info("The job history is saved again (after %d failed attempts).", failures)
                failures = 0
                self.last_error = None
            self.writes += 1
            with self._cond:
                self._written = generation
                self._cond.notify_all()
