"""Only the work that is new: entries are keyed from guid or link before their text is converted; a fetch
sorts its keys in one query and writes everything (the keys it had again included) in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.normalize import keyed_entries, normalize_entries
from monitor.parse import parse_feed, read_feed
from monitor.rules import load_rules
from monitor.service import open_runtime, poll_all
from monitor.store import SQLiteStore
from monitor.timeutil import to_iso
from tests.support.feedserver import FeedServer
from tests.test_story_alerts import rss

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
FEED = "https://example.org/feed.xml"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

MIXED = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
<item><guid isPermaLink="false">a</guid><title>A</title><description>&lt;p&gt;one&lt;/p&gt;</description></item>
<item><link>https://example.org/b?utm_source=x</link><title>B</title><description>two</description></item>
<item><title>C</title><description>no guid, no link</description></item>
<item><guid isPermaLink="false">a</guid><title>A again</title></item>
</channel></rss>"""


def test_entries_with_a_guid_or_link_are_keyed_without_converting_their_text() -> None:
    feed = read_feed(MIXED, source="mixed")
    keyed = keyed_entries(feed, feed_url=FEED)
    # Only the entry without guid and link had to be converted (its key is its content hash).
    assert [p.converted for p in feed.entries] == [False, False, True, False]
    # The keys, their order and the first occurrence kept are those of the full conversion.
    items = normalize_entries(parse_feed(MIXED, source="mixed"), feed_url=FEED)
    assert list(keyed) == [item.key for item in items]
    assert [p.entry() for p in keyed.values()] == [
        e for e in parse_feed(MIXED, source="mixed").entries if e.title != "A again"
    ]


def test_the_early_keys_equal_the_full_keys_on_every_corpus_feed() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"feed corpus not found at {CORPUS} (it lives in ../shared beside the worktree)")
    from monitor.errors import ParseError

    checked = 0
    for path in sorted(CORPUS.iterdir()):
        if not path.is_file() or path.suffix == ".md":
            continue
        try:
            feed = read_feed(path.read_bytes(), source=path.name)
        except ParseError:
            continue
        url = f"https://corpus.example/{path.name}"
        items = normalize_entries(parse_feed(path.read_bytes(), source=path.name), feed_url=url)
        assert list(keyed_entries(feed, feed_url=url)) == [item.key for item in items], path.name
        checked += 1
    assert checked >= 80


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def test_a_fetch_with_one_new_item_sorts_keys_in_one_query_and_writes_in_one_transaction(
    tmp_path: Path, server: FeedServer
) -> None:
    old = [{"guid": f"g{n}", "title": f"Old story {n}", "summary": f"Text {n}."} for n in range(3)]
    new = {"guid": "g-new", "title": "Putin empfängt Trump im Kreml", "summary": "Putin sprach mit Trump."}
    server.set("/f.xml", rss(old))
    url = server.url("/f.xml")
    config = MonitorConfig(
        database=tmp_path / "m.db",
        allow_private_networks=["127.0.0.1/32"],
        feeds=({"url": url},),  # type: ignore[arg-type]
    )
    ruleset = load_rules(DEFAULT_RULES)
    now = [T0]

    async def run(statements: list[str] | None) -> list[object]:
        async with open_runtime(config, ruleset, clock=lambda: now[0]) as runtime:
            if statements is not None:
                runtime.store._conn.set_trace_callback(statements.append)
            return list(await poll_all(runtime))

    (first,) = asyncio.run(run(None))
    assert first.new_items == 3  # type: ignore[attr-defined]
    server.set("/f.xml", rss([new, *old]))
    now[0] = T0 + timedelta(hours=1)
    statements: list[str] = []
    (second,) = asyncio.run(run(statements))
    assert second.new_items == 1 and second.alerts >= 1  # type: ignore[attr-defined]
    # The poll starts after its claim (one statement, its own implicit transaction, before the fetch).
    claimed = next(i for i, s in enumerate(statements) if "claim_token = claim_token + 1" in s)
    assert "BEGIN" not in statements[claimed - 1] and "RETURNING" in statements[claimed]
    polled = statements[claimed + 1 :]
    # ... and ends before the runtime records its node's stop.
    polled = polled[: next(i for i, s in enumerate(polled) if "UPDATE nodes SET stopped_at" in s) - 1]
    assert sum(s == "BEGIN IMMEDIATE" for s in polled) == 1, polled
    assert sum("SELECT key FROM seen_keys" in s for s in polled) == 1, polled
    with SQLiteStore(config.database) as store:
        last_seen = dict(store._conn.execute("SELECT key, last_seen FROM seen_keys").fetchall())
    # Every key of the second fetch, old and new, was marked seen at its time.
    assert len(last_seen) == 4 and set(last_seen.values()) == {to_iso(now[0])}
