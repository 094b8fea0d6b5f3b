"""The SQLite store: the schedule of record, the items and their identity keys, alerts and the outbox.

One process writes (the daemon is a single asyncio thread; the CLI writes only for operator actions), in WAL
mode so readers never block it. `synchronous=FULL` because the outbox is the delivery guarantee: an alert the
daemon decided must survive a power loss once its transaction committed. A busy timeout lets a CLI command and
the daemon take turns instead of failing with "database is locked".

Everything one fetch produces is written in one transaction (`commit_fetch`); a crash before the commit leaves
the feed due again with its old validators, so the items are fetched and decided again.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlite_utils

from monitor.errors import StoreError
from monitor.health import FeedHealth, HealthDecision, gaps_between
from monitor.store.records import (
    AlertAttachment,
    AlertState,
    DeliveryRow,
    FeedClaim,
    FeedRow,
    FeedUpdate,
    NewAlert,
    NewEscalation,
    NewItem,
    NodeInfo,
    NodeRow,
    PayloadMemo,
    SilenceRow,
    StaleClaimError,
    StoredItem,
    StoryRow,
    WebSubRow,
    hints_from_json,
    hints_json,
    hits_json,
    items_per_story,
    last_payloads,
)
from monitor.store.schema import MIGRATIONS
from monitor.timeutil import from_iso, to_iso
from monitor.types import DeliveryRequest, FeedState, Item

__all__ = ["DELIVERY_LEASE", "SQLiteStore"]

# How long a claimed delivery is reserved for the worker that claimed it. A worker that dies mid-send (kill -9)
# leaves the row pending; once the lease runs out it is claimed again: at-least-once, never lost.
DELIVERY_LEASE = timedelta(minutes=5)
NODE_HISTORY = timedelta(days=7)
DEFAULT_BUSY_TIMEOUT = timedelta(seconds=30)  # config: database_busy_timeout

# SQLite's primary result codes (the low byte of the extended code) that an operator can act on, with the
# one-line advice the error carries. Anything else is reported with SQLite's own name for it.
_ADVICE = {
    5: "database is busy: another process held its write lock for more than {busy:g} s (a long CLI command,"
    " a backup, or a second writer)",
    6: "database table is locked by another statement of this process",
    8: "database is read-only: the daemon needs write access to the file and to its folder (for the -wal"
    " and -shm files); check owner and mode",
    10: "disk I/O error: check the file system holding the database (full, failing, or unmounted)",
    11: "database is corrupt: stop the daemon and restore it from a backup (or try `sqlite3 FILE .recover`)",
    13: "disk full: free space on the file system holding the database; nothing was recorded from this"
    " operation, so nothing is lost",
    14: "cannot open the database file: check that its folder exists and is writable",
    26: "not a monitor database (the file is not SQLite, or is encrypted)",
}

_P = ParamSpec("_P")
_R = TypeVar("_R")


def describe_sqlite_error(
    path: Path, exc: sqlite3.Error, busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT
) -> str:
    """One line for an operator: the file, what SQLite said, and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", None)
    advice = _ADVICE.get(code & 0xFF) if isinstance(code, int) else None
    if advice is None:
        return f"{path}: database error: {exc}"
    return f"{path}: {advice.format(busy=busy_timeout.total_seconds())} ({exc})"


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a public store method under the store's lock, with SQLite's errors as one-line StoreErrors.

    The lock: the daemon calls the store from its store thread and the status page's handler from that same
    thread, but a CLI command or a test may call it from another one; one sqlite3 connection must never run
    two transactions at once. The errors: a locked, read-only, full or corrupt database is an operator's
    problem, not a bug, so it reaches the log as one line naming the file, never as a traceback."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        store = args[0]
        assert isinstance(store, SQLiteStore)
        with store._lock:
            try:
                return method(*args, **kwargs)
            except sqlite3.Error as exc:
                if not _operational(exc):
                    raise  # a constraint or a misuse is a bug, with its traceback
                raise StoreError(describe_sqlite_error(store.path, exc, store.busy_timeout)) from exc

    return guarded


def _operational(exc: sqlite3.Error) -> bool:
    """Whether the error is the database's state (busy, read-only, full, corrupt...), an operator's to fix."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _ADVICE


_UNGUARDED = frozenset(
    {"close", "transaction"}
)  # close needs no lock; transaction runs inside guarded methods

_S = TypeVar("_S", bound=type)


def _guard_public_methods(cls: _S) -> _S:
    """Apply `_guarded` to every public method of the class, including the ones added later: a new method
    cannot forget it."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and name not in _UNGUARDED and callable(value):
            setattr(cls, name, _guarded(value))
    return cls


# The columns of a FeedState, in the order `_state` reads them.
_STATE_COLUMNS = "url, etag, last_modified, next_fetch_at, error_count, last_error, last_fetched_at, title, moved_to, hints"


def _state(row: Sequence[Any]) -> FeedState:
    return FeedState(
        url=row[0],
        etag=row[1],
        last_modified=row[2],
        next_fetch_at=_dt(row[3]),
        error_count=row[4],
        last_error=row[5],
        last_fetched_at=_dt(row[6]),
        title=row[7],
        moved_to=row[8],
        hints=hints_from_json(row[9]),
    )


def _iso(moment: datetime | None) -> str | None:
    return to_iso(moment)


def _dt(text: str | None) -> datetime | None:
    return from_iso(text)


def _req_dt(text: str) -> datetime:
    moment = from_iso(text)
    assert moment is not None
    return moment


@_guard_public_methods
class SQLiteStore:
    """All persistent state of one monitor installation, in one SQLite file.

    `node` names the process that claims feeds and deliveries through this store (the daemon, `once`); the CLI
    opens it without one. One process writes an SQLite file (monitor.service.DatabaseLock), so `concurrent`
    is False: nothing another process commits can appear between our reads and writes."""

    concurrent = False

    def __init__(
        self,
        path: Path,
        *,
        node: NodeInfo | None = None,
        delivery_lease: timedelta = DELIVERY_LEASE,
        busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.path = path
        self.node = node
        self.delivery_lease = delivery_lease
        self._delivery_claims: dict[str, int] = {}  # delivery id -> fencing token of our claim
        self._payloads = PayloadMemo()  # alert payloads last written or read, by the text stored
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: the daemon opens the store on its main thread and then calls it from
            # its store thread (monitor.storethread), so busy waits never stall the event loop; every public
            # method holds self._lock, so two threads never share the connection at once.
            conn = sqlite3.connect(
                str(path), isolation_level=None, timeout=busy_timeout.total_seconds(), check_same_thread=False
            )
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the database folder: {exc.strerror or exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(describe_sqlite_error(path, exc, busy_timeout)) from exc
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout.total_seconds() * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(describe_sqlite_error(path, exc, busy_timeout)) from exc

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception: the unit of atomicity."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # SQLite has already rolled back on some errors (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK
            # would fail and hide the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
        )
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        current = int(row[0] or 0)
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this monitor knows ({len(MIGRATIONS)}); "
                "upgrade monitor"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction() as tx:
                for statement in _split_sql(MIGRATIONS[version - 1]):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, datetime('now'))",
                    (version,),
                )

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # -- feeds: the schedule of record ------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[tuple[str, timedelta]], now: datetime) -> None:
        """Make the feed table agree with the configuration: add new feeds (due now), update intervals,
        deactivate feeds no longer configured (their rows and validators stay, in case they come back)."""
        wanted = {url: interval for url, interval in feeds}
        with self.transaction() as tx:
            existing = {row[0]: bool(row[1]) for row in tx.execute("SELECT url, active FROM feeds")}
            for url, interval in wanted.items():
                if url in existing:
                    tx.execute(
                        "UPDATE feeds SET active = 1, interval_seconds = ?, "
                        "next_fetch_at = CASE WHEN active = 0 THEN ? ELSE next_fetch_at END WHERE url = ?",
                        (interval.total_seconds(), _iso(now), url),
                    )
                else:
                    tx.execute(
                        "INSERT INTO feeds (url, interval_seconds, next_fetch_at) VALUES (?, ?, ?)",
                        (url, interval.total_seconds(), _iso(now)),
                    )
            for url in existing.keys() - wanted.keys():
                tx.execute("UPDATE feeds SET active = 0 WHERE url = ?", (url,))

    def due_feeds(self, now: datetime, limit: int = 1000) -> list[FeedState]:
        rows = self._conn.execute(
            "SELECT url FROM feeds WHERE active = 1 AND parked_at IS NULL AND next_fetch_at <= ? "
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_fetch_at LIMIT ?",
            (_iso(now), _iso(now), limit),
        ).fetchall()
        return [state for (url,) in rows if (state := self.feed_state(url)) is not None]

    def claim_feeds(
        self, now: datetime, lease: timedelta, *, limit: int = 100, urls: Sequence[str] | None = None
    ) -> list[FeedClaim]:
        """Lease feeds to this store's node for one fetch each, until now + lease: the due ones (oldest due
        first), or with `urls` those feeds whether due or not (`monitor once`). Feeds that are parked, removed
        or leased to someone else are never claimed. Each claim gets the feed's next fencing token."""
        if limit <= 0:
            return []
        holder = self.node.id if self.node is not None else None
        until = now + lease
        # One statement, so one implicit transaction (isolation_level=None): choose the feeds, bump their
        # tokens and read their states at once (RETURNING). It was BEGIN, a SELECT, then an UPDATE and two
        # SELECTs per feed, and COMMIT: for `monitor once`, which claims one feed at a time, the claim cost
        # more than the 304 it led to. RETURNING gives rows in no set order: sorted as the SELECT was.
        chosen = (
            "SELECT url FROM feeds WHERE active = 1 AND parked_at IS NULL "
            + ("AND next_fetch_at <= ? " if urls is None else "AND url IN (SELECT value FROM json_each(?)) ")
            + "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_fetch_at, url LIMIT ?"
        )
        rows = self._conn.execute(
            "UPDATE feeds SET claim_token = claim_token + 1, lease_until = ?, claimed_by = ? "
            f"WHERE url IN ({chosen}) RETURNING {_STATE_COLUMNS}, claim_token",
            (_iso(until), holder, _iso(now) if urls is None else _json(list(urls)), _iso(now), limit),
        ).fetchall()
        claims = [FeedClaim(_state(row[:-1]), int(row[-1]), until) for row in rows]
        claims.sort(key=lambda claim: (claim.state.next_fetch_at or now, claim.url))
        return claims

    def release_feed(self, url: str, claim: int) -> None:
        """Give back the lease of a claim that was not used (a poll abandoned at shutdown): the feed keeps its
        schedule and any node may claim it at once."""
        with self.transaction() as tx:
            tx.execute("UPDATE feeds SET lease_until = NULL WHERE url = ? AND claim_token = ?", (url, claim))

    def feed_state(self, url: str) -> FeedState | None:
        row = self._conn.execute(f"SELECT {_STATE_COLUMNS} FROM feeds WHERE url = ?", (url,)).fetchone()
        return _state(row) if row is not None else None

    def list_feeds(self) -> list[FeedRow]:
        rows = self._conn.execute(
            "SELECT url, title, active, interval_seconds, next_fetch_at, last_fetched_at, last_success_at, "
            "error_count, last_error, etag, last_modified, parked_at, parked_reason, moved_to FROM feeds ORDER BY url"
        ).fetchall()
        return [
            FeedRow(
                url=r[0],
                title=r[1],
                active=bool(r[2]),
                interval_seconds=r[3],
                next_fetch_at=_req_dt(r[4]),
                last_fetched_at=_dt(r[5]),
                last_success_at=_dt(r[6]),
                error_count=r[7],
                last_error=r[8],
                etag=r[9],
                last_modified=r[10],
                parked_at=_dt(r[11]),
                parked_reason=r[12],
                moved_to=r[13],
            )
            for r in rows
        ]

    def record_fetch_failure(
        self, url: str, error: str, now: datetime, next_fetch_at: datetime, *, claim: int | None = None
    ) -> None:
        """Count a failed fetch and schedule the next one. Under a claim, refused (StaleClaimError) when the
        feed was claimed again since."""
        with self.transaction() as tx:
            changed = tx.execute(
                "UPDATE feeds SET error_count = error_count + 1, last_error = ?, last_fetched_at = ?, "
                "next_fetch_at = ?, failing_since = COALESCE(failing_since, ?), lease_until = NULL "
                "WHERE url = ? AND (? IS NULL OR claim_token = ?)",
                (error, _iso(now), _iso(next_fetch_at), _iso(now), url, claim, claim),
            ).rowcount
            if not changed and claim is not None:
                raise StaleClaimError(
                    f"feed {url}: claim {claim} is no longer current; the failure is not recorded"
                )

    # -- feed health (monitor.health) ------------------------------------------------------------------------

    def feed_health(self, url: str, interval: timedelta, history: int = 20) -> FeedHealth | None:
        """The feed's health state, with the gaps between its last `history` fetches that brought new items."""
        row = self._conn.execute(
            "SELECT url, title, error_count, last_error, failing_since, last_success_at, last_new_item_at, "
            "health_notified, churn_notified_at, parked_at FROM feeds WHERE url = ?",
            (url,),
        ).fetchone()
        if row is None:
            return None
        moments = [
            _req_dt(r[0])
            for r in self._conn.execute(
                "SELECT DISTINCT fetched_at FROM items WHERE feed_url = ? ORDER BY fetched_at DESC LIMIT ?",
                (url, history + 1),
            )
        ]
        return FeedHealth(
            url=row[0],
            title=row[1],
            interval=interval,
            error_count=row[2],
            last_error=row[3],
            failing_since=_dt(row[4]),
            last_success_at=_dt(row[5]),
            last_new_item_at=_dt(row[6]),
            notified=frozenset(filter(None, row[7].split(","))),
            churn_notified_at=_dt(row[8]),
            parked_at=_dt(row[9]),
            new_item_gaps=gaps_between(moments),
        )

    def record_health(
        self,
        url: str,
        decision: HealthDecision,
        notices: Sequence[tuple[dict[str, Any], Sequence[str]]],
        now: datetime,
    ) -> None:
        """Write a health decision and queue its notices (payload, channels) in the outbox, in one transaction:
        a notice is queued exactly when the state that says it was told is written."""
        with self.transaction() as tx:
            tx.execute(
                "UPDATE feeds SET health_notified = ?, "
                "churn_notified_at = CASE WHEN ? THEN ? ELSE churn_notified_at END, "
                "parked_at = CASE WHEN ? IS NOT NULL THEN COALESCE(parked_at, ?) ELSE parked_at END, "
                "parked_reason = COALESCE(?, parked_reason) WHERE url = ?",
                (
                    ",".join(sorted(decision.notified)),
                    decision.churn_notified,
                    _iso(now),
                    decision.park_reason,
                    _iso(now),
                    decision.park_reason,
                    url,
                ),
            )
            for payload, channels in notices:
                for channel in channels:
                    tx.execute(
                        "INSERT OR IGNORE INTO deliveries "
                        "(id, channel, status, digest, created_at, next_attempt_at, notice, kind) "
                        "VALUES (?, ?, 'pending', 0, ?, ?, ?, 'notice')",
                        (
                            delivery_id_for(payload["id"], channel),
                            channel,
                            _iso(now),
                            _iso(now),
                            _json(payload),
                        ),
                    )

    def notices_since(self, since: datetime) -> int:
        """Notices queued since then (each counted once, however many channels it went to)."""
        row = self._conn.execute(
            "SELECT COUNT(DISTINCT json_extract(notice, '$.id')) FROM deliveries "
            "WHERE notice IS NOT NULL AND created_at >= ?",
            (_iso(since),),
        ).fetchone()
        return int(row[0] or 0)

    def unpark_feed(self, url: str, now: datetime) -> bool:
        """Poll a parked feed again, at once, with a fresh failure streak. False when it was not parked."""
        with self.transaction() as tx:
            changed = tx.execute(
                "UPDATE feeds SET parked_at = NULL, parked_reason = NULL, failing_since = NULL, error_count = 0, "
                "health_notified = '', next_fetch_at = ? WHERE url = ? AND parked_at IS NOT NULL",
                (_iso(now), url),
            ).rowcount
        return bool(changed)

    def feed_item_counts(self, since: datetime) -> tuple[dict[str, int], dict[str, datetime]]:
        """Per feed: items fetched since then, and when its first stored item was fetched."""
        counts: dict[str, int] = {}
        first: dict[str, datetime] = {}
        for url, count, earliest in self._conn.execute(
            "SELECT feed_url, SUM(CASE WHEN fetched_at >= ? THEN 1 ELSE 0 END), MIN(fetched_at) FROM items "
            "GROUP BY feed_url",
            (_iso(since),),
        ):
            counts[url] = int(count or 0)
            first[url] = _req_dt(earliest)
        return counts, first

    def feed_arrivals(self, url: str, since: datetime, limit: int = 5000) -> list[datetime]:
        rows = self._conn.execute(
            "SELECT fetched_at FROM items WHERE feed_url = ? AND fetched_at >= ? ORDER BY fetched_at DESC LIMIT ?",
            (url, _iso(since), limit),
        ).fetchall()
        return [_req_dt(row[0]) for row in rows]

    # -- items -------------------------------------------------------------------------------------------------

    def unseen_keys(self, keys: Iterable[str]) -> set[str]:
        """The keys among `keys` that were never seen (identity keys outlive pruned items). One query however
        many keys: they travel as one JSON array."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        seen = {
            row[0]
            for row in self._conn.execute(
                "SELECT key FROM seen_keys WHERE key IN (SELECT value FROM json_each(?))", (_json(wanted),)
            )
        }
        return set(wanted) - seen

    def seen_content_hashes(self, feed_url: str, hashes: Iterable[str]) -> set[str]:
        """Which of these content hashes this feed already delivered under some key (GUID churn guard)."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return set()
        return {
            row[0]
            for row in self._conn.execute(
                "SELECT content_hash FROM seen_keys WHERE feed_url = ? "
                "AND content_hash IN (SELECT value FROM json_each(?))",
                (feed_url, _json(wanted)),
            )
        }

    def story_signatures(self, since: datetime) -> list[dict[str, Any]]:
        """Items published (or, undated, fetched) since `since`, with their clustering signatures, to rebuild
        the story index on start. The time is the one the index itself expires on."""
        return self._signature_rows("1", (), since)

    def _signature_rows(self, where: str, params: tuple[Any, ...], since: datetime) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT i.key, i.story_id, i.signature, MIN(COALESCE(i.published, i.fetched_at), i.fetched_at), i.url, "
            "i.content_hash, i.title, i.summary, i.feed_url, COALESCE(m.language, i.language), m.event_features, "
            "i.rowid FROM items i LEFT JOIN story_members m ON m.item_key = i.key "
            f"WHERE {where} AND MIN(COALESCE(i.published, i.fetched_at), i.fetched_at) >= ? "
            "ORDER BY i.fetched_at, i.rowid",
            (*params, _iso(since)),
        ).fetchall()
        return [
            {
                "item_key": r[0],
                "story_id": r[1],
                "signature": r[2],
                "published": _req_dt(r[3]),
                "url": r[4],
                "content_hash": r[5],
                "title": r[6],
                "summary": r[7],
                "source": r[8],
                "language": r[9],
                "event_features": r[10],
                "seq": r[11],
            }
            for r in rows
        ]

    def commit_fetch(
        self,
        update: FeedUpdate,
        *,
        new_items: Sequence[NewItem] = (),
        also_seen: Sequence[tuple[str, str]] = (),
        alerts: Sequence[NewAlert] = (),
        attachments: Sequence[AlertAttachment] = (),
        digests: Mapping[str, timedelta] | None = None,
        seen_again: Sequence[str] = (),
        per_rule: Collection[str] = (),
        escalations: Sequence[NewEscalation] = (),
        group_intervals: Mapping[str, timedelta] | None = None,
    ) -> list[tuple[str, str]]:
        """Write everything one fetch produced in one transaction: the feed's new state, the new items with
        their matches and stories, identity keys of items seen again under a new key (`also_seen`: key and
        content hash), new alerts with their outbox rows, items folded into existing alerts, escalations with
        their outbox rows, and the last_seen time of the keys the fetch had again (`seen_again`, see
        `touch_seen`). Returns (channel, kind) of each outbox row it created (an alert that joined an open
        notification creates none).

        How an alert reaches a channel (see `_route_alert`): `digests` maps channel names to their digest
        period: an alert for such a channel joins the channel's open digest delivery (or opens one, due one
        period from now). A channel in `per_rule` (``group_by: [rule, story]``) gets a delivery per alert. Every
        other channel gets one notification per story: the alert joins the story's notification on that
        channel while it is still unsent, else it goes out as an update in the story's thread, due no earlier
        than the channel's `group_intervals` after the thread's previous message."""
        now = _iso(update.fetched_at)
        created: list[tuple[str, str]] = []
        with self.transaction() as tx:
            changed = self._update_feed(tx, update, now, bool(new_items))
            if not changed and update.claim is not None:
                raise StaleClaimError(
                    f"feed {update.url}: claim {update.claim} is no longer current (its lease ran out and the "
                    "feed was claimed again); this fetch is discarded"
                )
            if new_items:
                self._insert_items(tx, new_items, now)
            for key, content_hash in also_seen:
                tx.execute(
                    "INSERT INTO seen_keys (key, feed_url, content_hash, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
                    (key, update.url, content_hash, now, now),
                )
            for alert in alerts:
                created += self._insert_alert(
                    tx, alert, update.fetched_at, digests or {}, per_rule, group_intervals or {}
                )
            if attachments:
                tx.executemany(
                    "INSERT OR IGNORE INTO alert_items (alert_id, item_key, added_at) VALUES (?, ?, ?)",
                    [(a.alert_id, a.item_key, now) for a in attachments],
                )
                written = []
                for last in last_payloads(attachments):
                    text = _json(last.payload)
                    self._payloads.put(last.alert_id, text, last.payload, last.payload_size)
                    written.append((text, now, last.alert_id, last.alert_id))
                tx.executemany(
                    "UPDATE alerts SET payload = ?, updated_at = ?, "
                    "item_count = (SELECT COUNT(*) FROM alert_items WHERE alert_id = ?) WHERE id = ?",
                    written,
                )
            for escalation in escalations:
                created += self._insert_escalation(tx, escalation, update.fetched_at)
            if seen_again:
                self._touch(tx, seen_again, now)
        return created

    def _update_feed(
        self, tx: sqlite3.Connection, update: FeedUpdate, now: str | None, new_items: bool
    ) -> int:
        """The feed row of a successful fetch, under its claim (if any): 1 when written, 0 when stale."""
        return tx.execute(
            "UPDATE feeds SET title = COALESCE(?, title), etag = ?, last_modified = ?, last_fetched_at = ?, "
            "last_success_at = ?, next_fetch_at = ?, error_count = 0, last_error = NULL, failing_since = NULL, "
            "last_new_item_at = CASE WHEN ? THEN ? ELSE last_new_item_at END, lease_until = NULL, "
            "moved_to = COALESCE(?, moved_to), hints = COALESCE(?, hints) "
            "WHERE url = ? AND (? IS NULL OR claim_token = ?)",
            (
                update.title,
                update.etag,
                update.last_modified,
                now,
                now,
                _iso(update.next_fetch_at),
                new_items,
                now,
                update.moved_to,
                hints_json(update.hints),
                update.url,
                update.claim,
                update.claim,
            ),
        ).rowcount

    def commit_not_modified(self, updates: Sequence[FeedUpdate]) -> list[bool]:
        """See Store.commit_not_modified. One statement per update; one COMMIT (the fsync, most of a 304's
        cost on SQLite under synchronous=FULL) for all of them."""
        if not updates:
            return []
        with self.transaction() as tx:
            return [
                bool(self._update_feed(tx, update, _iso(update.fetched_at), False)) or update.claim is None
                for update in updates
            ]

    def touch_seen(self, keys: Iterable[str], now: datetime) -> None:
        """Refresh last_seen of keys still present in a feed, so their identity is kept while the feed has them."""
        batch = list(keys)
        if not batch:
            return
        with self.transaction() as tx:
            self._touch(tx, batch, _iso(now))

    def _touch(self, tx: sqlite3.Connection, keys: Sequence[str], now: str | None) -> None:
        tx.execute(
            "UPDATE seen_keys SET last_seen = ? WHERE key IN (SELECT value FROM json_each(?))",
            (now, _json(list(keys))),
        )

    def _insert_items(self, tx: sqlite3.Connection, new_items: Sequence[NewItem], now: str | None) -> None:
        """The fetch's new items with their identity keys, story memberships, stories and matches: one
        executemany per statement, in the items' order (no table refers to another, so the order across tables
        does not matter; each table's rows go in as they did one item at a time)."""
        tx.executemany(
            "INSERT INTO seen_keys (key, feed_url, content_hash, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
            [(n.item.key, n.item.feed_url, n.item.content_hash, now, now) for n in new_items],
        )
        tx.executemany(
            "INSERT OR REPLACE INTO items (key, feed_url, feed_title, guid, link, url, title, summary, content, "
            "categories, language, published, fetched_at, content_hash, story_id, signature) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    item.key,
                    item.feed_url,
                    item.feed_title,
                    item.guid,
                    item.link,
                    item.url,
                    item.title,
                    item.summary,
                    item.content,
                    _json(list(item.categories)),
                    item.language,
                    _iso(item.published),
                    now,
                    item.content_hash,
                    new.story_id,
                    new.signature,
                )
                for new in new_items
                for item in (new.item,)
            ],
        )
        tx.executemany(
            "INSERT OR REPLACE INTO story_members (item_key, story_id, language, tier, reason, score, "
            "matched_item_key, evidence, event_features) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    new.item.key,
                    new.story_id,
                    member.language,
                    member.tier,
                    member.reason,
                    member.score,
                    member.matched_item_key,
                    _json(list(member.evidence)),
                    member.event_features,
                )
                for new in new_items
                if (member := new.membership) is not None
            ],
        )
        tx.executemany(
            "INSERT OR IGNORE INTO stories (id, title, first_item_key, created_at, updated_at, item_count) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            [(new.story_id, new.item.title, new.item.key, now, now) for new in new_items if new.story_is_new],
        )
        # One UPDATE per story with its number of new items, rather than one per item: the same count.
        tx.executemany(
            "UPDATE stories SET item_count = item_count + ?, updated_at = ? WHERE id = ?",
            [(count, now, story_id) for story_id, count in items_per_story(new_items)],
        )
        tx.executemany(
            "INSERT OR REPLACE INTO matches (item_key, rule_id, hits, score, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    new.item.key,
                    match.rule_id,
                    hits_json(match),
                    match.score,
                    now,
                )
                for new in new_items
                for match in new.matches
            ],
        )

    def _insert_alert(
        self,
        tx: sqlite3.Connection,
        alert: NewAlert,
        at: datetime,
        digests: Mapping[str, timedelta],
        per_rule: Collection[str],
        group_intervals: Mapping[str, timedelta],
    ) -> list[tuple[str, str]]:
        now = _iso(at)
        created: list[tuple[str, str]] = []
        text = _json(alert.payload)
        self._payloads.put(alert.id, text, alert.payload, None)
        tx.execute(
            "INSERT INTO alerts (id, rule_id, story_id, item_key, created_at, updated_at, item_count, payload, "
            "generation, silence_id) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (
                alert.id,
                alert.rule_id,
                alert.story_id,
                alert.item_key,
                now,
                now,
                text,
                alert.generation,
                alert.silence_id,
            ),
        )
        tx.execute(
            "INSERT INTO alert_items (alert_id, item_key, added_at) VALUES (?, ?, ?)",
            (alert.id, alert.item_key, now),
        )
        for channel in alert.channels:
            period = digests.get(channel)
            if period is not None:
                delivery_id, opened = self._open_digest(tx, channel, at, period, alert.id)
                kind = "digest"
            elif channel in per_rule:
                delivery_id, opened, kind = delivery_id_for(alert.id, channel), True, "alert"
                tx.execute(
                    "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, kind, "
                    "story_id) VALUES (?, ?, 'pending', 0, ?, ?, 'alert', ?)",
                    (delivery_id, channel, now, _iso(alert.deliver_at), alert.story_id),
                )
            else:
                interval = group_intervals.get(channel, timedelta(0))
                delivery_id, opened, kind = self._route_alert(tx, alert, channel, at, interval)
            if opened:
                created.append((channel, kind))
            tx.execute(
                "INSERT INTO delivery_alerts (delivery_id, alert_id) VALUES (?, ?)", (delivery_id, alert.id)
            )
        return created

    def _route_alert(
        self, tx: sqlite3.Connection, alert: NewAlert, channel: str, at: datetime, group_interval: timedelta
    ) -> tuple[str, bool, str]:
        """The story notification on `channel` that `alert` goes out in: (delivery id, whether it is new,
        its kind).

        Decided inside the fetch's transaction, against what is committed, so it cannot race the delivery
        worker: a notification still unsent and never claimed (attempts = 0, what a claim changes in the same
        kind of transaction) takes the alert in, and is made due no later than this alert wants (the shorter
        group_wait wins). Otherwise a new delivery opens: the story's first notification on this channel (a
        new thread), or an update replying to the thread's first notification, held until `group_interval`
        after the thread's previous message (Alertmanager's group_interval: the follow-up reports of a story
        come in waves, and one update per wave is enough); an alert joining it cannot make it due earlier
        than that."""
        row = tx.execute(
            "SELECT id, kind FROM deliveries WHERE story_id = ? AND channel = ? AND kind IN ('story', 'update') "
            "AND status = 'pending' AND attempts = 0 ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (alert.story_id, channel),
        ).fetchone()
        if row is not None:
            due = alert.deliver_at
            if row[1] == "update":
                due = max(
                    due, self._thread_quiet_until(tx, alert.story_id, channel, group_interval, str(row[0]))
                )
            tx.execute(
                "UPDATE deliveries SET next_attempt_at = MIN(next_attempt_at, ?) WHERE id = ?",
                (_iso(due), row[0]),
            )
            return str(row[0]), False, str(row[1])
        delivery_id = delivery_id_for(alert.id, channel)
        thread = self._thread(tx, alert.story_id, channel)
        kind = "update" if thread is not None else "story"
        due = alert.deliver_at
        if thread is not None:
            due = max(due, self._thread_quiet_until(tx, alert.story_id, channel, group_interval, None))
        tx.execute(
            "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, kind, story_id, "
            "in_reply_to) VALUES (?, ?, 'pending', 0, ?, ?, ?, ?, ?)",
            (delivery_id, channel, _iso(at), _iso(due), kind, alert.story_id, thread),
        )
        if thread is None:
            tx.execute(
                "INSERT INTO notification_threads (story_id, channel, first_delivery_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (alert.story_id, channel, delivery_id, _iso(at)),
            )
        return delivery_id, True, kind

    @staticmethod
    def _thread_quiet_until(
        tx: sqlite3.Connection, story_id: str, channel: str, interval: timedelta, besides: str | None
    ) -> datetime:
        """When the story's thread on `channel` has been quiet for `interval`: that long after its latest
        message (other than `besides`) was queued."""
        row = tx.execute(
            "SELECT MAX(created_at) FROM deliveries WHERE story_id = ? AND channel = ? "
            "AND kind IN ('story', 'update') AND (? IS NULL OR id != ?)",
            (story_id, channel, besides, besides),
        ).fetchone()
        latest = _dt(row[0]) if row is not None else None
        return latest + interval if latest is not None else datetime.min.replace(tzinfo=UTC)

    @staticmethod
    def _thread(tx: sqlite3.Connection, story_id: str, channel: str) -> str | None:
        row = tx.execute(
            "SELECT first_delivery_id FROM notification_threads WHERE story_id = ? AND channel = ?",
            (story_id, channel),
        ).fetchone()
        return None if row is None else str(row[0])

    def _insert_escalation(
        self, tx: sqlite3.Connection, escalation: NewEscalation, at: datetime
    ) -> list[tuple[str, str]]:
        """Record an escalation and queue it on its channels, once per (rule, story): a second one for the same
        pair (two fetches racing on several nodes) is ignored with its deliveries."""
        inserted = tx.execute(
            "INSERT OR IGNORE INTO escalations (rule_id, story_id, severity, outlets, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                escalation.rule_id,
                escalation.story_id,
                escalation.severity,
                escalation.outlets,
                _json(escalation.payload),
                _iso(at),
            ),
        ).rowcount
        if not inserted:
            return []
        created: list[tuple[str, str]] = []
        for channel in escalation.channels:
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, "
                "notice, kind, story_id, in_reply_to) VALUES (?, ?, 'pending', 0, ?, ?, ?, 'escalation', ?, ?)",
                (
                    delivery_id_for(str(escalation.payload["id"]), channel),
                    channel,
                    _iso(at),
                    _iso(at),
                    _json(escalation.payload),
                    escalation.story_id,
                    self._thread(tx, escalation.story_id, channel),
                ),
            )
            created.append((channel, "escalation"))
        return created

    def _open_digest(
        self, tx: sqlite3.Connection, channel: str, at: datetime, period: timedelta, first_alert: str
    ) -> tuple[str, bool]:
        """The channel's digest delivery that is still collecting (never attempted), or a new one due one
        period from now. Its id derives from the channel and the alert that opened it: stable on retries."""
        row = tx.execute(
            "SELECT id FROM deliveries WHERE channel = ? AND digest = 1 AND status = 'pending' AND attempts = 0 "
            "ORDER BY created_at DESC LIMIT 1",
            (channel,),
        ).fetchone()
        if row is not None:
            return str(row[0]), False
        delivery_id = delivery_id_for(first_alert, f"digest:{channel}")
        tx.execute(
            "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, kind) "
            "VALUES (?, ?, 'pending', 1, ?, ?, 'digest')",
            (delivery_id, channel, _iso(at), _iso(at + period)),
        )
        return delivery_id, True

    # -- alerts ------------------------------------------------------------------------------------------------

    def alert_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], AlertState]:
        """The newest alert of each (rule id, story id) pair that has one.

        One query for all the pairs (a fetch asks for about 60), not one each: the newest is the one of the
        highest generation, unique per pair (index alerts_generation)."""
        wanted = sorted(set(pairs))
        if not wanted:
            return {}
        found: dict[tuple[str, str], AlertState] = {}
        for row in self._conn.execute(
            "SELECT a.rule_id, a.story_id, a.id, a.created_at, a.item_count, a.payload, EXISTS (SELECT 1 "
            "FROM delivery_alerts da JOIN deliveries d ON d.id = da.delivery_id WHERE da.alert_id = a.id "
            "AND d.status = 'pending' AND d.attempts = 0), a.generation, a.silence_id "
            "FROM json_each(?) w JOIN alerts a ON a.rule_id = json_extract(w.value, '$[0]') "
            "AND a.story_id = json_extract(w.value, '$[1]') AND a.generation = (SELECT MAX(b.generation) "
            "FROM alerts b WHERE b.rule_id = a.rule_id AND b.story_id = a.story_id)",
            (_json(wanted),),
        ):
            payload, size = self._payloads.read(row[2], row[5])
            found[(row[0], row[1])] = AlertState(
                alert_id=row[2],
                rule_id=row[0],
                story_id=row[1],
                created_at=_req_dt(row[3]),
                item_count=row[4],
                payload=payload,
                pending=bool(row[6]),
                generation=int(row[7]),
                silence_id=row[8],
                payload_size=size,
            )
        return found

    def escalated(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (rule id, story id) pairs among `pairs` that were already escalated."""
        wanted = sorted(set(pairs))
        if not wanted:
            return set()
        return {
            (str(r[0]), str(r[1]))
            for r in self._conn.execute(
                "SELECT e.rule_id, e.story_id FROM escalations e JOIN json_each(?) w "
                "ON e.rule_id = json_extract(w.value, '$[0]') AND e.story_id = json_extract(w.value, '$[1]')",
                (_json(wanted),),
            )
        }

    def story_outlet_times(
        self, story_ids: Iterable[str]
    ) -> dict[str, list[tuple[str, datetime, str | None]]]:
        """Per story, each stored item's outlet (feed title, else feed URL), time (published, else fetched,
        never after it was fetched) and language, oldest first: what an escalation counts outlets over."""
        wanted = sorted(set(story_ids))
        found: dict[str, list[tuple[str, datetime, str | None]]] = {story: [] for story in wanted}
        if not wanted:
            return found
        for story_id, outlet, moment, language in self._conn.execute(
            "SELECT i.story_id, COALESCE(NULLIF(i.feed_title, ''), i.feed_url), "
            "MIN(COALESCE(i.published, i.fetched_at), i.fetched_at) AS t, COALESCE(m.language, i.language) "
            "FROM items i LEFT JOIN story_members m ON m.item_key = i.key "
            "WHERE i.story_id IN (SELECT value FROM json_each(?)) ORDER BY t, i.rowid",
            (_json(wanted),),
        ):
            found[str(story_id)].append((str(outlet), _req_dt(moment), language))
        return found

    def stored_items(self, since: datetime, *, limit: int = 1_000_000) -> list[StoredItem]:
        """The stored items fetched at or after `since`, oldest first, each with its story (a read only)."""
        rows = self._conn.execute(
            "SELECT key, feed_url, feed_title, guid, link, url, title, summary, content, categories, language, published, content_hash, story_id, fetched_at "
            "FROM items WHERE fetched_at >= ? ORDER BY fetched_at, rowid LIMIT ?",
            (_iso(since), limit),
        ).fetchall()
        return [
            StoredItem(
                Item(
                    key=row[0],
                    feed_url=row[1],
                    feed_title=row[2],
                    guid=row[3],
                    link=row[4],
                    url=row[5],
                    title=row[6],
                    summary=row[7],
                    content=row[8],
                    categories=tuple(json.loads(row[9])),
                    language=row[10],
                    published=_dt(row[11]),
                    content_hash=row[12],
                ),
                story_id=row[13],
                fetched_at=_req_dt(row[14]),
            )
            for row in rows
        ]

    # -- silences --------------------------------------------------------------------------------------------

    def add_silence(self, silence: SilenceRow) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO silences (id, rule_id, story_id, feed_url, reason, created_at, ends_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    silence.id,
                    silence.rule_id,
                    silence.story_id,
                    silence.feed_url,
                    silence.reason,
                    _iso(silence.created_at),
                    _iso(silence.ends_at),
                ),
            )

    def silences(self, now: datetime, *, ended: bool = False) -> list[SilenceRow]:
        rows = self._conn.execute(
            "SELECT id, rule_id, story_id, feed_url, reason, created_at, ends_at FROM silences "
            "WHERE ? OR ends_at > ? ORDER BY created_at DESC, rowid DESC",
            (ended, _iso(now)),
        ).fetchall()
        return [SilenceRow(r[0], r[1], r[2], r[3], r[4], _req_dt(r[5]), _req_dt(r[6])) for r in rows]

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        with self.transaction() as tx:
            return bool(
                tx.execute(
                    "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                    (_iso(now), silence_id, _iso(now)),
                ).rowcount
            )

    def list_alerts(self, *, limit: int = 50, rule_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id FROM alerts"
        params: list[Any] = []
        if rule_id:
            sql += " WHERE rule_id = ?"
            params.append(rule_id)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(limit)
        ids = [row[0] for row in self._conn.execute(sql, params)]
        return [alert for alert_id in ids if (alert := self.get_alert(alert_id)) is not None]

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT id, rule_id, story_id, item_key, created_at, updated_at, item_count, payload, silence_id "
            "FROM alerts WHERE id = ?",
            (alert_id,),
        ).fetchone()
        if row is None:
            return None
        items = [
            {"key": r[0], "link": r[1], "feed": r[2], "title": r[3], "added_at": r[4]}
            for r in self._conn.execute(
                "SELECT ai.item_key, i.link, i.feed_url, i.title, ai.added_at FROM alert_items ai "
                "LEFT JOIN items i ON i.key = ai.item_key WHERE ai.alert_id = ? ORDER BY ai.added_at, ai.rowid",
                (alert_id,),
            )
        ]
        return {
            "id": row[0],
            "rule": row[1],
            "story": row[2],
            "item_key": row[3],
            "created_at": row[4],
            "updated_at": row[5],
            "item_count": row[6],
            "payload": json.loads(row[7]),
            "silenced_by": row[8],
            "items": items,
            "deliveries": [
                d.as_json() for d in self.list_deliveries(alert_id=alert_id, statuses=None, limit=1000)
            ],
        }

    def list_stories(self, *, limit: int = 50) -> list[StoryRow]:
        """The most recently updated stories with their items (see `StoryRow`)."""
        rows = self._conn.execute(
            "SELECT id, title, created_at, updated_at, item_count FROM stories "
            "ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            StoryRow(r[0], r[1], _req_dt(r[2]), _req_dt(r[3]), r[4], self._story_items(r[0])) for r in rows
        ]

    def get_story(self, story_id: str) -> StoryRow | None:
        """One story with its items and how each joined it; None when there is no such story."""
        row = self._conn.execute(
            "SELECT id, title, created_at, updated_at, item_count FROM stories WHERE id = ?", (story_id,)
        ).fetchone()
        if row is None:
            return None
        return StoryRow(row[0], row[1], _req_dt(row[2]), _req_dt(row[3]), row[4], self._story_items(row[0]))

    def _story_items(self, story_id: str) -> tuple[dict[str, Any], ...]:
        return tuple(
            {
                "key": i[0],
                "link": i[1],
                "feed": i[2],
                "title": i[3],
                "language": i[9] or i[4],
                "feed_title": i[5],
                "published": i[6],
                "tier": i[7],
                "reason": i[8],
                "score": i[10],
                "matched": i[11],
                "evidence": json.loads(i[12]) if i[12] else [],
            }
            for i in self._conn.execute(
                "SELECT i.key, i.link, i.feed_url, i.title, i.language, i.feed_title, "
                "COALESCE(i.published, i.fetched_at), m.tier, m.reason, m.language, m.score, m.matched_item_key, "
                "m.evidence FROM items i LEFT JOIN story_members m ON m.item_key = i.key WHERE i.story_id = ? "
                "ORDER BY i.fetched_at, i.rowid",
                (story_id,),
            )
        )

    # -- outbox: implements monitor.notify.DeliveryQueue -----------------------------------------------------

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]:
        """Reserve due pending deliveries (oldest first; of `channel` only, when given) for DELIVERY_LEASE and
        return them with their alert payloads. Claiming counts as an attempt, so a delivery that kills its
        worker is still counted."""
        lease = _iso(now + self.delivery_lease)
        holder = self.node.id if self.node is not None else None
        with self.transaction() as tx:
            rows = tx.execute(
                "SELECT id, channel, attempts, created_at, digest, notice, kind, story_id, in_reply_to "
                "FROM deliveries "
                "WHERE status = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
                "AND (? IS NULL OR channel = ?) ORDER BY next_attempt_at, created_at LIMIT ?",
                (_iso(now), _iso(now), channel, channel, limit),
            ).fetchall()
            requests = []
            for (
                delivery_id,
                channel,
                attempts,
                created_at,
                digest,
                notice,
                kind,
                story_id,
                in_reply_to,
            ) in rows:
                tx.execute(
                    "UPDATE deliveries SET lease_until = ?, attempts = attempts + 1, last_attempt_at = ?, "
                    "claim_token = claim_token + 1, claimed_by = ? WHERE id = ?",
                    (lease, _iso(now), holder, delivery_id),
                )
                token = tx.execute(
                    "SELECT claim_token FROM deliveries WHERE id = ?", (delivery_id,)
                ).fetchone()
                self._delivery_claims[delivery_id] = int(token[0])
                payloads = tuple(
                    json.loads(p[0])
                    for p in tx.execute(
                        "SELECT a.payload FROM delivery_alerts da JOIN alerts a ON a.id = da.alert_id "
                        "WHERE da.delivery_id = ? ORDER BY a.created_at, a.rowid",
                        (delivery_id,),
                    )
                )
                requests.append(
                    DeliveryRequest(
                        id=delivery_id,
                        channel=channel,
                        alerts=payloads,
                        attempt=attempts + 1,
                        created_at=_dt(created_at),
                        digest=bool(digest),
                        notice=json.loads(notice) if notice is not None else None,
                        kind=kind,
                        story_id=story_id,
                        in_reply_to=in_reply_to,
                    )
                )
        return requests

    def mark_sent(self, delivery_id: str, now: datetime) -> None:
        """The receiver accepted it. Not fenced: that it was accepted is a fact whoever holds the claim now (a
        node that took it over sends it again under the same id, which the receiver deduplicates)."""
        self._delivery_claims.pop(delivery_id, None)
        with self.transaction() as tx:
            tx.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, lease_until = NULL, last_error = NULL "
                "WHERE id = ?",
                (_iso(now), delivery_id),
            )

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None:
        """Schedule another attempt. Fenced: ignored when another claim of the delivery came after ours."""
        claim = self._delivery_claims.pop(delivery_id, None)
        with self.transaction() as tx:
            tx.execute(
                "UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL, last_error = ?, "
                "last_attempt_at = ? WHERE id = ? AND status = 'pending' AND (? IS NULL OR claim_token = ?)",
                (_iso(retry_at), error, _iso(now), delivery_id, claim, claim),
            )

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None:
        """Give up on it. Fenced like mark_retry: a stale worker cannot kill a delivery another one sends."""
        claim = self._delivery_claims.pop(delivery_id, None)
        with self.transaction() as tx:
            tx.execute(
                "UPDATE deliveries SET status = 'dead', lease_until = NULL, last_error = ?, last_attempt_at = ? "
                "WHERE id = ? AND status != 'sent' AND (? IS NULL OR claim_token = ?)",
                (error, _iso(now), delivery_id, claim, claim),
            )

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO disabled_channels (channel, reason, disabled_at) VALUES (?, ?, ?) "
                "ON CONFLICT (channel) DO UPDATE SET reason = excluded.reason, disabled_at = excluded.disabled_at",
                (channel, reason, _iso(now)),
            )

    def enable_channel(self, channel: str) -> bool:
        with self.transaction() as tx:
            return tx.execute("DELETE FROM disabled_channels WHERE channel = ?", (channel,)).rowcount > 0

    def disabled_channels(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT channel FROM disabled_channels")}

    def disabled_channel_reasons(self) -> dict[str, tuple[str, datetime]]:
        return {
            row[0]: (row[1], _req_dt(row[2]))
            for row in self._conn.execute("SELECT channel, reason, disabled_at FROM disabled_channels")
        }

    def list_deliveries(
        self,
        *,
        statuses: Sequence[str] | None = ("pending", "dead"),
        alert_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        sql = (
            "SELECT d.id, d.channel, d.status, d.digest, d.created_at, d.next_attempt_at, d.attempts, "
            "d.last_attempt_at, d.last_error, d.sent_at, d.kind, d.story_id, d.in_reply_to FROM deliveries d"
        )
        where: list[str] = []
        params: list[Any] = []
        if alert_id is not None:
            where.append("d.id IN (SELECT delivery_id FROM delivery_alerts WHERE alert_id = ?)")
            params.append(alert_id)
        if statuses is not None:
            where.append(f"d.status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.created_at, d.rowid LIMIT ?"
        params.append(limit)
        result = []
        for r in self._conn.execute(sql, params).fetchall():
            alert_ids = tuple(
                row[0]
                for row in self._conn.execute(
                    "SELECT alert_id FROM delivery_alerts WHERE delivery_id = ? ORDER BY alert_id", (r[0],)
                )
            )
            result.append(
                DeliveryRow(
                    id=r[0],
                    channel=r[1],
                    status=r[2],
                    digest=bool(r[3]),
                    created_at=_req_dt(r[4]),
                    next_attempt_at=_req_dt(r[5]),
                    attempts=r[6],
                    last_attempt_at=_dt(r[7]),
                    last_error=r[8],
                    sent_at=_dt(r[9]),
                    alert_ids=alert_ids,
                    kind=r[10],
                    story_id=r[11],
                    in_reply_to=r[12],
                )
            )
        return result

    def retry_deliveries(self, now: datetime, *, ids: Sequence[str] = (), all_dead: bool = False) -> int:
        """Put dead (or failing pending) deliveries back in the queue, due now. Returns how many."""
        with self.transaction() as tx:
            count = 0
            if all_dead:
                count += tx.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, lease_until = NULL "
                    "WHERE status = 'dead'",
                    (_iso(now),),
                ).rowcount
            for delivery_id in ids:
                count += tx.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, lease_until = NULL "
                    "WHERE id = ? AND status != 'sent'",
                    (_iso(now), delivery_id),
                ).rowcount
            return count

    def release_claims(self, now: datetime) -> int:
        """Make every claimed but unresolved delivery due again now; returns how many.

        Call it only while holding the database's process lock (monitor.service.DatabaseLock): then no live
        worker holds a claim, and a lease still set belongs to a process that died or was stopped mid-send.
        Every outcome of a claim (sent, retry, dead) clears the lease, so the lease marks exactly the
        abandoned ones. They are re-sent with the same delivery id (at-least-once) at once, instead of after
        the lease would have run out."""
        with self.transaction() as tx:
            # Feed leases too: a fetch that was in flight never committed, so the feed is simply due.
            tx.execute("UPDATE feeds SET lease_until = NULL WHERE lease_until IS NOT NULL")
            return tx.execute(
                "UPDATE deliveries SET lease_until = NULL, next_attempt_at = MIN(next_attempt_at, ?) "
                "WHERE status = 'pending' AND lease_until IS NOT NULL",
                (_iso(now),),
            ).rowcount

    def delivery_counts(self) -> dict[str, int]:
        return {
            row[0]: row[1]
            for row in self._conn.execute(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
            ).fetchall()
        }

    # -- nodes, cluster jobs, story assignment ----------------------------------------------------------------

    def register_node(self, now: datetime) -> None:
        """Record this store's node as started (its first heartbeat)."""
        node = self._require_node()
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO nodes (id, host, pid, version, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (node.id, node.host, node.pid, node.version, _iso(now), _iso(now)),
            )

    def heartbeat(self, now: datetime) -> None:
        node = self._require_node()
        with self.transaction() as tx:
            tx.execute("UPDATE nodes SET heartbeat_at = ? WHERE id = ?", (_iso(now), node.id))

    def stop_node(self, now: datetime) -> int:
        """Record this node as stopped and give back what it still holds: feed leases (the feeds stay due)
        and delivery claims (due again now). Returns how many were given back."""
        node = self._require_node()
        with self.transaction() as tx:
            tx.execute(
                "UPDATE nodes SET stopped_at = ?, heartbeat_at = ? WHERE id = ?",
                (_iso(now), _iso(now), node.id),
            )
            return self._release_held(tx, [node.id], now)

    def reap_nodes(self, now: datetime, dead_after: timedelta) -> int:
        """Release the leases and claims of nodes not heard from for `dead_after` (killed, frozen, cut off),
        so their feeds and deliveries are taken over now rather than when each lease runs out. Safe even if
        such a node is only paused: its late writes carry stale fencing tokens and are refused."""
        me = self.node.id if self.node is not None else None
        with self.transaction() as tx:
            dead = [
                row[0]
                for row in tx.execute(
                    "SELECT id FROM nodes WHERE heartbeat_at < ? AND (? IS NULL OR id != ?)",
                    (_iso(now - dead_after), me, me),
                )
            ]
            return self._release_held(tx, dead, now) if dead else 0

    def _release_held(self, tx: sqlite3.Connection, nodes: Sequence[str], now: datetime) -> int:
        names = _json(list(nodes))
        feeds = tx.execute(
            "UPDATE feeds SET lease_until = NULL WHERE lease_until IS NOT NULL "
            "AND claimed_by IN (SELECT value FROM json_each(?))",
            (names,),
        ).rowcount
        deliveries = tx.execute(
            "UPDATE deliveries SET lease_until = NULL, next_attempt_at = MIN(next_attempt_at, ?) "
            "WHERE status = 'pending' AND lease_until IS NOT NULL AND claimed_by IN (SELECT value FROM json_each(?))",
            (_iso(now), names),
        ).rowcount
        return feeds + deliveries

    def list_nodes(self, now: datetime) -> list[NodeRow]:
        """Every node recorded (newest heartbeat first) with its share of the feeds and what it holds now."""
        rows = self._conn.execute(
            "SELECT n.id, n.host, n.pid, n.version, n.started_at, n.heartbeat_at, n.stopped_at, "
            "(SELECT COUNT(*) FROM feeds f WHERE f.claimed_by = n.id AND f.active = 1), "
            "(SELECT COUNT(*) FROM feeds f WHERE f.claimed_by = n.id AND f.lease_until > ?), "
            "(SELECT COUNT(*) FROM deliveries d WHERE d.claimed_by = n.id AND d.status = 'pending' "
            "AND d.lease_until > ?) FROM nodes n ORDER BY n.heartbeat_at DESC, n.id",
            (_iso(now), _iso(now)),
        ).fetchall()
        return [
            NodeRow(r[0], r[1], r[2], r[3], _req_dt(r[4]), _req_dt(r[5]), _dt(r[6]), r[7], r[8], r[9])
            for r in rows
        ]

    def claim_job(self, name: str, now: datetime, every: timedelta) -> bool:
        """True when this node is the one to run the cluster job `name` now: nobody ran it within `every`.
        The first caller of a period wins; the others get False until the period is over."""
        holder = self.node.id if self.node is not None else "cli"
        with self.transaction() as tx:
            return (
                tx.execute(
                    "INSERT INTO cluster_jobs (name, holder, ran_at, until) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, ran_at = excluded.ran_at, "
                    "until = excluded.until WHERE cluster_jobs.until <= excluded.ran_at",
                    (name, holder, _iso(now), _iso(now + every)),
                ).rowcount
                > 0
            )

    def story_lock(self) -> AbstractContextManager[None]:
        """Held from catching up the story index to committing the items assigned. One process writes an
        SQLite file, so there is nobody to exclude: a no-op."""
        return nullcontext()

    def item_seq(self) -> int:
        """The commit sequence number of the newest item (0 when there is none): the rowid on SQLite."""
        row = self._conn.execute("SELECT MAX(rowid) FROM items").fetchone()
        return int(row[0] or 0)

    def items_after(self, seq: int, since: datetime) -> tuple[list[dict[str, Any]], int]:
        """Items committed after sequence number `seq` and inside the story window (`since`), as
        `story_signatures` gives them, and the newest sequence number seen."""
        rows = self._signature_rows("i.rowid > ?", (seq,), since)
        newest = max((row["seq"] for row in rows), default=seq)
        return rows, max(newest, seq)

    def _require_node(self) -> NodeInfo:
        if self.node is None:
            raise StoreError(
                "this store was opened without a node identity (monitor.store.open_store(node=...))"
            )
        return self.node

    # -- housekeeping ------------------------------------------------------------------------------------------

    def prune(self, now: datetime, *, item_max_age: timedelta, key_max_age: timedelta) -> dict[str, int]:
        """Delete items (and their matches) older than item_max_age, and identity keys not seen for
        key_max_age. Alerts, stories and the outbox keep their own history; sent deliveries older than the
        item age go too. Returns counts per table."""
        item_cutoff = _iso(now - item_max_age)
        key_cutoff = _iso(now - key_max_age)
        with self.transaction() as tx:
            matches = tx.execute(
                "DELETE FROM matches WHERE item_key IN (SELECT key FROM items WHERE fetched_at < ?)",
                (item_cutoff,),
            ).rowcount
            tx.execute(
                "DELETE FROM story_members WHERE item_key IN (SELECT key FROM items WHERE fetched_at < ?)",
                (item_cutoff,),
            )
            items = tx.execute("DELETE FROM items WHERE fetched_at < ?", (item_cutoff,)).rowcount
            keys = tx.execute("DELETE FROM seen_keys WHERE last_seen < ?", (key_cutoff,)).rowcount
            sent = tx.execute(
                "DELETE FROM deliveries WHERE status = 'sent' AND sent_at < ?", (item_cutoff,)
            ).rowcount
            tx.execute("DELETE FROM delivery_alerts WHERE delivery_id NOT IN (SELECT id FROM deliveries)")
            # Nodes not heard from for a week are history; `monitor nodes` shows the recent ones.
            tx.execute("DELETE FROM nodes WHERE heartbeat_at < ?", (_iso(now - NODE_HISTORY),))
        return {"items": items, "matches": matches, "seen_keys": keys, "deliveries": sent}

    # -- WebSub subscriptions ---------------------------------------------------------------------------------

    def record_hub(
        self, feed_url: str, hub: str, topic: str, now: datetime, secret: str, callback_id: str
    ) -> bool:
        with self.transaction() as tx:
            row = tx.execute(
                "SELECT hub, topic FROM websub_subscriptions WHERE feed_url = ?", (feed_url,)
            ).fetchone()
            if row is not None and (row[0], row[1]) == (hub, topic):
                return False
            tx.execute("DELETE FROM websub_subscriptions WHERE feed_url = ?", (feed_url,))
            tx.execute(
                "INSERT INTO websub_subscriptions (feed_url, hub, topic, callback_id, secret, state, discovered_at) "
                "VALUES (?, ?, ?, ?, ?, 'discovered', ?)",
                (feed_url, hub, topic, callback_id, secret, _iso(now)),
            )
            return True

    def save_websub(self, row: WebSubRow) -> None:
        with self.transaction() as tx:
            tx.execute(
                "UPDATE websub_subscriptions SET hub = ?, topic = ?, callback_id = ?, secret = ?, state = ?, "
                "discovered_at = ?, requested_at = ?, verified_at = ?, expires_at = ?, lease_seconds = ?, "
                "last_error = ? WHERE feed_url = ?",
                (
                    row.hub,
                    row.topic,
                    row.callback_id,
                    row.secret,
                    row.state,
                    _iso(row.discovered_at),
                    _iso(row.requested_at),
                    _iso(row.verified_at),
                    _iso(row.expires_at),
                    row.lease_seconds,
                    row.last_error,
                    row.feed_url,
                ),
            )

    def websub_subscriptions(self) -> list[WebSubRow]:
        return [
            _websub(row)
            for row in self._conn.execute(f"SELECT {_WEBSUB} FROM websub_subscriptions ORDER BY feed_url")
        ]

    def websub_by_callback(self, callback_id: str) -> WebSubRow | None:
        row = self._conn.execute(
            f"SELECT {_WEBSUB} FROM websub_subscriptions WHERE callback_id = ?", (callback_id,)
        ).fetchone()
        return _websub(row) if row is not None else None

    def counts(self) -> dict[str, int]:
        tables = ("feeds", "items", "seen_keys", "matches", "stories", "alerts", "deliveries")
        return {t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}


def delivery_id_for(alert_id: str, channel: str) -> str:
    """Deterministic: the same alert to the same channel always has the same delivery (idempotency) id."""
    import hashlib

    digest = hashlib.sha256(f"{alert_id}\0{channel}".encode()).hexdigest()[:26]
    return f"msg_{digest}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _split_sql(script: str) -> list[str]:
    # Migrations hold no semicolons inside literals, so a plain split is exact; comments are kept per statement.
    return [s.strip() for s in script.split(";") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.splitlines())


_WEBSUB = "feed_url, hub, topic, callback_id, secret, state, discovered_at, requested_at, verified_at, expires_at, lease_seconds, last_error"


def _websub(row: Sequence[Any]) -> WebSubRow:
    return WebSubRow(
        feed_url=row[0],
        hub=row[1],
        topic=row[2],
        callback_id=row[3],
        secret=row[4],
        state=row[5],
        discovered_at=_req_dt(row[6]),
        requested_at=_dt(row[7]),
        verified_at=_dt(row[8]),
        expires_at=_dt(row[9]),
        lease_seconds=row[10],
        last_error=row[11],
    )
