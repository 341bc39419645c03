"""What a batch will spend, and whether the plan has that much left.

The API has no usage or quota endpoint, so "what the plan has left" is decided
here, in this order:

1. ``--quota-left N``: the user read it from the HiPtah dashboard. Exact.
2. Otherwise the plan's monthly allowance minus the generations this batch's own
   state file shows were accepted this calendar month. That is an *upper bound*
   (the add-on, other batches or other machines may have used more), so the check
   can pass and the server still answer 403 mid-batch; the batch then stops
   submitting, keeps the remaining rows waiting, and says so.
3. Enterprise plans are negotiated: without ``--quota-left`` nothing is refused.

The cost of a run is the number of rows that do not have a server job yet: a row
whose job was accepted (it has a job id) never costs another generation, because
resuming polls that job instead of submitting again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..jobs.records import JobRecord


@dataclass(frozen=True)
class Plan:
    name: str
    monthly: int | None  # generations a month; None: negotiated
    concurrent: int | None  # jobs in flight at once; None: negotiated


# From the contract's "Plans and limits" table.
PLANS: dict[str, Plan] = {
    "creator": Plan("creator", 100, 10),
    "pro": Plan("pro", 300, 30),
    "enterprise": Plan("enterprise", None, None),
}
# Enterprise limits are negotiated; without --concurrency, stay at the Pro level.
ENTERPRISE_DEFAULT_CONCURRENCY = 30


def plan_named(name: str) -> Plan:
    try:
        return PLANS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown plan {name!r}; use {', '.join(PLANS)}") from None


def default_concurrency(plan: Plan) -> int:
    return plan.concurrent or ENTERPRISE_DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class QuotaCheck:
    cost: int  # generations this run may start
    left: int | None  # what the plan has left, None when unknown (no limit applied)
    basis: str  # how ``left`` was decided, for the user

    @property
    def over(self) -> bool:
        return self.left is not None and self.cost > self.left

    def describe(self) -> str:
        if self.left is None:
            return f"This run needs up to {self.cost} new generation(s); {self.basis}."
        verdict = "more than" if self.over else "within"
        return (
            f"This run needs up to {self.cost} new generation(s), {verdict} the {self.left} "
            f"left ({self.basis})."
        )


def month_start(now: float | None = None) -> float:
    """Unix time of the first instant of the current calendar month (local time)."""
    t = time.localtime(time.time() if now is None else now)
    return time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, -1))


def accepted_this_month(records: Iterable[JobRecord], now: float | None = None) -> int:
    """Jobs the server accepted (so charged) since the month began, per the state file."""
    start = month_start(now)
    return sum(
        1 for r in records if r.job_id and (r.submitted_at or r.created_at) >= start
    )


def check_quota(
    plan: Plan, *, cost: int, quota_left: int | None, used_recorded: int
) -> QuotaCheck:
    if quota_left is not None:
        return QuotaCheck(cost, max(0, quota_left), "from --quota-left")
    if plan.monthly is None:
        return QuotaCheck(cost, None, f"the {plan.name} plan's quota is negotiated: pass --quota-left to check it")
    left = max(0, plan.monthly - used_recorded)
    basis = (
        f"{plan.name} plan: {plan.monthly} a month minus {used_recorded} this batch's state "
        "file recorded this month; other use is not visible, pass --quota-left for an exact check"
    )
    return QuotaCheck(cost, left, basis)
