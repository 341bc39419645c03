"""The job life cycle as one table (records.TRANSITIONS) and the one door to it (move)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hiptah_blender.jobs.records import (
    ACTIVE_STATES,
    TRANSITIONS,
    IllegalTransition,
    JobRecord,
    JobState,
    move,
)

JOBS = Path(__file__).resolve().parents[2] / "hiptah_blender" / "jobs"


def record_in(state: JobState) -> JobRecord:
    record = JobRecord(prompt="a cart")
    record.state = state  # test setup, not a move
    return record


def test_every_state_has_its_moves() -> None:
    assert set(TRANSITIONS) == set(JobState)
    for state, targets in TRANSITIONS.items():
        assert state not in targets, f"{state}: staying is not a move"


def test_the_happy_path_is_legal() -> None:
    record = record_in(JobState.WAITING)
    for state in (
        JobState.SUBMITTING,
        JobState.QUEUED,
        JobState.PROCESSING,
        JobState.DOWNLOADING,
        JobState.DOWNLOADED,
        JobState.IMPORTED,
    ):
        move(record, state)
    assert record.state is JobState.IMPORTED
    move(record, JobState.IMPORTED)  # imported again: staying is allowed


def test_every_active_job_can_be_cancelled_or_fail() -> None:
    for state in ACTIVE_STATES:
        assert {JobState.CANCELLED, JobState.FAILED} <= TRANSITIONS[state], state


def test_finished_jobs_only_come_back_through_retry_or_import() -> None:
    back = {JobState.WAITING, JobState.QUEUED, JobState.PROCESSING, JobState.DOWNLOADING}
    for state in JobState:
        if not state.is_active:
            assert TRANSITIONS[state] - {JobState.IMPORTED} == back, state


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (JobState.WAITING, JobState.DOWNLOADING),  # nothing to download before it was sent
        (JobState.WAITING, JobState.QUEUED),  # only a submission's answer makes it queued
        (JobState.SUBMITTING, JobState.DOWNLOADED),
        (JobState.DOWNLOADING, JobState.WAITING),  # a server job never goes back to the queue
        (JobState.IMPORTED, JobState.FAILED),
        (JobState.CANCELLED, JobState.IMPORTED),
        (JobState.FAILED, JobState.SUBMITTING),  # retry queues it; the queue sends it
    ],
)
def test_illegal_moves_are_refused(start: JobState, target: JobState) -> None:
    record = record_in(start)
    with pytest.raises(IllegalTransition, match=f"{start.value} -> {target.value}"):
        move(record, target)
    assert record.state is start


def test_the_scheduler_changes_states_only_through_move() -> None:
    # records.py itself sets the state when it reads a stored record (not a move).
    offences = []
    for path in sorted(JOBS.glob("*.py")):
        if path.name == "records.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "state":
                    offences.append(f"{path.name}:{node.lineno}")
    assert not offences, f"state set without move(): {offences}"
    assert (JOBS / "transitions.py").read_text(encoding="utf-8").count("move(record") >= 5
