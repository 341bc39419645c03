"""Concurrency invariants under random completion orders, faults, cancels and retries.

A hypothesis state machine drives the scheduler with a fake clock and a manual
executor whose pending operations are run in random order, so every interleaving
of worker results the real thread pool could produce is fair game.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hiptah_blender.client import errors
from hiptah_blender.jobs.records import JobState

from .scheduler_fakes import make_rig

MAX = 3


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rig = make_rig(max_concurrent=MAX, max_workers=2, download_workers=1, job_deadline=300)
        self.rig.server.eta = 5
        self.ids: list[str] = []
        self.first_sent: list[str] = []  # local ids in the order they first left WAITING
        self.retried: set[str] = set()
        self.max_seen = 0

    # ------------------------------------------------------------------ rules
    @rule(duration=st.floats(0.5, 40), fails=st.booleans())
    def submit(self, duration: float, fails: bool) -> None:
        prompt = f"job {len(self.ids)}"
        self.rig.server.durations[prompt] = duration
        if fails and len(self.ids) % 4 == 0:
            self.rig.server.outcomes[prompt] = "failed"
        self.ids.append(self.rig.scheduler.submit(prompt).local_id)

    @rule(dt=st.sampled_from([0.05, 0.25, 1.0, 3.0, 10.0]))
    def advance_and_tick(self, dt: float) -> None:
        self.rig.clock.advance(dt)
        self._tick()

    @rule()
    def tick(self) -> None:
        self._tick()

    @precondition(lambda self: bool(self.rig.executor.pending))
    @rule(pick=st.floats(0, 0.999), count=st.integers(1, 4))
    def run_workers(self, pick: float, count: int) -> None:
        for _ in range(count):
            pending = self.rig.executor.pending
            if not pending:
                break
            self.rig.executor.run_one(int(pick * len(pending)))

    @precondition(lambda self: bool(self.ids))
    @rule(pick=st.floats(0, 0.999))
    def cancel(self, pick: float) -> None:
        self.rig.scheduler.cancel(self.ids[int(pick * len(self.ids))])

    @precondition(lambda self: bool(self.ids))
    @rule(pick=st.floats(0, 0.999))
    def retry(self, pick: float) -> None:
        local_id = self.ids[int(pick * len(self.ids))]
        record = self.rig.scheduler.get(local_id)
        assert record is not None
        if record.state in (JobState.FAILED, JobState.CANCELLED):
            self.retried.add(local_id)
            self.rig.scheduler.retry(local_id)

    @rule(down=st.booleans())
    def network(self, down: bool) -> None:
        self.rig.server.network_down = down

    @rule(retry_after=st.sampled_from([None, 1.0, 4.0]))
    def rate_limit_next_submit(self, retry_after: float | None) -> None:
        self.rig.server.generate_faults.append(
            errors.RateLimitError(status=429, retry_after=retry_after)
        )

    def _tick(self) -> None:
        for event in self.rig.tick():
            if (
                event.previous_state is JobState.WAITING
                and event.job.state is JobState.SUBMITTING
                and event.job.local_id not in self.first_sent
            ):
                self.first_sent.append(event.job.local_id)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def never_more_than_max_in_flight(self) -> None:
        in_flight = sum(1 for r in self.rig.scheduler.jobs() if r.state.in_flight)
        assert in_flight == self.rig.scheduler.in_flight()
        # Retried jobs resume an existing server job, so they may exceed the limit briefly
        # by design (the job exists on the server already); without them the cap is hard.
        if not self.retried:
            assert in_flight <= MAX
        self.max_seen = max(self.max_seen, in_flight)

    @invariant()
    def at_most_one_operation_per_job(self) -> None:
        # Every operation is submitted as fn(local_id, token, ...).
        counts: dict[str, int] = {}
        for _, args, _ in self.rig.executor.pending:
            counts[args[0]] = counts.get(args[0], 0) + 1
        assert all(n == 1 for n in counts.values()), counts

    @invariant()
    def one_server_job_per_local_job(self) -> None:
        keys = [j.key for j in self.rig.server.jobs.values()]
        assert len(keys) == len(set(keys))
        assert len(keys) <= len(self.ids)
        for record in self.rig.scheduler.jobs():
            if record.job_id:
                assert self.rig.server.jobs[record.job_id].key == record.idempotency_key

    @invariant()
    def fifo(self) -> None:
        plain = [i for i in self.ids if i not in self.retried]
        sent = [i for i in self.first_sent if i in plain]
        assert sent == plain[: len(sent)] or self._cancelled_gaps(plain, sent)

    def _cancelled_gaps(self, plain: list[str], sent: list[str]) -> bool:
        # Jobs cancelled while WAITING are skipped; the rest keep their order.
        remaining = [
            i
            for i in plain
            if i in sent
            or (r := self.rig.scheduler.get(i)) is None
            or r.state is not JobState.CANCELLED
        ]
        return sent == remaining[: len(sent)]

    def teardown(self) -> None:
        # Drain everything with the network up: every job ends, none is lost.
        self.rig.server.network_down = False
        self.rig.server.generate_faults.clear()
        for _ in range(4000):
            if not self.rig.scheduler.has_active() and not self.rig.executor.pending:
                break
            self.rig.clock.advance(0.5)
            self._tick()
            while self.rig.executor.pending:
                self.rig.executor.run_one(random.randrange(len(self.rig.executor.pending)))
        self._tick()
        assert not self.rig.scheduler.has_active()
        for record in self.rig.scheduler.jobs():
            assert record.state.is_finished, record.state


SchedulerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSchedulerConcurrency = SchedulerMachine.TestCase


def test_random_completion_orders_keep_the_limit() -> None:
    """Plain randomized run (fixed seeds): 40 jobs, limit 5, results applied in random order."""
    for seed in range(8):
        rng = random.Random(seed)
        rig = make_rig(max_concurrent=5, max_workers=4)
        rig.server.eta = 3
        ids = []
        for i in range(40):
            prompt = f"job {i}"
            rig.server.durations[prompt] = rng.uniform(0.5, 20)
            ids.append(rig.scheduler.submit(prompt).local_id)
        order: list[str] = []
        peak = 0
        for _ in range(20_000):
            rig.clock.advance(rng.choice([0.05, 0.1, 0.25]))
            for event in rig.tick():
                if event.job.state is JobState.SUBMITTING:
                    order.append(event.job.local_id)
            for _ in range(rng.randrange(0, 4)):
                if rig.executor.pending:
                    rig.executor.run_one(rng.randrange(len(rig.executor.pending)))
            in_flight = rig.scheduler.in_flight()
            assert in_flight <= 5
            peak = max(peak, in_flight)
            if not rig.scheduler.has_active() and not rig.executor.pending:
                break
        assert peak == 5
        assert order == ids  # FIFO regardless of completion order
        assert all(r.state is JobState.DOWNLOADED for r in rig.scheduler.jobs())
        assert len(rig.server.jobs) == 40
