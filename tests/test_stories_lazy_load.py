"""The story index loads the stored window on first use, not when the runtime opens: a run in which every feed
answers 304 never reads it, and a run with a new item assigns it exactly as an index loaded at the start would."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.rules import load_rules
from monitor.service import open_runtime, poll_all
from monitor.stories import StoredSignature, StoryIndex
from tests.support.feedserver import FeedServer
from tests.test_story_alerts import rss

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

OLD = [
    {
        "guid": f"g{n}",
        "title": f"Harbour authority {name} reports record container traffic",
        "summary": f"The port of {name} handled more containers in March than in any month before, the "
        "authority said on Tuesday, citing new shipping lines to Asia and a deeper fairway.",
    }
    for n, name in enumerate(("Rotterdam", "Hamburg", "Antwerp"))
]
# A retitled copy of the second old item with a sentence added: it joins that story only if the index holds the
# stored items when it is assigned.
NEW = {
    "guid": "g-new",
    "title": "Update: Harbour authority Hamburg reports record container traffic",
    "summary": OLD[1]["summary"] + " Rail connections were extended as well.",
}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def _members(database: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT item_key, story_id, tier, reason, score, matched_item_key, evidence, language "
            "FROM story_members"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_a_304_run_never_loads_the_index_and_a_new_item_assigns_as_with_an_eager_load(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set("/f.xml", rss(OLD), etag='"v1"')
    url = server.url("/f.xml")

    def config(database: Path) -> MonitorConfig:
        return MonitorConfig(
            database=database,
            allow_private_networks=["127.0.0.1/32"],
            feeds=({"url": url},),  # type: ignore[arg-type]
        )

    ruleset = load_rules(DEFAULT_RULES)
    now = [T0]

    async def run(database: Path, *, eager: bool = False) -> tuple[str, int, bool, list[str]]:
        statements: list[str] = []
        async with open_runtime(config(database), ruleset, clock=lambda: now[0]) as runtime:
            runtime.store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
            if eager:
                runtime.pipeline.stories.load([])  # any use loads the stored window: as at start before
            (outcome,) = await poll_all(runtime)
            return outcome.status, outcome.new_items, runtime.pipeline.stories.loaded, statements

    database = tmp_path / "m.db"
    _, new_items, loaded, _ = asyncio.run(run(database))
    assert new_items == 3 and loaded  # the first new item loaded the (empty) window

    now[0] = T0 + timedelta(hours=1)
    status, new_items, loaded, statements = asyncio.run(run(database))
    assert status == "not-modified" and new_items == 0
    assert not loaded
    assert not any("story_members" in s for s in statements), "the stored window was read"

    server.set("/f.xml", rss([NEW, *OLD]), etag='"v2"')
    now[0] = T0 + timedelta(hours=2)
    eager_database = tmp_path / "eager.db"
    shutil.copy(database, eager_database)
    _, new_items, loaded, statements = asyncio.run(run(database))
    assert new_items == 1 and loaded
    assert sum("LEFT JOIN story_members" in s for s in statements) == 1  # loaded once
    assert asyncio.run(run(eager_database, eager=True))[1] == 1

    lazy, eager = _members(database), _members(eager_database)
    assert lazy == eager
    with sqlite3.connect(database) as conn:
        key_of = {guid: key for key, guid in conn.execute("SELECT key, guid FROM items").fetchall()}
    joined, copied = lazy[key_of["g-new"]], lazy[key_of["g1"]]
    assert joined[2] == "similar" and joined[0] == copied[0] and joined[4] == key_of["g1"]


def _rows(count: int) -> list[StoredSignature]:
    builder = StoryIndex()
    rows = []
    for n in range(count):
        item = OLD[n % len(OLD)]
        key, when = f"k{n}", T0 + timedelta(hours=n)
        title, summary = f"{item['title']} {n}", f"{item['summary']} Day {n}."
        found = builder.assign(
            item_key=key, title=title, summary=summary, url=None, content_hash=f"h{n}", published=when
        )
        rows.append(
            StoredSignature(
                key, found.story_id, builder.signature(key), when, None, f"h{n}", title, summary,
                event_features=builder.event_features(key),
            )
        )  # fmt: skip
    return rows


def test_a_deferred_load_holds_what_an_eager_load_expired_since_holds() -> None:
    rows = _rows(12)
    asked: list[datetime] = []

    def stored(since: datetime) -> list[StoredSignature]:
        asked.append(since)
        return [row for row in rows if row.published >= since]

    eager = StoryIndex()
    eager.load(stored(T0))
    lazy = StoryIndex()
    lazy.defer_load(stored, T0)
    assert not lazy.loaded and lazy.forget(["k1"]) == 0
    cutoff = T0 + timedelta(hours=5)
    assert eager.expire(cutoff) == 5
    assert lazy.expire(cutoff) == 0 and lazy.expire(T0) == 0  # an earlier expiry does not move `since` back
    assert len(asked) == 1 and not lazy.loaded
    query = {"title": OLD[2]["title"] + " 8", "summary": OLD[2]["summary"] + " Day 8.", "url": None}
    a = eager.assign(item_key="q", content_hash="hq", published=T0 + timedelta(hours=9), **query)
    b = lazy.assign(item_key="q", content_hash="hq", published=T0 + timedelta(hours=9), **query)
    assert asked[1:] == [cutoff] and lazy.loaded
    assert a == b and a.reason == "similar"
    assert len(lazy) == len(eager) == 8 and "k4" not in lazy and "k5" in lazy


def test_a_failed_deferred_load_is_tried_again_at_the_next_use() -> None:
    rows = _rows(3)
    calls = [0]

    def stored(since: datetime) -> list[StoredSignature]:
        calls[0] += 1
        if calls[0] == 1:
            raise sqlite3.OperationalError("database is locked")
        return rows

    index = StoryIndex()
    index.defer_load(stored, T0)
    with pytest.raises(sqlite3.OperationalError):
        len(index)
    assert not index.loaded
    assert len(index) == 3 and index.loaded and calls[0] == 2
