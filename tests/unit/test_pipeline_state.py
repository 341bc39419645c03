"""hiptah_blender.batch.state: manifest, lock, webhook registrations, rows <-> records."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hiptah_blender.batch.inputs import Row
from hiptah_blender.batch.state import (
    PENDING,
    PLAN_LIMIT,
    BatchLockedError,
    BatchState,
    RowState,
    atomic_write_text,
    link_rows,
    manifest_entry,
    row_status,
)
from hiptah_blender.jobs.records import ErrorInfo, JobRecord, JobState


def row(key: str, prompt: str = "a chair") -> Row:
    return Row(key=key, prompt=prompt, format="glb", quality="high", source="line 1")


def test_manifest_round_trip_and_change_detection(tmp_path: Path) -> None:
    state = BatchState(tmp_path / "out")
    entries = [RowState("k1", "a chair", "glb", "high", "line 1", status="imported", job_id="gen_1",
                        file="models/gen_1.glb", asset="Chair")]
    assert state.write_manifest(entries) is True
    assert state.write_manifest(entries) is False  # unchanged: no rewrite
    loaded = BatchState(tmp_path / "out").load_manifest()
    assert loaded["k1"].job_id == "gen_1" and loaded["k1"].asset == "Chair"
    data = json.loads(state.manifest_path.read_text())
    assert data["store"] == "hiptah_batch_jobs.json" and "k1" in data["rows"]


def test_unreadable_manifest_is_empty(tmp_path: Path) -> None:
    state = BatchState(tmp_path)
    state.manifest_path.write_text("{not json")
    assert state.load_manifest() == {}
    state.manifest_path.write_text(json.dumps({"rows": {"k": {"prompt": 3}, "j": "x"}}))
    assert set(state.load_manifest()) <= {"k"}


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = BatchState(tmp_path)
    first.acquire_lock()
    try:
        with pytest.raises(BatchLockedError, match=str(os.getpid())):
            BatchState(tmp_path).acquire_lock()
    finally:
        first.release_lock()
    with BatchState(tmp_path).locked():
        pass


def test_webhook_registration_is_saved_privately_per_account_and_url(tmp_path: Path) -> None:
    state = BatchState(tmp_path)
    assert state.saved_webhook("http://h/v1", "key1", "http://127.0.0.1:9/hooks") is None
    state.save_webhook("http://h/v1/", "key1", "http://127.0.0.1:9/hooks", "wh_1", "whsec_abc")
    saved = state.saved_webhook("http://h/v1", "key1", "http://127.0.0.1:9/hooks")
    assert saved is not None and saved["secret"] == "whsec_abc" and saved["webhook_id"] == "wh_1"
    assert state.saved_webhook("http://h/v1", "key2", "http://127.0.0.1:9/hooks") is None
    assert state.saved_webhook("http://h/v1", "key1", "http://127.0.0.1:10/hooks") is None
    assert stat.S_IMODE(state.webhooks_path.stat().st_mode) == 0o600
    assert "key1" not in state.webhooks_path.read_text()  # only a hash of the key


def test_link_rows_prefers_record_meta_then_manifest() -> None:
    rows = [row("a"), row("b"), row("c")]
    by_meta = JobRecord(prompt="a chair", meta={"row_key": "a"})
    by_manifest = JobRecord(prompt="a chair")  # an older record without meta
    other_batch = JobRecord(prompt="x", meta={"row_key": "zzz"})
    manifest = {"b": RowState("b", "a chair", "glb", "high", "line 2", local_id=by_manifest.local_id)}
    linked = link_rows(rows, [by_meta, by_manifest, other_batch], manifest)
    assert linked == {"a": by_meta, "b": by_manifest}


def test_link_rows_keeps_the_record_that_reached_the_server() -> None:
    sent = JobRecord(prompt="a chair", job_id="gen_1", created_at=1.0, meta={"row_key": "a"})
    unsent = JobRecord(prompt="a chair", created_at=2.0, meta={"row_key": "a"})
    assert link_rows([row("a")], [unsent, sent], {})["a"] is sent


def test_row_status_and_manifest_entry(tmp_path: Path) -> None:
    state = BatchState(tmp_path)
    assert row_status(None) == PENDING
    refused = JobRecord(prompt="a chair", state=JobState.FAILED,
                        error=ErrorInfo(kind="PlanLimitError", message="Limit reached.", status=403))
    assert row_status(refused) == PLAN_LIMIT
    done = JobRecord(prompt="a chair", job_id="gen_9", state=JobState.IMPORTED,
                     file_path=str(tmp_path / "models" / "gen_9.glb"))
    entry = manifest_entry(row("k"), done, state, "Chair")
    assert (entry.status, entry.job_id, entry.file, entry.asset) == ("imported", "gen_9", "models/gen_9.glb", "Chair")
    assert entry.idempotency_key == done.idempotency_key
    assert manifest_entry(row("k"), None, state, None).status == PENDING
