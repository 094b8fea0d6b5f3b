"""Feed health: the pure decision of which notices a poll calls for, and whether the feed is parked.

After every poll the pipeline gives `assess` what the store knows about the feed (`FeedHealth`) and what the
poll saw; `assess` returns the notices to queue and the feed's new notified state. No I/O here.

Conditions, each told once and its end told once:
- failing   the current failure streak is older than `failing_for` (`0s`: the first failure); a success
            afterwards sends `recovered` (recovered_from: failing);
- silent    no new item for longer than `silent_for`, or with `auto` for AUTO_FACTOR times the feed's typical gap
            between fetches that brought new items (at least AUTO_MIN_INTERVALS poll intervals; needs
            AUTO_MIN_GAPS gaps of history); new items afterwards send `recovered` (recovered_from: silent);
- guid_churn  a fetch brought GUIDs that are new while their text is one this feed already delivered (the churn
            guard kept them from alerting); told at most once per CHURN_RENOTIFY;
- parked    HTTP 410 Gone, or failing longer than `park_after`: the feed is not polled again until an operator
            runs `monitor feeds unpark URL`.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any, Literal

from monitor.timeutil import format_duration, to_iso

__all__ = [
    "AUTO_FACTOR",
    "FeedHealth",
    "HealthDecision",
    "HealthNotice",
    "HealthPolicy",
    "PollSeen",
    "assess",
    "gaps_between",
    "silence_threshold",
]

Condition = Literal["failing", "recovered", "silent", "guid_churn", "parked"]

AUTO_FACTOR = 4  # silent after 4 typical gaps between new items
AUTO_MIN_INTERVALS = 3  # ... and never sooner than 3 poll intervals
AUTO_MIN_GAPS = 4  # gaps of history needed before `auto` says anything
CHURN_RENOTIFY = timedelta(days=1)
CHURN_MIN_ITEMS = 3  # a single re-keyed item is an edit, not churn


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    notify: tuple[str, ...] = ()
    failing_for: timedelta = timedelta(hours=1)
    silent_for: timedelta | Literal["auto"] | None = None
    park_after: timedelta | None = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """The feed's row as health needs it, plus the gaps between its recent fetches that brought new items."""

    url: str
    title: str | None
    interval: timedelta
    error_count: int = 0
    last_error: str | None = None
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_new_item_at: datetime | None = None
    notified: frozenset[str] = frozenset()
    churn_notified_at: datetime | None = None
    parked_at: datetime | None = None
    new_item_gaps: tuple[timedelta, ...] = ()


@dataclass(frozen=True, slots=True)
class PollSeen:
    """What one poll saw, beyond what the store already recorded."""

    ok: bool
    gone: bool = False  # HTTP 410
    new_items: int = 0
    churned: int = 0  # new keys whose text this feed already delivered


@dataclass(frozen=True, slots=True)
class HealthNotice:
    feed_url: str
    feed_title: str | None
    condition: Condition
    detail: str
    last_error: str | None = None
    error_streak: int = 0
    since: datetime | None = None
    recovered_from: str | None = None

    def payload(self, now: datetime, notice_id: str | None = None) -> dict[str, Any]:
        """The webhook JSON (version 1, `type: "feed_health"`); also what the email is rendered from."""
        return {
            "version": 1,
            "type": "feed_health",
            "id": notice_id or f"hlt_{secrets.token_hex(12)}",
            "created_at": to_iso(now),
            "condition": self.condition,
            "recovered_from": self.recovered_from,
            "feed": {"url": self.feed_url, "title": self.feed_title},
            "detail": self.detail,
            "last_error": self.last_error,
            "error_streak": self.error_streak,
            "since": to_iso(self.since),
        }


@dataclass(frozen=True, slots=True)
class HealthDecision:
    notices: tuple[HealthNotice, ...] = ()
    notified: frozenset[str] = frozenset()
    park_reason: str | None = None
    churn_notified: bool = False


def silence_threshold(policy: HealthPolicy, health: FeedHealth) -> timedelta | None:
    """How long without a new item makes this feed silent; None when silence is not watched (or `auto` has not
    seen enough of the feed yet)."""
    if policy.silent_for is None:
        return None
    if policy.silent_for != "auto":
        return policy.silent_for
    if len(health.new_item_gaps) < AUTO_MIN_GAPS:
        return None
    typical = timedelta(seconds=median(gap.total_seconds() for gap in health.new_item_gaps))
    return max(AUTO_FACTOR * typical, AUTO_MIN_INTERVALS * health.interval)


def assess(health: FeedHealth, seen: PollSeen, policy: HealthPolicy, now: datetime) -> HealthDecision:
    """The notices this poll calls for. `health` is the feed's state after the poll was recorded."""
    notices: list[HealthNotice] = []
    notified = set(health.notified)
    park_reason: str | None = None
    name = health.title or health.url

    def notice(condition: Condition, detail: str, **more: Any) -> None:
        notices.append(HealthNotice(health.url, health.title, condition, detail, **more))

    if seen.ok:
        if "failing" in notified:
            notified.discard("failing")
            notice("recovered", f"{name} answers again", recovered_from="failing")
    else:
        since = health.failing_since or now
        streak = f"{health.error_count} polls in a row" if health.error_count != 1 else "1 poll"
        if seen.gone:
            park_reason = f"HTTP 410 Gone: {health.last_error or 'the server says the feed is gone'}"
        elif policy.park_after is not None and now - since >= policy.park_after:
            park_reason = f"failing for {format_duration(now - since)}: {health.last_error}"
        if park_reason is not None:
            notice(
                "parked",
                f"{name} is parked and no longer polled ({park_reason}); `monitor feeds unpark URL` resumes it",
                last_error=health.last_error,
                error_streak=health.error_count,
                since=since,
            )
        elif "failing" not in notified and now - since >= policy.failing_for:
            notified.add("failing")
            notice(
                "failing",
                f"{name} has been failing for {format_duration(now - since) or '0s'} ({streak}): "
                f"{health.last_error}",
                last_error=health.last_error,
                error_streak=health.error_count,
                since=since,
            )

    threshold = silence_threshold(policy, health)
    if seen.ok and seen.new_items and "silent" in notified:
        notified.discard("silent")
        notice("recovered", f"{name} has new items again", recovered_from="silent")
    elif seen.ok and threshold is not None and "silent" not in notified:
        last = health.last_new_item_at
        if last is not None and now - last > threshold:
            notified.add("silent")
            notice(
                "silent",
                f"{name} has had no new item for {format_duration(now - last)} "
                f"(silent after {format_duration(threshold)})",
                since=last,
            )

    churn_notified = False
    if seen.churned >= CHURN_MIN_ITEMS and (
        health.churn_notified_at is None or now - health.churn_notified_at >= CHURN_RENOTIFY
    ):
        churn_notified = True
        notice(
            "guid_churn",
            f"{name} gave {seen.churned} items new GUIDs while their text stayed the same; they were not "
            "alerted again (a feed that re-keys its items on every fetch)",
        )
    return HealthDecision(tuple(notices), frozenset(notified), park_reason, churn_notified)


def gaps_between(moments: Sequence[datetime]) -> tuple[timedelta, ...]:
    """Gaps between consecutive moments (sorted first)."""
    ordered = sorted(moments)
    return tuple(b - a for a, b in itertools.pairwise(ordered))
