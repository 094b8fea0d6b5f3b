"""`monitor migrate --from FILE.db --to postgresql://...`: a copy verified by counts, refused into a database
that holds monitor data, after which the CLI shows the same alerts, stories and deliveries on both backends
and the daemon carries on from the copied schedule and validators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.dburl import PostgresURL
from monitor.store.migrate import TABLES
from tests.support.daemonproc import FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver

CHANNELS = [
    "  down:",  # answers 400: its deliveries go dead
    "    type: webhook",
    "    url: {down}",
    "  gone:",  # answers 410: the channel is disabled
    "    type: webhook",
    "    url: {gone}",
    "  daily:",  # collects a digest that is not due yet
    "    type: webhook",
    "    url: {hook}",
    "    digest: 1d",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def views(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, str]:
    """What an operator reads: every listing, and each alert and story in full."""
    shown: dict[str, str] = {}
    for name, args in {
        "alerts": ["alerts", "--json", "--limit", "1000"],
        "stories": ["stories", "--json", "--limit", "1000"],
        "deliveries": ["deliveries", "--all", "--json"],
        "deliveries-text": ["deliveries"],
        "feeds": ["feeds"],
        "alerts-text": ["alerts"],
        "stories-text": ["stories"],
    }.items():
        code, out, err = run(capsys, args[0], "--config", str(config), *args[1:])
        assert code == 0, err
        shown[name] = out
    for line in shown["alerts"].splitlines():
        alert_id = json.loads(line)["id"]
        shown[f"alert {alert_id}"] = run(
            capsys, "alerts", "--config", str(config), "show", alert_id, "--json"
        )[1]
    for line in shown["stories"].splitlines():
        story_id = json.loads(line)["id"]
        shown[f"story {story_id}"] = run(
            capsys, "stories", "--config", str(config), "show", story_id, "--json"
        )[1]
        shown[f"story {story_id} text"] = run(capsys, "stories", "--config", str(config), "show", story_id)[1]
    return shown


def test_a_migrated_database_shows_the_same_and_carries_on(
    tmp_path: Path, postgres_db: PostgresURL, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = FeedBuilder()
    feed.add_headlines("m", range(5))
    other = FeedBuilder(title="Copies")
    other.add_headlines("c", range(2))  # the same texts as m-0 and m-1: they join those stories
    with (
        FeedServer() as server,
        WebhookReceiver() as hook,
        WebhookReceiver(default_status=400) as down,
        WebhookReceiver(default_status=410) as gone,
    ):
        server.set("/wire.xml", feed.rss(), etag='"w1"')
        server.set("/copies.xml", other.rss())
        channels = [line.format(down=down.url, gone=gone.url, hook=hook.url) for line in CHANNELS]
        config = write_config(
            tmp_path, feed_urls=[server.url("/wire.xml"), server.url("/copies.xml")], hook_url=hook.url,
            interval="1h", extra=[],
        )  # fmt: skip
        config.write_text(config.read_text(encoding="utf-8") + "\n".join(channels) + "\n", encoding="utf-8")
        assert run(capsys, "once", "--config", str(config))[0] == 0
        feed.add_headlines("later", range(5, 7))
        server.set("/wire.xml", feed.rss(), etag='"w2"')
        assert run(capsys, "once", "--config", str(config))[0] == 0
        before = views(capsys, config)
        assert (
            '"status": "dead"' in before["deliveries"]
            and "CHANNEL DISABLED gone" in before["deliveries-text"]
        )

        database = tmp_path / "state" / "monitor.db"
        code, out, err = run(capsys, "migrate", "--from", str(database), "--to", postgres_db.url)
        assert code == 0, err
        import sqlite3

        with sqlite3.connect(database) as conn:
            every = {
                str(row[0])
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if row[0] != "schema_migrations"
            }
        assert set(TABLES) <= every
        for table in every:  # every table of the source, later migrations' too
            assert f"{table} " in out, table
        assert "every table's count matches" in out

        pg_config = tmp_path / "pg.yaml"
        pg_config.write_text(
            config.read_text(encoding="utf-8").replace(
                f"database: {database}", f"database: {postgres_db.url}"
            ),
            encoding="utf-8",
        )
        after = views(capsys, pg_config)
        assert after.keys() == before.keys()
        for name, text in before.items():
            assert after[name] == text, name

        # Into a database that holds monitor data: refused, nothing changed.
        code, out, err = run(capsys, "migrate", "--from", str(database), "--to", postgres_db.url)
        assert code == 1 and "already holds monitor data" in err and "refusing to overwrite" in err
        assert views(capsys, pg_config) == before

        # The daemon's work goes on from the copied state: validators sent, nothing alerted twice.
        requests = len(server.requests_for("/wire.xml"))
        sent = len(hook.requests)
        code, out, _ = run(capsys, "once", "--config", str(pg_config))
        assert code == 0 and "0 alerts" in out
        latest = server.requests_for("/wire.xml")[requests:]
        assert latest and latest[0].headers.get("if-none-match") == '"w2"'
        assert len(hook.requests) == sent


def test_migrate_refuses_what_it_cannot_copy(
    tmp_path: Path,
    postgres_db: PostgresURL,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run(capsys, "migrate", "--from", str(tmp_path / "absent.db"), "--to", postgres_db.url)
    assert code == 1 and "no such SQLite database" in err
    code, _, err = run(capsys, "migrate", "--from", str(tmp_path / "a.db"), "--to", str(tmp_path / "b.db"))
    assert code == 1 and "--to must be a postgresql:// URL" in err
    code, _, err = run(capsys, "migrate", "--from", postgres_db.url, "--to", postgres_db.url)
    assert code == 1 and "--from must be the path of an SQLite database file" in err
    monkeypatch.delenv("MONITOR_TEST_NO_SUCH_VAR", raising=False)
    code, _, err = run(
        capsys, "migrate", "--from", "x.db", "--to", "postgresql://u:${MONITOR_TEST_NO_SUCH_VAR}@h/d"
    )
    assert code == 1 and "MONITOR_TEST_NO_SUCH_VAR is not set" in err
    # A password from the environment is masked in the output.
    monkeypatch.setenv("MONITOR_TEST_PGPW", "migrate-secret-pw")
    url = postgres_db.url.replace("postgresql://", "postgresql://postgres:${MONITOR_TEST_PGPW}@").replace(
        "postgres@", "", 1
    )
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()
    code, out, err = run(capsys, "migrate", "--from", str(tmp_path / "empty.db"), "--to", url)
    assert code == 0, err
    assert "migrate-secret-pw" not in out, out
    assert "migrate-secret-pw" not in err, err
    assert "***@" in out


def test_every_table_of_the_schema_is_copied(tmp_path: Path) -> None:
    """A table added by a migration and forgotten here would be silently left behind by `monitor migrate`
    (migration 6's notification threads and escalations were, at first)."""
    from monitor.store import SQLiteStore

    with SQLiteStore(tmp_path / "m.db") as store:
        tables = {
            row[0]
            for row in store.db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not str(row[0]).startswith("sqlite_")
        }
    assert tables - {"schema_migrations"} == set(TABLES)
