"""Poll schedule math: pure functions, no clocks, no state.

The scheduler asks two questions of this module: "when is the first poll of a
job that was just accepted?" and "given how long a job has been running, how long
until the next poll?". Both answers are functions of numbers only, so they are
unit-tested exhaustively and give the same answer after a restart (the schedule
is derived from the elapsed time, not from a counter kept in memory).

Decision (see docs/scheduler.md): the first poll happens *at* the server's ETA,
not before it. The submission time is taken when the POST's answer arrives, which
is after the server started its clock, so a job that takes exactly its ETA is
already completed at that poll: one poll, near-zero detection delay. A job that
runs longer is polled every ``poll_interval`` after that, so its detection delay is
below one interval (half of one on average). Polling a margin *before* the ETA
would cost one extra poll for every on-time job and buy nothing for late ones.
Without an ETA the first poll comes after one ``poll_interval``. After
``backoff_after`` seconds the interval grows by ``backoff_factor`` per poll up to
``max_interval`` (the contract: "after 120 s back off exponentially").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PollPolicy:
    """Numbers that shape a job's poll schedule (from SchedulerConfig)."""

    poll_interval: float = 2.0  # contract: "every 2 s is recommended"
    min_first_delay: float = 0.25  # an ETA of 0 still gives the server a moment
    backoff_after: float = 120.0  # contract: "after 120 s back off exponentially"
    backoff_factor: float = 1.5
    max_interval: float = 30.0
    job_deadline: float = 600.0  # from submission; then JobTimeoutError


def first_poll_delay(eta: float | None, policy: PollPolicy) -> float:
    """Seconds from acceptance to the first poll: the ETA, else one poll interval.

    Clamped below by ``min_first_delay`` and above by the deadline (a silly ETA of
    a day must not postpone the first look past the point where we give up).
    """
    # None, NaN or negative: no usable ETA.
    usable = eta is not None and eta == eta and eta >= 0
    delay = float(eta) if usable and eta is not None else policy.poll_interval
    return max(policy.min_first_delay, min(delay, policy.job_deadline))


def interval_at(elapsed: float, policy: PollPolicy) -> float:
    """The poll interval in force ``elapsed`` seconds after submission.

    Before ``backoff_after``: ``poll_interval``. After it, the k-th poll past the
    threshold waits ``poll_interval * factor**k`` (capped). Computed from the
    elapsed time alone by walking the geometric series, so a resumed job gets the
    same interval as one that never stopped; the walk ends at the cap, so it takes
    O(log(cap/interval)) steps.
    """
    base = max(policy.poll_interval, 1e-3)
    if elapsed < policy.backoff_after or policy.backoff_factor <= 1.0:
        return min(base, policy.max_interval) if policy.max_interval > 0 else base
    t = policy.backoff_after
    interval = base
    while interval < policy.max_interval:
        interval = min(policy.max_interval, interval * policy.backoff_factor)
        t += interval
        if t > elapsed:
            break
    return interval


def next_poll_delay(
    elapsed: float, policy: PollPolicy, *, until_deadline: float | None = None
) -> float:
    """Seconds until the next poll, ``elapsed`` seconds after submission.

    Never past the deadline (``until_deadline`` seconds away, by default the
    policy's ``job_deadline`` from submission): the last poll happens at the
    deadline itself, so a job that completes just before it is still caught.
    """
    delay = interval_at(elapsed, policy)
    remaining = policy.job_deadline - elapsed if until_deadline is None else until_deadline
    if remaining <= 0:
        return 0.0
    return min(delay, remaining)


def error_backoff(
    attempt: int, *, base: float, cap: float = 30.0, retry_after: float | None = None
) -> float:
    """Delay before retrying after the ``attempt``-th consecutive transient error (1-based).

    Exponential (base * 2**(attempt-1)) and capped; a server's Retry-After wins when
    it asks for longer.
    """
    attempt = max(1, attempt)
    delay = min(cap, base * (2.0 ** min(attempt - 1, 16)))
    if retry_after is not None and retry_after == retry_after and retry_after > delay:
        delay = min(retry_after, max(cap, 300.0))  # honour it, but a bogus day-long value is cut
    return delay


def poll_times(eta: float | None, completes_at: float, policy: PollPolicy) -> list[float]:
    """Every poll time (seconds after submission) for a job that completes at
    ``completes_at``, up to the poll that sees it completed or the deadline.

    Used by tests and the bench to count polls and detection delay for a schedule.
    """
    times: list[float] = []
    t = first_poll_delay(eta, policy)
    while True:
        times.append(t)
        if t >= completes_at or t >= policy.job_deadline:
            return times
        t += next_poll_delay(t, policy)
