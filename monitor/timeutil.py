"""Durations as users write them ("90s", "10m", "1h30m", "2d") and the one clock the daemon reads."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = [
    "MAX_DURATION",
    "MAX_RETRY_AFTER_SECONDS",
    "format_duration",
    "from_iso",
    "parse_duration",
    "parse_retry_after",
    "to_iso",
    "utcnow",
]

# No interval, retention or delay a user means is longer than a century; timedelta itself overflows past
# 999,999,999 days, and `now + delta` past the year 9999. Anything larger is a typo or hostile input.
MAX_DURATION = timedelta(days=36500)
# A Retry-After header is capped here before any caller sees it (callers cap it further: 6 h for deliveries,
# the feed backoff cap for feeds), so no header value can overflow a timedelta or a datetime.
MAX_RETRY_AFTER_SECONDS = 7 * 86400.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse "30s", "10m", "1h30m", "2d" or a number of seconds. Raises ValueError naming the input."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"not a duration: {value!r} (must be a finite number of seconds)")
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return _bounded(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h30m, 2d)")
    text = value.strip().lower().replace(" ", "")
    if len(text) > 64:
        raise ValueError(f"not a duration: {value[:40]!r}... is too long (use e.g. 30s, 10m, 1h30m, 2d)")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _bounded(float(text), value)
    pos = 0
    total = 0.0
    for part in _PART.finditer(text):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h30m, 2d)")
    return _bounded(total, value)


def _bounded(seconds: float, value: object) -> timedelta:
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {value!r} is too long (at most {MAX_DURATION.days}d)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime | None) -> str | None:
    """UTC ISO-8601 text, sortable as a string: the form every timestamp has in the store."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds an HTTP Retry-After header asks to wait: delta-seconds or an HTTP date (a date in the past
    means now), at most MAX_RETRY_AFTER_SECONDS. None when absent or unreadable. Used for feeds (429/503) and
    webhook receivers alike."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Compare digit counts first: int() of a 5,000-digit string is refused by Python's int limit.
        if len(text) > 12:
            return MAX_RETRY_AFTER_SECONDS
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)
