"""Cache hints: what the server and the feed say about how soon polling again is useful. Pure functions.

Sources, each a *floor* under the next poll, never a reason to poll sooner than the feed's interval:

- HTTP `Cache-Control: max-age=N` (the private-cache directive; `s-maxage` is for shared caches, and
  `no-cache`/`no-store` mean "ask every time": no floor). Without max-age, `Expires` minus the response's `Date`
  (minus now when there is no Date); an unparsable or past Expires ("0", "-1") is no floor (RFC 9111 4.2.1).
- RSS 2.0 `<ttl>` (minutes) and the syndication module's `sy:updatePeriod` / `sy:updateFrequency` (a period of
  hourly, daily, weekly, monthly or yearly, divided by the frequency). When both are given the shorter wins:
  the feed promises nothing new sooner than that.
- `<skipHours>` (0-23, GMT) and `<skipDays>` (Monday...Sunday): hours in which the feed asks not to be
  read. Honoured only where the configuration says so (`fetch.honour_skip_hours`, or per feed), because a news
  feed that skips the night would otherwise miss the morning's first reports; a document that skips every
  hour, or every day, is broken and ignored.

Every floor is capped by `fetch.max_cache_hint` (default 2 h), so a wrong header (max-age of a year, a ttl
of 10,080 minutes) cannot silence a feed for a week. The skip hours themselves are not capped (they are at
most a day and a week by construction).

The document's hints are read from its bytes before the first item, with the same code for every parse path
(the lxml fast path and feedparser), so switching paths never changes a schedule.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from monitor.types import FeedHints

__all__ = ["feed_hints", "http_lifetime", "next_poll_at"]

_HEAD_LIMIT = 64 * 1024  # channel metadata comes before the items; never scan a whole large document
_FIRST_ITEM = re.compile(rb"<(?:\w+:)?(?:item|entry)[\s>/]")
_TTL = re.compile(rb"<ttl>\s*(\d{1,9})\s*</ttl>")
_PERIOD = re.compile(rb"<(?:\w+:)?updatePeriod>\s*(\w+)\s*</(?:\w+:)?updatePeriod>")
_FREQUENCY = re.compile(rb"<(?:\w+:)?updateFrequency>\s*(\d{1,9})\s*</(?:\w+:)?updateFrequency>")
_SKIP_HOURS = re.compile(rb"<skipHours>(.*?)</skipHours>", re.S)
_SKIP_DAYS = re.compile(rb"<skipDays>(.*?)</skipDays>", re.S)
_HOUR = re.compile(rb"<hour>\s*(\d{1,2})\s*</hour>")
_DAY = re.compile(rb"<day>\s*(\w+)\s*</day>")
_PERIODS = {
    b"hourly": 3600.0,
    b"daily": 86400.0,
    b"weekly": 7 * 86400.0,
    b"monthly": 30 * 86400.0,
    b"yearly": 365 * 86400.0,
}
_DAYS = {
    name.encode(): index
    for index, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,12})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[,=]|$)", re.IGNORECASE)


def feed_hints(data: bytes) -> FeedHints:
    """The schedule hints of a feed document (module doc); FeedHints() when it has none."""
    head = data[:_HEAD_LIMIT]
    first = _FIRST_ITEM.search(head)
    if first is not None:
        head = head[: first.start()]
    periods: list[float] = []
    if (ttl := _TTL.search(head)) is not None and int(ttl.group(1)) > 0:
        periods.append(int(ttl.group(1)) * 60.0)
    if (period := _PERIOD.search(head)) is not None and period.group(1).lower() in _PERIODS:
        frequency = _FREQUENCY.search(head)
        times = max(1, int(frequency.group(1))) if frequency is not None else 1
        periods.append(_PERIODS[period.group(1).lower()] / times)
    hours: frozenset[int] = frozenset()
    if (block := _SKIP_HOURS.search(head)) is not None:
        # RSS 2.0 says 0-23; some feeds write 24 for midnight.
        hours = frozenset(int(h) % 24 for h in _HOUR.findall(block.group(1)) if int(h) <= 24)
    days: frozenset[int] = frozenset()
    if (block := _SKIP_DAYS.search(head)) is not None:
        days = frozenset(_DAYS[d.lower()] for d in _DAY.findall(block.group(1)) if d.lower() in _DAYS)
    return FeedHints(ttl_seconds=min(periods) if periods else None, skip_hours=hours, skip_days=days)


def http_lifetime(
    cache_control: str | None, expires: str | None, date: str | None, now: datetime
) -> float | None:
    """Seconds the response says it stays fresh, or None for no hint (module doc)."""
    if cache_control:
        if _NO_CACHE.search(cache_control):
            return None
        found = _MAX_AGE.search(cache_control)
        if found is not None:
            seconds = int(found.group(1))
            return float(seconds) if seconds > 0 else None
    if not expires:
        return None
    expiry = _http_date(expires)
    if expiry is None:
        return None
    origin = _http_date(date) if date else None
    lifetime = (expiry - (origin or now)).total_seconds()
    return lifetime if lifetime > 0 else None


def next_poll_at(
    now: datetime,
    interval: timedelta,
    *,
    http_seconds: float | None,
    hints: FeedHints,
    cap: timedelta,
    honour_skip: bool,
) -> tuple[datetime, str | None]:
    """When to poll next, and why it is later than `now + interval` (None when it is not)."""
    floor = max((s for s in (http_seconds, hints.ttl_seconds) if s is not None), default=0.0)
    hinted = min(timedelta(seconds=floor), cap)
    reason = None
    at = now + interval
    if now + hinted > at:
        at = now + hinted
        source = "Cache-Control/Expires" if (http_seconds or 0.0) >= (hints.ttl_seconds or 0.0) else "ttl"
        reason = f"{source} asks for {_span(timedelta(seconds=floor))}" + (
            f", capped at {_span(cap)}" if timedelta(seconds=floor) > cap else ""
        )
    if honour_skip and (hints.skip_hours or hints.skip_days):
        skipped = _after_skips(at, hints)
        if skipped != at:
            at = skipped
            reason = "the feed's skipHours/skipDays" + (f"; {reason}" if reason else "")
    return at, reason


def _after_skips(at: datetime, hints: FeedHints) -> datetime:
    """The first moment from `at` outside the skipped hours and days (GMT); `at` itself when the document skips
    every hour or every day (broken: ignored)."""
    if len(hints.skip_hours) >= 24 or len(hints.skip_days) >= 7:
        return at
    moment = at
    for _ in range(24 * 8):  # at most a week of whole hours, plus the hour we start in
        utc = moment.astimezone(UTC)
        if utc.hour not in hints.skip_hours and utc.weekday() not in hints.skip_days:
            return moment
        moment = (moment + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return at


def _http_date(text: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
