"""Pipeline behaviour that the end-to-end tests do not reach: an unexpected error in one feed's processing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.analysis import ActorMentions, Analysis
from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.errors import MonitorError
from monitor.rules import RuleSet, load_rules
from monitor.service import open_runtime, poll_all
from monitor.store import FeedUpdate, NewAlert, SQLiteStore
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

    def match(self, item: Item, analysis: Analysis | None = None) -> list[Match]:
        return self.match_with_actors(item, analysis)[0]

    def match_with_actors(
        self, item: Item, analysis: Analysis | None = None
    ) -> tuple[list[Match], ActorMentions]:
        if item.title == "boom":
            raise RuntimeError("matcher bug")
        return self._real.match_with_actors(item, analysis)

    def get(self, rule_id: str) -> object:
        return self._real.get(rule_id)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def test_an_entry_that_breaks_a_stage_is_skipped_and_the_entries_beside_it_are_stored_and_alerted(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
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
    assert bad.status == "ok" and bad.new_items == 1 and bad.matches >= 1  # type: ignore[attr-defined]
    assert any("'boom'" in w and "RuntimeError: matcher bug" in w for w in bad.warnings)  # type: ignore[attr-defined]
    assert ok.status == "ok" and ok.new_items == 1  # type: ignore[attr-defined]
    assert "matcher bug" in caplog.text and "retried on the next fetch" in caplog.text
    with SQLiteStore(config.database) as store:
        state = store.feed_state(server.url("/bad.xml"))
        assert state is not None and state.error_count == 0
        assert store.counts()["items"] == 2  # the good entry of each feed; "boom" is not recorded as seen
        alerted = {item["title"] for alert in store.list_alerts(limit=100) for item in alert["items"]}
        assert alerted == {good["title"]}

    # The skipped entry is tried again on the next fetch (here it still fails, and is still not lost).
    server.set(
        "/bad.xml", rss([good | {"guid": "b1"}, {"guid": "b2", "title": "boom", "summary": "x"}]), etag='"2"'
    )
    caplog.clear()
    asyncio.run(run())
    assert "matcher bug" in caplog.text


def test_a_second_writer_on_the_same_database_is_refused_naming_the_first(tmp_path: Path) -> None:
    config = MonitorConfig(database=tmp_path / "m.db")
    ruleset = load_rules(DEFAULT_RULES)

    async def run() -> str:
        async with open_runtime(config, ruleset):
            with pytest.raises(MonitorError) as refused:
                async with open_runtime(config, ruleset):
                    pass
            return str(refused.value)

    message = asyncio.run(run())
    assert f"pid {os.getpid()}" in message and "one daemon per SQLite database" in message

    async def again() -> None:  # released on close: the next writer gets in
        async with open_runtime(config, ruleset):
            pass

    asyncio.run(again())


def test_claims_left_by_a_dead_process_are_released_when_the_next_one_opens(tmp_path: Path) -> None:
    config = MonitorConfig(database=tmp_path / "m.db", feeds=({"url": "https://news.example/feed"},))  # type: ignore[arg-type]
    with SQLiteStore(config.database) as store:
        store.sync_feeds([("https://news.example/feed", timedelta(minutes=10))], T0)
        store.commit_fetch(
            FeedUpdate("https://news.example/feed", T0, T0),
            alerts=[NewAlert("alr_1", "r", "s", "k", {"version": 1}, ("hook",), T0)],
        )
        claimed = store.claim_due(T0, 10)  # ... and the process dies before sending
        assert len(claimed) == 1
        assert store.claim_due(T0 + timedelta(minutes=1), 10) == []  # leased

    async def run() -> list[str]:
        async with open_runtime(
            config, load_rules(DEFAULT_RULES), clock=lambda: T0 + timedelta(minutes=1)
        ) as rt:
            return [d.id for d in rt.store.claim_due(T0 + timedelta(minutes=1), 10)]

    assert asyncio.run(run()) == [claimed[0].id]  # same id, at once, not after the 5-minute lease
