"""Progress lines of `monitor feeds import` and `monitor migrate`: on a real pseudo-terminal they show, piped
(and with --json) they never do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.dburl import PostgresURL
from tests.support.daemonproc import FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.terminal import on_a_terminal

URLS = [f"http://127.0.0.1:9/feed-{n}.xml" for n in range(12)]  # literal addresses: judged without DNS


def _import_setup(tmp_path: Path, name: str) -> tuple[Path, Path]:
    folder = tmp_path / name
    folder.mkdir()
    config = folder / "monitor.yaml"
    config.write_text("allow_private_networks: true\nfeeds: []\n", encoding="utf-8")
    opml = folder / "feeds.opml"
    outlines = "".join(f'<outline text="F{n}" type="rss" xmlUrl="{url}"/>\n' for n, url in enumerate(URLS))
    opml.write_text(
        f'<?xml version="1.0"?>\n<opml version="2.0"><head><title>t</title></head><body>\n{outlines}</body></opml>\n',
        encoding="utf-8",
    )
    return config, opml


def _piped(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *argv], capture_output=True, text=True, cwd=cwd, timeout=300,
        check=False,
    )  # fmt: skip


def test_feeds_import_shows_progress_on_a_terminal_only(tmp_path: Path, repo_dir: Path) -> None:
    config, opml = _import_setup(tmp_path, "tty")
    status, screen = on_a_terminal(["feeds", "import", str(opml), "--config", str(config)], repo_dir)
    assert status == 0, screen
    assert f"\rchecking feeds: {len(URLS)}/{len(URLS)}" in screen, screen
    assert f"{len(URLS)} of {len(URLS)} feeds added" in screen
    assert [feed.url for feed in load_config(config).feeds] == URLS

    config, opml = _import_setup(tmp_path, "piped")
    piped = _piped(["feeds", "import", str(opml), "--config", str(config)], repo_dir)
    assert piped.returncode == 0, piped.stderr
    assert "checking feeds" not in piped.stdout + piped.stderr and "\r" not in piped.stdout + piped.stderr
    assert f"{len(URLS)} of {len(URLS)} feeds added" in piped.stdout

    config, opml = _import_setup(tmp_path, "json")
    status, screen = on_a_terminal(
        ["feeds", "import", str(opml), "--json", "--config", str(config)], repo_dir
    )
    assert status == 0 and "checking feeds" not in screen and "\r" not in screen.replace("\r\n", "\n")


def test_migrate_shows_progress_on_a_terminal_only(
    tmp_path: Path, postgres_db: PostgresURL, repo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = FeedBuilder()
    feed.add_headlines("m", range(3))
    with FeedServer() as server:
        server.set("/wire.xml", feed.rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")], interval="1h", extra=[])
        assert main(["once", "--config", str(config)]) == 0
    capsys.readouterr()
    database = tmp_path / "state" / "monitor.db"

    piped = _piped(["migrate", "--from", str(database), "--to", postgres_db.url], repo_dir)
    assert piped.returncode == 0, piped.stderr
    assert "copying" not in piped.stdout + piped.stderr and "\r" not in piped.stdout + piped.stderr

    # Into a second empty database (the first now holds the copy), on a terminal.
    import uuid

    import psycopg
    from psycopg import sql

    name = f"{postgres_db.dbname}_tty_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres_db.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        status, screen = on_a_terminal(
            ["migrate", "--from", str(database), "--to", postgres_db.with_dbname(name).url], repo_dir
        )
    finally:
        with psycopg.connect(postgres_db.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    assert status == 0, screen
    assert re.search(r"\rcopying feeds: 1\b", screen), screen
    assert re.search(r"\rcopying items: 3\b", screen), screen
    assert "every table's count matches" in screen
