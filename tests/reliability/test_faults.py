"""The fault matrix as tests: the same case functions scripts/faults.py prints.

Each case drives real jobs through the real client and scheduler against the
sandbox with a fault injected (scaled time, see tests/reliability/harness/flow.py FAST), and
fails when a job is lost, charged twice, or fails without a clear message. The
figures are printed (``-s``), never asserted on: the machine is noisy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hiptah_blender.jobs.records import JobState
from sandbox.harness import SandboxServer
from tests.reliability.harness.cases import FAULT_CASES, run_case
from tests.reliability.harness.flow import FAST, Flow, HookedExecutor

SCHEDULER_CASES = [name for name in FAULT_CASES if name != "blender_kill"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SCHEDULER_CASES)
def test_fault_case(name: str, fault_sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_case(name, fault_sandbox, tmp_path, FAST)
    print("\n" + result.row())
    assert result.outcome.submitted > 0
    assert result.problems == []
    assert result.outcome.lost == 0 and result.outcome.charged_twice == 0
    assert result.outcome.completed + result.outcome.failed_clear == result.outcome.submitted


@pytest.mark.slow
@pytest.mark.blender
@pytest.mark.timeout(400)
def test_blender_killed_and_started_again(fault_sandbox: SandboxServer, tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    result = run_case("blender_kill", fault_sandbox, tmp_path, FAST)
    print("\n" + result.row())
    assert result.problems == []
    assert result.outcome.completed == result.outcome.submitted == 12
    assert result.outcome.charged == 12


def test_cut_download_is_retried_automatically_without_a_new_generation(
    fault_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Regression: the client reports CDN failures as DownloadError, which the scheduler
    used to fail at once, so download_retries never applied to a cut or corrupt file."""
    fault_sandbox.reset()
    fault_sandbox.set_faults(latency=0.2, truncate_rate=1.0)
    attempts: list[str] = []

    def heal_after_first(*args: Any) -> None:
        attempts.append(args[2])
        if len(attempts) == 2:
            fault_sandbox.set_faults(truncate_rate=0.0)

    pool = HookedExecutor(2, heal_after_first)
    flow = Flow(fault_sandbox.api_key, fault_sandbox.base_url, tmp_path, FAST, download_executor=pool)
    (local_id,) = flow.submit(1, "cut")
    flow.run(30.0)
    flow.close()
    pool.shutdown()
    record = flow.scheduler.get(local_id)
    assert record is not None and record.state is JobState.DOWNLOADED, record
    cdn = fault_sandbox.cdn_log()
    assert [e.get("fault") for e in cdn if e.get("status") == 200] == ["truncate", None]
    assert len(fault_sandbox.jobs()) == 1


def test_storage_errors_are_not_retried_automatically(fault_sandbox: SandboxServer, tmp_path: Path) -> None:
    """A full or unwritable disk needs the user: one attempt, then FAILED (retryable by hand)."""
    fault_sandbox.reset()
    fault_sandbox.set_faults(latency=0.2)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    flow = Flow(fault_sandbox.api_key, fault_sandbox.base_url, tmp_path / "run", FAST,
                download_dir=blocker / "models")
    (local_id,) = flow.submit(1, "storage")
    flow.run(30.0)
    flow.close()
    record = flow.scheduler.get(local_id)
    assert record is not None and record.error is not None and record.error.kind == "StorageError"
    assert record.error.retryable and record.job_id
    assert fault_sandbox.cdn_log() == []  # refused before downloading anything
