"""scripts/batch.py without Blender or a server: arguments, dry run, quota refusal, lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiptah_blender.batch.inputs import load_rows
from hiptah_blender.batch.state import BatchState
from hiptah_blender.jobs.records import JobRecord
from hiptah_blender.jobs.store import JobStore
from scripts import batch


def prompts(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "p.txt"
    path.write_text("".join(f"a stone statue {i}\n" for i in range(n)), encoding="utf-8")
    return path


def test_script_args_under_blender_and_python() -> None:
    assert batch.script_args(["blender", "-b", "-P", "scripts/batch.py", "--", "in.csv", "--dry-run"]) == [
        "in.csv",
        "--dry-run",
    ]
    assert batch.script_args(["scripts/batch.py", "in.csv"]) == ["in.csv"]


def test_dry_run_lists_prompts_and_quota(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = batch.main(["batch.py", str(prompts(tmp_path, 3)), "--out", str(tmp_path / "out"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "3 prompt(s)" in out and "a stone statue 2" in out
    assert "up to 3 new generation(s), within the 100 left" in out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_dry_run_refuses_over_quota_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["batch.py", str(prompts(tmp_path, 5)), "--out", str(tmp_path / "out"), "--dry-run", "--quota-left", "4"]
    assert batch.main(args) == 2
    assert "would refuse to start" in capsys.readouterr().out
    assert batch.main([*args, "--allow-over-quota"]) == 0


def test_quota_counts_only_rows_without_a_server_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = prompts(tmp_path, 5)
    state = BatchState(tmp_path / "out")
    rows = load_rows(source)
    done = JobRecord(prompt=rows[0].prompt, job_id="gen_1", meta={"row_key": rows[0].key})
    JobStore(state.store_path).save([done])
    code = batch.main(["batch.py", str(source), "--out", str(state.out_dir), "--dry-run", "--plan", "creator"])
    out = capsys.readouterr().out
    assert code == 0
    assert "up to 4 new generation(s), within the 99 left" in out
    assert "[waiting gen_1]" in out


def test_bad_input_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.csv"
    path.write_text("prompt,format\n<i>x</i>,glb\nok,obj\n", encoding="utf-8")
    assert batch.main(["batch.py", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "row 2" in err and "row 3" in err


def test_missing_key_and_locked_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("HIPTAH_API_KEY", raising=False)
    source = str(prompts(tmp_path, 1))
    with pytest.raises(SystemExit) as info:
        batch.main(["batch.py", source, "--out", str(tmp_path / "a")])
    assert info.value.code == 2 and "No HiPtah API key" in capsys.readouterr().err

    held = BatchState(tmp_path / "b")
    held.acquire_lock()
    try:
        with pytest.raises(SystemExit) as info:
            batch.main(["batch.py", source, "--out", str(tmp_path / "b"), "--api-key", "k_123456"])
        assert info.value.code == 2 and "Another batch" in capsys.readouterr().err
    finally:
        held.release_lock()
