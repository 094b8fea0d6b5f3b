"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from monitor.dburl import PostgresURL

REPO = Path(__file__).resolve().parents[1]
# Tests work in-process unless they are about worker processes (tests/test_workers.py): a pool costs start-up
# time and memory in every test, and every daemon a test starts inherits this default (monitor.workers).
os.environ.setdefault("MONITOR_WORKERS", "0")
SHARED = Path(os.environ.get("MONITOR_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ../shared folder (eval set, real-feed corpus). CI always has it; a user's clone may not."""
    if not SHARED.is_dir():
        pytest.skip(
            f"{SHARED} is absent: the shared eval set and feed corpus live beside the project checkout"
        )
    return SHARED


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


# -- PostgreSQL ------------------------------------------------------------------------------------------------
# The server every developer's machine and CI run on 127.0.0.1:5432 (trust auth, user postgres). Each test that
# needs one gets its own database, created for it and dropped afterwards. A clone without a server skips
# those tests with the reason; under CI=true an unreachable server fails them instead, so CI can never pass
# by skipping the PostgreSQL backend.
POSTGRES_ADMIN_URL = os.environ.get("MONITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_server() -> PostgresURL:
    import psycopg

    from monitor.dburl import PostgresURL

    url = PostgresURL(POSTGRES_ADMIN_URL)
    try:
        psycopg.connect(url.url, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = (
            f"PostgreSQL is not reachable at {url} ({reason}); the PostgreSQL tests need a server there "
            "(or MONITOR_TEST_POSTGRES=postgresql://... naming one)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_db(postgres_server: PostgresURL) -> Iterator[PostgresURL]:
    """A fresh, empty database of its own for one test, dropped afterwards (even if the test left
    connections open)."""
    yield from _database_for_test(postgres_server)


def _database_for_test(server: PostgresURL) -> Iterator[PostgresURL]:
    import uuid

    import psycopg
    from psycopg import sql

    name = f"monitor_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.with_dbname(name)
    finally:
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
