"""Per-channel limits: how many sends run at once, how many per period, how long one may take.

Every channel config inherits `ChannelOptions`; the outbox worker reads the resulting `ChannelLimits` from the
channel. The rate limit is a token bucket holding `count` tokens that refills `count` per `period`: a burst of
`count` goes out at once, then the channel's sends are spread evenly. Reservations may run the bucket into
debt, so concurrent senders queue behind each other instead of all sending when one token comes back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from monitor.quiethours import QuietHours
from monitor.timeutil import parse_duration
from monitor.types import Severity

__all__ = ["ChannelLimits", "ChannelOptions", "Rate", "RateLimiter", "parse_rate"]

_PERIOD_WORDS = {"sec": "1s", "second": "1s", "min": "1m", "minute": "1m", "hour": "1h", "day": "1d"}


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: timedelta

    def __str__(self) -> str:
        return f"{self.count}/{self.period.total_seconds():g}s"


def parse_rate(value: object) -> Rate:
    """Parse "30/min", "10/s", "100/1h", "5/30s" (sends per period). Raises ValueError naming the input."""
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a rate is written like '30/min' or '10/s', got {value!r}")
    match = re.fullmatch(r"\s*(\d+)\s*/\s*([0-9a-z.]+)\s*", value.lower())
    if not match:
        raise ValueError(f"a rate is written like '30/min' or '10/s', got {value!r}")
    count = int(match.group(1))
    period_text = match.group(2)
    period_text = _PERIOD_WORDS.get(
        period_text, period_text if period_text[0].isdigit() else "1" + period_text
    )
    try:
        period = parse_duration(period_text)
    except ValueError as exc:
        raise ValueError(f"a rate is written like '30/min' or '10/s', got {value!r}: {exc}") from exc
    if count < 1 or period <= timedelta(0):
        raise ValueError(f"a rate needs a count of at least 1 and a positive period, got {value!r}")
    return Rate(count, period)


class ChannelOptions(BaseModel):
    """Keys every channel type accepts."""

    # hide_input_in_errors: a rejected secret must not be echoed into logs by a validation error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # At most 120 s, so that the whole send (limits().deadline) ends well within the store's delivery lease.
    timeout: float = Field(default=30.0, gt=0, le=120, description="seconds one network operation may take")
    concurrency: int = Field(default=4, ge=1, le=64, description="sends in flight at once")
    rate: Annotated[Rate | None, BeforeValidator(lambda v: None if v is None else parse_rate(v))] = Field(
        default=None, description="at most this many sends per period, e.g. '30/min'"
    )
    digest: Annotated[
        timedelta | None, BeforeValidator(lambda v: None if v is None else parse_duration(v))
    ] = Field(
        default=None,
        description="collect alerts for this long and send them as one message (like Alertmanager's "
        "group_interval); the period starts with the first alert after the previous digest",
    )

    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=4096,
        description="a webhook body or an e-mail is at most this large: alerts are cut to fit (see 'truncated')",
    )

    group_by: tuple[Literal["rule", "story"], ...] = Field(
        default=("story",),
        description="what one message is about: [story] (default) one notification per story naming every rule "
        "that fired on it, later rules as updates in its thread; [rule, story] one message per alert",
    )
    group_interval: Annotated[timedelta, BeforeValidator(parse_duration)] = Field(
        default=timedelta(minutes=30),
        description="an update (a rule that fired later on a story already notified) waits until the story's "
        "thread on this channel has been quiet this long, so one wave of follow-up reports sends one update "
        "(like Alertmanager's group_interval); 0s sends each at once",
    )
    min_severity: Severity = Field(
        default="low",
        description="only notifications at least this severe reach the channel (low, normal, high, critical): "
        "`high` on a pager channel lets only escalations of high or critical severity through",
    )

    quiet_hours: QuietHours | None = Field(
        default=None,
        description="{from: '22:00', to: '07:00', timezone: Europe/Berlin}: alert notifications queued in this "
        "daily window are held and sent as one digest when it ends",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_window(cls, value: QuietHours | None) -> QuietHours | None:
        if value is not None and value.start == value.end:
            raise ValueError("quiet_hours from and to must differ")
        return value

    @field_validator("group_by")
    @classmethod
    def _known_grouping(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if sorted(set(value)) not in (["story"], ["rule", "story"]):
            raise ValueError(f"group_by is [story] or [rule, story], got {list(value)}")
        return value

    @property
    def per_rule(self) -> bool:
        """One message per (rule, story) alert, as before issue 8 (``group_by: [rule, story]``)."""
        return "rule" in self.group_by

    def limits(self) -> ChannelLimits:
        return ChannelLimits(concurrency=self.concurrency, rate=self.rate, deadline=2 * self.timeout + 5)


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    concurrency: int = 4
    rate: Rate | None = None
    deadline: float = 65.0  # seconds a whole send may take (connect, TLS, transfer, answer)


@dataclass(slots=True)
class RateLimiter:
    """A token bucket with reservations. Not thread-safe; used from one event loop."""

    rate: Rate
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.rate.count)
        self._updated = self.clock()

    @property
    def _per_second(self) -> float:
        return self.rate.count / self.rate.period.total_seconds()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(float(self.rate.count), self._tokens + (now - self._updated) * self._per_second)
        self._updated = now

    def reserve(self, max_wait: float) -> float | None:
        """Take a token that is available within `max_wait` seconds and return how long to wait for it;
        None (nothing taken) when the wait would be longer. See `wait_time` for how long that is."""
        self._refill()
        wait = self.wait_time()
        if wait > max_wait:
            return None
        self._tokens -= 1.0
        return wait

    def wait_time(self) -> float:
        """Seconds until a token would be available (0 when one is)."""
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self._per_second
