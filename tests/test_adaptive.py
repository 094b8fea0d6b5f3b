"""Adaptive intervals (issue 13 item 3): `interval: auto` follows a feed's posting rate, from the first-seen times
the store keeps, so the estimate survives restarts. The pure estimate on tables; the convergence through the real
pipeline, a real feed server and a SQLite file, on a simulated clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.adaptive import adaptive_interval, hourly_rates
from monitor.config import DEFAULT_RULES, MonitorConfig, load_config
from monitor.rules import load_rules
from monitor.service import open_runtime, poll_all
from monitor.store import SQLiteStore
from tests.support.daemonproc import FeedBuilder
from tests.support.feedserver import FeedServer

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LO, HI, WINDOW = timedelta(minutes=2), timedelta(hours=2), timedelta(days=14)


def interval(arrivals: list[datetime], now: datetime = NOW) -> timedelta:
    return adaptive_interval(hourly_rates(arrivals, now, WINDOW, HI), now, LO, HI)


def every(gap: timedelta, days: float, now: datetime = NOW) -> list[datetime]:
    count = int(timedelta(days=days) / gap)
    return [now - gap * i for i in range(1, count + 1)]


@pytest.mark.parametrize("minutes", [5, 10, 30, 60])
def test_a_steady_feed_is_polled_about_twice_per_item(minutes: int) -> None:
    found = interval(every(timedelta(minutes=minutes), 14))
    half = timedelta(minutes=minutes) / 2
    assert abs(found - half) <= half * 0.1, found


def test_bounds_and_no_evidence() -> None:
    assert interval(every(timedelta(seconds=20), 2)) == LO, "a flood is polled at the fastest"
    assert interval([]) == HI, "a new or silent feed drifts to the slowest, not the fastest"
    assert interval(every(timedelta(hours=25), 14)) == HI, "one a day, at no hour in particular"


def test_a_feed_that_sleeps_at_night_is_polled_soon_after_its_morning() -> None:
    days = [NOW.date() - timedelta(days=d) for d in range(1, 15)]
    arrivals = [
        datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        for day in days
        for hour in range(6, 22)
        for minute in (0, 15, 30, 45)
    ]
    at_noon = interval(arrivals, NOW)
    assert timedelta(minutes=6) <= at_noon <= timedelta(minutes=10)
    slowest = timedelta(hours=12)
    moment = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)
    polls = []
    while moment < datetime(2026, 12, 3, 7, 0, tzinfo=UTC):
        moment += adaptive_interval(hourly_rates(arrivals, moment, WINDOW, slowest), moment, LO, slowest)
        polls.append(moment)
    night = [p for p in polls if p < datetime(2026, 12, 3, 6, 0, tzinfo=UTC)]
    assert len(night) <= 4, f"the quiet night is polled a few times, not every 8 minutes: {night}"
    morning = [p for p in polls if p >= datetime(2026, 12, 3, 6, 0, tzinfo=UTC)]
    assert morning and morning[0] <= datetime(2026, 12, 3, 6, 30, tzinfo=UTC), polls


def test_auto_is_a_config_value_and_the_bounds_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "interval: auto\nadaptive: {min: 5m, max: 1h}\nfeeds:\n  - url: https://example.org/a.xml\n  - url: https://example.org/b.xml\n    interval: 15m\n"
    )
    config = load_config(path)
    a, b = config.feeds
    assert config.is_adaptive(a) and not config.is_adaptive(b)
    assert config.feed_interval(a) == timedelta(minutes=5) and config.feed_interval(b) == timedelta(
        minutes=15
    )
    path.write_text("adaptive: {min: 2h, max: 1h}\n")
    with pytest.raises(ValueError, match=r"adaptive\.max"):
        load_config(path)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def test_an_auto_feed_converges_on_its_posting_rate_and_keeps_it_across_a_restart(tmp_path: Path) -> None:
    """A feed posts every 20 minutes; polled on `interval: auto` at the times the daemon schedules, its
    interval settles near 10 minutes (two polls per expected item) within a simulated day, and a new runtime on
    the same file (a restart) schedules the same."""
    feed = FeedBuilder()
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    clock = Clock(start)
    with FeedServer() as server:
        url = server.url("/f.xml")
        config = MonitorConfig.model_validate(
            {
                "database": tmp_path / "m.db",
                "allow_private_networks": ["127.0.0.1/32"],
                "interval": "auto",
                "adaptive": {"min": "2m", "max": "2h"},
                "feeds": [{"url": url}],
                "fetch": {"per_host_gap": "0s"},
            }
        )
        posted = 0
        intervals: list[timedelta] = []

        async def poll_until(end: datetime) -> None:
            nonlocal posted
            async with open_runtime(config, load_rules(DEFAULT_RULES), clock=clock) as runtime:
                while clock.now < end:
                    while start + timedelta(minutes=20) * posted <= clock.now:
                        feed.add(f"n{posted}", f"Local note number {posted}", "Quiet news.")
                        posted += 1
                    server.set("/f.xml", feed.rss())
                    (outcome,) = await poll_all(runtime)
                    assert outcome.next_fetch_at is not None
                    intervals.append(outcome.next_fetch_at - clock.now)
                    clock.now = outcome.next_fetch_at

        asyncio.run(poll_until(start + timedelta(days=1)))
        settled = intervals[-10:]
        assert all(timedelta(minutes=6) <= i <= timedelta(minutes=14) for i in settled), settled
        assert len(intervals) < 200, "about two polls per item, not one per 2 minutes"
        asyncio.run(poll_until(clock.now + timedelta(minutes=1)))  # a restart: the estimate is in the store
        assert timedelta(minutes=6) <= intervals[-1] <= timedelta(minutes=14), intervals[-1]
    with SQLiteStore(tmp_path / "m.db") as store:
        assert store.counts()["items"] == posted
