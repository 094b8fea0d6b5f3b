"""The SQLite store against real database files."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store import FeedUpdate, NewAlert, NewItem, SQLiteStore, delivery_id_for
from monitor.store.schema import MIGRATIONS
from monitor.types import Hit, Match
from tests.support.store_items import FEED, T0, make_item


def new_item(key: str, story: str | None = None) -> NewItem:
    match = Match("rare-earths", "Rare earths", (Hit("Seltene Erden", "title", 0, 13, "Seltene Erden"),))
    return NewItem(make_item(key), (match,), story or f"story-{key}", story_is_new=story is None)


def alert(
    alert_id: str, item_key: str, channels: tuple[str, ...] = ("mail", "hook"), at: datetime = T0
) -> NewAlert:
    return NewAlert(
        alert_id, "rare-earths", f"story-{item_key}", item_key, {"version": 1, "id": alert_id}, channels, at
    )


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "state" / "monitor.db")
    s.sync_feeds([(FEED, timedelta(minutes=10))], T0)
    yield s
    s.close()


def test_new_database_is_migrated_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "m.db") as s:
        assert s.schema_version == len(MIGRATIONS)
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with SQLiteStore(tmp_path / "m.db") as again:  # reopening does not re-run migrations
        assert again.schema_version == len(MIGRATIONS)


def test_database_from_a_newer_monitor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'later')", (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="newer than this monitor"):
        SQLiteStore(path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"m\.db: not a monitor database"):
        SQLiteStore(path)


def test_feeds_are_due_at_once_then_on_their_schedule(store: SQLiteStore) -> None:
    assert [f.url for f in store.due_feeds(T0)] == [FEED]
    store.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=10), etag='"abc"', last_modified="lm"))
    assert store.due_feeds(T0 + timedelta(minutes=9)) == []
    state = store.feed_state(FEED)
    assert state is not None and state.etag == '"abc"' and state.last_modified == "lm"
    assert [f.url for f in store.due_feeds(T0 + timedelta(minutes=10))] == [FEED]


def test_failures_count_up_and_a_success_resets_them(store: SQLiteStore) -> None:
    store.record_fetch_failure(FEED, "HTTP 503", T0, T0 + timedelta(minutes=1))
    store.record_fetch_failure(FEED, "HTTP 503", T0, T0 + timedelta(minutes=2))
    state = store.feed_state(FEED)
    assert state is not None and state.error_count == 2 and state.last_error == "HTTP 503"
    store.commit_fetch(FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)))
    state = store.feed_state(FEED)
    assert state is not None and state.error_count == 0 and state.last_error is None


def test_removed_feeds_are_deactivated_not_forgotten(store: SQLiteStore) -> None:
    store.sync_feeds([], T0)
    assert store.due_feeds(T0) == []
    assert store.list_feeds()[0].active is False
    store.sync_feeds([(FEED, timedelta(minutes=5))], T0)
    assert [f.url for f in store.due_feeds(T0)] == [FEED]


def test_commit_writes_items_matches_alerts_and_outbox_together(store: SQLiteStore) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)),
        new_items=[new_item("a"), new_item("b")],
        alerts=[alert("alr_1", "a")],
    )
    assert store.unseen_keys(["a", "b", "c"]) == {"c"}
    counts = store.counts()
    assert (
        counts["items"] == 2
        and counts["matches"] == 2
        and counts["alerts"] == 1
        and counts["deliveries"] == 2
    )
    due = store.claim_due(T0, 10)
    assert sorted(d.channel for d in due) == ["hook", "mail"]
    assert all(d.alerts == ({"version": 1, "id": "alr_1"},) for d in due)
    assert {d.id for d in due} == {delivery_id_for("alr_1", "mail"), delivery_id_for("alr_1", "hook")}


def test_a_failed_transaction_writes_nothing(store: SQLiteStore) -> None:
    with pytest.raises(sqlite3.IntegrityError):  # the same alert id twice violates the primary key
        store.commit_fetch(
            FeedUpdate(FEED, T0, T0 + timedelta(minutes=10), etag='"new"'),
            new_items=[new_item("a")],
            alerts=[alert("alr_1", "a"), alert("alr_1", "a")],
        )
    assert store.counts()["items"] == 0
    assert store.unseen_keys(["a"]) == {"a"}
    state = store.feed_state(FEED)
    assert state is not None and state.etag is None


def test_claimed_deliveries_are_leased_then_reclaimed_after_a_crash(store: SQLiteStore) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a", ("hook",))]
    )
    first = store.claim_due(T0, 10)
    assert len(first) == 1 and first[0].attempt == 1
    assert store.claim_due(T0 + timedelta(minutes=1), 10) == []  # leased: not handed out twice
    again = store.claim_due(T0 + timedelta(minutes=6), 10)  # the worker died; the lease ran out
    assert [d.id for d in again] == [first[0].id] and again[0].attempt == 2


def test_retry_sent_and_dead_transitions(store: SQLiteStore) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0),
        new_items=[new_item("a")],
        alerts=[alert("alr_1", "a", ("mail", "hook"))],
    )
    mail, hook = sorted(store.claim_due(T0, 10), key=lambda d: d.channel, reverse=True)
    store.mark_retry(mail.id, "421 try later", T0, T0 + timedelta(seconds=5))
    store.mark_dead(hook.id, "HTTP 400", T0)
    assert store.claim_due(T0 + timedelta(seconds=4), 10) == []
    assert [d.id for d in store.claim_due(T0 + timedelta(seconds=5), 10)] == [mail.id]
    store.mark_sent(mail.id, T0 + timedelta(seconds=6))
    assert store.delivery_counts() == {"sent": 1, "dead": 1}
    dead = store.list_deliveries(statuses=("dead",))
    assert [(d.id, d.last_error) for d in dead] == [(hook.id, "HTTP 400")]
    assert store.retry_deliveries(T0 + timedelta(seconds=7), all_dead=True) == 1
    assert [d.id for d in store.claim_due(T0 + timedelta(seconds=7), 10)] == [hook.id]


def test_group_wait_holds_a_delivery_until_due(store: SQLiteStore) -> None:
    held = alert("alr_1", "a", ("hook",), at=T0 + timedelta(minutes=2))
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[held])
    assert store.claim_due(T0 + timedelta(minutes=1), 10) == []
    assert len(store.claim_due(T0 + timedelta(minutes=2), 10)) == 1


def test_disabled_channels_are_remembered_until_enabled(store: SQLiteStore) -> None:
    store.disable_channel("hook", "HTTP 410 Gone", T0)
    assert store.disabled_channels() == {"hook"}
    assert store.disabled_channel_reasons()["hook"][0] == "HTTP 410 Gone"
    assert store.enable_channel("hook") is True
    assert store.disabled_channels() == set()


def test_pruning_drops_items_but_keeps_identity_keys(store: SQLiteStore) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("old")])
    later = T0 + timedelta(days=40)
    counts = store.prune(later, item_max_age=timedelta(days=30), key_max_age=timedelta(days=400))
    assert counts["items"] == 1 and counts["seen_keys"] == 0
    assert store.unseen_keys(["old"]) == set()  # reappearing after pruning: still known
    counts = store.prune(
        T0 + timedelta(days=401), item_max_age=timedelta(days=30), key_max_age=timedelta(days=400)
    )
    assert counts["seen_keys"] == 1


def test_content_hashes_are_known_per_feed(store: SQLiteStore) -> None:
    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")])
    assert store.seen_content_hashes(FEED, ["v1:a", "v1:zzz"]) == {"v1:a"}
    assert store.seen_content_hashes("https://other.example/feed", ["v1:a"]) == set()


def test_a_claim_can_be_limited_to_one_channel(store: SQLiteStore) -> None:
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a", ("mail", "hook"))]
    )
    assert [d.channel for d in store.claim_due(T0, 10, "hook")] == ["hook"]
    assert [d.channel for d in store.claim_due(T0, 10)] == ["mail"]  # the hook row is leased already


def test_alert_states_reuse_the_payload_written_and_decode_a_row_changed_since(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """The store remembers the payloads it wrote with their text (store.records.PayloadMemo): read back
    unchanged, the same payload comes back with the size the fold gave, undecoded; a row another process
    rewrote since is decoded from its new text, so the memo never answers for a payload it did not write."""
    from monitor.store import AlertAttachment

    store.commit_fetch(FeedUpdate(FEED, T0, T0), new_items=[new_item("a")], alerts=[alert("alr_1", "a")])
    pair = ("rare-earths", "story-a")
    first = store.alert_states([pair])[pair]
    assert first.payload == {"version": 1, "id": "alr_1"} and first.payload_size is None
    folded = {"version": 1, "id": "alr_1", "more": ["b"]}
    later = T0 + timedelta(minutes=5)
    store.commit_fetch(
        FeedUpdate(FEED, later, later),
        new_items=[new_item("b", "story-a")],
        attachments=[AlertAttachment("alr_1", "b", folded, 1234)],
    )
    state = store.alert_states([pair])[pair]
    assert state.payload is folded and state.payload_size == 1234
    with sqlite3.connect(tmp_path / "state" / "monitor.db") as other:
        other.execute('UPDATE alerts SET payload = \'{"id":"alr_1","other":true}\' WHERE id = \'alr_1\'')
    changed = store.alert_states([pair])[pair]
    assert changed.payload == {"id": "alr_1", "other": True} and changed.payload_size is None


def test_the_payload_memo_is_bounded_and_keyed_by_the_stored_text() -> None:
    from monitor.store.records import PayloadMemo

    memo = PayloadMemo(capacity=2)
    one = {"id": 1}
    memo.put("a", '{"id":1}', one, 10)
    assert memo.read("a", '{"id":1}') == (one, 10) and memo.read("a", '{"id":1}')[0] is one
    two, size = memo.read("a", '{"id":2}')  # another text: decoded, and remembered in its place
    assert two == {"id": 2} and size is None and memo.read("a", '{"id":2}')[0] is two
    memo.put("b", "{}", {}, None)
    memo.put("c", "{}", {}, None)  # "a", the least recently used, goes
    again, _ = memo.read("a", '{"id":2}')
    assert again == two and again is not two
