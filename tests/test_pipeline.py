"""Pipeline behaviour that the end-to-end tests do not reach: an unexpected error in one feed's processing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.rules import RuleSet, load_rules
from monitor.service import open_runtime, poll_all
from monitor.store import SQLiteStore
from monitor.types import Item, Match
from tests.support.feedserver import FeedServer
from tests.test_story_alerts import rss

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class ExplodingRules:
    """The real default rules, except that an item titled "boom" makes matching raise: a stand-in for a bug
    in a stage, which no real input is known to trigger."""

    def __init__(self, real: RuleSet) -> None:
        self._real = real
        self.rules = real.rules

    def match(self, item: Item) -> list[Match]:
        if item.title == "boom":
            raise RuntimeError("matcher bug")
        return self._real.match(item)

    def get(self, rule_id: str) -> object:
        return self._real.get(rule_id)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def test_an_unexpected_error_fails_only_that_feed_with_backoff_and_writes_nothing_of_it(
    tmp_path: Path, server: FeedServer
) -> None:
    good = {
        "guid": "g1",
        "title": "Putin empfängt Trump im Kreml",
        "summary": "Wladimir Putin sprach mit Donald Trump.",
    }
    server.set("/bad.xml", rss([good | {"guid": "b1"}, {"guid": "b2", "title": "boom", "summary": "x"}]))
    server.set("/good.xml", rss([good]))
    config = MonitorConfig(
        database=tmp_path / "m.db",
        allow_private_networks=["127.0.0.1/32"],
        feeds=({"url": server.url("/bad.xml")}, {"url": server.url("/good.xml")}),  # type: ignore[arg-type]
    )
    ruleset = ExplodingRules(load_rules(DEFAULT_RULES))

    async def run() -> list[object]:
        async with open_runtime(config, ruleset, clock=lambda: T0) as runtime:  # type: ignore[arg-type]
            return list(await poll_all(runtime))

    bad, ok = asyncio.run(run())
    assert bad.status == "error" and "internal error: RuntimeError: matcher bug" in bad.error  # type: ignore[attr-defined]
    assert ok.status == "ok" and ok.new_items == 1  # type: ignore[attr-defined]
    with SQLiteStore(config.database) as store:
        state = store.feed_state(server.url("/bad.xml"))
        assert state is not None and state.error_count == 1
        assert state.next_fetch_at is not None and state.next_fetch_at >= T0 + timedelta(minutes=10)
        # The failing feed's transaction never committed: none of its items were recorded.
        assert [f.url for f in store.list_feeds() if f.last_success_at] == [server.url("/good.xml")]
        assert store.counts()["items"] == 1
