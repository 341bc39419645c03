"""JobStore (atomic JSON file) and StoreWriter (background, coalescing)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hiptah_blender.jobs.records import ErrorInfo, JobRecord, JobState
from hiptah_blender.jobs.store import JobStore, StoreWriter

ROOT = Path(__file__).resolve().parents[2]


def _record(prompt: str = "a red chair", **kw: object) -> JobRecord:
    r = JobRecord(prompt=prompt, **kw)  # type: ignore[arg-type]
    r.note("queued")
    return r


def test_missing_file_loads_empty(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "nope" / "jobs.json")
    assert store.load() == []
    assert store.warning is None


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "sub" / "jobs.json")  # folder created on save
    a = _record(job_id="gen_1", eta_seconds=30.0, image_path="/x/y.png", meta={"row": 3})
    a.state = JobState.FAILED
    a.error = ErrorInfo(kind="PlanLimitError", message="limit", hint="upgrade", status=403)
    b = _record("a blue lamp")
    b.state = JobState.PROCESSING
    store.save([a, b])
    loaded = store.load()
    assert [r.to_dict() for r in loaded] == [a.to_dict(), b.to_dict()]
    data = json.loads((tmp_path / "sub" / "jobs.json").read_text())
    assert data["version"] == 1 and len(data["jobs"]) == 2


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"\x00\xff garbage", b'{"jobs": 5}', b"null", b'"text"', b'{"version": 1}'],
)
def test_corrupt_file_is_set_aside_and_load_starts_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "jobs.json"
    path.write_bytes(content)
    store = JobStore(path)
    assert store.load() == []
    assert store.warning and "renamed" in store.warning
    assert not path.exists()
    aside = list(tmp_path.glob("jobs.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    # The next save works and the next load reads it.
    store.save([_record()])
    assert len(JobStore(path).load()) == 1


def test_bad_entries_are_skipped_and_the_original_kept(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    good = _record().to_dict()
    path.write_text(
        json.dumps({"version": 1, "jobs": [good, 7, {"prompt": "x", "polls": "many", "bogus": 1}]})
    )
    store = JobStore(path)
    loaded = store.load()
    # "polls": "many" is accepted leniently by the dataclass (no type check), so only the int is bad.
    assert loaded[0].to_dict() == good
    assert len(loaded) == 2
    assert store.warning and "1 unreadable" in store.warning
    assert list(tmp_path.glob("jobs.json.corrupt-*"))


def test_unknown_state_becomes_failed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    entry = _record().to_dict() | {"state": "teleporting", "future_field": {"x": 1}}
    path.write_text(json.dumps({"version": 2, "jobs": [entry]}))
    (record,) = JobStore(path).load()
    assert record.state is JobState.FAILED and record.error is not None


def test_duplicate_ids_last_wins(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    a = _record()
    b = a.copy()
    b.polls = 9
    path.write_text(json.dumps({"jobs": [a.to_dict(), b.to_dict()]}))
    (record,) = JobStore(path).load()
    assert record.polls == 9


def test_stale_tmp_files_are_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    old = tmp_path / ".jobs.json.tmp-99999"
    young = tmp_path / ".jobs.json.tmp-99998"
    old.write_text("{")
    young.write_text("{")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    JobStore(path).load()
    assert not old.exists() and young.exists()


def test_failed_write_leaves_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.json"
    store = JobStore(path)
    store.save([_record("first")])

    def boom(*_a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        store.save([_record("second")])
    monkeypatch.undo()
    assert [r.prompt for r in store.load()] == ["first"]
    assert not list(tmp_path.glob(".jobs.json.tmp-*"))  # the tmp file was removed


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from hiptah_blender.jobs.records import JobRecord
    from hiptah_blender.jobs.store import JobStore
    store = JobStore({path!r})

    def generation(n):
        records = []
        for i in range(300):
            r = JobRecord(prompt=f"gen {{n}} job {{i}} " + "x" * 200, local_id=f"id{{i}}")
            r.polls = n
            for k in range(5):
                r.note(f"step {{k}} of generation {{n}}")
            records.append(r)
        return records

    n = 1
    store.save(generation(n))
    # "ready" once a save is on disk: every kill then lands in or between later saves,
    # however slowly a loaded machine runs the first one.
    print("ready", flush=True)
    while True:
        n += 1
        store.save(generation(n))
    """
)


@pytest.mark.timeout(120)
def test_atomic_write_survives_sigkill_mid_write(tmp_path: Path) -> None:
    """Kill a writer at random instants, many times: the file is always old or new, never garbage."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    path = tmp_path / "jobs.json"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(root=str(ROOT), path=str(path)))
    rng = random.Random(1234)
    seen_versions: set[int] = set()
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.12))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        store = JobStore(path)
        records = store.load()
        assert store.warning is None, store.warning
        if not path.exists():
            assert records == []
            continue
        assert len(records) == 300
        versions = {r.polls for r in records}
        assert len(versions) == 1, "a file mixing two saves"
        seen_versions |= versions
    assert seen_versions, "the writer never completed a save; the test proved nothing"


# ----------------------------------------------------------------------------- StoreWriter


def test_writer_coalesces_and_flushes(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.json")
    records = [_record(f"job {i}") for i in range(5)]
    writer = StoreWriter(store, records[:2])
    gens = []
    for r in records:
        for k in range(40):
            c = r.copy()
            c.polls = k
            gens.append(writer.update([c]))
    assert writer.flush(5)
    assert writer.wait_for(gens[-1], 1)
    assert writer.writes < len(gens)  # 200 updates, far fewer disk writes
    loaded = store.load()
    assert [r.local_id for r in loaded] == [r.local_id for r in records]
    assert all(r.polls == 39 for r in loaded)
    writer.update(removed=[records[0].local_id])
    writer.close()
    assert [r.local_id for r in store.load()] == [r.local_id for r in records[1:]]


def test_writer_reports_failure_and_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = JobStore(blocker / "jobs.json")  # its folder cannot be created
    writer = StoreWriter(store)
    gen = writer.update([_record()])
    assert writer.wait_for(gen, 5) is False
    assert writer.last_error is not None
    blocker.unlink()
    assert writer.wait_for(writer.update([]), 10)
    writer.close()
    assert len(store.load()) == 1


def test_writer_update_is_cheap() -> None:
    """update() only files copies under a lock: print its cost (no assertion on timing)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        writer = StoreWriter(JobStore(Path(tmp) / "jobs.json"))
        rec = [_record(f"job {i}") for i in range(30)]
        t0 = time.perf_counter()
        for _ in range(200):
            writer.update([r.copy() for r in rec])
        per = (time.perf_counter() - t0) / 200
        writer.close()
    print(f"StoreWriter.update with 30 record copies: {per * 1e6:.0f} µs")
