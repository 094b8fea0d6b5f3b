"""`monitor run` as a real process: polling on start and on schedule, delivery, signals, reload, sd_notify.

Each test starts the daemon as a subprocess against a FeedServer and a WebhookReceiver on 127.0.0.1 and reads
its state back through a SQLiteStore on the same file (WAL: a reader never blocks the daemon).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from monitor.store import SQLiteStore
from tests.support.alerts import alerts_in
from tests.support.daemonproc import DaemonProcess, FeedBuilder, NotifySocket, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver, wait_until

ETAG = '"v1"'
LAST_MODIFIED = "Mon, 05 Jan 2026 12:00:00 GMT"


def delivery_counts(database: Path) -> dict[str, int]:
    with SQLiteStore(database) as store:
        return store.delivery_counts()


def alert_ids(database: Path) -> set[str]:
    with SQLiteStore(database) as store:
        return {alert["id"] for alert in store.list_alerts(limit=10_000)}


def database_of(config: Path) -> Path:
    return config.parent / "state" / "monitor.db"


def test_run_polls_at_once_delivers_then_polls_on_interval_with_conditional_get(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(2))
    feed.add("quiet", "Local bakery wins national award", "Bread.")
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set("/wire.xml", feed.rss(), etag=ETAG, last_modified=LAST_MODIFIED)
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")], hook_url=hook.url)
        with DaemonProcess(config) as daemon:
            wait_until(lambda: server.count("/wire.xml") >= 1, what="the first poll")
            # Two headlines fire two rules each: four alerts, in one notification per story, each posted once.
            wait_until(lambda: len(hook.requests) >= 2, what="two webhook deliveries")
            wait_until(lambda: server.count("/wire.xml") >= 3, timeout=60, what="polls on the 1s interval")
            assert daemon.terminate() == 0
        database = database_of(config)
        received = {alert["id"] for request in hook.requests for alert in alerts_in(request.json())}
        assert received == alert_ids(database)
        assert len(received) == 4
        assert len(hook.requests) == 2, "nothing was delivered twice"
        assert delivery_counts(database) == {"sent": 2}
        first, *later = server.requests_for("/wire.xml")
        assert "if-none-match" not in first.headers
        assert later and all(r.headers.get("if-none-match") == ETAG for r in later)
        assert all(r.headers.get("if-modified-since") == LAST_MODIFIED for r in later)
        assert "monitor running: 1 feeds" in daemon.log()


def test_an_item_added_to_a_running_feed_is_alerted_once(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(1))
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set("/wire.xml", feed.rss(), etag='"a"')
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")], hook_url=hook.url)
        with DaemonProcess(config) as daemon:
            wait_until(lambda: len(hook.requests) >= 1, what="the first item's notification")
            feed.add_headlines("n", range(1, 2))
            server.set("/wire.xml", feed.rss(), etag='"b"')
            wait_until(lambda: len(hook.requests) >= 2, timeout=60, what="the new item's notification")
            polls = server.count("/wire.xml")
            wait_until(lambda: server.count("/wire.xml") >= polls + 2, timeout=60, what="two more polls")
            assert daemon.terminate() == 0
        # One notification per item's story, each naming the item's two rules.
        titles = [request.json()["item"]["title"] for request in hook.requests]
        assert titles == [feed.items[0][1], feed.items[1][1]]
        assert all(len(request.json()["alerts"]) == 2 for request in hook.requests)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_exit_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with FeedServer() as server:
        server.set("/wire.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")])
        with DaemonProcess(config) as daemon:
            daemon.wait_for_log("monitor running")
            wait_until(lambda: server.count("/wire.xml") >= 1, what="the first poll")
            assert daemon.terminate(sig, timeout=5) == 0
        assert "Traceback" not in daemon.log()


def test_sd_notify_ready_watchdog_then_stopping(tmp_path: Path) -> None:
    with FeedServer() as server, NotifySocket() as sd:
        server.set("/wire.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")])
        # WatchdogSec=0.2s: the daemon pings every 0.1 s.
        env = {"NOTIFY_SOCKET": sd.path, "WATCHDOG_USEC": "200000"}
        with DaemonProcess(config, env=env) as daemon:
            sd.wait_for("READY=1")
            wait_until(lambda: sd.states().count("WATCHDOG=1") >= 3, what="three watchdog pings")
            assert daemon.terminate() == 0
        states = sd.states()
        assert "STOPPING=1" in states
        assert states.index("READY=1") < states.index("STOPPING=1")
        assert any(s.startswith("STATUS=watching 1 feeds") for s in states)


def test_without_watchdog_usec_no_watchdog_pings(tmp_path: Path) -> None:
    with FeedServer() as server, NotifySocket() as sd:
        server.set("/wire.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")])
        with DaemonProcess(config, env={"NOTIFY_SOCKET": sd.path}) as daemon:
            sd.wait_for("READY=1")
            assert daemon.terminate() == 0
        assert "STOPPING=1" in sd.states()
        assert "WATCHDOG=1" not in sd.states()


def test_sighup_reloads_a_new_feed_and_refuses_an_invalid_config(tmp_path: Path) -> None:
    first, second = FeedBuilder(), FeedBuilder()
    second.add_headlines("b", range(1))
    with FeedServer() as server, WebhookReceiver() as hook, NotifySocket() as sd:
        server.set("/a.xml", first.rss())
        server.set("/b.xml", second.rss())
        urls = [server.url("/a.xml")]
        config = write_config(tmp_path, feed_urls=urls, hook_url=hook.url)
        with DaemonProcess(config, env={"NOTIFY_SOCKET": sd.path}) as daemon:
            sd.wait_for("READY=1")
            write_config(tmp_path, feed_urls=[*urls, server.url("/b.xml")], hook_url=hook.url)
            daemon.send(signal.SIGHUP)
            wait_until(lambda: server.count("/b.xml") >= 1, timeout=60, what="the added feed polled")
            wait_until(lambda: len(hook.requests) >= 1, timeout=60, what="the added feed's alerts delivered")
            daemon.wait_for_log("reloaded")
            assert "RELOADING=1" in sd.states()

            good = config.read_text(encoding="utf-8")
            config.write_text(good.replace("interval: 1s", "interval: banana"), encoding="utf-8")
            daemon.send(signal.SIGHUP)
            daemon.wait_for_log("reload refused")
            assert "interval" in daemon.log().split("reload refused", 1)[1].splitlines()[0]
            # Still running on the old config: both feeds keep being polled.
            polls_a, polls_b = server.count("/a.xml"), server.count("/b.xml")
            wait_until(
                lambda: server.count("/a.xml") > polls_a and server.count("/b.xml") > polls_b,
                timeout=60,
                what="both feeds polled after the refused reload",
            )
            assert daemon.running()
            assert daemon.terminate() == 0


@pytest.mark.slow
def test_sighup_never_kills_the_daemon(tmp_path: Path) -> None:
    """Any error while reloading keeps the old config and rules, logged with file and line: hostile YAML, a rule
    file that breaks, and a new config that validates but cannot start (its database path is unusable)."""
    with FeedServer() as server:
        server.set("/a.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url("/a.xml")])
        good = config.read_text(encoding="utf-8")
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("x", encoding="utf-8")
        bad_versions = [
            ("x: " + "[" * 5000 + "]" * 5000 + "\n", f"{config}:1:"),
            (good + "rules: ./rules-that-break.yaml\n", "rules-that-break.yaml:3:"),
            (
                good.replace(
                    f"database: {tmp_path / 'state' / 'monitor.db'}", f"database: {blocker / 'm.db'}"
                ),
                "m.db",
            ),
        ]
        (tmp_path / "rules-that-break.yaml").write_text(
            "rules:\n  - id: r\n    match: '" + "(" * 3000 + "a" + ")" * 3000 + "'\n", encoding="utf-8"
        )
        with DaemonProcess(config) as daemon:
            daemon.wait_for_log("monitor running", timeout=60)  # a loaded test machine starts slowly
            for number, (text, where) in enumerate(bad_versions, start=1):
                config.write_text(text, encoding="utf-8")
                daemon.send(signal.SIGHUP)
                wait_until(
                    lambda n=number: daemon.log().count("reload refused") >= n,
                    timeout=20,
                    what=f"refusal {number}",
                )
                refusal = daemon.log().split("reload refused")[number].splitlines()[0]
                assert where in refusal, refusal
                polls = server.count("/a.xml")
                wait_until(lambda p=polls: server.count("/a.xml") > p, timeout=15, what="polling goes on")
                assert daemon.running()
            config.write_text(good, encoding="utf-8")
            assert daemon.terminate() == 0
        assert "Traceback" not in daemon.log()


def test_a_second_daemon_on_the_same_database_is_refused(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.set("/wire.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml")])
        with DaemonProcess(config) as first:
            first.wait_for_log("monitor running")
            with DaemonProcess(config, log_name="second") as second:
                assert second.wait(timeout=30) == 1
                assert "another monitor daemon" in second.log()
                assert f"pid {first.pid}" in second.log()
            assert first.running()
            assert first.terminate() == 0
        # Once the first is gone, the database is free again.
        with DaemonProcess(config, log_name="third") as third:
            third.wait_for_log("monitor running")
            assert third.terminate() == 0


def test_a_hung_channel_does_not_hold_up_another_channel(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(1))
    with FeedServer() as server, WebhookReceiver() as fast, WebhookReceiver(hold=True) as stuck:
        server.set("/wire.xml", feed.rss(), etag='"a"')
        config = write_config(
            tmp_path, feed_urls=[server.url("/wire.xml")], hook_url=fast.url, hook_timeout=30
        )
        config.write_text(
            config.read_text() + f"  stuck:\n    type: webhook\n    url: {stuck.url}\n    timeout: 30\n",
            encoding="utf-8",
        )
        with DaemonProcess(config) as daemon:
            wait_until(
                lambda: len(fast.requests) >= 1, what="the first item's notification on the fast channel"
            )
            # A new item while the stuck channel's sends hang (they may take their whole 30 s timeout): the fast
            # channel's worker is its own, so the new alerts arrive there within a few polls. (With one worker
            # for all channels they waited for the stuck run to end.)
            feed.add_headlines("n", range(1, 2))
            server.set("/wire.xml", feed.rss(), etag='"b"')
            wait_until(
                lambda: len(fast.requests) >= 2, timeout=8, what="the new item's alerts on the fast channel"
            )
            assert stuck.requests == []  # the receiver records a request only when it answers: still hung
            stuck.release()
            wait_until(lambda: len(stuck.requests) >= 2, timeout=60, what="the stuck channel catching up")
            assert daemon.terminate() == 0
        assert {a["id"] for r in fast.requests for a in alerts_in(r.json())} == {
            a["id"] for r in stuck.requests for a in alerts_in(r.json())
        }


def test_alerts_committed_while_a_delivery_run_is_under_way_go_out_when_it_ends(tmp_path: Path) -> None:
    """A channel's delivery run that is still sending when new alerts are committed runs once more when it
    ends: the new notification goes out then, not at the next `delivery.poll` (here two minutes away)."""
    feed = FeedBuilder()
    feed.add_headlines("n", range(1))
    with FeedServer() as server, WebhookReceiver(hold=True) as hook:
        server.set("/wire.xml", feed.rss(), etag='"a"')
        config = write_config(
            tmp_path,
            feed_urls=[server.url("/wire.xml")],
            hook_url=hook.url,
            hook_timeout=30,
            delivery_poll="120s",
        )
        database = database_of(config)
        with DaemonProcess(config) as daemon:
            wait_until(lambda: len(alert_ids(database)) >= 1, what="the first item's alerts")
            # The first notification's send is held by the receiver: its delivery run is under way.
            feed.add_headlines("n", range(1, 2))
            server.set("/wire.xml", feed.rss(), etag='"b"')
            wait_until(lambda: len(alert_ids(database)) >= 4, timeout=30, what="the second item's alerts")
            hook.release()
            wait_until(lambda: len(hook.requests) >= 2, timeout=15, what="the second item's notification")
            assert daemon.terminate() == 0
        titles = [request.json()["item"]["title"] for request in hook.requests]
        assert titles == [feed.items[0][1], feed.items[1][1]]
