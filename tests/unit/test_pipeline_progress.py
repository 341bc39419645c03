"""hiptah_blender.batch: progress, tags, quota: the pure reporting helpers."""

from __future__ import annotations

import io
import time

import pytest

from hiptah_blender.batch.progress import (
    Counts,
    Progress,
    SummaryRow,
    count_states,
    estimate_eta,
    format_duration,
    render_bar,
    summary_table,
)
from hiptah_blender.batch.quota import (
    PLANS,
    accepted_this_month,
    check_quota,
    default_concurrency,
    month_start,
    plan_named,
)
from hiptah_blender.batch.tags import asset_name, prompt_tags
from hiptah_blender.jobs.records import JobRecord, JobState


def test_count_states() -> None:
    states = [
        JobState.IMPORTED, JobState.DOWNLOADED, JobState.FAILED, JobState.CANCELLED,
        JobState.SUBMITTING, JobState.PROCESSING, JobState.DOWNLOADING, JobState.WAITING, None,
    ]
    assert count_states(states) == Counts(done=2, failed=2, running=3, waiting=2)
    assert count_states(states).total == 9


def test_eta_from_throughput_then_from_server_estimate() -> None:
    counts = Counts(done=4, failed=0, running=3, waiting=3)
    assert estimate_eta(counts, elapsed=20.0, finished_this_run=4, concurrency=3) == pytest.approx(30.0)
    # Nothing finished yet: waves of `concurrency` jobs of the server's ETA each.
    assert estimate_eta(Counts(0, 0, 3, 4), elapsed=5, finished_this_run=0, concurrency=3, job_seconds=30) == 90
    assert estimate_eta(Counts(0, 0, 3, 4), elapsed=5, finished_this_run=0, concurrency=3) is None
    assert estimate_eta(Counts(5, 1, 0, 0), elapsed=5, finished_this_run=0, concurrency=3) == 0.0


def test_format_duration_and_bar() -> None:
    assert format_duration(None) == "--:--"
    assert format_duration(65) == "1:05"
    assert format_duration(3725) == "1:02:05"
    bar = render_bar(Counts(5, 1, 2, 2), eta=12, elapsed=30, width=10)
    assert bar.startswith("[#####x....] 6/10")
    assert "running 2" in bar and "waiting 2" in bar and "ETA 0:12" in bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_output_prints_a_line_per_change_throttled() -> None:
    out = io.StringIO()
    clock = FakeClock()
    progress = Progress(out, tty=False, clock=clock)
    progress.update(Counts(0, 0, 1, 2), eta=None, elapsed=0)
    progress.update(Counts(0, 0, 1, 2), eta=None, elapsed=0)  # unchanged: nothing
    clock.now = 0.5
    progress.update(Counts(1, 0, 1, 1), eta=None, elapsed=0.5)  # changed, but throttled
    clock.now = 2.0
    progress.update(Counts(1, 0, 1, 1), eta=None, elapsed=2)  # the pending change appears
    progress.log("done    row 2")
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "\r" not in out.getvalue()
    assert lines[1].startswith("[") and "1/3" in lines[1]
    assert lines[2] == "done    row 2"


def test_tty_output_redraws_in_place_and_logs_above_the_bar() -> None:
    out = io.StringIO()
    clock = FakeClock()
    progress = Progress(out, tty=True, clock=clock)
    progress.update(Counts(0, 0, 1, 1), eta=None, elapsed=0)
    progress.log("done    row 2")
    clock.now = 1.0
    progress.update(Counts(1, 0, 1, 0), eta=None, elapsed=1)
    progress.finish()
    text = out.getvalue()
    assert text.count("\r\x1b[2K") >= 3
    assert "done    row 2\n" in text
    assert text.endswith("\n")


def test_summary_table_aligns_and_truncates() -> None:
    rows = [
        SummaryRow("row 2", "a red wooden chair", "imported", "gen_1", "models/gen_1.glb"),
        SummaryRow("row 10", "x" * 80, "failed", "", "The generation failed on the server."),
    ]
    table = summary_table(rows, prompt_width=20)
    lines = table.splitlines()
    assert lines[0].split() == ["row", "prompt", "status", "job", "result"]
    assert set(lines[1]) <= {"-", " "}
    assert "x" * 19 + "…" in lines[3]
    assert lines[3].split()[4] == "-"  # no job id ("row 10" is two words)
    assert lines[2].index("imported") == lines[3].index("failed")


def test_prompt_tags_skip_stop_words_and_duplicates() -> None:
    assert prompt_tags("A red wooden chair with a red cushion, made of oak & 4 legs") == [
        "red", "wooden", "chair", "cushion", "oak", "legs",
    ]
    assert prompt_tags("the of and") == []
    assert prompt_tags("sci-fi robot's arm") == ["sci-fi", "robot's", "arm"]


def test_asset_name_fits_blender_limits() -> None:
    assert asset_name("a red chair") == "Red chair"
    assert asset_name("chair") == "Chair"
    long = asset_name("an extraordinarily long prompt describing a very ornate baroque cabinet with gilded handles")
    assert long.endswith("…") and len(long.encode()) <= 56
    assert len(asset_name("é" * 100).encode()) <= 56


def test_plans_and_default_concurrency() -> None:
    assert default_concurrency(PLANS["creator"]) == 10
    assert default_concurrency(plan_named("Pro")) == 30
    assert default_concurrency(PLANS["enterprise"]) == 30
    with pytest.raises(ValueError, match="unknown plan"):
        plan_named("gold")


def test_quota_check_sources() -> None:
    explicit = check_quota(PLANS["creator"], cost=12, quota_left=10, used_recorded=0)
    assert explicit.over and explicit.left == 10 and "--quota-left" in explicit.describe()
    estimated = check_quota(PLANS["creator"], cost=12, quota_left=None, used_recorded=95)
    assert estimated.left == 5 and estimated.over and "more than the 5 left" in estimated.describe()
    within = check_quota(PLANS["pro"], cost=12, quota_left=None, used_recorded=0)
    assert not within.over and within.left == 300
    negotiated = check_quota(PLANS["enterprise"], cost=5000, quota_left=None, used_recorded=0)
    assert negotiated.left is None and not negotiated.over


def test_accepted_this_month_counts_only_accepted_jobs_of_this_month() -> None:
    now = time.time()
    start = month_start(now)
    records = [
        JobRecord(prompt="a", job_id="gen_1", submitted_at=now),
        JobRecord(prompt="b", job_id=None, created_at=now),  # never accepted: not charged
        JobRecord(prompt="c", job_id="gen_2", submitted_at=start - 3600),  # last month
    ]
    assert accepted_this_month(records, now) == 1
