"""When to try a failed delivery again, and when to give up.

The schedule is the Standard Webhooks one: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h after the
previous failure, each stretched by up to 20 % of random jitter so that deliveries that failed together (one
receiver outage) do not all come back in the same second.

The step is chosen from the delivery's *age*, not from its attempt counter: the step after a failure is the
first one whose cumulative offset from the delivery's creation lies beyond its current age. For a delivery that
simply keeps failing this is exactly the schedule above. It differs where attempts were counted without a real
failure: a worker killed mid-send (the store counts the claim as an attempt), or a delivery deferred by its
channel's rate limit. Those must not push a delivery towards the dead-letter queue faster than the clock does.

A receiver's Retry-After is honoured as a lower bound, capped at `retry_after_cap` so that a receiver cannot
park a delivery for weeks. A delivery older than `max_age`, or past the last step, is dead: it stays visible in
the store (``monitor deliveries``) and can be re-driven by an operator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["DEFAULT_RETRY_POLICY", "STANDARD_WEBHOOKS_SCHEDULE", "RetryPolicy"]

STANDARD_WEBHOOKS_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry schedule and its limits. Pure: the caller passes the clock and the random source."""

    schedule: tuple[timedelta, ...] = STANDARD_WEBHOOKS_SCHEDULE
    jitter: float = 0.2  # each delay is multiplied by a factor drawn from [1, 1 + jitter)
    retry_after_cap: timedelta = timedelta(hours=6)
    max_age: timedelta = timedelta(days=4)  # a little more than the schedule's 75 h 35 min

    def __post_init__(self) -> None:
        if not self.schedule:
            raise ValueError("a retry schedule needs at least one step")
        if self.jitter < 0:
            raise ValueError("jitter must not be negative")

    def step_index(self, age: timedelta, attempt: int) -> int:
        """Index of the schedule step that follows a failure at this age (see the module docstring).

        `attempt` (1 for the first try) is used only when the age is unknown (negative)."""
        if age < timedelta(0):
            return max(attempt - 1, 0)
        elapsed = timedelta(0)
        for index, delay in enumerate(self.schedule):
            elapsed += delay
            if elapsed > age:
                return index
        return len(self.schedule)

    def gives_up(self, *, now: datetime, created_at: datetime | None, attempt: int) -> bool:
        """Whether a failure at `now` would make the delivery dead (past max_age or past the schedule)."""
        age = now - created_at if created_at is not None else timedelta(-1)
        return age >= self.max_age or self.step_index(age, attempt) >= len(self.schedule)

    def next_attempt(
        self,
        *,
        now: datetime,
        created_at: datetime | None,
        attempt: int,
        retry_after: float | None,
        rng: random.Random,
        at_least: timedelta = timedelta(0),
    ) -> datetime | None:
        """When to try again after a retryable failure at `now`; None when the delivery is to be dead-lettered.

        `at_least` raises the delay for reasons of the caller's (a disabled or missing channel is not polled
        every five seconds)."""
        age = now - created_at if created_at is not None else timedelta(-1)
        if age >= self.max_age:
            return None
        index = self.step_index(age, attempt)
        if index >= len(self.schedule):
            return None
        delay = self.schedule[index] * (1.0 + rng.random() * self.jitter)
        if retry_after is not None and retry_after > 0:  # NaN compares False: ignored
            # Cap the number before it becomes a timedelta: a huge value would overflow it.
            capped = min(retry_after, self.retry_after_cap.total_seconds())
            delay = max(delay, timedelta(seconds=capped))
        delay = max(delay, at_least)
        return now + delay


DEFAULT_RETRY_POLICY = RetryPolicy()
