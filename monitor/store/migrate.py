"""`monitor migrate`: copy an SQLite database into an empty PostgreSQL database, table for table, verified by counts.

Both schemas are at the same version after opening (migration n means the same tables on both backends), so
every table is copied column for column: feeds with their validators, schedule and health, items with their
signatures, identity keys, matches, stories and story membership, alerts with their items, the outbox
(deliveries, open digests, notices) and disabled channels, nodes and cluster jobs. Values are converted to
PostgreSQL's types (ISO text to TIMESTAMPTZ, 0/1 to BOOLEAN, JSON text to JSON, blobs to BYTEA) and rows go in
the SQLite rowid order, so the `seq` columns PostgreSQL uses for SQLite's rowid tie-breaks keep the same order:
`monitor alerts`, `stories` and `deliveries` list the same rows in the same order on both.

Everything is written in one transaction with COPY; the row count of every table is then compared with the
source inside that transaction, and any difference rolls the whole copy back. A target that already holds
monitor data is refused (nothing is merged or overwritten).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from monitor.dburl import PostgresURL
from monitor.errors import StoreError
from monitor.store.postgres import PostgresStore
from monitor.store.sqlite import SQLiteStore
from monitor.timeutil import from_iso

__all__ = ["TABLES", "TableCopy", "copy_sqlite_to_postgres"]

# The tables of schema version 4, in this order; tables of later migrations follow in the order SQLite lists
# them (every table of the source is copied: `_tables`). schema_migrations is each backend's own.
# Notification threads and escalations (6) must come along, or a migrated story's next rule would open a new
# thread instead of replying, and a story could escalate twice.
TABLES = (
    "feeds",
    "seen_keys",
    "items",
    "story_members",
    "matches",
    "stories",
    "alerts",
    "alert_items",
    "deliveries",
    "delivery_alerts",
    "disabled_channels",
    "nodes",
    "cluster_jobs",
    "notification_threads",
    "escalations",
    "silences",
    "websub_subscriptions",
)
BATCH = 5000


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    source_rows: int
    target_rows: int


def copy_sqlite_to_postgres(
    source: Path, target: PostgresURL, *, progress: Callable[[str, int], None] | None = None
) -> list[TableCopy]:
    """Copy the SQLite database at `source` into the (empty) PostgreSQL database `target`. Returns the row
    counts per table, equal on both sides. Raises StoreError when the target is not empty or a count differs
    (then nothing was written)."""
    if not source.is_file():
        raise StoreError(f"{source}: no such SQLite database")
    with SQLiteStore(source) as lite, PostgresStore(target) as pg:
        if lite.schema_version != pg.schema_version:
            raise StoreError(
                f"schema versions differ after opening ({source}: {lite.schema_version}, {target}: "
                f"{pg.schema_version}); this monitor cannot copy between them"
            )
        occupied = {table: n for table, n in _pg_counts(pg).items() if n}
        if occupied:
            held = ", ".join(f"{n} {table}" for table, n in occupied.items())
            raise StoreError(
                f"{target} already holds monitor data ({held}): refusing to overwrite it; migrate into an empty "
                "database"
            )
        conn = lite.db.conn  # the source, read in rowid order
        copies: list[TableCopy] = []
        with pg.transaction() as tx:
            for table in _tables(conn):
                columns = _common_columns(conn, tx, table)
                kinds = _pg_types(tx, table)
                convert = [_converter(kinds[column]) for column in columns]
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                )
                query = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {_quote(table)} ORDER BY rowid"
                copied = 0
                with tx.cursor() as cursor, cursor.copy(statement) as copy:
                    rows = conn.execute(query)
                    while batch := rows.fetchmany(BATCH):
                        for row in batch:
                            copy.write_row([f(value) for f, value in zip(convert, row, strict=True)])
                        copied += len(batch)
                        if progress is not None:
                            progress(table, copied)
                source_rows = int(conn.execute(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0])
                counted = tx.execute(
                    sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table))
                ).fetchone()
                target_rows = int(counted[0]) if counted else -1
                if target_rows != source_rows:
                    raise StoreError(
                        f"{table}: {source_rows} rows in {source} but {target_rows} in {target} after the copy; "
                        "nothing was written"
                    )
                copies.append(TableCopy(table, source_rows, target_rows))
        return copies


def _tables(conn: sqlite3.Connection) -> list[str]:
    """Every table of the source but the migrations ledger: the known ones first, then any a later migration
    added, so nothing is left behind when the schema grows."""
    present = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_migrations' ORDER BY rowid"
        )
    ]
    return [t for t in TABLES if t in present] + [t for t in present if t not in TABLES]


def _pg_counts(pg: PostgresStore) -> dict[str, int]:
    """Rows per table of the target (every table but the migrations ledger)."""
    with pg.transaction() as tx:
        tables = [
            str(row[0])
            for row in tx.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE' AND table_name != 'schema_migrations'"
            ).fetchall()
        ]
        counts: dict[str, int] = {}
        for table in tables:
            row = tx.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


def _common_columns(conn: sqlite3.Connection, tx: Any, table: str) -> list[str]:
    lite = [str(row[1]) for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]
    pg = set(_pg_types(tx, table))
    if not pg:
        raise StoreError(f"{table}: no such table in the PostgreSQL schema; this monitor cannot copy it")
    missing = [column for column in lite if column not in pg]
    if missing:
        raise StoreError(f"{table}: columns {missing} have no place in the PostgreSQL schema")
    return [column for column in lite if column != "seq"]


def _pg_types(tx: Any, table: str) -> dict[str, str]:
    rows: Sequence[tuple[str, str]] = tx.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _converter(kind: str) -> Callable[[Any], Any]:
    if kind == "timestamp with time zone":
        return _timestamp
    if kind == "boolean":
        return lambda value: None if value is None else bool(value)
    if kind == "bytea":
        return lambda value: None if value is None else bytes(value)
    return lambda value: value  # text, numbers, JSON (as its text)


def _timestamp(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and " " in value and "T" not in value:
        value = value.replace(" ", "T") + "Z"  # SQLite's datetime('now') form
    return from_iso(str(value))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
