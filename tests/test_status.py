"""The status endpoint: health from the scheduler's tick, a JSON snapshot and Prometheus metrics, served by a
real daemon on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.utils import floatToGoString

from monitor.config import StatusOptions, parse_listen
from monitor.status import StatusServer, health, prometheus_text, snapshot
from monitor.store import FeedUpdate, SQLiteStore
from tests.support.daemonproc import DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver, wait_until

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


def test_health_follows_the_last_tick() -> None:
    assert health(None, T0, 2.0) == (False, "starting: no tick yet")
    assert health(T0 - timedelta(seconds=10), T0, 2.0) == (True, "ok")
    ok, reason = health(T0 - timedelta(seconds=31), T0, 2.0)
    assert not ok and "stalled" in reason and "31s" in reason


def test_snapshot_metrics_and_page_show_the_live_nodes(tmp_path: Path) -> None:
    from monitor import web
    from monitor.store import NodeInfo

    path = tmp_path / "m.db"
    with SQLiteStore(path, node=NodeInfo("n1:10:aa", "host-1", 10, "0.1.0")) as one:
        one.sync_feeds([("https://a.example/f", timedelta(minutes=5))], T0)
        one.register_node(T0)
        (claim,) = one.claim_feeds(T0, timedelta(minutes=2))
        one.commit_fetch(FeedUpdate("https://a.example/f", T0, T0 + timedelta(minutes=5), claim=claim.token))
    with SQLiteStore(path, node=NodeInfo("n2:20:bb", "host-2", 20, "0.1.0")) as two:
        two.register_node(T0 - timedelta(minutes=5))  # silent since: not live
        snap = snapshot(two, T0 + timedelta(seconds=30), dead_after=timedelta(minutes=1))
        text = prometheus_text(two, T0 + timedelta(seconds=30), dead_after=timedelta(minutes=1)).decode()
    (node,) = snap["nodes"]
    assert (node["id"], node["host"], node["feeds"], node["alive"]) == ("n1:10:aa", "host-1", 1, True)
    assert node["heartbeat_age_seconds"] == 30.0
    assert "monitor_nodes_live 1.0\n" in text
    page = web.render_page(now=T0, feeds=[], alerts=[], stories=[], summary=snap)
    assert '<section id="nodes">' in page and "n1:10:aa" in page and "n2:20:bb" not in page


def test_snapshot_and_metrics_report_failing_feeds_and_the_outbox(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "m.db") as store:
        store.sync_feeds(
            [("https://a.example/f", timedelta(minutes=5)), ("https://b.example/f", timedelta(1))], T0
        )
        store.commit_fetch(FeedUpdate("https://a.example/f", T0, T0 + timedelta(minutes=5)))
        store.record_fetch_failure("https://b.example/f", "HTTP 503", T0, T0 + timedelta(minutes=5))
        store.disable_channel("hook", "HTTP 410", T0)
        snap = snapshot(store, T0)
        text = prometheus_text(store, T0).decode()
    assert snap["feeds"] == {
        "active": 2,
        "failing": 1,
        "parked": 0,
        "never_succeeded": 1,
        "last_success": "2026-02-01T09:00:00.000000Z",
    }
    assert snap["disabled_channels"] == ["hook"]
    assert "monitor_feeds_failing 1.0\n" in text
    assert 'monitor_deliveries{status="pending"} 0.0\n' in text
    assert "monitor_channels_disabled 1.0\n" in text
    # the feed that never succeeded is in /metrics too, with 0 for "never"
    assert 'monitor_feed_last_success_timestamp_seconds{feed="https://b.example/f"} 0.0\n' in text
    assert (
        f'monitor_feed_last_success_timestamp_seconds{{feed="https://a.example/f"}} {floatToGoString(T0.timestamp())}'
        in text
    )
    assert text.count("# TYPE monitor_deliveries gauge") == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:80", ("::1", 80)), (":9", ("127.0.0.1", 9))],
)
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464", "host:", "host:99999", "a:b"])
def test_bad_listen_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_running_daemon_serves_health_status_and_metrics(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(2))
    port = _free_port()
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set("/wire.xml", feed.rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")], hook_url=hook.url)
        config.write_text(config.read_text() + f'status:\n  listen: "127.0.0.1:{port}"\n', encoding="utf-8")
        with DaemonProcess(config) as daemon:
            # Two headlines, two rules or more each: one notification per story (issue 8).
            wait_until(lambda: len(hook.requests) >= 2, what="the first deliveries")
            base = f"http://127.0.0.1:{port}"
            assert _get(f"{base}/healthz") == (200, "ok\n")
            status, body = _get(f"{base}/status")
            assert status == 200
            snap = json.loads(body)
            assert snap["feeds"]["active"] == 1 and snap["feeds"]["failing"] == 0
            wait_until(
                lambda: json.loads(_get(f"{base}/status")[1])["deliveries"]["sent"] == 2, what="sent count"
            )
            status, metrics = _get(f"{base}/metrics")
            assert status == 200 and 'monitor_deliveries{status="sent"} 2.0' in metrics
            assert _get(f"{base}/nope")[0] == 404
            assert daemon.terminate() == 0
        assert "status endpoint on http://127.0.0.1:" in daemon.log()


TOKEN = "s3cret-status-token-0123"


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ValueError, match=r"status.token"):
        StatusOptions(listen="0.0.0.0:9464")
    with pytest.raises(ValueError, match="at least 16"):
        StatusOptions(listen="0.0.0.0:9464", token="short")  # type: ignore[arg-type]
    assert StatusOptions(listen="0.0.0.0:9464", token=TOKEN).token is not None  # type: ignore[arg-type]
    assert StatusOptions(listen="127.0.0.2:9464").token is None
    assert StatusOptions(listen="localhost:9464").token is None


def test_with_a_token_every_route_but_healthz_asks_for_it(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "m.db") as store:
        server = StatusServer(store, lambda: T0, lambda: T0, 2.0, token=TOKEN)

        def status_of(head: str) -> str:
            return server.respond(head.encode())[0]

        assert status_of("GET /healthz HTTP/1.1\r\n\r\n") == "200 OK"
        assert status_of("GET /status HTTP/1.1\r\n\r\n") == "401 Unauthorized"
        assert status_of("GET /metrics HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n") == "401 Unauthorized"
        assert status_of(f"GET /status HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n") == "200 OK"
        assert status_of(f"GET /metrics?token={TOKEN} HTTP/1.1\r\n\r\n") == "200 OK"
        open_server = StatusServer(store, lambda: T0, lambda: T0, 2.0)
        assert open_server.respond(b"GET /status HTTP/1.1\r\n\r\n")[0] == "200 OK"
