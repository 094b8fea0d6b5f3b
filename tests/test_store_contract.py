"""One suite, both backends: every method of the Store protocol, against a real SQLite file and a real PostgreSQL
database (each test gets its own, dropped afterwards; see conftest.py).

The last test checks that every protocol method is called somewhere in this file, so a method added to the
protocol without a contract test fails here."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.dburl import PostgresURL
from monitor.errors import StoreError
from monitor.health import HealthDecision
from monitor.store import (
    AlertAttachment,
    FeedUpdate,
    NewAlert,
    NewEscalation,
    NewItem,
    NodeInfo,
    StaleClaimError,
    Store,
    StoryMembership,
    delivery_id_for,
    open_store,
)
from monitor.store.base import Store as StoreProtocol
from monitor.store.pg_schema import MIGRATIONS as PG_MIGRATIONS
from monitor.store.schema import MIGRATIONS as SQLITE_MIGRATIONS
from monitor.types import FeedHints, Hit, Match
from tests.support.store_items import FEED, T0, make_item

OTHER = "https://other.example/feed"
LEASE = timedelta(minutes=2)
NODE = NodeInfo("node-a", "host-a", 101, "test")


def new_item(key: str, story: str | None = None, *, feed: str = FEED) -> NewItem:
    match = Match("rare-earths", "Rare earths", (Hit("Seltene Erden", "title", 0, 13, "Seltene Erden"),))
    return NewItem(
        make_item(key, feed=feed),
        (match,),
        story or f"story-{key}",
        story_is_new=story is None,
        signature=b"\x01\x02" + key.encode(),
        membership=StoryMembership(
            tier="new story" if story is None else "exact",
            reason="new" if story is None else "hash",
            score=0.0 if story is None else 1.0,
            matched_item_key=None,
            evidence=("content 0.41",) if story else (),
            language="de",
            event_features=b"EV" + key.encode(),
        ),
    )


def alert(
    alert_id: str,
    item_key: str,
    channels: tuple[str, ...] = ("mail", "hook"),
    at: datetime = T0,
    *,
    story: str | None = None,
    generation: int = 0,
) -> NewAlert:
    return NewAlert(
        alert_id,
        "rare-earths",
        story or f"story-{item_key}",
        item_key,
        {"version": 1, "id": alert_id, "zeta": 1, "alpha": [1, 2]},
        channels,
        at,
        generation,
    )


def open_backend(kind: str, tmp_path: Path, pg: PostgresURL | None, node: NodeInfo | None = NODE) -> Store:
    if kind == "sqlite":
        return open_store(tmp_path / "state" / "monitor.db", node=node)
    assert pg is not None
    return open_store(pg, node=node)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, PostgresURL | None]]:
    if request.param == "postgres":
        yield "postgres", request.getfixturevalue("postgres_db")
    else:
        yield "sqlite", None


@pytest.fixture
def store(backend: tuple[str, PostgresURL | None], tmp_path: Path) -> Iterator[Store]:
    kind, pg = backend
    s = open_backend(kind, tmp_path, pg)
    s.sync_feeds([(FEED, timedelta(minutes=10))], T0)
    yield s
    s.close()


def test_both_backends_have_the_same_migration_numbers() -> None:
    assert len(PG_MIGRATIONS) == len(SQLITE_MIGRATIONS)
    # Migration 4 is issue 11's on both: the same tables appear in both.
    for table in ("nodes", "cluster_jobs"):
        assert f"CREATE TABLE {table}" in SQLITE_MIGRATIONS[3] and f"CREATE TABLE {table}" in PG_MIGRATIONS[3]


def test_a_new_database_is_migrated_once(backend: tuple[str, PostgresURL | None], tmp_path: Path) -> None:
    kind, pg = backend
    with open_backend(kind, tmp_path, pg) as first:
        assert first.schema_version == len(SQLITE_MIGRATIONS)
    with open_backend(kind, tmp_path, pg) as again:
        assert again.schema_version == len(SQLITE_MIGRATIONS)
        assert again.concurrent is (kind == "postgres")


def test_a_database_from_a_newer_monitor_is_refused(postgres_db: PostgresURL) -> None:
    import psycopg

    open_store(postgres_db).close()
    with psycopg.connect(postgres_db.url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (len(PG_MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="newer than this monitor"):
        open_store(postgres_db)


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    url = PostgresURL("postgresql://monitor:pw-secret-123@127.0.0.1:1/nothing")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as failure:
        open_store(url)
    assert "pw-secret-123" not in str(failure.value)


# -- feeds --------------------------------------------------------------------------------------------------


def test_feeds_are_due_at_once_then_on_their_schedule(store: Store) -> None:
    assert [f.url for f in store.due_feeds(T0)] == [FEED]
    store.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=10), etag='"abc"', last_modified="lm"))
    assert store.due_feeds(T0 + timedelta(minutes=9)) == []
    state = store.feed_state(FEED)
    assert state is not None and state.etag == '"abc"' and state.last_modified == "lm"
    assert state.last_fetched_at == T0 and state.next_fetch_at == T0 + timedelta(minutes=10)
    assert [f.url for f in store.due_feeds(T0 + timedelta(minutes=10))] == [FEED]
    assert store.feed_state("https://absent.example/") is None


def test_removed_feeds_are_deactivated_not_forgotten(store: Store) -> None:
    store.sync_feeds([(OTHER, timedelta(minutes=1))], T0)
    assert [f.url for f in store.due_feeds(T0)] == [OTHER]
    rows = {f.url: f for f in store.list_feeds()}
    assert rows[FEED].active is False and rows[OTHER].active is True
    assert rows[OTHER].interval_seconds == 60
    store.sync_feeds([(FEED, timedelta(minutes=5)), (OTHER, timedelta(minutes=1))], T0)
    assert {f.url for f in store.due_feeds(T0)} == {FEED, OTHER}


def test_failures_count_up_and_a_success_resets_them(store: Store) -> None:
    store.record_fetch_failure(FEED, "HTTP 503", T0, T0 + timedelta(minutes=1))
    store.record_fetch_failure(FEED, "HTTP 503", T0, T0 + timedelta(minutes=2))
    state = store.feed_state(FEED)
    assert state is not None and state.error_count == 2 and state.last_error == "HTTP 503"
    store.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)))
    state = store.feed_state(FEED)
    assert state is not None and state.error_count == 0 and state.last_error is None


def test_claims_lease_feeds_with_growing_fencing_tokens(store: Store) -> None:
    store.sync_feeds([(FEED, timedelta(minutes=10)), (OTHER, timedelta(minutes=10))], T0)
    first = store.claim_feeds(T0, LEASE)
    assert sorted(c.url for c in first) == [FEED, OTHER]
    assert all(c.lease_until == T0 + LEASE for c in first)
    assert store.claim_feeds(T0 + timedelta(seconds=30), LEASE) == []  # leased: not handed out twice
    assert store.due_feeds(T0 + timedelta(seconds=30)) == []
    # The node died mid-fetch: once the lease ran out, the feed is claimed again with a newer token.
    again = store.claim_feeds(T0 + LEASE, LEASE, limit=1)
    assert len(again) == 1
    old = next(c for c in first if c.url == again[0].url)
    assert again[0].token > old.token
    # The paused node wakes up: its commit is refused and writes nothing.
    with pytest.raises(StaleClaimError):
        store.commit_fetch(
            FeedUpdate(old.url, T0, T0 + timedelta(minutes=10), etag='"stale"', claim=old.token),
            new_items=[new_item("stale", feed=old.url)],
        )
    with pytest.raises(StaleClaimError):
        store.record_fetch_failure(old.url, "boom", T0, T0 + timedelta(minutes=1), claim=old.token)
    assert store.unseen_keys(["stale"]) == {"stale"}
    state = store.feed_state(old.url)
    assert state is not None and state.etag is None and state.error_count == 0
    # The current claim commits, which ends its lease; the feed is due again on its schedule.
    now = T0 + LEASE
    store.commit_fetch(FeedUpdate(again[0].url, now, now + timedelta(minutes=10), claim=again[0].token))
    assert again[0].url not in {c.url for c in store.claim_feeds(now + timedelta(minutes=9), LEASE)}


def test_a_claim_with_urls_takes_those_feeds_due_or_not(store: Store) -> None:
    store.sync_feeds([(FEED, timedelta(minutes=10)), (OTHER, timedelta(minutes=10))], T0)
    store.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)))
    claims = store.claim_feeds(T0, LEASE, urls=[FEED])
    assert [c.url for c in claims] == [FEED]  # not due, but asked for (`monitor once`)
    assert [c.url for c in store.claim_feeds(T0, LEASE, urls=[FEED, OTHER])] == [OTHER]
    store.release_feed(FEED, claims[0].token)
    assert [c.url for c in store.claim_feeds(T0, LEASE, urls=[FEED])] == [FEED]  # released: free at once
    assert store.claim_feeds(T0, LEASE, limit=0) == []


def test_304s_commit_together_and_a_stale_claim_spoils_only_its_own(store: Store) -> None:
    store.sync_feeds([(FEED, timedelta(minutes=10)), (OTHER, timedelta(minutes=10))], T0)
    old = {c.url: c for c in store.claim_feeds(T0, LEASE)}
    # OTHER's lease ran out and it was claimed again: the first claim's 304 is stale, FEED's is current.
    again = store.claim_feeds(T0 + LEASE, LEASE, urls=[OTHER])
    assert [c.url for c in again] == [OTHER] and again[0].token > old[OTHER].token
    later = T0 + LEASE + timedelta(seconds=5)
    written = store.commit_not_modified(
        [
            FeedUpdate(FEED, later, later + timedelta(minutes=10), etag='"e2"', claim=old[FEED].token),
            FeedUpdate(OTHER, later, later + timedelta(minutes=10), etag='"stale"', claim=old[OTHER].token),
        ]
    )
    assert written == [True, False]
    feed, other = store.feed_state(FEED), store.feed_state(OTHER)
    assert feed is not None and feed.etag == '"e2"' and feed.next_fetch_at == later + timedelta(minutes=10)
    assert feed.last_fetched_at == later
    assert other is not None and other.etag is None  # the stale one wrote nothing
    # FEED's lease ended with its row; OTHER is still leased to the newer claim, which commits.
    assert [c.url for c in store.claim_feeds(later, LEASE, urls=[FEED, OTHER])] == [FEED]
    assert store.commit_not_modified(
        [FeedUpdate(OTHER, later, later + timedelta(minutes=10), etag='"e3"', claim=again[0].token)]
    ) == [True]
    assert store.commit_not_modified([]) == []


def test_a_failure_under_a_claim_ends_its_lease(store: Store) -> None:
    claim = store.claim_feeds(T0, LEASE)[0]
    store.record_fetch_failure(FEED, "HTTP 500", T0, T0 + timedelta(seconds=30), claim=claim.token)
    assert [c.url for c in store.claim_feeds(T0 + timedelta(seconds=30), LEASE)] == [FEED]


# -- feed health ----------------------------------------------------------------------------------------------


def test_feed_health_and_notices(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")])
    store.commit_fetch(FeedUpdate(FEED, T0 + timedelta(hours=1), T0), new_items=[new_item("b")])
    store.record_fetch_failure(FEED, "HTTP 500", T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    health = store.feed_health(FEED, timedelta(minutes=10))
    assert health is not None and health.error_count == 1 and health.failing_since == T0 + timedelta(hours=2)
    assert health.new_item_gaps == (timedelta(hours=1),)
    assert store.feed_health("https://absent.example/", timedelta(minutes=10)) is None
    payload = {"type": "feed_health", "id": "ntc_1", "condition": "failing"}
    store.record_health(
        FEED,
        HealthDecision(notified=frozenset({"failing"}), park_reason="HTTP 410 Gone"),
        [(payload, ["hook", "mail"])],
        T0 + timedelta(hours=2),
    )
    assert store.notices_since(T0) == 1  # one notice, two channels
    assert store.notices_since(T0 + timedelta(hours=3)) == 0
    health = store.feed_health(FEED, timedelta(minutes=10))
    assert health is not None and health.notified == frozenset({"failing"})
    assert health.parked_at == T0 + timedelta(hours=2)
    due = store.claim_due(T0 + timedelta(hours=2), 10)
    assert sorted(d.channel for d in due) == ["hook", "mail"] and due[0].notice == payload
    assert store.due_feeds(T0 + timedelta(days=1)) == []  # parked
    assert store.unpark_feed(FEED, T0 + timedelta(days=1)) is True
    assert store.unpark_feed(FEED, T0 + timedelta(days=1)) is False
    assert [f.url for f in store.due_feeds(T0 + timedelta(days=1))] == [FEED]


def test_item_counts_per_feed(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a"), new_item("b")])
    store.commit_fetch(FeedUpdate(FEED, T0 + timedelta(days=2), T0), new_items=[new_item("c")])
    counts, first = store.feed_item_counts(T0 + timedelta(days=1))
    assert counts == {FEED: 1} and first == {FEED: T0}
    assert store.feed_arrivals(FEED, T0 - timedelta(days=1)) == [T0 + timedelta(days=2), T0, T0]
    assert store.feed_arrivals(FEED, T0 + timedelta(days=1)) == [T0 + timedelta(days=2)]
    assert store.feed_arrivals(FEED, T0 - timedelta(days=1), limit=1) == [T0 + timedelta(days=2)]
    assert store.feed_arrivals("https://elsewhere.example/feed", T0 - timedelta(days=1)) == []


def test_a_feeds_move_and_schedule_hints_survive_and_a_304_keeps_them(store: Store) -> None:
    store.sync_feeds([(FEED, timedelta(minutes=10))], T0)
    hints = FeedHints(ttl_seconds=3600.0, skip_hours=frozenset({1, 2}), skip_days=frozenset({6}))
    store.commit_fetch(FeedUpdate(FEED, T0, T0, moved_to="https://new.example/feed", hints=hints))
    state = store.feed_state(FEED)
    assert state is not None and state.moved_to == "https://new.example/feed" and state.hints == hints
    store.commit_fetch(FeedUpdate(FEED, T0 + timedelta(minutes=10), T0))  # a 304: keep both
    state = store.feed_state(FEED)
    assert state is not None and state.moved_to == "https://new.example/feed" and state.hints == hints
    assert [f.moved_to for f in store.list_feeds()] == ["https://new.example/feed"]
    store.commit_fetch(FeedUpdate(FEED, T0 + timedelta(minutes=20), T0, hints=FeedHints()))  # a 200 without
    state = store.feed_state(FEED)
    assert state is not None and state.hints == FeedHints()


# -- items, stories, alerts ------------------------------------------------------------------------------------


def test_commit_writes_items_matches_alerts_and_outbox_together(store: Store) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)),
        new_items=[new_item("a"), new_item("b")],
        alerts=[alert("alr_1", "a")],
    )
    assert store.unseen_keys(["a", "b", "c", "c"]) == {"c"}
    assert store.unseen_keys([]) == set()
    counts = store.counts()
    assert counts == {
        "feeds": 1,
        "items": 2,
        "seen_keys": 2,
        "matches": 2,
        "stories": 2,
        "alerts": 1,
        "deliveries": 2,
    }
    due = store.claim_due(T0, 10)
    assert sorted(d.channel for d in due) == ["hook", "mail"]
    assert all(d.alerts == ({"version": 1, "id": "alr_1", "zeta": 1, "alpha": [1, 2]},) for d in due)
    assert {d.id for d in due} == {delivery_id_for("alr_1", "mail"), delivery_id_for("alr_1", "hook")}


def test_a_failed_transaction_writes_nothing(store: Store) -> None:
    with pytest.raises(Exception, match=r"(?i)unique|constraint|conflict"):
        store.commit_fetch(
            FeedUpdate(FEED, T0, T0 + timedelta(minutes=10), etag='"new"'),
            new_items=[new_item("a")],
            alerts=[alert("alr_1", "a"), alert("alr_1", "a")],
        )
    assert store.counts()["items"] == 0
    assert store.unseen_keys(["a"]) == {"a"}
    state = store.feed_state(FEED)
    assert state is not None and state.etag is None


def test_one_alert_per_rule_story_and_generation(store: Store) -> None:
    """The schema's backstop: two alerts of one (rule, story) and generation cannot both be recorded."""
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a")])
    with pytest.raises(Exception, match=r"(?i)unique|constraint|conflict"):
        store.commit_fetch(
            FeedUpdate(FEED, T0, T0), new_items=[new_item("b", "story-a")], alerts=[alert("alr_2", "b", story="story-a")]
        )  # fmt: skip
    assert store.unseen_keys(["b"]) == {"b"}
    realert = alert("alr_3", "b", story="story-a", generation=1, at=T0 + timedelta(days=1))
    store.commit_fetch(
        FeedUpdate(FEED, T0 + timedelta(days=1), T0), new_items=[new_item("b", "story-a")], alerts=[realert]
    )
    states = store.alert_states([("rare-earths", "story-a"), ("rare-earths", "story-none")])
    assert list(states) == [("rare-earths", "story-a")]
    state = states[("rare-earths", "story-a")]
    assert (state.alert_id, state.generation, state.pending, state.item_count) == ("alr_3", 1, True, 1)
    assert state.created_at == T0 + timedelta(days=1)
    assert store.alert_states([]) == {}


def test_attachments_fold_items_into_an_alert(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a")])
    later = T0 + timedelta(minutes=5)
    store.commit_fetch(
        FeedUpdate(FEED, later, later),
        new_items=[new_item("b", "story-a")],
        attachments=[AlertAttachment("alr_1", "b", {"version": 1, "id": "alr_1", "more": ["b"]})],
    )
    shown = store.get_alert("alr_1")
    assert shown is not None
    assert shown["item_count"] == 2 and [i["key"] for i in shown["items"]] == ["a", "b"]
    assert shown["payload"] == {"version": 1, "id": "alr_1", "more": ["b"]}
    assert shown["created_at"] == "2026-01-05T12:00:00.000000Z"
    assert shown["updated_at"] == "2026-01-05T12:05:00.000000Z"
    assert shown["items"][1]["added_at"] == "2026-01-05T12:05:00.000000Z"
    assert sorted(d["channel"] for d in shown["deliveries"]) == ["hook", "mail"]
    assert store.get_alert("alr_absent") is None
    state = store.alert_states([("rare-earths", "story-a")])[("rare-earths", "story-a")]
    assert state.item_count == 2 and state.pending is True


def test_several_folds_into_one_alert_in_one_fetch_keep_the_last_payload(store: Store) -> None:
    """The store writes an alert's payload once per fetch (the last attachment's, which holds the folds before
    it); every folded item is still listed and counted, and the other alert's fold is written too."""
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0),
        new_items=[new_item("a"), new_item("z", "story-z")],
        alerts=[alert("alr_1", "a"), alert("alr_2", "z")],
    )
    later = T0 + timedelta(minutes=5)
    store.commit_fetch(
        FeedUpdate(FEED, later, later),
        new_items=[new_item("b", "story-a"), new_item("c", "story-a"), new_item("y", "story-z")],
        attachments=[
            AlertAttachment("alr_1", "b", {"id": "alr_1", "more": ["b"]}),
            AlertAttachment("alr_2", "y", {"id": "alr_2", "more": ["y"]}),
            AlertAttachment("alr_1", "c", {"id": "alr_1", "more": ["b", "c"]}),
        ],
    )
    first, second = store.get_alert("alr_1"), store.get_alert("alr_2")
    assert first is not None and second is not None
    assert first["payload"] == {"id": "alr_1", "more": ["b", "c"]}
    assert first["item_count"] == 3 and [i["key"] for i in first["items"]] == ["a", "b", "c"]
    assert second["payload"] == {"id": "alr_2", "more": ["y"]} and second["item_count"] == 2
    assert first["updated_at"] == second["updated_at"] == "2026-01-05T12:05:00.000000Z"


def test_alerts_and_stories_list_newest_first(store: Store) -> None:
    for n in range(3):
        at = T0 + timedelta(minutes=n)
        store.commit_fetch(
            FeedUpdate(FEED, at, at),
            new_items=[new_item(f"i{n}")],
            alerts=[alert(f"alr_{n}", f"i{n}", at=at)],
        )
    # Two in the same instant: the later insert comes first (SQLite's rowid, PostgreSQL's seq).
    at = T0 + timedelta(minutes=9)
    store.commit_fetch(
        FeedUpdate(FEED, at, at),
        new_items=[new_item("x"), new_item("y")],
        alerts=[alert("alr_x", "x", at=at), alert("alr_y", "y", at=at)],
    )
    assert [a["id"] for a in store.list_alerts(limit=3)] == ["alr_y", "alr_x", "alr_2"]
    assert [a["id"] for a in store.list_alerts(limit=10, rule_id="other")] == []
    assert len(store.list_alerts(rule_id="rare-earths")) == 5
    stories = store.list_stories(limit=2)
    assert [s.id for s in stories] == ["story-y", "story-x"]
    story = store.get_story("story-i1")
    assert story is not None and story.item_count == 1 and story.title == "Seltene Erden"
    assert story.items[0]["key"] == "i1" and story.items[0]["tier"] == "new story"
    assert story.items[0]["published"] == "2026-01-05T12:00:00.000000Z"
    assert story.items[0]["evidence"] == [] and story.languages == ["de"]
    assert store.get_story("story-absent") is None


def test_story_membership_and_signatures_rebuild_the_index(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")])
    store.commit_fetch(FeedUpdate(FEED, T0 + timedelta(minutes=1), T0), new_items=[new_item("b", "story-a")])
    story = store.get_story("story-a")
    assert story is not None and [i["key"] for i in story.items] == ["a", "b"]
    assert story.items[1]["tier"] == "exact" and story.items[1]["evidence"] == ["content 0.41"]
    rows = store.story_signatures(T0 - timedelta(hours=1))
    assert [(r["item_key"], r["story_id"]) for r in rows] == [("a", "story-a"), ("b", "story-a")]
    assert rows[0]["signature"] == b"\x01\x02a" and rows[0]["event_features"] == b"EVa"
    assert rows[0]["published"] == T0 and rows[0]["language"] == "de" and rows[0]["source"] == FEED
    assert store.story_signatures(T0 + timedelta(hours=1)) == []


def test_items_after_a_sequence_number_catch_an_index_up(store: Store) -> None:
    assert store.item_seq() == 0
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")])
    seen = store.item_seq()
    assert seen > 0
    rows, newest = store.items_after(0, T0 - timedelta(days=1))
    assert [r["item_key"] for r in rows] == ["a"] and newest == seen
    with store.story_lock():
        store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("b"), new_item("c")])
    rows, newest = store.items_after(seen, T0 - timedelta(days=1))
    assert [r["item_key"] for r in rows] == ["b", "c"] and newest == store.item_seq() > seen
    assert store.items_after(newest, T0 - timedelta(days=1)) == ([], newest)
    assert store.items_after(0, T0 + timedelta(days=1))[0] == []  # outside the window


def test_stored_items_give_back_the_items_with_their_stories_oldest_first(store: Store) -> None:
    later = T0 + timedelta(hours=1)
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")])
    store.commit_fetch(
        FeedUpdate(FEED, later, later), new_items=[new_item("b"), new_item("c", story="story-a")]
    )
    before = store.counts()
    everything = store.stored_items(T0 - timedelta(days=1))
    assert [(s.item.key, s.story_id, s.fetched_at) for s in everything] == [
        ("a", "story-a", T0),
        ("b", "story-b", later),
        ("c", "story-a", later),
    ]
    assert everything[0].item == make_item("a")  # every field the rules read comes back as it went in
    assert [s.item.key for s in store.stored_items(T0 + timedelta(minutes=30))] == ["b", "c"]
    assert [s.item.key for s in store.stored_items(T0 - timedelta(days=1), limit=1)] == ["a"]
    assert store.stored_items(later + timedelta(seconds=1)) == []
    assert store.counts() == before


def test_a_failure_inside_the_story_lock_rolls_everything_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.story_lock():
        store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")])
        raise RuntimeError("assignment failed after the commit statement")
    # SQLite's lock is a no-op (one writer) and its commit_fetch commits by itself; PostgreSQL's commit_fetch
    # joins the lock's transaction, which rolled back.
    if store.concurrent:
        assert store.unseen_keys(["a"]) == {"a"}
    with store.story_lock():
        pass  # the lock is free again


def test_seen_keys_and_content_hashes(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], also_seen=[("a2", "v1:a")])
    assert store.unseen_keys(["a", "a2"]) == set()
    assert store.seen_content_hashes(FEED, ["v1:a", "v1:zzz"]) == {"v1:a"}
    assert store.seen_content_hashes(OTHER, ["v1:a"]) == set()
    assert store.seen_content_hashes(FEED, []) == set()
    later = T0 + timedelta(days=100)
    store.touch_seen(["a"], later)
    store.touch_seen([], later)
    store.commit_fetch(FeedUpdate(FEED, later, later), seen_again=["a2"])
    counts = store.prune(later, item_max_age=timedelta(days=30), key_max_age=timedelta(days=50))
    assert counts == {"items": 1, "matches": 1, "seen_keys": 0, "deliveries": 0}
    assert store.unseen_keys(["a", "a2"]) == set()  # touched: kept


def test_pruning_drops_items_but_keeps_identity_keys(store: Store) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0), new_items=[new_item("old")], alerts=[alert("alr_1", "old", ("hook",))]
    )
    (delivery,) = store.claim_due(T0, 10)
    store.mark_sent(delivery.id, T0)
    later = T0 + timedelta(days=40)
    counts = store.prune(later, item_max_age=timedelta(days=30), key_max_age=timedelta(days=400))
    assert counts == {"items": 1, "matches": 1, "seen_keys": 0, "deliveries": 1}
    assert store.unseen_keys(["old"]) == set()
    assert store.get_alert("alr_1") is not None  # alerts keep their history
    counts = store.prune(
        T0 + timedelta(days=401), item_max_age=timedelta(days=30), key_max_age=timedelta(days=400)
    )
    assert counts["seen_keys"] == 1


# -- the outbox ------------------------------------------------------------------------------------------------


def test_claimed_deliveries_are_leased_then_reclaimed_after_a_crash(store: Store) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a", ("hook",))]
    )
    first = store.claim_due(T0, 10)
    assert len(first) == 1 and first[0].attempt == 1 and first[0].created_at == T0
    assert store.claim_due(T0 + timedelta(minutes=1), 10) == []
    again = store.claim_due(T0 + timedelta(minutes=6), 10)
    assert [d.id for d in again] == [first[0].id] and again[0].attempt == 2


def test_retry_sent_and_dead_transitions(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a")])
    mail, hook = sorted(store.claim_due(T0, 10), key=lambda d: d.channel, reverse=True)
    store.mark_retry(mail.id, "421 try later", T0, T0 + timedelta(seconds=5))
    store.mark_dead(hook.id, "HTTP 400", T0)
    assert store.claim_due(T0 + timedelta(seconds=4), 10) == []
    assert [d.id for d in store.claim_due(T0 + timedelta(seconds=5), 10)] == [mail.id]
    store.mark_sent(mail.id, T0 + timedelta(seconds=6))
    assert store.delivery_counts() == {"sent": 1, "dead": 1}
    dead = store.list_deliveries(statuses=("dead",))
    assert [(d.id, d.last_error, d.alert_ids) for d in dead] == [(hook.id, "HTTP 400", ("alr_1",))]
    assert [d.id for d in store.list_deliveries(statuses=None, alert_id="alr_1")] == [mail.id, hook.id]
    sent = store.list_deliveries(statuses=("sent",))[0]
    assert sent.sent_at == T0 + timedelta(seconds=6) and sent.attempts == 2
    assert store.retry_deliveries(T0 + timedelta(seconds=7), all_dead=True) == 1
    assert [d.id for d in store.claim_due(T0 + timedelta(seconds=7), 10)] == [hook.id]
    assert store.retry_deliveries(T0, ids=[mail.id]) == 0  # sent stays sent


def test_a_stale_claim_cannot_undo_the_new_claim(
    store: Store, backend: tuple[str, PostgresURL | None], tmp_path: Path
) -> None:
    """Two workers: the first paused past its lease, the second took the deliveries over. The first one's
    failure reports are ignored; a success is a fact whoever reports it."""
    kind, pg = backend
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a")])
    old = {d.channel: d for d in store.claim_due(T0, 10)}
    other = open_backend(kind, tmp_path, pg, NodeInfo("node-b", "host-b", 202, "test"))
    try:
        new = {d.channel: d for d in other.claim_due(T0 + timedelta(minutes=6), 10)}
        assert set(new) == {"mail", "hook"} and all(d.attempt == 2 for d in new.values())
        store.mark_dead(old["hook"].id, "stale worker gave up", T0 + timedelta(minutes=7))
        store.mark_retry(
            old["mail"].id, "stale worker failed", T0 + timedelta(minutes=7), T0 + timedelta(hours=1)
        )
        rows = store.list_deliveries(statuses=None)
        assert [(r.status, r.last_error) for r in rows] == [("pending", None), ("pending", None)]
        other.mark_sent(new["hook"].id, T0 + timedelta(minutes=8))
        store.mark_sent(old["mail"].id, T0 + timedelta(minutes=8))
        assert store.delivery_counts() == {"sent": 2}
    finally:
        other.close()


def test_group_wait_holds_a_delivery_until_due(store: Store) -> None:
    held = alert("alr_1", "a", ("hook",), at=T0 + timedelta(minutes=2))
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[held])
    assert store.claim_due(T0 + timedelta(minutes=1), 10) == []
    assert len(store.claim_due(T0 + timedelta(minutes=2), 10)) == 1


def test_digests_collect_alerts_until_due(store: Store) -> None:
    digests = {"hook": timedelta(hours=1)}
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0),
        new_items=[new_item("a")],
        alerts=[alert("alr_1", "a", ("hook",))],
        digests=digests,
    )
    later = T0 + timedelta(minutes=10)
    store.commit_fetch(
        FeedUpdate(FEED, later, later), new_items=[new_item("b")], alerts=[alert("alr_2", "b", ("hook",), at=later)], digests=digests
    )  # fmt: skip
    assert store.claim_due(T0 + timedelta(minutes=59), 10) == []
    (digest,) = store.claim_due(T0 + timedelta(hours=1), 10)
    assert digest.digest is True and [a["id"] for a in digest.alerts] == ["alr_1", "alr_2"]
    assert digest.id == delivery_id_for("alr_1", "digest:hook")


def test_disabled_channels_are_remembered_until_enabled(store: Store) -> None:
    store.disable_channel("hook", "HTTP 410 Gone", T0)
    store.disable_channel("hook", "HTTP 410 Gone again", T0 + timedelta(minutes=1))
    assert store.disabled_channels() == {"hook"}
    assert store.disabled_channel_reasons() == {"hook": ("HTTP 410 Gone again", T0 + timedelta(minutes=1))}
    assert store.enable_channel("hook") is True
    assert store.enable_channel("hook") is False
    assert store.disabled_channels() == set()


def test_a_claim_can_be_limited_to_one_channel(store: Store) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a")])
    assert [d.channel for d in store.claim_due(T0, 10, "hook")] == ["hook"]
    assert [d.channel for d in store.claim_due(T0, 10)] == ["mail"]


def test_release_claims_frees_every_lease(store: Store) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a", ("hook",))]
    )
    assert len(store.claim_due(T0, 10)) == 1
    assert len(store.claim_feeds(T0, LEASE)) == 1
    assert store.release_claims(T0 + timedelta(seconds=1)) == 1
    assert len(store.claim_due(T0 + timedelta(seconds=1), 10)) == 1
    assert len(store.claim_feeds(T0 + timedelta(seconds=1), LEASE)) == 1


# -- nodes and cluster jobs ------------------------------------------------------------------------------------


def test_nodes_heartbeat_and_the_dead_are_reaped(
    store: Store, backend: tuple[str, PostgresURL | None], tmp_path: Path
) -> None:
    kind, pg = backend
    store.register_node(T0)
    other = open_backend(kind, tmp_path, pg, NodeInfo("node-b", "host-b", 202, "test"))
    try:
        other.register_node(T0)
        store.commit_fetch(
            FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a", ("hook",))]
        )
        assert len(other.claim_due(T0, 10)) == 1
        assert [c.url for c in other.claim_feeds(T0, LEASE)] == [FEED]
        store.heartbeat(T0 + timedelta(seconds=50))
        nodes = {n.id: n for n in store.list_nodes(T0 + timedelta(seconds=50))}
        assert set(nodes) == {"node-a", "node-b"}
        assert (nodes["node-b"].feeds, nodes["node-b"].leased, nodes["node-b"].deliveries) == (1, 1, 1)
        assert nodes["node-a"].heartbeat_at == T0 + timedelta(seconds=50)
        assert nodes["node-b"].alive(T0 + timedelta(seconds=50), 60.0)
        assert not nodes["node-b"].alive(T0 + timedelta(seconds=61), 60.0)
        shown = nodes["node-b"].as_json(T0 + timedelta(seconds=50), 60.0)
        assert shown["host"] == "host-b" and shown["alive"] is True and shown["heartbeat_age_seconds"] == 50.0
        # node-b goes silent: node-a takes its lease and its claim over.
        assert store.reap_nodes(T0 + timedelta(seconds=50), timedelta(seconds=60)) == 0
        assert store.reap_nodes(T0 + timedelta(seconds=61), timedelta(seconds=60)) == 2
        assert len(store.claim_due(T0 + timedelta(seconds=61), 10)) == 1
        assert [c.url for c in store.claim_feeds(T0 + timedelta(seconds=61), LEASE)] == [FEED]
        # A clean stop gives back what the node holds and says it stopped.
        assert store.stop_node(T0 + timedelta(seconds=62)) == 2
        stopped = {n.id: n for n in other.list_nodes(T0 + timedelta(seconds=62))}["node-a"]
        assert stopped.stopped_at == T0 + timedelta(seconds=62) and not stopped.alive(
            T0 + timedelta(seconds=62), 60.0
        )
        # A week later the history is pruned.
        store.prune(T0 + timedelta(days=8), item_max_age=timedelta(days=30), key_max_age=timedelta(days=400))
        assert other.list_nodes(T0 + timedelta(days=8)) == []
    finally:
        other.close()


def test_node_methods_need_a_node(backend: tuple[str, PostgresURL | None], tmp_path: Path) -> None:
    kind, pg = backend
    with open_backend(kind, tmp_path, pg, node=None) as cli, pytest.raises(StoreError, match="node identity"):
        cli.register_node(T0)


def test_a_cluster_job_runs_once_per_period(
    store: Store, backend: tuple[str, PostgresURL | None], tmp_path: Path
) -> None:
    kind, pg = backend
    other = open_backend(kind, tmp_path, pg, NodeInfo("node-b", "host-b", 202, "test"))
    try:
        assert store.claim_job("housekeeping", T0, timedelta(hours=1)) is True
        assert other.claim_job("housekeeping", T0 + timedelta(minutes=1), timedelta(hours=1)) is False
        assert store.claim_job("housekeeping", T0 + timedelta(minutes=2), timedelta(hours=1)) is False
        assert other.claim_job("other-job", T0, timedelta(hours=1)) is True
        assert other.claim_job("housekeeping", T0 + timedelta(hours=1), timedelta(hours=1)) is True
    finally:
        other.close()


# -- several nodes at once (PostgreSQL) ------------------------------------------------------------------------


def test_concurrent_claimers_take_disjoint_feeds(postgres_db: PostgresURL) -> None:
    urls = [f"https://feeds.example/{n}" for n in range(60)]
    with open_store(postgres_db) as setup:
        setup.sync_feeds([(url, timedelta(minutes=5)) for url in urls], T0)
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(3)

    def claimer(name: str) -> None:
        with open_store(postgres_db, node=NodeInfo(name, "h", 1, "t")) as s:
            barrier.wait()
            mine: list[str] = []
            while batch := s.claim_feeds(T0, LEASE, limit=7):
                mine += [c.url for c in batch]
            claimed[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"n{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [url for mine in claimed.values() for url in mine]
    assert sorted(every) == sorted(urls)  # each feed claimed exactly once
    assert len(set(every)) == len(every)


def test_concurrent_senders_claim_disjoint_deliveries(postgres_db: PostgresURL) -> None:
    """Three nodes draining one outbox at the same moment: every delivery is handed to exactly one of them."""
    with open_store(postgres_db) as setup:
        setup.sync_feeds([(FEED, timedelta(minutes=5))], T0)
        setup.commit_fetch(
            FeedUpdate(FEED, T0, T0),
            new_items=[new_item(f"i{n}") for n in range(40)],
            alerts=[alert(f"alr_{n}", f"i{n}") for n in range(40)],
        )
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(3)

    def sender(name: str) -> None:
        with open_store(postgres_db, node=NodeInfo(name, "h", 1, "t")) as s:
            barrier.wait()
            mine: list[str] = []
            while batch := s.claim_due(T0, 5):
                mine += [d.id for d in batch]
            claimed[name] = mine

    threads = [threading.Thread(target=sender, args=(f"n{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [delivery for mine in claimed.values() for delivery in mine]
    assert len(every) == 80 and len(set(every)) == 80  # 40 alerts × 2 channels, each claimed once


def test_story_assignment_is_serialised_across_nodes(postgres_db: PostgresURL) -> None:
    """Inside story_lock, a node sees every item committed before it took the lock: the second node's catch-up
    finds the first node's item, however close together they ran."""
    with open_store(postgres_db) as setup:
        setup.sync_feeds([(FEED, timedelta(minutes=5)), (OTHER, timedelta(minutes=5))], T0)
    inside = threading.Event()
    order: list[str] = []
    seen_by_b: list[Any] = []

    def node_a() -> None:
        with open_store(postgres_db) as s, s.story_lock():
            inside.set()
            time.sleep(0.3)  # node b is waiting for the lock now
            s.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("from-a")])
            order.append("a committed")

    def node_b() -> None:
        inside.wait()
        with open_store(postgres_db) as s, s.story_lock():
            order.append("b locked")
            rows, _ = s.items_after(0, T0 - timedelta(days=1))
            seen_by_b.extend(r["item_key"] for r in rows)
            s.commit_fetch(FeedUpdate(OTHER, T0, T0), new_items=[new_item("from-b", feed=OTHER)])

    threads = [threading.Thread(target=node_a), threading.Thread(target=node_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order == ["a committed", "b locked"]
    assert seen_by_b == ["from-a"]


def test_commit_with_items_outside_the_lock_takes_it(postgres_db: PostgresURL) -> None:
    """Items are only ever inserted under the story lock, so sequence numbers become visible in order."""
    with open_store(postgres_db) as s:
        s.sync_feeds([(FEED, timedelta(minutes=5)), (OTHER, timedelta(minutes=5))], T0)
    done = threading.Event()

    def committer() -> None:
        with open_store(postgres_db) as s:
            s.commit_fetch(FeedUpdate(OTHER, T0, T0), new_items=[new_item("outside", feed=OTHER)])
            done.set()

    with open_store(postgres_db) as holder, holder.story_lock():
        thread = threading.Thread(target=committer)
        thread.start()
        assert not done.wait(0.5)  # blocked behind the lock
    thread.join()
    assert done.is_set()


def test_a_lost_connection_is_one_store_error_then_the_store_carries_on(postgres_db: PostgresURL) -> None:
    """The server ends our sessions (a restart, a failover, an administrator): a read is repeated once on a
    fresh connection; a write fails with one StoreError naming the database, not a driver traceback, and
    writes nothing; the next call runs on a fresh connection."""
    import psycopg

    def end_sessions() -> None:
        with psycopg.connect(postgres_db.url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid != pg_backend_pid()"
            )

    with open_store(postgres_db) as s:
        s.sync_feeds([(FEED, timedelta(minutes=5))], T0)
        end_sessions()
        assert s.feed_state(FEED) is not None  # a read is repeated once on a fresh connection
        end_sessions()
        with pytest.raises(StoreError) as failure:  # a write is not: one line naming the database
            s.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=5)), new_items=[new_item("a")])
        assert postgres_db.dbname in str(failure.value) and "\n" not in str(failure.value)
        assert s.unseen_keys(["a"]) == {"a"}  # and it wrote nothing
        s.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=5)), new_items=[new_item("a")])
        assert s.unseen_keys(["a"]) == set()


def test_round_trips_are_counted(postgres_db: PostgresURL) -> None:
    with open_store(postgres_db) as s:
        s.sync_feeds([(FEED, timedelta(minutes=5))], T0)
        before = s.round_trips  # type: ignore[attr-defined]
        s.feed_state(FEED)
        assert s.round_trips == before + 1  # type: ignore[attr-defined]
        s.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a"), new_item("b")])
        # BEGIN, the lock, the feed, then one pipelined statement per table, COMMIT: not one per item.
        assert s.round_trips - before - 1 <= 10  # type: ignore[attr-defined]


# -- coverage of the protocol ------------------------------------------------------------------------------------


def test_every_protocol_method_has_a_contract_test() -> None:
    text = Path(__file__).read_text(encoding="utf-8")
    methods = {name for name in vars(StoreProtocol) if not name.startswith("_")}
    untested = sorted(name for name in methods if not re.search(rf"\.{name}\b", text))
    assert untested == [], "add a test to tests/test_store_contract.py for these Store methods"


def test_alerts_of_one_story_share_a_notification_then_an_update_replies_in_its_thread(store: Store) -> None:
    """Issue 8: the store routes alerts to story notifications inside the fetch's transaction."""
    created = store.commit_fetch(
        FeedUpdate(FEED, T0, T0),
        new_items=[new_item("a"), new_item("b", "story-a")],
        alerts=[alert("alr_1", "a", ("hook", "legacy")), alert("alr_2", "b", ("hook", "legacy"), story="story-a", generation=1)],
        per_rule=["legacy"],
    )  # fmt: skip
    assert sorted(created) == [("hook", "story"), ("legacy", "alert"), ("legacy", "alert")]
    due = {(d.channel, d.kind): d for d in store.claim_due(T0, 10, "hook")}
    first = due[("hook", "story")]
    assert [a["id"] for a in first.alerts] == ["alr_1", "alr_2"]
    assert first.story_id == "story-a" and first.in_reply_to is None and first.thread == first.id
    assert first.id == delivery_id_for("alr_1", "hook")
    store.mark_sent(first.id, T0)
    # A later rule on the story, after the notification was claimed: an update in its thread, held until the
    # thread has been quiet for the group interval; an alert joining it does not bring it forward.
    later = T0 + timedelta(minutes=5)
    intervals = {"hook": timedelta(minutes=30)}
    update = FeedUpdate(FEED, later, later)
    created = store.commit_fetch(
        update,
        alerts=[alert("alr_3", "b", ("hook",), at=later, story="story-a", generation=2)],
        group_intervals=intervals,
    )
    assert created == [("hook", "update")]
    store.commit_fetch(
        FeedUpdate(FEED, later, later), alerts=[alert("alr_4", "b", ("hook",), at=later, story="story-a", generation=3)], group_intervals=intervals
    )  # fmt: skip
    assert store.claim_due(T0 + timedelta(minutes=29), 10, "hook") == []
    (reply,) = store.claim_due(T0 + timedelta(minutes=30), 10, "hook")
    assert reply.kind == "update" and reply.in_reply_to == first.id == reply.thread
    assert [a["id"] for a in reply.alerts] == ["alr_3", "alr_4"]
    rows = {row.id: row for row in store.list_deliveries(statuses=None)}
    assert rows[reply.id].kind == "update" and rows[reply.id].in_reply_to == first.id
    assert rows[first.id].story_id == "story-a"


def test_escalations_are_told_once_per_rule_and_story_into_the_thread(store: Store) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0), new_items=[new_item("a"), new_item("b", "story-a", feed=OTHER)],
        alerts=[alert("alr_1", "a", ("hook",))],
    )  # fmt: skip
    times = store.story_outlet_times(["story-a", "story-none"])
    assert times["story-none"] == []
    assert [(outlet, moment) for outlet, moment, _ in times["story-a"]] == [("Example", T0), ("Example", T0)]
    assert {language for _, _, language in times["story-a"]} == {"de"}
    assert store.escalated([("rare-earths", "story-a")]) == set()
    escalation = NewEscalation(
        "rare-earths",
        "story-a",
        "high",
        3,
        {"version": 2, "type": "escalation", "id": "esc_1"},
        ("hook", "pager"),
    )
    created = store.commit_fetch(FeedUpdate(FEED, T0, T0), escalations=[escalation])
    assert sorted(created) == [("hook", "escalation"), ("pager", "escalation")]
    again = NewEscalation(
        "rare-earths", "story-a", "high", 4, {"version": 2, "type": "escalation", "id": "esc_2"}, ("hook",)
    )
    assert store.commit_fetch(FeedUpdate(FEED, T0, T0), escalations=[again]) == []
    assert store.escalated([("rare-earths", "story-a"), ("rare-earths", "story-b")]) == {
        ("rare-earths", "story-a")
    }
    due = {d.channel: d for d in store.claim_due(T0, 10) if d.kind == "escalation"}
    assert due["hook"].notice == {"version": 2, "type": "escalation", "id": "esc_1"}
    assert due["hook"].in_reply_to == delivery_id_for("alr_1", "hook")  # the story's first notification there
    assert due["pager"].in_reply_to is None  # no notification of the story on the pager


# -- silences (issue 14) -----------------------------------------------------------------------------------------


def test_silences_are_stored_listed_and_expired_and_a_silenced_alert_queues_nothing(
    backend: tuple[str, PostgresURL | None], tmp_path: Path
) -> None:
    from monitor.store import SilenceRow

    kind, pg = backend
    first = open_backend(kind, tmp_path, pg)
    first.sync_feeds([(FEED, timedelta(minutes=10))], T0)
    muted = SilenceRow("sil_a", "rare-earths", None, FEED, "noisy", T0, T0 + timedelta(hours=4))
    short = SilenceRow(
        "sil_b", None, "story-x", None, "known", T0 + timedelta(minutes=1), T0 + timedelta(hours=1)
    )
    first.add_silence(muted)
    first.add_silence(short)
    first.commit_fetch(
        FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)),
        new_items=[new_item("a")],
        alerts=[replace(alert("alr_s", "a"), channels=(), silence_id="sil_a")],
    )
    first.close()
    # A new process (a restart) sees the same silences and the silenced alert.
    store = open_backend(kind, tmp_path, pg)
    try:
        assert [s.id for s in store.silences(T0 + timedelta(minutes=2))] == ["sil_b", "sil_a"]
        assert store.silences(T0 + timedelta(minutes=2))[1] == muted
        assert [s.id for s in store.silences(T0 + timedelta(hours=2))] == ["sil_a"]
        state = store.alert_states([("rare-earths", "story-a")])[("rare-earths", "story-a")]
        assert state.silence_id == "sil_a" and not state.pending
        shown = store.get_alert("alr_s")
        assert shown is not None and shown["silenced_by"] == "sil_a" and shown["deliveries"] == []
        assert store.claim_due(T0 + timedelta(days=1), 10) == []
        later = T0 + timedelta(minutes=30)
        assert store.expire_silence("sil_a", later) is True
        assert store.expire_silence("sil_a", later) is False  # already ended
        assert store.expire_silence("sil_nope", later) is False
        assert [s.id for s in store.silences(later)] == ["sil_b"]
        ended = {s.id: s for s in store.silences(later, ended=True)}
        assert ended["sil_a"].ends_at == later and not ended["sil_a"].active(later)
    finally:
        store.close()


def test_websub_hubs_are_recorded_once_and_subscriptions_saved(store: Store) -> None:
    assert store.websub_subscriptions() == []
    assert store.record_hub(FEED, "https://hub.example/", FEED, T0, "s" * 43, "cb1") is True
    assert (
        store.record_hub(FEED, "https://hub.example/", FEED, T0 + timedelta(hours=1), "other", "cb2") is False
    )
    (row,) = store.websub_subscriptions()
    assert (row.hub, row.topic, row.secret, row.callback_id, row.state) == (
        "https://hub.example/",
        FEED,
        "s" * 43,
        "cb1",
        "discovered",
    )
    assert row.discovered_at == T0 and row.requested_at is None and row.expires_at is None
    verified = dataclasses.replace(
        row,
        state="active",
        requested_at=T0,
        verified_at=T0 + timedelta(seconds=1),
        expires_at=T0 + timedelta(days=1),
        lease_seconds=86400,
        last_error=None,
    )
    store.save_websub(verified)
    assert store.websub_by_callback("cb1") == verified
    assert store.websub_by_callback("cb2") is None
    # A changed hub starts over: new secret and callback, not yet asked.
    assert (
        store.record_hub(FEED, "https://hub2.example/", FEED, T0 + timedelta(days=2), "t" * 43, "cb3") is True
    )
    (moved,) = store.websub_subscriptions()
    assert (moved.hub, moved.callback_id, moved.state, moved.verified_at) == (
        "https://hub2.example/",
        "cb3",
        "discovered",
        None,
    )
    assert store.websub_by_callback("cb1") is None
