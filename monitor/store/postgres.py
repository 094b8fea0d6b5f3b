"""The PostgreSQL store: the same state and guarantees as the SQLite store, for several daemons on one database.

psycopg 3 with a connection pool (psycopg_pool). Connections run in autocommit, so a read is one round trip;
writes run in explicit transactions (`transaction`), one per unit of atomicity exactly as on SQLite: everything
one fetch produced commits together (`commit_fetch`).

What several writers need, and SQLite's single writer did not:
- **Feed claims** (`claim_feeds`): due feeds are leased with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
  take disjoint feeds without waiting on each other, until `lease_until`, with a fencing token that grows with
  every claim. `commit_fetch` and `record_fetch_failure` write only while the token is still the feed's
  (StaleClaimError otherwise): a node that paused past its lease cannot overwrite the fetch of the node that
  took the feed over.
- **Delivery claims** (`claim_due`): the same pattern on the outbox; the outcome of a stale claim (retry, dead)
  is ignored. A delivery is never sent by two nodes at once unless a lease ran out mid-send, and then under
  the same id.
- **Story assignment** (`story_lock`): a transaction holding `pg_advisory_xact_lock` on one key per database,
  from catching the in-memory story index up with the items other nodes committed (`items_after`, by
  `items.seq`) to the commit of the items it assigned. Items are only ever inserted under that lock, so
  sequence numbers become visible in order, and a node that has seen seq n has seen every item before it.
- **Nodes** (`register_node`, `heartbeat`, `reap_nodes`) and **cluster jobs** (`claim_job`: housekeeping once
  per cluster and period).

Timestamps are TIMESTAMPTZ and come back as aware UTC datetimes; what SQLite returns as ISO text in dicts
(`get_alert`, `list_alerts`) is formatted the same way here (monitor.timeutil.to_iso), so the CLI prints the
same bytes on both backends.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from monitor.dburl import PostgresURL
from monitor.errors import StoreError
from monitor.health import FeedHealth, HealthDecision, gaps_between
from monitor.logs import redact
from monitor.store.pg_schema import MIGRATIONS
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
from monitor.store.sqlite import DELIVERY_LEASE, NODE_HISTORY, delivery_id_for
from monitor.timeutil import to_iso
from monitor.types import DeliveryRequest, FeedState, Item

__all__ = ["MIGRATION_LOCK_KEY", "STORY_LOCK_KEY", "PostgresStore"]

log = logging.getLogger("monitor.store")

# Advisory lock keys (advisory locks are per database, so two installations on one server never meet).
MIGRATION_LOCK_KEY = 0x6D6F6E69746F7201  # "monito r" 1
STORY_LOCK_KEY = 0x6D6F6E69746F7202
CONNECT_TIMEOUT = 10  # seconds, for the first connection (the error names the cause)
POOL_SIZE = 4

Conn = psycopg.Connection[TupleRow]
_T = TypeVar("_T")


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _req(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment.astimezone(UTC)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class PostgresStore:
    """All persistent state of one monitor installation, in one PostgreSQL database shared by its nodes."""

    concurrent = True

    def __init__(
        self,
        url: PostgresURL,
        *,
        node: NodeInfo | None = None,
        delivery_lease: timedelta = DELIVERY_LEASE,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.url = url
        self.node = node
        self.delivery_lease = delivery_lease
        self.round_trips = 0  # statements, BEGINs and COMMITs sent: the benchmark's "round trips per poll"
        self._delivery_claims: dict[str, int] = {}
        self._local = threading.local()
        application = f"monitor {node.id}" if node is not None else "monitor"
        # The first connection is made directly, so a refusal reports libpq's own reason (the pool would only
        # say it timed out).
        try:
            psycopg.connect(url.url, connect_timeout=CONNECT_TIMEOUT, application_name=application).close()
        except psycopg.Error as exc:
            raise StoreError(f"{url}: cannot connect to PostgreSQL: {_reason(exc)}") from None
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url.url,
            min_size=1,
            max_size=max(pool_size, 1),
            kwargs={"autocommit": True, "application_name": application, "connect_timeout": CONNECT_TIMEOUT},
            open=False,
            name="monitor",
            # How long a call waits for a connection (all busy, or the server unreachable) before it fails
            # with a StoreError, instead of psycopg_pool's 30 s.
            timeout=CONNECT_TIMEOUT,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        """The connection of the transaction this thread is in, else one from the pool (autocommit)."""
        current: Conn | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            # Connection lost, server shutting down, disk full, lock timeout...: one line naming the database
            # (masked); the pool drops the broken connection, so the next call starts on a fresh one.
            raise StoreError(f"{self.url}: {_reason(exc)}") from exc
        except PoolTimeout as exc:
            raise StoreError(
                f"{self.url}: no connection to PostgreSQL within {CONNECT_TIMEOUT}s: {exc}"
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """BEGIN ... COMMIT, rolled back on any exception. Called inside another transaction of this thread
        (story_lock around commit_fetch), it joins that one: the outer transaction commits everything."""
        current: Conn | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        try:
            with self._pool.connection() as conn:
                self.round_trips += 2  # BEGIN, COMMIT
                with conn.transaction():
                    self._local.conn = conn
                    try:
                        yield conn
                    finally:
                        self._local.conn = None
        except psycopg.errors.UniqueViolation as exc:
            raise StoreError(f"{self.url}: a concurrent write conflicted: {_reason(exc)}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"{self.url}: {_reason(exc)}") from exc
        except PoolTimeout as exc:
            raise StoreError(
                f"{self.url}: no connection to PostgreSQL within {CONNECT_TIMEOUT}s: {exc}"
            ) from exc

    def _x(self, conn: Conn, sql: LiteralString, params: Sequence[Any] = ()) -> psycopg.Cursor[TupleRow]:
        self.round_trips += 1
        return conn.execute(sql, params)

    def _many(self, conn: Conn, sql: LiteralString, rows: Sequence[Sequence[Any]]) -> None:
        """One statement over many rows: psycopg pipelines them, so it costs about one round trip."""
        if not rows:
            return
        self.round_trips += 1
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def _rows(self, sql: LiteralString, params: Sequence[Any] = ()) -> list[TupleRow]:
        return self._read(sql, params, lambda cursor: cursor.fetchall())

    def _one(self, sql: LiteralString, params: Sequence[Any] = ()) -> TupleRow | None:
        return self._read(sql, params, lambda cursor: cursor.fetchone())

    def _read(
        self, sql: LiteralString, params: Sequence[Any], fetch: Callable[[psycopg.Cursor[TupleRow]], _T]
    ) -> _T:
        """A read outside a transaction. When the server had ended the pooled connection (a restart, a
        failover), the read is tried once more on a fresh one: a read is safe to repeat, and every connection
        the pool held would otherwise fail one call each. Writes are never repeated (a lost COMMIT may have
        happened); they fail with the StoreError and the caller's retry decides."""
        in_transaction = getattr(self._local, "conn", None) is not None
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    return fetch(self._x(conn, sql, params))
            except StoreError as exc:
                if in_transaction or attempt == 2 or not _connection_lost(exc.__cause__):
                    raise
        raise AssertionError("unreachable")

    def _migrate(self) -> None:
        with self.transaction() as tx:
            self._x(tx, "SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            self._x(
                tx,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            row = self._x(tx, "SELECT MAX(version) FROM schema_migrations").fetchone()
            current = int(row[0] or 0) if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{self.url}: schema version {current} is newer than this monitor knows ({len(MIGRATIONS)}); "
                    "upgrade monitor"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                # One transaction for all pending migrations, under the lock: nodes starting together migrate
                # once, and a failure leaves the database at the version it had.
                # A migration is several statements: sent without parameters, as one simple query.
                self._x(tx, MIGRATIONS[version - 1])
                self._x(tx, "INSERT INTO schema_migrations (version) VALUES (%s)", (version,))

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0

    # -- feeds: the schedule of record ------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[tuple[str, timedelta]], now: datetime) -> None:
        wanted = {url: interval.total_seconds() for url, interval in feeds}
        with self.transaction() as tx:
            # Several nodes may start at once with the same config: the upsert makes that harmless.
            self._many(
                tx,
                "INSERT INTO feeds (url, interval_seconds, next_fetch_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (url) DO UPDATE SET interval_seconds = excluded.interval_seconds, active = TRUE, "
                "next_fetch_at = CASE WHEN feeds.active THEN feeds.next_fetch_at ELSE excluded.next_fetch_at END",
                [(url, seconds, now) for url, seconds in wanted.items()],
            )
            self._x(
                tx, "UPDATE feeds SET active = FALSE WHERE active AND NOT (url = ANY(%s))", (list(wanted),)
            )

    def due_feeds(self, now: datetime, limit: int = 1000) -> list[FeedState]:
        rows = self._rows(
            f"SELECT {_STATE_COLUMNS} FROM feeds WHERE active AND parked_at IS NULL AND next_fetch_at <= %s "
            "AND (lease_until IS NULL OR lease_until <= %s) ORDER BY next_fetch_at LIMIT %s",
            (now, now, limit),
        )
        return [_state(row) for row in rows]

    def claim_feeds(
        self, now: datetime, lease: timedelta, *, limit: int = 100, urls: Sequence[str] | None = None
    ) -> list[FeedClaim]:
        if limit <= 0:
            return []
        holder = self.node.id if self.node is not None else None
        until = now + lease
        with self.transaction() as tx:
            rows = self._x(
                tx,
                "WITH due AS (SELECT url FROM feeds WHERE active AND parked_at IS NULL "
                "AND (%s::text[] IS NOT NULL OR next_fetch_at <= %s) "
                "AND (%s::text[] IS NULL OR url = ANY(%s::text[])) "
                "AND (lease_until IS NULL OR lease_until <= %s) "
                "ORDER BY next_fetch_at, url LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE feeds f SET claim_token = f.claim_token + 1, lease_until = %s, claimed_by = %s "
                f"FROM due WHERE f.url = due.url RETURNING {_STATE_COLUMNS_F}, f.claim_token",
                (
                    list(urls) if urls is not None else None,
                    now,
                    list(urls) if urls is not None else None,
                    list(urls) if urls is not None else None,
                    now,
                    limit,
                    until,
                    holder,
                ),
            ).fetchall()
        claims = [FeedClaim(_state(row[:-1]), int(row[-1]), until) for row in rows]
        claims.sort(key=lambda c: (c.state.next_fetch_at or now, c.url))
        return claims

    def release_feed(self, url: str, claim: int) -> None:
        with self.transaction() as tx:
            self._x(
                tx, "UPDATE feeds SET lease_until = NULL WHERE url = %s AND claim_token = %s", (url, claim)
            )

    def feed_state(self, url: str) -> FeedState | None:
        row = self._one(f"SELECT {_STATE_COLUMNS} FROM feeds WHERE url = %s", (url,))
        return _state(row) if row is not None else None

    def list_feeds(self) -> list[FeedRow]:
        rows = self._rows(
            "SELECT url, title, active, interval_seconds, next_fetch_at, last_fetched_at, last_success_at, "
            "error_count, last_error, etag, last_modified, parked_at, parked_reason, moved_to FROM feeds ORDER BY url"
        )
        return [
            FeedRow(
                url=r[0],
                title=r[1],
                active=bool(r[2]),
                interval_seconds=r[3],
                next_fetch_at=_req(r[4]),
                last_fetched_at=_utc(r[5]),
                last_success_at=_utc(r[6]),
                error_count=r[7],
                last_error=r[8],
                etag=r[9],
                last_modified=r[10],
                parked_at=_utc(r[11]),
                parked_reason=r[12],
                moved_to=r[13],
            )
            for r in rows
        ]

    def record_fetch_failure(
        self, url: str, error: str, now: datetime, next_fetch_at: datetime, *, claim: int | None = None
    ) -> None:
        with self.transaction() as tx:
            changed = self._x(
                tx,
                "UPDATE feeds SET error_count = error_count + 1, last_error = %s, last_fetched_at = %s, "
                "next_fetch_at = %s, failing_since = COALESCE(failing_since, %s), lease_until = NULL "
                "WHERE url = %s AND (%s::bigint IS NULL OR claim_token = %s)",
                (error, now, next_fetch_at, now, url, claim, claim),
            ).rowcount
            if not changed and claim is not None:
                raise StaleClaimError(
                    f"feed {url}: claim {claim} is no longer current; the failure is not recorded"
                )

    # -- feed health -------------------------------------------------------------------------------------------

    def feed_health(self, url: str, interval: timedelta, history: int = 20) -> FeedHealth | None:
        row = self._one(
            "SELECT url, title, error_count, last_error, failing_since, last_success_at, last_new_item_at, "
            "health_notified, churn_notified_at, parked_at FROM feeds WHERE url = %s",
            (url,),
        )
        if row is None:
            return None
        moments = [
            _req(r[0])
            for r in self._rows(
                "SELECT DISTINCT fetched_at FROM items WHERE feed_url = %s ORDER BY fetched_at DESC LIMIT %s",
                (url, history + 1),
            )
        ]
        return FeedHealth(
            url=row[0],
            title=row[1],
            interval=interval,
            error_count=row[2],
            last_error=row[3],
            failing_since=_utc(row[4]),
            last_success_at=_utc(row[5]),
            last_new_item_at=_utc(row[6]),
            notified=frozenset(filter(None, row[7].split(","))),
            churn_notified_at=_utc(row[8]),
            parked_at=_utc(row[9]),
            new_item_gaps=gaps_between(moments),
        )

    def record_health(
        self,
        url: str,
        decision: HealthDecision,
        notices: Sequence[tuple[dict[str, Any], Sequence[str]]],
        now: datetime,
    ) -> None:
        with self.transaction() as tx:
            self._x(
                tx,
                "UPDATE feeds SET health_notified = %s, "
                "churn_notified_at = CASE WHEN %s THEN %s ELSE churn_notified_at END, "
                "parked_at = CASE WHEN %s::text IS NOT NULL THEN COALESCE(parked_at, %s) ELSE parked_at END, "
                "parked_reason = COALESCE(%s, parked_reason) WHERE url = %s",
                (
                    ",".join(sorted(decision.notified)),
                    decision.churn_notified,
                    now,
                    decision.park_reason,
                    now,
                    decision.park_reason,
                    url,
                ),
            )
            self._many(
                tx,
                "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, notice, kind) "
                "VALUES (%s, %s, 'pending', FALSE, %s, %s, %s::json, 'notice') ON CONFLICT (id) DO NOTHING",
                [
                    (delivery_id_for(payload["id"], channel), channel, now, now, _json(payload))
                    for payload, channels in notices
                    for channel in channels
                ],
            )

    def notices_since(self, since: datetime) -> int:
        row = self._one(
            "SELECT COUNT(DISTINCT notice->>'id') FROM deliveries WHERE notice IS NOT NULL AND created_at >= %s",
            (since,),
        )
        return int(row[0] or 0) if row else 0

    def unpark_feed(self, url: str, now: datetime) -> bool:
        with self.transaction() as tx:
            changed = self._x(
                tx,
                "UPDATE feeds SET parked_at = NULL, parked_reason = NULL, failing_since = NULL, error_count = 0, "
                "health_notified = '', next_fetch_at = %s WHERE url = %s AND parked_at IS NOT NULL",
                (now, url),
            ).rowcount
        return bool(changed)

    def feed_item_counts(self, since: datetime) -> tuple[dict[str, int], dict[str, datetime]]:
        counts: dict[str, int] = {}
        first: dict[str, datetime] = {}
        for url, count, earliest in self._rows(
            "SELECT feed_url, COUNT(*) FILTER (WHERE fetched_at >= %s), MIN(fetched_at) FROM items "
            "GROUP BY feed_url",
            (since,),
        ):
            counts[url] = int(count or 0)
            first[url] = _req(earliest)
        return counts, first

    def feed_arrivals(self, url: str, since: datetime, limit: int = 5000) -> list[datetime]:
        rows = self._rows(
            "SELECT fetched_at FROM items WHERE feed_url = %s AND fetched_at >= %s "
            "ORDER BY fetched_at DESC LIMIT %s",
            (url, since, limit),
        )
        return [_req(row[0]) for row in rows]

    # -- items -------------------------------------------------------------------------------------------------

    def unseen_keys(self, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        seen = {row[0] for row in self._rows("SELECT key FROM seen_keys WHERE key = ANY(%s)", (wanted,))}
        return set(wanted) - seen

    def seen_content_hashes(self, feed_url: str, hashes: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return set()
        return {
            row[0]
            for row in self._rows(
                "SELECT content_hash FROM seen_keys WHERE feed_url = %s AND content_hash = ANY(%s)",
                (feed_url, wanted),
            )
        }

    def story_signatures(self, since: datetime) -> list[dict[str, Any]]:
        return self._signature_rows(0, since)

    def _signature_rows(self, after: int, since: datetime) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT i.key, i.story_id, i.signature, LEAST(COALESCE(i.published, i.fetched_at), i.fetched_at), "
            "i.url, i.content_hash, i.title, i.summary, i.feed_url, COALESCE(m.language, i.language), "
            "m.event_features, i.seq FROM items i LEFT JOIN story_members m ON m.item_key = i.key "
            "WHERE i.seq > %s AND LEAST(COALESCE(i.published, i.fetched_at), i.fetched_at) >= %s "
            "ORDER BY i.fetched_at, i.seq",
            (after, since),
        )
        return [
            {
                "item_key": r[0],
                "story_id": r[1],
                "signature": bytes(r[2]) if r[2] is not None else None,
                "published": _req(r[3]),
                "url": r[4],
                "content_hash": r[5],
                "title": r[6],
                "summary": r[7],
                "source": r[8],
                "language": r[9],
                "event_features": bytes(r[10]) if r[10] is not None else None,
                "seq": int(r[11]),
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
        """See Store.commit_fetch."""
        now = update.fetched_at
        created: list[tuple[str, str]] = []
        with self.transaction() as tx:
            if new_items and getattr(self._local, "story_locked", False) is False:
                # Items enter only under the story lock, so their sequence numbers become visible in order
                # (see items_after); a caller outside story_lock gets it here.
                self._x(tx, "SELECT pg_advisory_xact_lock(%s)", (STORY_LOCK_KEY,))
            changed = self._update_feed(tx, update, bool(new_items))
            if not changed and update.claim is not None:
                raise StaleClaimError(
                    f"feed {update.url}: claim {update.claim} is no longer current (its lease ran out and the "
                    "feed was claimed again); this fetch is discarded"
                )
            if new_items:
                self._insert_items(tx, new_items, now)
            self._many(
                tx,
                "INSERT INTO seen_keys (key, feed_url, content_hash, first_seen, last_seen) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
                [(key, update.url, content_hash, now, now) for key, content_hash in also_seen],
            )
            # The fetch's alerts and their first items go as one pipelined statement each (in order, so their
            # seq keeps the order they were decided in); only the outbox routing is per alert and channel.
            self._many(
                tx,
                "INSERT INTO alerts (id, rule_id, story_id, item_key, created_at, updated_at, item_count, "
                "payload, generation, silence_id) VALUES (%s, %s, %s, %s, %s, %s, 1, %s::json, %s, %s)",
                [
                    (
                        a.id,
                        a.rule_id,
                        a.story_id,
                        a.item_key,
                        now,
                        now,
                        _json(a.payload),
                        a.generation,
                        a.silence_id,
                    )
                    for a in alerts
                ],
            )
            self._many(
                tx,
                "INSERT INTO alert_items (alert_id, item_key, added_at) VALUES (%s, %s, %s)",
                [(a.id, a.item_key, now) for a in alerts],
            )
            for alert in alerts:
                created += self._insert_alert(tx, alert, now, digests or {}, per_rule, group_intervals or {})
            # Every folded item, then each alert's newest payload once (see sqlite._last_payloads).
            self._many(
                tx,
                "INSERT INTO alert_items (alert_id, item_key, added_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(a.alert_id, a.item_key, now) for a in attachments],
            )
            self._many(
                tx,
                "UPDATE alerts SET payload = %s::json, updated_at = %s, "
                "item_count = (SELECT COUNT(*) FROM alert_items WHERE alert_id = %s) WHERE id = %s",
                [(_json(a.payload), now, a.alert_id, a.alert_id) for a in last_payloads(attachments)],
            )
            for escalation in escalations:
                created += self._insert_escalation(tx, escalation, now)
            if seen_again:
                self._x(
                    tx, "UPDATE seen_keys SET last_seen = %s WHERE key = ANY(%s)", (now, list(seen_again))
                )
        return created

    def _update_feed(self, tx: Conn, update: FeedUpdate, new_items: bool) -> int:
        """The feed row of a successful fetch, under its claim (if any): 1 when written, 0 when stale."""
        now = update.fetched_at
        return self._x(
            tx,
            "UPDATE feeds SET title = COALESCE(%s, title), etag = %s, last_modified = %s, "
            "last_fetched_at = %s, last_success_at = %s, next_fetch_at = %s, error_count = 0, "
            "last_error = NULL, failing_since = NULL, "
            "last_new_item_at = CASE WHEN %s THEN %s ELSE last_new_item_at END, lease_until = NULL, "
            "moved_to = COALESCE(%s, moved_to), hints = COALESCE(%s, hints) "
            "WHERE url = %s AND (%s::bigint IS NULL OR claim_token = %s)",
            (
                update.title,
                update.etag,
                update.last_modified,
                now,
                now,
                update.next_fetch_at,
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
        """See Store.commit_not_modified: one statement per update, one transaction for all of them."""
        if not updates:
            return []
        with self.transaction() as tx:
            return [bool(self._update_feed(tx, u, False)) or u.claim is None for u in updates]

    def touch_seen(self, keys: Iterable[str], now: datetime) -> None:
        batch = list(keys)
        if not batch:
            return
        with self.transaction() as tx:
            self._x(tx, "UPDATE seen_keys SET last_seen = %s WHERE key = ANY(%s)", (now, batch))

    def _insert_items(self, tx: Conn, new_items: Sequence[NewItem], now: datetime) -> None:
        self._many(
            tx,
            "INSERT INTO seen_keys (key, feed_url, content_hash, first_seen, last_seen) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
            [(n.item.key, n.item.feed_url, n.item.content_hash, now, now) for n in new_items],
        )
        # As SQLite's INSERT OR REPLACE: a replaced item gets a new sequence number (it is new to the index).
        self._many(
            tx,
            "INSERT INTO items (key, feed_url, feed_title, guid, link, url, title, summary, content, categories, "
            "language, published, fetched_at, content_hash, story_id, signature) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::json, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET seq = nextval(pg_get_serial_sequence('items', 'seq')), "
            "feed_url = excluded.feed_url, feed_title = excluded.feed_title, guid = excluded.guid, "
            "link = excluded.link, url = excluded.url, title = excluded.title, summary = excluded.summary, "
            "content = excluded.content, categories = excluded.categories, language = excluded.language, "
            "published = excluded.published, fetched_at = excluded.fetched_at, "
            "content_hash = excluded.content_hash, story_id = excluded.story_id, signature = excluded.signature",
            [
                (
                    n.item.key,
                    n.item.feed_url,
                    n.item.feed_title,
                    n.item.guid,
                    n.item.link,
                    n.item.url,
                    n.item.title,
                    n.item.summary,
                    n.item.content,
                    _json(list(n.item.categories)),
                    n.item.language,
                    n.item.published,
                    now,
                    n.item.content_hash,
                    n.story_id,
                    n.signature,
                )
                for n in new_items
            ],
        )
        self._many(
            tx,
            "INSERT INTO story_members (item_key, story_id, language, tier, reason, score, matched_item_key, "
            "evidence, event_features) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::json, %s) "
            "ON CONFLICT (item_key) DO UPDATE SET story_id = excluded.story_id, language = excluded.language, "
            "tier = excluded.tier, reason = excluded.reason, score = excluded.score, "
            "matched_item_key = excluded.matched_item_key, evidence = excluded.evidence, "
            "event_features = excluded.event_features",
            [
                (
                    n.item.key,
                    n.story_id,
                    m.language,
                    m.tier,
                    m.reason,
                    m.score,
                    m.matched_item_key,
                    _json(list(m.evidence)),
                    m.event_features,
                )
                for n in new_items
                if (m := n.membership) is not None
            ],
        )
        # Stories in the order their first items came (the seq tie-break of `list_stories`).
        self._many(
            tx,
            "INSERT INTO stories (id, title, first_item_key, created_at, updated_at, item_count) "
            "VALUES (%s, %s, %s, %s, %s, 0) ON CONFLICT (id) DO NOTHING",
            [(n.story_id, n.item.title, n.item.key, now, now) for n in new_items if n.story_is_new],
        )
        self._many(
            tx,
            "UPDATE stories SET item_count = item_count + %s, updated_at = %s WHERE id = %s",
            [(count, now, story_id) for story_id, count in items_per_story(new_items)],
        )
        self._many(
            tx,
            "INSERT INTO matches (item_key, rule_id, hits, score, created_at) VALUES (%s, %s, %s::json, %s, %s) "
            "ON CONFLICT (item_key, rule_id) DO UPDATE SET hits = excluded.hits, score = excluded.score, "
            "created_at = excluded.created_at",
            [
                (
                    n.item.key,
                    match.rule_id,
                    hits_json(match),
                    match.score,
                    now,
                )
                for n in new_items
                for match in n.matches
            ],
        )

    def _insert_alert(
        self,
        tx: Conn,
        alert: NewAlert,
        at: datetime,
        digests: Mapping[str, timedelta],
        per_rule: Collection[str],
        group_intervals: Mapping[str, timedelta],
    ) -> list[tuple[str, str]]:
        """The outbox rows of one alert (the alert row itself was inserted with the fetch's others)."""
        links: list[tuple[str, str]] = []
        created: list[tuple[str, str]] = []
        for channel in alert.channels:
            period = digests.get(channel)
            if period is not None:
                delivery_id, opened = self._open_digest(tx, channel, at, period, alert.id)
                kind = "digest"
            elif channel in per_rule:
                delivery_id, opened, kind = delivery_id_for(alert.id, channel), True, "alert"
                self._x(
                    tx,
                    "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, kind, "
                    "story_id) VALUES (%s, %s, 'pending', FALSE, %s, %s, 'alert', %s)",
                    (delivery_id, channel, at, alert.deliver_at, alert.story_id),
                )
            else:
                interval = group_intervals.get(channel, timedelta(0))
                delivery_id, opened, kind = self._route_alert(tx, alert, channel, at, interval)
            if opened:
                created.append((channel, kind))
            links.append((delivery_id, alert.id))
        self._many(tx, "INSERT INTO delivery_alerts (delivery_id, alert_id) VALUES (%s, %s)", links)
        return created

    def _route_alert(
        self, tx: Conn, alert: NewAlert, channel: str, at: datetime, group_interval: timedelta
    ) -> tuple[str, bool, str]:
        """The story notification on `channel` that `alert` goes out in (see SQLiteStore._route_alert).

        The open notification is locked (FOR UPDATE) while the alert joins it: a node claiming deliveries
        skips locked rows (SKIP LOCKED) and sees it only after our commit, with the alert in it; a claim that
        got there first set attempts = 1, which the re-checked WHERE then excludes, so a new delivery opens."""
        row = self._x(
            tx,
            "SELECT id, kind FROM deliveries WHERE story_id = %s AND channel = %s AND kind IN ('story', 'update') "
            "AND status = 'pending' AND attempts = 0 ORDER BY created_at DESC, seq DESC LIMIT 1 FOR UPDATE",
            (alert.story_id, channel),
        ).fetchone()
        if row is not None:
            due = alert.deliver_at
            if row[1] == "update":
                due = max(
                    due, self._thread_quiet_until(tx, alert.story_id, channel, group_interval, str(row[0]))
                )
            self._x(
                tx,
                "UPDATE deliveries SET next_attempt_at = LEAST(next_attempt_at, %s) WHERE id = %s",
                (due, row[0]),
            )
            return str(row[0]), False, str(row[1])
        delivery_id = delivery_id_for(alert.id, channel)
        thread = self._thread(tx, alert.story_id, channel)
        kind = "update" if thread is not None else "story"
        due = alert.deliver_at
        if thread is not None:
            due = max(due, self._thread_quiet_until(tx, alert.story_id, channel, group_interval, None))
        self._x(
            tx,
            "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, kind, story_id, "
            "in_reply_to) VALUES (%s, %s, 'pending', FALSE, %s, %s, %s, %s, %s)",
            (delivery_id, channel, at, due, kind, alert.story_id, thread),
        )
        if thread is None:
            self._x(
                tx,
                "INSERT INTO notification_threads (story_id, channel, first_delivery_id, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (alert.story_id, channel, delivery_id, at),
            )
        return delivery_id, True, kind

    def _thread_quiet_until(
        self, tx: Conn, story_id: str, channel: str, interval: timedelta, besides: str | None
    ) -> datetime:
        row = self._x(
            tx,
            "SELECT MAX(created_at) FROM deliveries WHERE story_id = %s AND channel = %s "
            "AND kind IN ('story', 'update') AND (%s::text IS NULL OR id != %s)",
            (story_id, channel, besides, besides),
        ).fetchone()
        latest = _utc(row[0]) if row is not None else None
        return latest + interval if latest is not None else datetime.min.replace(tzinfo=UTC)

    def _thread(self, tx: Conn, story_id: str, channel: str) -> str | None:
        row = self._x(
            tx,
            "SELECT first_delivery_id FROM notification_threads WHERE story_id = %s AND channel = %s",
            (story_id, channel),
        ).fetchone()
        return None if row is None else str(row[0])

    def _insert_escalation(self, tx: Conn, escalation: NewEscalation, at: datetime) -> list[tuple[str, str]]:
        """Record an escalation once per (rule, story) and queue it on its channels (see SQLiteStore)."""
        inserted = self._x(
            tx,
            "INSERT INTO escalations (rule_id, story_id, severity, outlets, payload, created_at) "
            "VALUES (%s, %s, %s, %s, %s::json, %s) ON CONFLICT DO NOTHING",
            (
                escalation.rule_id,
                escalation.story_id,
                escalation.severity,
                escalation.outlets,
                _json(escalation.payload),
                at,
            ),
        ).rowcount
        if not inserted:
            return []
        created: list[tuple[str, str]] = []
        for channel in escalation.channels:
            self._x(
                tx,
                "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, notice, kind, "
                "story_id, in_reply_to) VALUES (%s, %s, 'pending', FALSE, %s, %s, %s::json, 'escalation', %s, %s) "
                "ON CONFLICT (id) DO NOTHING",
                (
                    delivery_id_for(str(escalation.payload["id"]), channel),
                    channel,
                    at,
                    at,
                    _json(escalation.payload),
                    escalation.story_id,
                    self._thread(tx, escalation.story_id, channel),
                ),
            )
            created.append((channel, "escalation"))
        return created

    def _open_digest(
        self, tx: Conn, channel: str, at: datetime, period: timedelta, first_alert: str
    ) -> tuple[str, bool]:
        """The channel's digest delivery still collecting (never attempted), or a new one due a period from
        now. Locked while we add to it, so a node claiming it waits for our commit."""
        row = self._x(
            tx,
            "SELECT id FROM deliveries WHERE channel = %s AND digest AND status = 'pending' AND attempts = 0 "
            "ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
            (channel,),
        ).fetchone()
        if row is not None:
            return str(row[0]), False
        delivery_id = delivery_id_for(first_alert, f"digest:{channel}")
        self._x(
            tx,
            "INSERT INTO deliveries (id, channel, status, digest, created_at, next_attempt_at, kind) "
            "VALUES (%s, %s, 'pending', TRUE, %s, %s, 'digest')",
            (delivery_id, channel, at, at + period),
        )
        return delivery_id, True

    # -- alerts ------------------------------------------------------------------------------------------------

    def alert_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], AlertState]:
        wanted = sorted(set(pairs))
        if not wanted:
            return {}
        rows = self._rows(
            "SELECT DISTINCT ON (a.rule_id, a.story_id) a.rule_id, a.story_id, a.id, a.created_at, a.item_count, "
            "a.payload, EXISTS (SELECT 1 FROM delivery_alerts da JOIN deliveries d ON d.id = da.delivery_id "
            "WHERE da.alert_id = a.id AND d.status = 'pending' AND d.attempts = 0), a.generation, a.silence_id "
            "FROM alerts a JOIN unnest(%s::text[], %s::text[]) AS p(rule_id, story_id) "
            "ON a.rule_id = p.rule_id AND a.story_id = p.story_id "
            "ORDER BY a.rule_id, a.story_id, a.generation DESC",
            ([rule for rule, _ in wanted], [story for _, story in wanted]),
        )
        return {
            (r[0], r[1]): AlertState(
                alert_id=r[2],
                rule_id=r[0],
                story_id=r[1],
                created_at=_req(r[3]),
                item_count=r[4],
                payload=r[5],
                pending=bool(r[6]),
                generation=int(r[7]),
                silence_id=r[8],
            )
            for r in rows
        }

    def escalated(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        wanted = sorted(set(pairs))
        if not wanted:
            return set()
        return {
            (str(r[0]), str(r[1]))
            for r in self._rows(
                "SELECT e.rule_id, e.story_id FROM escalations e JOIN unnest(%s::text[], %s::text[]) AS "
                "p(rule_id, story_id) ON e.rule_id = p.rule_id AND e.story_id = p.story_id",
                ([rule for rule, _ in wanted], [story for _, story in wanted]),
            )
        }

    def story_outlet_times(
        self, story_ids: Iterable[str]
    ) -> dict[str, list[tuple[str, datetime, str | None]]]:
        wanted = sorted(set(story_ids))
        found: dict[str, list[tuple[str, datetime, str | None]]] = {story: [] for story in wanted}
        if not wanted:
            return found
        for story_id, outlet, moment, language in self._rows(
            "SELECT i.story_id, COALESCE(NULLIF(i.feed_title, ''), i.feed_url), "
            "LEAST(COALESCE(i.published, i.fetched_at), i.fetched_at) AS t, COALESCE(m.language, i.language) "
            "FROM items i LEFT JOIN story_members m ON m.item_key = i.key WHERE i.story_id = ANY(%s) "
            "ORDER BY t, i.seq",
            (wanted,),
        ):
            found[str(story_id)].append((str(outlet), _req(moment), language))
        return found

    def stored_items(self, since: datetime, *, limit: int = 1_000_000) -> list[StoredItem]:
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
                    categories=tuple(row[9] or ()),
                    language=row[10],
                    published=_utc(row[11]),
                    content_hash=row[12],
                ),
                story_id=row[13],
                fetched_at=_req(row[14]),
            )
            for row in self._rows(
                "SELECT key, feed_url, feed_title, guid, link, url, title, summary, content, categories, language, published, content_hash, story_id, fetched_at "
                "FROM items WHERE fetched_at >= %s ORDER BY fetched_at, seq LIMIT %s",
                (since, limit),
            )
        ]

    # -- silences --------------------------------------------------------------------------------------------

    def add_silence(self, silence: SilenceRow) -> None:
        with self.transaction() as tx:
            self._x(
                tx,
                "INSERT INTO silences (id, rule_id, story_id, feed_url, reason, created_at, ends_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    silence.id,
                    silence.rule_id,
                    silence.story_id,
                    silence.feed_url,
                    silence.reason,
                    silence.created_at,
                    silence.ends_at,
                ),
            )

    def silences(self, now: datetime, *, ended: bool = False) -> list[SilenceRow]:
        rows = self._rows(
            "SELECT id, rule_id, story_id, feed_url, reason, created_at, ends_at FROM silences "
            "WHERE %s OR ends_at > %s ORDER BY created_at DESC, id DESC",
            (ended, now),
        )
        return [SilenceRow(r[0], r[1], r[2], r[3], r[4], _req(r[5]), _req(r[6])) for r in rows]

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        with self.transaction() as tx:
            cursor = self._x(
                tx, "UPDATE silences SET ends_at = %s WHERE id = %s AND ends_at > %s", (now, silence_id, now)
            )
            return bool(cursor.rowcount)

    def list_alerts(self, *, limit: int = 50, rule_id: str | None = None) -> list[dict[str, Any]]:
        ids = [
            row[0]
            for row in self._rows(
                "SELECT id FROM alerts WHERE (%s::text IS NULL OR rule_id = %s) "
                "ORDER BY created_at DESC, seq DESC LIMIT %s",
                (rule_id or None, rule_id or None, limit),
            )
        ]
        return [alert for alert_id in ids if (alert := self.get_alert(alert_id)) is not None]

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT id, rule_id, story_id, item_key, created_at, updated_at, item_count, payload, silence_id "
            "FROM alerts WHERE id = %s",
            (alert_id,),
        )
        if row is None:
            return None
        items = [
            {"key": r[0], "link": r[1], "feed": r[2], "title": r[3], "added_at": to_iso(r[4])}
            for r in self._rows(
                "SELECT ai.item_key, i.link, i.feed_url, i.title, ai.added_at FROM alert_items ai "
                "LEFT JOIN items i ON i.key = ai.item_key WHERE ai.alert_id = %s ORDER BY ai.added_at, ai.seq",
                (alert_id,),
            )
        ]
        return {
            "id": row[0],
            "rule": row[1],
            "story": row[2],
            "item_key": row[3],
            "created_at": to_iso(row[4]),
            "updated_at": to_iso(row[5]),
            "item_count": row[6],
            "payload": row[7],
            "silenced_by": row[8],
            "items": items,
            "deliveries": [
                d.as_json() for d in self.list_deliveries(alert_id=alert_id, statuses=None, limit=1000)
            ],
        }

    def list_stories(self, *, limit: int = 50) -> list[StoryRow]:
        rows = self._rows(
            "SELECT id, title, created_at, updated_at, item_count FROM stories "
            "ORDER BY updated_at DESC, seq DESC LIMIT %s",
            (limit,),
        )
        return [StoryRow(r[0], r[1], _req(r[2]), _req(r[3]), r[4], self._story_items(r[0])) for r in rows]

    def get_story(self, story_id: str) -> StoryRow | None:
        row = self._one(
            "SELECT id, title, created_at, updated_at, item_count FROM stories WHERE id = %s", (story_id,)
        )
        if row is None:
            return None
        return StoryRow(row[0], row[1], _req(row[2]), _req(row[3]), row[4], self._story_items(row[0]))

    def _story_items(self, story_id: str) -> tuple[dict[str, Any], ...]:
        return tuple(
            {
                "key": i[0],
                "link": i[1],
                "feed": i[2],
                "title": i[3],
                "language": i[9] or i[4],
                "feed_title": i[5],
                "published": to_iso(i[6]),
                "tier": i[7],
                "reason": i[8],
                "score": i[10],
                "matched": i[11],
                "evidence": i[12] if i[12] else [],
            }
            for i in self._rows(
                "SELECT i.key, i.link, i.feed_url, i.title, i.language, i.feed_title, "
                "COALESCE(i.published, i.fetched_at), m.tier, m.reason, m.language, m.score, m.matched_item_key, "
                "m.evidence FROM items i LEFT JOIN story_members m ON m.item_key = i.key WHERE i.story_id = %s "
                "ORDER BY i.fetched_at, i.seq",
                (story_id,),
            )
        )

    # -- outbox: implements monitor.notify.DeliveryQueue -----------------------------------------------------

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]:
        """Lease due pending deliveries to this node (oldest first; of `channel` only, when given), skipping
        the ones another node is claiming right now, and return them with their alert payloads. Claiming
        counts as an attempt, so a delivery that kills its worker is still counted."""
        holder = self.node.id if self.node is not None else None
        with self.transaction() as tx:
            rows = self._x(
                tx,
                "WITH due AS (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= %s "
                "AND (lease_until IS NULL OR lease_until <= %s) AND (%s::text IS NULL OR channel = %s) "
                "ORDER BY next_attempt_at, created_at LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE deliveries d SET lease_until = %s, attempts = d.attempts + 1, last_attempt_at = %s, "
                "claim_token = d.claim_token + 1, claimed_by = %s FROM due WHERE d.id = due.id "
                "RETURNING d.id, d.channel, d.attempts, d.created_at, d.digest, d.notice, d.claim_token, "
                "d.next_attempt_at, d.seq, d.kind, d.story_id, d.in_reply_to",
                (now, now, channel, channel, limit, now + self.delivery_lease, now, holder),
            ).fetchall()
            rows.sort(key=lambda r: (r[7], r[3], r[8]))
            payloads: dict[str, list[Any]] = {}
            if rows:
                for delivery_id, payload in self._x(
                    tx,
                    "SELECT da.delivery_id, a.payload FROM delivery_alerts da JOIN alerts a ON a.id = da.alert_id "
                    "WHERE da.delivery_id = ANY(%s) ORDER BY a.created_at, a.seq",
                    ([r[0] for r in rows],),
                ):
                    payloads.setdefault(delivery_id, []).append(payload)
        requests = []
        for delivery_id, name, attempts, created_at, digest, notice, token, _, _, kind, story, reply in rows:
            self._delivery_claims[delivery_id] = int(token)
            requests.append(
                DeliveryRequest(
                    id=delivery_id,
                    channel=name,
                    alerts=tuple(payloads.get(delivery_id, ())),
                    attempt=int(attempts),
                    created_at=_utc(created_at),
                    digest=bool(digest),
                    notice=notice,
                    kind=kind,
                    story_id=story,
                    in_reply_to=reply,
                )
            )
        return requests

    def mark_sent(self, delivery_id: str, now: datetime) -> None:
        self._delivery_claims.pop(delivery_id, None)
        with self.transaction() as tx:
            self._x(
                tx,
                "UPDATE deliveries SET status = 'sent', sent_at = %s, lease_until = NULL, last_error = NULL "
                "WHERE id = %s",
                (now, delivery_id),
            )

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None:
        claim = self._delivery_claims.pop(delivery_id, None)
        with self.transaction() as tx:
            self._x(
                tx,
                "UPDATE deliveries SET next_attempt_at = %s, lease_until = NULL, last_error = %s, "
                "last_attempt_at = %s WHERE id = %s AND status = 'pending' "
                "AND (%s::bigint IS NULL OR claim_token = %s)",
                (retry_at, error, now, delivery_id, claim, claim),
            )

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None:
        claim = self._delivery_claims.pop(delivery_id, None)
        with self.transaction() as tx:
            self._x(
                tx,
                "UPDATE deliveries SET status = 'dead', lease_until = NULL, last_error = %s, last_attempt_at = %s "
                "WHERE id = %s AND status != 'sent' AND (%s::bigint IS NULL OR claim_token = %s)",
                (error, now, delivery_id, claim, claim),
            )

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None:
        with self.transaction() as tx:
            self._x(
                tx,
                "INSERT INTO disabled_channels (channel, reason, disabled_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (channel) DO UPDATE SET reason = excluded.reason, disabled_at = excluded.disabled_at",
                (channel, reason, now),
            )

    def enable_channel(self, channel: str) -> bool:
        with self.transaction() as tx:
            return self._x(tx, "DELETE FROM disabled_channels WHERE channel = %s", (channel,)).rowcount > 0

    def disabled_channels(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT channel FROM disabled_channels")}

    def disabled_channel_reasons(self) -> dict[str, tuple[str, datetime]]:
        return {
            row[0]: (row[1], _req(row[2]))
            for row in self._rows("SELECT channel, reason, disabled_at FROM disabled_channels")
        }

    def list_deliveries(
        self,
        *,
        statuses: Sequence[str] | None = ("pending", "dead"),
        alert_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        rows = self._rows(
            "SELECT d.id, d.channel, d.status, d.digest, d.created_at, d.next_attempt_at, d.attempts, "
            "d.last_attempt_at, d.last_error, d.sent_at, "
            "ARRAY(SELECT da.alert_id FROM delivery_alerts da WHERE da.delivery_id = d.id ORDER BY da.alert_id), "
            "d.kind, d.story_id, d.in_reply_to FROM deliveries d "
            "WHERE (%s::text IS NULL OR d.id IN (SELECT delivery_id FROM delivery_alerts WHERE alert_id = %s)) "
            "AND (%s::text[] IS NULL OR d.status = ANY(%s::text[])) ORDER BY d.created_at, d.seq LIMIT %s",
            (
                alert_id,
                alert_id,
                list(statuses) if statuses is not None else None,
                list(statuses) if statuses is not None else None,
                limit,
            ),
        )
        return [
            DeliveryRow(
                id=r[0],
                channel=r[1],
                status=r[2],
                digest=bool(r[3]),
                created_at=_req(r[4]),
                next_attempt_at=_req(r[5]),
                attempts=r[6],
                last_attempt_at=_utc(r[7]),
                last_error=r[8],
                sent_at=_utc(r[9]),
                alert_ids=tuple(r[10]),
                kind=r[11],
                story_id=r[12],
                in_reply_to=r[13],
            )
            for r in rows
        ]

    def retry_deliveries(self, now: datetime, *, ids: Sequence[str] = (), all_dead: bool = False) -> int:
        with self.transaction() as tx:
            count = 0
            if all_dead:
                count += self._x(
                    tx,
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = %s, lease_until = NULL "
                    "WHERE status = 'dead'",
                    (now,),
                ).rowcount
            if ids:
                count += self._x(
                    tx,
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = %s, lease_until = NULL "
                    "WHERE id = ANY(%s) AND status != 'sent'",
                    (now, list(ids)),
                ).rowcount
            return count

    def release_claims(self, now: datetime) -> int:
        """Make every claimed but unresolved delivery, and every feed lease, free again now.

        Only for a database nobody else is working on (tests, tools): a daemon on a shared database must
        not use it, since other nodes' claims are live. It uses `reap_nodes`, which frees only the claims of
        nodes that stopped sending heartbeats."""
        with self.transaction() as tx:
            self._x(tx, "UPDATE feeds SET lease_until = NULL WHERE lease_until IS NOT NULL")
            return self._x(
                tx,
                "UPDATE deliveries SET lease_until = NULL, next_attempt_at = LEAST(next_attempt_at, %s) "
                "WHERE status = 'pending' AND lease_until IS NOT NULL",
                (now,),
            ).rowcount

    def delivery_counts(self) -> dict[str, int]:
        return {
            row[0]: int(row[1])
            for row in self._rows("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        }

    # -- nodes, cluster jobs, story assignment ----------------------------------------------------------------

    def register_node(self, now: datetime) -> None:
        node = self._require_node()
        with self.transaction() as tx:
            self._x(
                tx,
                "INSERT INTO nodes (id, host, pid, version, started_at, heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (node.id, node.host, node.pid, node.version, now, now),
            )

    def heartbeat(self, now: datetime) -> None:
        node = self._require_node()
        with self.transaction() as tx:
            self._x(tx, "UPDATE nodes SET heartbeat_at = %s WHERE id = %s", (now, node.id))

    def stop_node(self, now: datetime) -> int:
        node = self._require_node()
        with self.transaction() as tx:
            self._x(
                tx, "UPDATE nodes SET stopped_at = %s, heartbeat_at = %s WHERE id = %s", (now, now, node.id)
            )
            return self._release_held(tx, [node.id], now)

    def reap_nodes(self, now: datetime, dead_after: timedelta) -> int:
        me = self.node.id if self.node is not None else None
        with self.transaction() as tx:
            dead = [
                row[0]
                for row in self._x(
                    tx,
                    "SELECT id FROM nodes WHERE heartbeat_at < %s AND (%s::text IS NULL OR id != %s)",
                    (now - dead_after, me, me),
                )
            ]
            return self._release_held(tx, dead, now) if dead else 0

    def _release_held(self, tx: Conn, nodes: Sequence[str], now: datetime) -> int:
        feeds = self._x(
            tx,
            "UPDATE feeds SET lease_until = NULL WHERE lease_until IS NOT NULL AND claimed_by = ANY(%s)",
            (list(nodes),),
        ).rowcount
        deliveries = self._x(
            tx,
            "UPDATE deliveries SET lease_until = NULL, next_attempt_at = LEAST(next_attempt_at, %s) "
            "WHERE status = 'pending' AND lease_until IS NOT NULL AND claimed_by = ANY(%s)",
            (now, list(nodes)),
        ).rowcount
        return feeds + deliveries

    def list_nodes(self, now: datetime) -> list[NodeRow]:
        rows = self._rows(
            "SELECT n.id, n.host, n.pid, n.version, n.started_at, n.heartbeat_at, n.stopped_at, "
            "(SELECT COUNT(*) FROM feeds f WHERE f.claimed_by = n.id AND f.active), "
            "(SELECT COUNT(*) FROM feeds f WHERE f.claimed_by = n.id AND f.lease_until > %s), "
            "(SELECT COUNT(*) FROM deliveries d WHERE d.claimed_by = n.id AND d.status = 'pending' "
            "AND d.lease_until > %s) FROM nodes n ORDER BY n.heartbeat_at DESC, n.id",
            (now, now),
        )
        return [
            NodeRow(
                r[0], r[1], r[2], r[3], _req(r[4]), _req(r[5]), _utc(r[6]), int(r[7]), int(r[8]), int(r[9])
            )
            for r in rows
        ]

    def claim_job(self, name: str, now: datetime, every: timedelta) -> bool:
        holder = self.node.id if self.node is not None else "cli"
        with self.transaction() as tx:
            row = self._x(
                tx,
                "INSERT INTO cluster_jobs (name, holder, ran_at, until) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, ran_at = excluded.ran_at, "
                "until = excluded.until WHERE cluster_jobs.until <= excluded.ran_at RETURNING name",
                (name, holder, now, now + every),
            ).fetchone()
        return row is not None

    @contextmanager
    def _story_section(self) -> Iterator[None]:
        with self.transaction() as tx:
            self._x(tx, "SELECT pg_advisory_xact_lock(%s)", (STORY_LOCK_KEY,))
            self._local.story_locked = True
            try:
                yield
            finally:
                self._local.story_locked = False

    def story_lock(self) -> AbstractContextManager[None]:
        """A transaction holding the cluster's story lock: every node assigns stories and commits the items
        one after another, each after catching up with the others' items (see the module docstring)."""
        return self._story_section()

    def item_seq(self) -> int:
        row = self._one("SELECT COALESCE(MAX(seq), 0) FROM items")
        return int(row[0]) if row else 0

    def items_after(self, seq: int, since: datetime) -> tuple[list[dict[str, Any]], int]:
        rows = self._signature_rows(seq, since)
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
        item_cutoff = now - item_max_age
        key_cutoff = now - key_max_age
        with self.transaction() as tx:
            matches = self._x(
                tx,
                "DELETE FROM matches WHERE item_key IN (SELECT key FROM items WHERE fetched_at < %s)",
                (item_cutoff,),
            ).rowcount
            self._x(
                tx,
                "DELETE FROM story_members WHERE item_key IN (SELECT key FROM items WHERE fetched_at < %s)",
                (item_cutoff,),
            )
            items = self._x(tx, "DELETE FROM items WHERE fetched_at < %s", (item_cutoff,)).rowcount
            keys = self._x(tx, "DELETE FROM seen_keys WHERE last_seen < %s", (key_cutoff,)).rowcount
            sent = self._x(
                tx, "DELETE FROM deliveries WHERE status = 'sent' AND sent_at < %s", (item_cutoff,)
            ).rowcount
            self._x(
                tx,
                "DELETE FROM delivery_alerts da WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = da.delivery_id)",
            )
            self._x(tx, "DELETE FROM nodes WHERE heartbeat_at < %s", (now - NODE_HISTORY,))
        return {"items": items, "matches": matches, "seen_keys": keys, "deliveries": sent}

    # -- WebSub subscriptions ---------------------------------------------------------------------------------

    def record_hub(
        self, feed_url: str, hub: str, topic: str, now: datetime, secret: str, callback_id: str
    ) -> bool:
        with self.transaction() as tx:
            row = self._x(
                tx, "SELECT hub, topic FROM websub_subscriptions WHERE feed_url = %s", (feed_url,)
            ).fetchone()
            if row is not None and (row[0], row[1]) == (hub, topic):
                return False
            self._x(tx, "DELETE FROM websub_subscriptions WHERE feed_url = %s", (feed_url,))
            self._x(
                tx,
                "INSERT INTO websub_subscriptions (feed_url, hub, topic, callback_id, secret, state, discovered_at) "
                "VALUES (%s, %s, %s, %s, %s, 'discovered', %s)",
                (feed_url, hub, topic, callback_id, secret, (now)),
            )
            return True

    def save_websub(self, row: WebSubRow) -> None:
        with self.transaction() as tx:
            self._x(
                tx,
                "UPDATE websub_subscriptions SET hub = %s, topic = %s, callback_id = %s, secret = %s, state = %s, "
                "discovered_at = %s, requested_at = %s, verified_at = %s, expires_at = %s, lease_seconds = %s, "
                "last_error = %s WHERE feed_url = %s",
                (
                    row.hub,
                    row.topic,
                    row.callback_id,
                    row.secret,
                    row.state,
                    (row.discovered_at),
                    (row.requested_at),
                    (row.verified_at),
                    (row.expires_at),
                    row.lease_seconds,
                    row.last_error,
                    row.feed_url,
                ),
            )

    def websub_subscriptions(self) -> list[WebSubRow]:
        return [
            _websub(row)
            for row in self._rows("SELECT " + _WEBSUB + " FROM websub_subscriptions ORDER BY feed_url")
        ]

    def websub_by_callback(self, callback_id: str) -> WebSubRow | None:
        row = self._one(
            "SELECT " + _WEBSUB + " FROM websub_subscriptions WHERE callback_id = %s",
            (callback_id,),
        )
        return _websub(row) if row is not None else None

    def counts(self) -> dict[str, int]:
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM feeds), (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM seen_keys), "
            "(SELECT COUNT(*) FROM matches), (SELECT COUNT(*) FROM stories), (SELECT COUNT(*) FROM alerts), "
            "(SELECT COUNT(*) FROM deliveries)"
        )
        assert row is not None
        tables = ("feeds", "items", "seen_keys", "matches", "stories", "alerts", "deliveries")
        return {table: int(value) for table, value in zip(tables, row, strict=True)}


_STATE_COLUMNS = "url, etag, last_modified, next_fetch_at, error_count, last_error, last_fetched_at, title, moved_to, hints"
_STATE_COLUMNS_F = (
    "f.url, f.etag, f.last_modified, f.next_fetch_at, f.error_count, f.last_error, f.last_fetched_at, f.title, "
    "f.moved_to, f.hints"
)


def _state(row: Sequence[Any]) -> FeedState:
    return FeedState(
        url=row[0],
        etag=row[1],
        last_modified=row[2],
        next_fetch_at=_utc(row[3]),
        error_count=row[4],
        last_error=row[5],
        last_fetched_at=_utc(row[6]),
        title=row[7],
        moved_to=row[8],
        hints=hints_from_json(row[9]),
    )


def _connection_lost(exc: BaseException | None) -> bool:
    """The connection is gone (not a statement's own failure): client-side connection errors carry no SQLSTATE;
    the server's own say class 08 (connection exception) or 57P (operator intervention: shutdown, terminated)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate or ""
    return state == "" or state.startswith("08") or state.startswith("57P")


def _reason(exc: BaseException) -> str:
    """A driver error as one line, with any password it quotes masked."""
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)


_WEBSUB: LiteralString = "feed_url, hub, topic, callback_id, secret, state, discovered_at, requested_at, verified_at, expires_at, lease_seconds, last_error"


def _websub(row: Sequence[Any]) -> WebSubRow:
    return WebSubRow(
        feed_url=row[0],
        hub=row[1],
        topic=row[2],
        callback_id=row[3],
        secret=row[4],
        state=row[5],
        discovered_at=_req(row[6]),
        requested_at=_utc(row[7]),
        verified_at=_utc(row[8]),
        expires_at=_utc(row[9]),
        lease_seconds=row[10],
        last_error=row[11],
    )
