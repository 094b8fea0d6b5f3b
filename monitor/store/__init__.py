"""Persistent state: the schedule of record, items, identity keys, stories, alerts and the outbox.

`open_store(database)` opens the backend the `database:` setting names (monitor.dburl): a Path is an SQLite
file (monitor.store.sqlite), a PostgresURL a PostgreSQL database (monitor.store.postgres). Callers hold the
result as a `Store` (monitor.store.base), never as a backend class.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from monitor.dburl import Database, PostgresURL
from monitor.store.base import Store
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
    StoryMembership,
    StoryRow,
    WebSubRow,
)
from monitor.store.sqlite import DEFAULT_BUSY_TIMEOUT, DELIVERY_LEASE, SQLiteStore, delivery_id_for

__all__ = [
    "AlertAttachment",
    "AlertState",
    "DeliveryRow",
    "FeedClaim",
    "FeedRow",
    "FeedUpdate",
    "NewAlert",
    "NewEscalation",
    "NewItem",
    "NodeInfo",
    "NodeRow",
    "SQLiteStore",
    "SilenceRow",
    "StaleClaimError",
    "Store",
    "StoredItem",
    "StoryMembership",
    "StoryRow",
    "WebSubRow",
    "database_exists",
    "delivery_id_for",
    "open_store",
]


def open_store(
    database: Database,
    *,
    node: NodeInfo | None = None,
    delivery_lease: timedelta = DELIVERY_LEASE,
    busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
) -> Store:
    """Open (creating or migrating as needed) the store `database` names, for `node` (the daemon or `once`
    that claims feeds and deliveries through it; None for the CLI). Raises StoreError."""
    if isinstance(database, PostgresURL):
        # Imported here: psycopg loads libpq, which an SQLite installation never needs.
        from monitor.store.postgres import PostgresStore

        return PostgresStore(database, node=node, delivery_lease=delivery_lease)
    return SQLiteStore(database, node=node, delivery_lease=delivery_lease, busy_timeout=busy_timeout)


def database_exists(database: Database) -> bool:
    """Whether there is a database there already (an SQLite file; a PostgreSQL URL always names one the
    server either has or refuses, which opening reports)."""
    if isinstance(database, Path):
        return database.exists()
    return True
