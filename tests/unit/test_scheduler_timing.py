"""Poll schedule math (hiptah_blender/jobs/timing.py): pure functions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hiptah_blender.jobs.timing import (
    PollPolicy,
    error_backoff,
    first_poll_delay,
    interval_at,
    next_poll_delay,
    poll_times,
)

P = PollPolicy()


def test_first_poll_is_at_the_eta() -> None:
    assert first_poll_delay(30.0, P) == 30.0
    assert first_poll_delay(7.5, P) == 7.5


def test_first_poll_without_eta_is_one_interval() -> None:
    assert first_poll_delay(None, P) == P.poll_interval
    assert first_poll_delay(float("nan"), P) == P.poll_interval
    assert first_poll_delay(-3, P) == P.poll_interval


def test_first_poll_clamped() -> None:
    assert first_poll_delay(0.0, P) == P.min_first_delay
    assert first_poll_delay(86_000.0, P) == P.job_deadline


def test_interval_constant_before_backoff() -> None:
    for elapsed in (0, 10, 60, 119.9):
        assert interval_at(elapsed, P) == 2.0


def test_interval_grows_by_factor_after_120s_and_caps_at_30() -> None:
    # Walk the schedule from 120 s: each interval is 1.5x the previous one, capped.
    t, previous = 120.0, 2.0
    seen = []
    while t < 600:
        interval = next_poll_delay(t, P)
        seen.append(interval)
        if t + interval >= P.job_deadline:
            break
        assert interval == pytest.approx(min(30.0, previous * 1.5))
        previous = interval
        t += interval
    assert seen[0] == pytest.approx(3.0)
    assert max(seen) == 30.0
    assert seen.count(30.0) >= 5  # stays at the cap


def test_interval_is_monotonic_in_elapsed() -> None:
    values = [interval_at(e, P) for e in range(0, 700)]
    assert values == sorted(values)
    assert values[-1] == 30.0


def test_next_poll_never_passes_the_deadline() -> None:
    assert next_poll_delay(599.0, P) == pytest.approx(1.0)
    assert next_poll_delay(600.0, P) == 0.0
    assert next_poll_delay(10.0, P, until_deadline=0.5) == 0.5


@given(
    eta=st.one_of(st.none(), st.floats(0, 200)),
    completes=st.floats(0, 590),
)
def test_schedule_detects_within_one_interval_and_ends_by_deadline(
    eta: float | None, completes: float
) -> None:
    times = poll_times(eta, completes, P)
    assert times == sorted(times)
    assert times[-1] <= P.job_deadline
    last = times[-1]
    assert last >= completes or last == P.job_deadline
    if len(times) >= 2 and last >= completes:
        # Detection delay is at most the interval in force before the detecting poll.
        assert last - completes <= interval_at(times[-2], P) + 1e-9


@pytest.mark.parametrize("eta", [5.0, 25.0, 30.0, 40.0, 90.0])
def test_job_matching_its_eta_needs_one_poll(eta: float) -> None:
    times = poll_times(eta, eta, P)
    assert times == [eta]  # the minimum: one poll, no detection delay


@pytest.mark.parametrize("late", [0.1, 1.0, 1.9, 5.0, 17.0])
def test_late_job_detected_within_an_interval(late: float) -> None:
    eta = 30.0
    times = poll_times(eta, eta + late, P)
    assert times[-1] - (eta + late) < P.poll_interval + 1e-9
    assert len(times) == 1 + math.ceil(late / P.poll_interval - 1e-9)


def test_error_backoff_grows_and_caps_and_honours_retry_after() -> None:
    assert error_backoff(1, base=2.0) == 2.0
    assert error_backoff(2, base=2.0) == 4.0
    assert error_backoff(3, base=2.0) == 8.0
    assert error_backoff(10, base=2.0) == 30.0
    assert error_backoff(1, base=2.0, retry_after=12.0) == 12.0
    assert error_backoff(4, base=2.0, retry_after=1.0) == 16.0  # never shorter than the backoff
    assert error_backoff(1, base=2.0, retry_after=86_400.0) == 300.0  # bogus values are cut
    assert error_backoff(0, base=2.0) == 2.0
