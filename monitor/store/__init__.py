"""Persistent state: the schedule of record, items, identity keys, stories, alerts and the outbox.

`open_store(database)` opens the backend the `database:` setting names (monitor.dburl): a Path is an SQLite
file (monitor.store.sqlite), a PostgresURL a PostgreSQL database (monitor.store.postgres). Callers hold the
result as a `Store` (monitor.store.base), never as a backend class.
"""

from __future__ import annotations

from pathlib import Path

from monitor.dburl import Database, PostgresURL
from monitor.errors import StoreError
from monitor.store.base import Store
from monitor.store.records import (
    AlertAttachment,
    AlertState,
    DeliveryRow,
    FeedRow,
    FeedUpdate,
    NewAlert,
    NewItem,
    StoryMembership,
    StoryRow,
)
from monitor.store.sqlite import SQLiteStore, delivery_id_for

__all__ = [
    "AlertAttachment",
    "AlertState",
    "DeliveryRow",
    "FeedRow",
    "FeedUpdate",
    "NewAlert",
    "NewItem",
    "SQLiteStore",
    "Store",
    "StoryMembership",
    "StoryRow",
    "database_exists",
    "delivery_id_for",
    "open_store",
]


def open_store(database: Database) -> Store:
    """Open (creating and migrating as needed) the store `database` names. Raises StoreError."""
    if isinstance(database, PostgresURL):
        raise StoreError(f"{database}: the PostgreSQL backend is not available in this build")
    return SQLiteStore(database)


def database_exists(database: Database) -> bool:
    """Whether there is a database there already (an SQLite file; a PostgreSQL URL always names one the
    server either has or refuses, which opening reports)."""
    if isinstance(database, Path):
        return database.exists()
    return True
