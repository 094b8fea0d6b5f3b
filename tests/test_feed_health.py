"""Feed health notices through the whole path: feeds on a FeedServer, the pipeline's decision after each poll,
the outbox, and a real webhook receiver (and a real SMTP server for the email form). Time is driven through
the pipeline's clock and the outbox's `now`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.health import FeedHealth, HealthPolicy, PollSeen, assess, silence_threshold
from monitor.rules import load_rules
from monitor.service import Runtime, open_runtime, poll_all
from monitor.store import SQLiteStore
from tests.support.daemonproc import FeedBuilder
from tests.support.feedserver import FeedServer
from tests.support.receivers import SMTPReceiver, WebhookReceiver

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def make_config(tmp_path: Path, urls: list[str], hook: WebhookReceiver, **health: Any) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "database": tmp_path / "m.db",
            "allow_private_networks": ["127.0.0.1/32"],
            "interval": "10m",
            "feeds": [{"url": url} for url in urls],
            "channels": {"hook": {"type": "webhook", "url": hook.url}},
            "health": {"notify": ["hook"], **health},
        }
    )


def notices(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [r.json() for r in hook.requests if r.json().get("type") == "feed_health"]


async def poll_and_deliver(runtime: Runtime, clock: Clock, urls: list[str] | None = None) -> None:
    await poll_all(runtime, urls)
    await runtime.deliver(now=clock())


def run(config: MonitorConfig, clock: Clock, steps: Any) -> None:
    async def go() -> None:
        async with open_runtime(config, load_rules(DEFAULT_RULES), clock=clock) as runtime:
            await steps(runtime)

    asyncio.run(go())


def test_failing_at_once_then_recovered_one_notice_each(
    tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver
) -> None:
    url = feeds.url("/wire.xml")
    feeds.set("/wire.xml", b"not here", status=404)
    config = make_config(tmp_path, [url], hook, failing_for="0s")
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        await poll_and_deliver(runtime, clock)
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # still failing: nothing new
        assert len(notices(hook)) == 1
        feed = FeedBuilder()
        feed.add("q1", "Local bakery wins national award", "Bread, rolls and a record queue.")
        feeds.set("/wire.xml", feed.rss())
        clock.advance(minutes=30)
        await poll_and_deliver(runtime, clock)
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # still fine: nothing new

    run(config, clock, steps)
    failing, recovered = notices(hook)
    assert failing["condition"] == "failing" and failing["feed"]["url"] == url
    assert failing["last_error"] == "HTTP 404 Not Found" and failing["error_streak"] == 1
    assert failing["since"] == "2026-05-04T08:00:00.000000Z" and failing["version"] == 1
    assert recovered["condition"] == "recovered" and recovered["recovered_from"] == "failing"
    # delivered like alerts: Standard Webhooks ids, one per notice
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 2


def test_a_304_after_failing_tells_recovered_and_a_304_on_a_quiet_feed_tells_silent(
    tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver
) -> None:
    # A 304 skips the health read only when nothing can come of it: these two are the cases where it can.
    feed = FeedBuilder()
    feed.add("q1", "Local bakery wins national award", "Bread, rolls and a record queue.")
    url = feeds.url("/wire.xml")
    feeds.set("/wire.xml", feed.rss(), etag='"v1"')
    config = make_config(tmp_path, [url], hook, failing_for="0s", silent_for="30m")
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        await poll_and_deliver(runtime, clock)  # 200, with the ETag
        feeds.set("/wire.xml", b"down", status=503)
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # failing, told at once
        feeds.set("/wire.xml", feed.rss(), etag='"v1"')
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # 304: recovered
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # 304, 30 min since the new item: not yet silent
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # 304, 40 min: silent
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # 304: told once

    run(config, clock, steps)
    assert feeds.count("/wire.xml") == 6
    told = [(n["condition"], n["recovered_from"]) for n in notices(hook)]
    assert told == [("failing", None), ("recovered", "failing"), ("silent", None)]


def test_a_304_with_nothing_to_tell_reads_no_health(
    tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver
) -> None:
    feed = FeedBuilder()
    feed.add("q1", "Local bakery wins national award", "Bread, rolls and a record queue.")
    url = feeds.url("/wire.xml")
    feeds.set("/wire.xml", feed.rss(), etag='"v1"')
    config = make_config(tmp_path, [url], hook)  # silence not watched (the default)
    clock = Clock()
    statements: list[str] = []

    async def steps(runtime: Runtime) -> None:
        await poll_and_deliver(runtime, clock)  # 200: its health is read and assessed
        clock.advance(minutes=10)
        runtime.store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        await poll_all(runtime)  # 304
        runtime.store._conn.set_trace_callback(None)  # type: ignore[attr-defined]

    run(config, clock, steps)
    assert feeds.count("/wire.xml") == 2
    assert any("etag" in s and "UPDATE feeds" in s for s in statements), statements  # the 304 was recorded
    assert not any("health_notified" in s and "SELECT" in s and "RETURNING" not in s for s in statements)
    assert not any("SELECT DISTINCT fetched_at FROM items" in s for s in statements), statements


def test_failing_for_waits_for_the_streak_to_be_old_enough(
    tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver
) -> None:
    feeds.set("/wire.xml", b"", status=503)
    config = make_config(tmp_path, [feeds.url("/wire.xml")], hook, failing_for="1h")
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        for _ in range(6):  # 0, 10, ..., 50 minutes into the streak
            await poll_and_deliver(runtime, clock)
            clock.advance(minutes=10)
        assert notices(hook) == []
        await poll_and_deliver(runtime, clock)  # 60 minutes

    run(config, clock, steps)
    (notice,) = notices(hook)
    assert notice["condition"] == "failing" and notice["error_streak"] == 7
    assert "failing for 1h" in notice["detail"]


def test_410_parks_the_feed_it_is_named_in_feeds_and_polled_no_more(
    tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feeds.url("/gone.xml")
    feeds.set("/gone.xml", b"gone", status=410)
    config = make_config(tmp_path, [url], hook)
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        await poll_and_deliver(runtime, clock)
        clock.advance(days=2)
        assert runtime.store.due_feeds(clock()) == []
        await poll_and_deliver(runtime, clock)  # poll_all skips it too

    run(config, clock, steps)
    assert feeds.count("/gone.xml") == 1
    (notice,) = notices(hook)
    assert notice["condition"] == "parked" and "410" in notice["detail"]
    config_file = tmp_path / "monitor.yaml"
    config_file.write_text(f"database: {tmp_path / 'm.db'}\nfeeds:\n  - url: {url}\n", encoding="utf-8")
    assert main(["feeds", "--config", str(config_file)]) == 0
    listing = capsys.readouterr().out
    assert (
        "PARKED since 2026-05-04T08:00:00.000000Z (HTTP 410 Gone" in listing
        and "never (unpark it)" in listing
    )
    assert main(["feeds", "unpark", url, "--config", str(config_file)]) == 0
    with SQLiteStore(tmp_path / "m.db") as store:
        assert [s.url for s in store.due_feeds(datetime.now(UTC))] == [url]
    assert main(["feeds", "unpark", url, "--config", str(config_file)]) == 1


def test_failing_past_park_after_parks_it(tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver) -> None:
    feeds.set("/wire.xml", b"", status=500)
    config = make_config(tmp_path, [feeds.url("/wire.xml")], hook, failing_for="1h", park_after="3h")
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        for _ in range(4):
            await poll_and_deliver(runtime, clock)
            clock.advance(hours=1, minutes=1)

    run(config, clock, steps)
    assert [n["condition"] for n in notices(hook)] == ["failing", "parked"]
    with SQLiteStore(tmp_path / "m.db") as store:
        (row,) = store.list_feeds()
        assert (
            row.parked_at is not None and row.parked_reason and row.parked_reason.startswith("failing for 3h")
        )


def test_silent_auto_learns_the_usual_gap(tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver) -> None:
    feed = FeedBuilder()
    feeds.set("/wire.xml", feed.rss())
    config = make_config(tmp_path, [feeds.url("/wire.xml")], hook, silent_for="auto")
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        for index in range(6):  # a new item every 10 minutes: the usual gap
            feed.add(f"q{index}", f"Quiet item number {index}", "Nothing to see.")
            feeds.set("/wire.xml", feed.rss())
            await poll_and_deliver(runtime, clock)
            clock.advance(minutes=10)
        clock.advance(minutes=25)  # 35 minutes without news: < 4 x 10 minutes
        await poll_and_deliver(runtime, clock)
        assert notices(hook) == []
        clock.advance(minutes=10)  # 45 minutes
        await poll_and_deliver(runtime, clock)
        clock.advance(minutes=10)
        await poll_and_deliver(runtime, clock)  # told once
        feed.add("q-new", "Quiet item again", "Back.")
        feeds.set("/wire.xml", feed.rss())
        await poll_and_deliver(runtime, clock)

    run(config, clock, steps)
    silent, recovered = notices(hook)
    assert silent["condition"] == "silent" and "no new item for 45m" in silent["detail"]
    assert recovered["condition"] == "recovered" and recovered["recovered_from"] == "silent"


def test_guid_churn_is_told_once_a_day(tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver) -> None:
    texts = [(f"Quiet item {i}", f"Same text {i}.") for i in range(4)]

    def serve(generation: int) -> None:
        feed = FeedBuilder()
        for i, (title, summary) in enumerate(texts):
            feed.add(f"g{generation}-{i}", title, summary)
        feeds.set("/wire.xml", feed.rss())

    config = make_config(tmp_path, [feeds.url("/wire.xml")], hook)
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        for generation in range(3):
            serve(generation)
            await poll_and_deliver(runtime, clock)
            clock.advance(minutes=10)

    run(config, clock, steps)
    (churn,) = notices(hook)
    assert churn["condition"] == "guid_churn" and "4 items new GUIDs" in churn["detail"]


def test_a_network_outage_is_rate_limited(tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver) -> None:
    urls = [feeds.url(f"/f{i}.xml") for i in range(5)]
    for i in range(5):
        feeds.set(f"/f{i}.xml", b"", status=502)
    config = make_config(tmp_path, urls, hook, failing_for="0s", max_per_hour=2)
    clock = Clock()

    async def steps(runtime: Runtime) -> None:
        await poll_and_deliver(runtime, clock)
        text = runtime.metrics.exposition().decode()
        assert 'monitor_feed_health_notices_total{condition="failing",outcome="suppressed"} 3.0' in text

    run(config, clock, steps)
    assert len(notices(hook)) == 2


def test_the_email_form_names_the_feed_and_the_condition(tmp_path: Path, feeds: FeedServer) -> None:
    url = feeds.url("/wire.xml")
    feeds.set("/wire.xml", b"", status=404)
    with SMTPReceiver() as smtp:
        config = MonitorConfig.model_validate(
            {
                "database": tmp_path / "m.db",
                "allow_private_networks": ["127.0.0.1/32"],
                "feeds": [{"url": url, "title": "Wire <Desk>"}],
                "channels": {
                    "mail": {
                        "type": "email",
                        "host": "127.0.0.1",
                        "port": smtp.port,
                        "sender": "m@example.org",
                        "to": ["a@example.org"],
                    }
                },
                "health": {"notify": ["mail"], "failing_for": "0s"},
            }
        )
        clock = Clock()
        run(config, clock, lambda runtime: poll_and_deliver(runtime, clock))
        (message,) = smtp.messages
    assert message["Subject"] == f"[monitor] Feed failing: {url}"
    body = message.get_content()
    assert f"Feed:      {url}" in body and "Last error: HTTP 404 Not Found" in body


def test_unknown_health_channel_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("channels: {}\nhealth:\n  notify: [pager]\n", encoding="utf-8")
    from monitor.config import load_config
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"monitor.yaml:3:.*health.notify.0.*unknown channel 'pager'"):
        load_config(path)


def test_auto_silence_needs_history_and_never_beats_three_intervals() -> None:
    base = FeedHealth(url="u", title=None, interval=timedelta(minutes=10))
    auto = HealthPolicy(silent_for="auto")
    assert silence_threshold(auto, base) is None
    quick = FeedHealth(
        url="u", title=None, interval=timedelta(minutes=10), new_item_gaps=(timedelta(minutes=1),) * 5
    )
    assert silence_threshold(auto, quick) == timedelta(minutes=30)
    assert silence_threshold(HealthPolicy(silent_for=timedelta(hours=2)), base) == timedelta(hours=2)
    assert silence_threshold(HealthPolicy(), quick) is None
    # a recovery without a notified failure says nothing
    assert assess(base, PollSeen(ok=True), HealthPolicy(notify=("x",)), T0).notices == ()
