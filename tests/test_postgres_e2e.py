"""`monitor once`, `monitor run` and the operator commands on a postgresql:// database, end to end: feeds from a
FeedServer on 127.0.0.1, alerts to a real webhook receiver, state in a PostgreSQL database of the test's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.dburl import PostgresURL
from tests.support.daemonproc import DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver, wait_until


def cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    code = main([args[0], "--config", str(config), *args[1:]])
    captured = capsys.readouterr()
    return code, captured.out


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_once_and_the_cli_on_postgresql(
    tmp_path: Path, postgres_db: PostgresURL, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = FeedBuilder()
    feed.add_headlines("w", range(6))
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set("/wire.xml", feed.rss())
        config = write_config(
            tmp_path, feed_urls=[server.url("/wire.xml")], hook_url=hook.url, database=postgres_db.url
        )

        code, out = cli(capsys, config, "check")
        assert code == 0 and f"database {postgres_db.url}" in out
        code, out = cli(capsys, config, "once")
        assert code == 0, out
        assert "1 feeds polled, 0 failed" in out and "0 pending" in out
        assert not (tmp_path / "state").exists(), "nothing is written beside the config: no file, no lock"

        code, out = cli(capsys, config, "alerts", "--json")
        alerts = json_lines(out)
        assert code == 0 and len(alerts) >= 4
        assert all(d["status"] == "sent" for a in alerts for d in a["deliveries"])  # type: ignore[attr-defined]
        code, out = cli(capsys, config, "deliveries", "--all", "--json")
        deliveries = json_lines(out)
        assert {d["status"] for d in deliveries} == {"sent"}
        assert sorted(d["id"] for d in deliveries) == sorted(r.headers["webhook-id"] for r in hook.requests)
        code, out = cli(capsys, config, "stories", "--json")
        stories = json_lines(out)
        assert code == 0 and stories and all(s["items"] for s in stories)
        code, out = cli(capsys, config, "stories", "show", str(stories[0]["id"]))
        assert code == 0 and "opened the story" in out
        code, out = cli(capsys, config, "feeds")
        assert code == 0 and server.url("/wire.xml") in out and "active" in out
        code, out = cli(capsys, config, "nodes", "--all", "--json")
        (node,) = json_lines(out)
        assert node["stopped_at"] is not None and node["alive"] is False  # `once` registered and stopped

        # A second run: 304 Not Modified, nothing new, nothing sent twice.
        sent = len(hook.requests)
        code, out = cli(capsys, config, "once")
        assert code == 0 and ": 6 entries, 0 new" in out
        assert len(hook.requests) == sent
        code, out = cli(capsys, config, "deliveries", "retry", str(deliveries[0]["id"]))
        assert code == 0 and "0 deliveries queued again" in out  # sent stays sent


@pytest.mark.slow
def test_the_daemon_runs_on_postgresql_and_shows_as_a_node(
    tmp_path: Path, postgres_db: PostgresURL, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = FeedBuilder()
    feed.add_headlines("d", range(3))
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set("/wire.xml", feed.rss())
        config = write_config(
            tmp_path,
            feed_urls=[server.url("/wire.xml")],
            hook_url=hook.url,
            database=postgres_db.url,
            extra=[
                "cluster:",
                "  node: pg-e2e",
                "  heartbeat: 1s",
                "  dead_after: 3s",
                "  lease: 10s",
                "fetch:",
                "  total_timeout: 5",
            ],
        )
        with DaemonProcess(config) as daemon:
            wait_until(lambda: len(hook.requests) >= 3, timeout=120, what="the first alerts delivered")
            feed.add_headlines("later", range(3, 4))
            server.set("/wire.xml", feed.rss())
            wait_until(lambda: len(hook.requests) >= 4, timeout=60, what="a later item's alert")
            code, out = cli(capsys, config, "nodes", "--json")
            (node,) = json_lines(out)
            assert code == 0 and node["alive"] is True and str(node["id"]).startswith("pg-e2e:")
            assert node["feeds"] == 1 and node["pid"] == daemon.pid
            assert daemon.terminate() == 0
        code, out = cli(capsys, config, "nodes")
        assert "0 live nodes" in out
        code, out = cli(capsys, config, "deliveries", "--json")
        assert json_lines(out) == []  # nothing pending or dead
