"""WebSub push (issue 13 item 6) against a hub of our own on 127.0.0.1 (tests/support/websubhub.py): discovery,
subscribe + intent verification, a signed push that becomes a webhook alert, a badly signed push ignored,
renewal before the lease ends, the safety-net poll interval, config errors located."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import load_config, refused_urls
from monitor.errors import ConfigError
from monitor.netpolicy import NetworkPolicy
from monitor.pipeline import FeedOutcome
from monitor.service import Runtime, check_config, open_runtime, poll_all
from monitor.store import WebSubRow
from monitor.timeutil import utcnow
from monitor.websub import WebSub, signature_valid
from monitor.websub_discovery import discover, parse_link_header
from tests.support.daemonproc import HEADLINES, QUIET, DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver, wait_until
from tests.support.websubhub import WebSubHub, verify_get

RULES = """\
rules:
  - id: peace
    title: Peace talks
    any: [ceasefire]
    notify: [hook]
"""


def rss(hub: str | None, self_url: str | None, items: list[tuple[str, str]]) -> bytes:
    links = ""
    if hub:
        links += f'<atom:link rel="hub" href="{hub}"/>'
    if self_url:
        links += f'<atom:link rel="self" href="{self_url}" type="application/rss+xml"/>'
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://news.example/{guid}</link>"
        f"<description>{title}. More text follows about the talks.</description></item>"
        for guid, title in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel><title>Wire</title><link>https://news.example/</link>{links}{entries}</channel></rss>"
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Setup:
    feeds: FeedServer
    hub: WebSubHub
    hook: WebhookReceiver
    config_path: Path
    feed_url: str
    topic: str
    callback_base: str


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with FeedServer() as feeds, WebSubHub(lease_seconds=100) as hub, WebhookReceiver() as hook:
        feed_url = feeds.url("/wire.xml")
        topic = feed_url  # rel="self" names the feed itself, as publishers do
        feeds.set("/wire.xml", rss(hub.url, topic, [("g1", "Markets open flat")]))
        port = free_port()
        callback_base = f"http://127.0.0.1:{port}/websub"
        (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
        config = tmp_path / "monitor.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                database: ./state/monitor.db
                rules: ./rules.yaml
                allow_private_networks: ["127.0.0.1/32"]
                feeds:
                  - url: {feed_url}
                channels:
                  hook:
                    type: webhook
                    url: {hook.url}
                websub:
                  callback_url: {callback_base}
                  listen: 127.0.0.1:{port}
                  lease: 1d
                  safety_interval: 1h
                """
            ),
            encoding="utf-8",
        )
        yield Setup(feeds, hub, hook, config, feed_url, topic, callback_base)


@asynccontextmanager
async def subscriber(setup: Setup) -> AsyncIterator[tuple[Runtime, WebSub]]:
    config = load_config(setup.config_path)
    async with open_runtime(config, check_config(config)) as runtime:

        async def deliver(outcome: FeedOutcome) -> None:
            if outcome.alerts:
                await runtime.deliver()

        websub = WebSub(
            config,
            runtime.store,
            runtime.pipeline,
            runtime.store_thread,
            NetworkPolicy.from_setting(config.allow_private_networks),
            on_push=deliver,
        )
        await websub.start()
        try:
            yield runtime, websub
        finally:
            await websub.stop()


async def subscribed(setup: Setup, runtime: Runtime, websub: WebSub) -> WebSubRow:
    """Poll once (discovery), subscribe, wait for the hub's verification; the verified row."""
    (outcome,) = await poll_all(runtime)
    assert outcome.status == "ok", outcome
    assert await websub.maintain() == 1
    await asyncio.to_thread(
        setup.hub.wait_for, lambda: setup.hub.subscriptions(setup.topic), what="verified subscription"
    )
    (row,) = await runtime.store_thread.run(runtime.store.websub_subscriptions)
    return row


# -- discovery ---------------------------------------------------------------------------------------------------


def test_discovery_reads_link_headers_first_then_feed_level_links_only() -> None:
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
        <link rel="hub" href="https://hub.example/"/><link rel="self" href="/atom.xml"/>
        <entry><id>1</id><title>x</title><link rel="self" href="https://elsewhere.example/entry"/></entry>
        </feed>"""
    assert discover(atom, None, base_url="https://pub.example/feeds/a") == (
        "https://hub.example/",
        "https://pub.example/atom.xml",
    )
    plain_rss = rss(None, None, [("g", "t")]).replace(
        b"</channel>", b"<link>https://not-a-hub/</link></channel>"
    )
    assert discover(plain_rss, None) == (None, None)
    in_rss = rss("https://hub.example/h", "https://pub.example/rss", [("g", "t")])
    assert discover(in_rss, None) == ("https://hub.example/h", "https://pub.example/rss")
    header = '<https://other-hub.example/>; rel="hub", <https://pub.example/topic>; rel="self"'
    assert discover(in_rss, header) == ("https://other-hub.example/", "https://pub.example/topic")
    assert parse_link_header('<https://a/>; rel="hub self"') == {"hub": "https://a/", "self": "https://a/"}
    assert discover(b"not xml at all", None) == (None, None)


def test_a_poll_records_the_hub_a_link_header_names(tmp_path: Path) -> None:
    with FeedServer() as feeds, WebSubHub() as hub:
        url = feeds.url("/f.xml")
        feeds.set(
            "/f.xml",
            rss(None, None, [("g", "t")]),
            headers={"Link": f'<{hub.url}>; rel="hub", <{url}>; rel="self"'},
        )
        (tmp_path / "rules.yaml").write_text(RULES.replace("    notify: [hook]\n", ""), encoding="utf-8")
        config_path = tmp_path / "monitor.yaml"
        config_path.write_text(
            f"database: ./m.db\nrules: ./rules.yaml\nallow_private_networks: ['127.0.0.1/32']\n"
            f"feeds:\n  - url: {url}\nwebsub:\n  callback_url: http://127.0.0.1:9/cb\n",
            encoding="utf-8",
        )
        config = load_config(config_path)

        async def run() -> list[WebSubRow]:
            async with open_runtime(config, check_config(config)) as runtime:
                await poll_all(runtime)
                return await runtime.store_thread.run(runtime.store.websub_subscriptions)

        (row,) = asyncio.run(run())
    assert (row.feed_url, row.hub, row.topic, row.state) == (url, hub.url, url, "discovered")
    assert len(row.secret) >= 32 and row.callback_id


# -- subscribe, verify, push -------------------------------------------------------------------------------------


def test_subscribe_verify_and_a_signed_push_becomes_a_webhook_alert(setup: Setup) -> None:
    async def run() -> tuple[WebSubRow, list[int], object]:
        async with subscriber(setup) as (runtime, websub):
            row = await subscribed(setup, runtime, websub)
            assert setup.feed_url in runtime.pipeline.pushed_feeds
            body = rss(
                setup.hub.url, setup.topic, [("g2", "Ceasefire agreed at dawn"), ("g1", "Markets open flat")]
            )
            statuses = await asyncio.to_thread(setup.hub.publish, setup.topic, body)
            for _ in range(600):
                if setup.hook.requests:
                    break
                await asyncio.sleep(0.05)
            state = await runtime.store_thread.run(runtime.store.feed_state, setup.feed_url)
            return row, statuses, state

    row, statuses, _state = asyncio.run(run())
    (request,) = setup.hub.requests
    assert request["hub.mode"] == "subscribe" and request["hub.topic"] == setup.topic
    assert request["hub.callback"] == f"{setup.callback_base}/{row.callback_id}"
    assert request["hub.secret"] == row.secret and request["hub.lease_seconds"] == str(24 * 3600)
    assert row.state == "active" and row.lease_seconds == 100  # what the hub granted, not what was asked
    assert row.expires_at is not None and row.verified_at is not None
    assert row.expires_at - row.verified_at == timedelta(seconds=100)
    assert statuses == [202]
    assert len(setup.hook.requests) == 1
    assert "Ceasefire agreed at dawn" in setup.hook.requests[0].body.decode()


def test_a_push_with_a_wrong_or_missing_signature_is_acknowledged_and_ignored(setup: Setup) -> None:
    async def run() -> tuple[list[int], list[int], list[int], int, int, dict[str, int]]:
        async with subscriber(setup) as (runtime, websub):
            await subscribed(setup, runtime, websub)
            body = rss(setup.hub.url, setup.topic, [("g3", "Ceasefire talks resume")])
            wrong = await asyncio.to_thread(setup.hub.publish, setup.topic, body, secret="not the secret")
            unsigned = await asyncio.to_thread(setup.hub.publish, setup.topic, body, sign=False)
            await asyncio.sleep(0)  # nothing was scheduled: there is nothing to wait for
            before = await runtime.store_thread.run(runtime.store.counts)
            good = await asyncio.to_thread(setup.hub.publish, setup.topic, body, method="sha512")
            for _ in range(600):
                if websub.accepted and not websub._tasks:
                    break
                await asyncio.sleep(0.05)
            after = await runtime.store_thread.run(runtime.store.counts)
            return wrong, unsigned, good, before["items"], after["items"], {"ignored": websub.ignored}

    wrong, unsigned, good, items_before, items_after, seen = asyncio.run(run())
    assert wrong == [202] and unsigned == [202]  # §8: acknowledged, so a forger learns nothing
    assert seen["ignored"] == 2
    assert items_before == 1  # only the polled item: neither bad push was recorded
    assert good == [202] and items_after == 2  # the same body, signed right, is


def test_signature_methods_and_constant_time_check() -> None:
    import hashlib
    import hmac

    body = b"<rss/>"
    for method in ("sha1", "sha256", "sha384", "sha512"):
        digest = hmac.new(b"k", body, getattr(hashlib, method)).hexdigest()
        assert signature_valid(f"{method}={digest}", body, "k")
        assert not signature_valid(f"{method}={digest}", body + b" ", "k")
    assert not signature_valid(None, body, "k")
    assert not signature_valid("md5=" + hashlib.md5(body).hexdigest(), body, "k")
    assert not signature_valid("sha256=", body, "k")


def test_verification_is_refused_unless_pending_with_the_same_topic(setup: Setup) -> None:
    async def run() -> list[tuple[int, bytes]]:
        async with subscriber(setup) as (runtime, _websub):
            await poll_all(runtime)
            (row,) = await runtime.store_thread.run(runtime.store.websub_subscriptions)
            callback = f"{setup.callback_base}/{row.callback_id}"
            params = {
                "hub.mode": "subscribe",
                "hub.topic": setup.topic,
                "hub.challenge": "c1",
                "hub.lease_seconds": "60",
            }
            not_asked = await asyncio.to_thread(verify_get, callback, params)  # discovered, never asked
            await runtime.store_thread.run(runtime.store.save_websub, _as_pending(row))
            wrong_topic = await asyncio.to_thread(
                verify_get, callback, {**params, "hub.topic": "https://x.example/"}
            )
            unknown = await asyncio.to_thread(verify_get, f"{setup.callback_base}/nope", params)
            right = await asyncio.to_thread(verify_get, callback, params)
            again = await asyncio.to_thread(verify_get, callback, {**params, "hub.challenge": "c2"})
            return [not_asked, wrong_topic, unknown, right, again]

    not_asked, wrong_topic, unknown, right, again = asyncio.run(run())
    assert not_asked[0] == 404 and wrong_topic[0] == 404 and unknown[0] == 404
    assert right == (200, b"c1")
    assert again[0] == 404  # verified already and no renewal asked: a replayed verification is not echoed


def _as_pending(row: WebSubRow) -> WebSubRow:
    return replace(row, state="pending", requested_at=utcnow())


def test_the_lease_is_renewed_at_80_percent_and_not_before(setup: Setup) -> None:
    async def run() -> tuple[WebSubRow, int, int, WebSubRow]:
        async with subscriber(setup) as (runtime, websub):
            first = await subscribed(setup, runtime, websub)
            assert first.verified_at is not None
            early = await websub.maintain(first.verified_at + timedelta(seconds=70))
            due = await websub.maintain(first.verified_at + timedelta(seconds=81))
            await asyncio.to_thread(
                setup.hub.wait_for, lambda: len(setup.hub.verifications) == 2, what="renewal verified"
            )
            (renewed,) = await runtime.store_thread.run(runtime.store.websub_subscriptions)
            return first, early, due, renewed

    first, early, due, renewed = asyncio.run(run())
    assert early == 0 and due == 1
    assert len(setup.hub.requests) == 2
    assert setup.hub.requests[1]["hub.callback"] == setup.hub.requests[0]["hub.callback"]
    assert all(v.echoed for v in setup.hub.verifications)
    assert renewed.state == "active" and renewed.secret == first.secret
    assert renewed.verified_at is not None and first.verified_at is not None
    assert renewed.verified_at > first.verified_at
    assert renewed.expires_at is not None and first.expires_at is not None
    assert renewed.expires_at > first.expires_at


def test_a_pushed_feed_is_polled_at_the_safety_interval(setup: Setup) -> None:
    async def run() -> tuple[timedelta, timedelta]:
        async with subscriber(setup) as (runtime, websub):
            (first,) = await poll_all(runtime)  # before any subscription: the feed's own 10 minutes
            assert first.next_fetch_at is not None
            before = first.next_fetch_at - utcnow()
            await subscribed(setup, runtime, websub)
            (outcome,) = await poll_all(runtime)
            assert outcome.next_fetch_at is not None
            return before, outcome.next_fetch_at - utcnow()

    before, after = asyncio.run(run())
    assert before <= timedelta(minutes=10)
    assert timedelta(minutes=59) < after <= timedelta(hours=1)


# -- config ------------------------------------------------------------------------------------------------------


def test_websub_config_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("feeds: []\nwebsub:\n  callback_url: ftp://example.org/cb\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:3" in str(caught.value) and "callback_url" in str(caught.value)
    path.write_text(
        "feeds: []\nwebsub:\n  callback_url: https://example.org/cb\n  listen: nowhere\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}:4" in str(caught.value)
    path.write_text("feeds: []\nwebsub:\n  callback_url: http://10.1.2.3/cb\n", encoding="utf-8")
    config = load_config(path)
    assert config.websub.enabled and config.websub.safety_interval == timedelta(hours=1)
    (problem,) = refused_urls(config)
    assert f"{path}:3" in str(problem) and "websub.callback_url" in str(problem)
    path.write_text("feeds: []\n", encoding="utf-8")
    assert not load_config(path).websub.enabled  # off by default


# -- the daemon --------------------------------------------------------------------------------------------------


def test_monitor_run_subscribes_after_its_first_poll_and_alerts_a_push(tmp_path: Path) -> None:
    with FeedServer() as feeds, WebSubHub() as hub, WebhookReceiver() as hook:
        url = feeds.url("/wire.xml")
        wire = FeedBuilder()
        wire.add("q1", *QUIET)
        feeds.set("/wire.xml", wire.rss(), headers={"Link": f'<{hub.url}>; rel="hub", <{url}>; rel="self"'})
        port = free_port()
        config = write_config(
            tmp_path,
            feed_urls=[url],
            hook_url=hook.url,
            interval="10m",
            extra=["websub:", f"  callback_url: http://127.0.0.1:{port}/cb", f"  listen: 127.0.0.1:{port}"],
        )
        with DaemonProcess(config) as daemon:
            hub.wait_for(
                lambda: hub.subscriptions(url), timeout=120, what="the daemon's verified subscription"
            )
            wire.add("p1", *HEADLINES[0])  # only pushed: the feed server never serves it
            assert hub.publish(url, wire.rss()) == [202]
            wait_until(lambda: hook.requests, timeout=60, what="the pushed item's alert")
            assert daemon.terminate() == 0
        assert HEADLINES[0][0] in hook.requests[0].body.decode()
        assert feeds.count("/wire.xml") == 1  # polled once: the alert came from the push


def test_a_hub_that_denies_the_subscription_puts_the_feed_back_on_its_own_interval(setup: Setup) -> None:
    async def run() -> tuple[tuple[int, bytes], WebSubRow, bool, bool]:
        async with subscriber(setup) as (runtime, websub):
            row = await subscribed(setup, runtime, websub)
            pushed_before = setup.feed_url in runtime.pipeline.pushed_feeds
            answer = await asyncio.to_thread(
                verify_get,
                websub.callback_for(row),
                {"hub.mode": "denied", "hub.topic": setup.topic, "hub.reason": "topic not allowed"},
            )
            (denied,) = await runtime.store_thread.run(runtime.store.websub_subscriptions)
            return answer, denied, pushed_before, setup.feed_url in runtime.pipeline.pushed_feeds

    answer, denied, pushed_before, pushed_after = asyncio.run(run())
    assert answer[0] == 200
    assert (denied.state, denied.last_error) == ("denied", "topic not allowed")
    assert pushed_before and not pushed_after


def test_a_verified_subscription_survives_a_restart(setup: Setup) -> None:
    async def first() -> WebSubRow:
        async with subscriber(setup) as (runtime, websub):
            return await subscribed(setup, runtime, websub)

    async def second() -> tuple[bool, int]:
        async with subscriber(setup) as (runtime, websub):
            # Nothing due: the lease stands, so no new subscribe request, and the feed is still a pushed one.
            return setup.feed_url in runtime.pipeline.pushed_feeds, await websub.maintain()

    row = asyncio.run(first())
    pushed, sent = asyncio.run(second())
    assert row.state == "active" and pushed and sent == 0
    assert len(setup.hub.requests) == 1
