"""Quiet hours on a channel (issue 14 item 4): held during a local-time window and delivered as one digest when
it ends. The real pipeline with a simulated clock (the outbox's `now` too), feeds on a FeedServer, real
webhook receivers, a real SQLite file; config errors through `monitor check`; the window arithmetic as a pure
function, across midnight and daylight-saving changes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.quiethours import QuietHours
from monitor.rules import load_rules
from monitor.service import Runtime, open_runtime, poll_all
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver
from tests.test_notify_grouping import first_report
from tests.test_silences import RULES
from tests.test_story_alerts import rss, write_config

# 22:30 in Berlin (CET, UTC+1): inside quiet hours 22:00-07:00, which end at 06:00 UTC the next morning.
T0 = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)
QUIET = {"from": "22:00", "to": "07:00", "timezone": "Europe/Berlin"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def test_a_quiet_channel_holds_the_night_and_sends_one_digest_when_it_ends(
    tmp_path: Path, server: FeedServer
) -> None:
    with WebhookReceiver() as night, WebhookReceiver() as day:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES, encoding="utf-8")
        feeds = [server.url("/a.xml"), server.url("/b.xml"), server.url("/c.xml")]
        for name in ("a", "b", "c"):
            server.set(f"/{name}.xml", rss([], title=f"Wire {name}"))
        channels = {
            "night": {"type": "webhook", "url": night.url, "quiet_hours": QUIET},
            "day": {"type": "webhook", "url": day.url},
        }
        config = load_config(write_config(tmp_path, feeds, channels, rules))
        clock = Clock(T0 - timedelta(minutes=30))

        async def steps(runtime: Runtime) -> None:
            # 21:00 UTC = 22:00 Berlin: the quiet hours have just begun.
            await poll_all(runtime)
            server.set("/a.xml", rss([first_report()], title="Wire a"))
            clock.now = T0
            await poll_all(runtime)
            await runtime.deliver(now=clock.now)
            server.set(
                "/b.xml", rss([{"guid": "b-1", "title": "Manturow in Peking", "link": "https://b.example/m"}])
            )
            clock.now = T0 + timedelta(hours=2)
            await poll_all(runtime)
            await runtime.deliver(now=clock.now)
            # The other channel is not quiet: both stories went out at once there.
            assert len(day.requests) == 2 and night.requests == []
            await runtime.deliver(now=datetime(2026, 1, 16, 5, 59, tzinfo=UTC))
            assert night.requests == []  # 06:59 in Berlin: still quiet
            await runtime.deliver(now=datetime(2026, 1, 16, 6, 0, tzinfo=UTC))
            assert len(night.requests) == 1
            # The morning: a new story goes out on the night channel at once, as a notification.
            server.set(
                "/c.xml", rss([{"guid": "c-1", "title": "Manturow in Delhi", "link": "https://c.example/m"}])
            )
            clock.now = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
            await poll_all(runtime)
            await runtime.deliver(now=clock.now)

        async def go() -> None:
            async with open_runtime(config, load_rules(config.rules), clock=clock) as runtime:
                await steps(runtime)

        asyncio.run(go())
        digest = night.requests[0].json()
        assert digest["type"] == "digest"
        assert sorted(a["rule"]["id"] for a in digest["alerts"]) == ["manturov", "manturov", "ree"]
        assert {a["item"]["url"] for a in digest["alerts"]} == {
            "https://a.example/ree",
            "https://b.example/m",
        }
        assert len(night.requests) == 2
        morning = night.requests[1].json()
        assert morning["type"] == "notification" and morning["item"]["url"] == "https://c.example/m"


def test_the_window_crosses_midnight_in_its_time_zone() -> None:
    quiet = QuietHours.model_validate(QUIET)
    ends = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    assert quiet.until(datetime(2026, 1, 15, 20, 59, tzinfo=UTC)) is None  # 21:59 Berlin
    assert quiet.until(datetime(2026, 1, 15, 21, 0, tzinfo=UTC)) == ends  # 22:00 Berlin
    assert quiet.until(datetime(2026, 1, 15, 23, 30, tzinfo=UTC)) == ends  # 00:30 Berlin, the next day
    assert quiet.until(datetime(2026, 1, 16, 5, 59, tzinfo=UTC)) == ends
    assert quiet.until(datetime(2026, 1, 16, 6, 0, tzinfo=UTC)) is None  # 07:00 Berlin
    # Summer time (CEST, UTC+2): the same local window, two hours off UTC.
    assert quiet.until(datetime(2026, 7, 1, 20, 0, tzinfo=UTC)) == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)
    # The night the clocks go forward (29 March 2026, 02:00 -> 03:00): 07:00 local is 05:00 UTC.
    assert quiet.until(datetime(2026, 3, 28, 23, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    # Within one day, and YAML 1.1's unquoted 12:30 (the integer 750 minutes).
    lunch = QuietHours.model_validate({"from": 750, "to": "14:00"})
    assert lunch.until(datetime(2026, 1, 15, 13, 0, tzinfo=UTC)) == datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    assert lunch.until(datetime(2026, 1, 15, 14, 0, tzinfo=UTC)) is None
    assert lunch.until(datetime(2026, 1, 15, 12, 29, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("block", "where", "fragment"),
    [
        (
            "    quiet_hours: {from: '22:00', to: '07:00', timezone: Mars/Olympus}\n",
            "channels.hook.quiet_hours.timezone",
            "unknown time zone 'Mars/Olympus'",
        ),
        ("    quiet_hours: {from: '25:00', to: '07:00'}\n", "channels.hook.quiet_hours.from", "time of day"),
        ("    quiet_hours: {from: '22:00', to: '22:00'}\n", "channels.hook.quiet_hours", "must differ"),
        ("    quiet_hours: {from: '22:00', until: '07:00'}\n", "channels.hook.quiet_hours", "until"),
    ],
)
def test_quiet_hours_errors_are_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: str, where: str, fragment: str
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        "channels:\n  hook:\n    type: webhook\n" + block + "    url: https://hooks.example.org/in\n",
        encoding="utf-8",
    )
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "monitor.yaml:4:" in err and where in err and fragment in err, err
