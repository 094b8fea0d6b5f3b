"""The apprise channel against real receivers on 127.0.0.1: Apprise's json:// to an HTTP server, mailto:// to
aiosmtpd, and through the real outbox on a real SQLite file (retry, dead letter, recovery)."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import random
import socket
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.alerts import make_payload, make_request
from support.receivers import SMTPReceiver, WebhookReceiver

from monitor import logs
from monitor.config import load_config, refused_urls
from monitor.errors import ConfigError, DeliveryError
from monitor.netpolicy import NetworkPolicy
from monitor.notify import RetryPolicy, build_channels, deliver_due
from monitor.notify.apprise import AppriseChannel, AppriseConfig
from monitor.redact import redact
from monitor.store import FeedUpdate, NewAlert, NewItem, SQLiteStore
from monitor.types import DeliveryRequest, Hit, Match
from tests.support.store_items import FEED, T0, make_item

LOCAL = NetworkPolicy.from_setting(["127.0.0.1/32"])
PUBLIC_ONLY = NetworkPolicy.from_setting(False)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def json_url(receiver: WebhookReceiver) -> str:
    return receiver.url.replace("http://", "json://", 1)


def mailto_url(smtp: SMTPReceiver) -> str:
    # smtp= names the server; mode=insecure: plain SMTP (aiosmtpd without TLS).
    return (
        f"mailto://user@example.org?smtp={smtp.host}&port={smtp.port}&mode=insecure"
        "&from=monitor@example.org&to=analyst@example.org"
    )


def channel(*urls: str, policy: NetworkPolicy = LOCAL, **fields: Any) -> AppriseChannel:
    return AppriseChannel("ap", AppriseConfig(urls=urls, timeout=5, **fields), policy=policy)


def send(ch: AppriseChannel, request: DeliveryRequest | None = None) -> None:
    asyncio.run(ch.send(request or make_request(channel="ap")))


def test_json_body_carries_title_rule_and_link_and_the_delivery_id(receiver: WebhookReceiver) -> None:
    send(channel(json_url(receiver)), make_request("msg_ap1", channel="ap"))
    (request,) = receiver.requests
    body = json.loads(request.body)
    assert body["title"] == "[monitor] Rare earths: Rare earth exports fall (Example News)"
    assert "Rare earth exports fall" in body["message"] and "Rare earths" in body["message"]
    assert "https://news.example.org/2025/rare-earths" in body["message"]
    assert request.headers["idempotency-key"] == "msg_ap1"
    assert request.headers["x-monitor-delivery"] == "msg_ap1"


def test_a_500_is_a_retryable_failure_carrying_apprises_reason(receiver: WebhookReceiver) -> None:
    receiver.respond_with([500])
    url = (
        json_url(receiver).replace("json://", "json://user:pa55-word@") + "?retry=3"
    )  # Apprise may not retry
    with pytest.raises(DeliveryError) as caught:
        send(channel(url))
    assert caught.value.retryable is True
    assert "error=500" in caught.value.message and "pa55-word" not in caught.value.message
    assert receiver.requests[0].headers["authorization"].startswith("Basic ")  # the credentials were used
    assert len(receiver.requests) == 1  # Apprise's own retries are off: the outbox's schedule is the only one


def test_a_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.respond_with([307])  # 307 keeps the POST: a client that follows it would be recorded twice
    receiver.extra_headers["location"] = receiver.url + "/moved"
    with pytest.raises(DeliveryError) as caught:
        send(channel(json_url(receiver) + "?redirect=yes"))
    assert [r.path for r in receiver.requests] == ["/hook"] and "307" in caught.value.message


def test_mailto_reaches_a_real_smtp_server_with_subject_and_body() -> None:
    with SMTPReceiver() as smtp:
        send(channel(mailto_url(smtp)), make_request("msg_mail", channel="ap"))
        (mail,) = smtp.mails
    assert mail.rcpt_tos == ("analyst@example.org",)
    assert mail.message["Subject"] == "[monitor] Rare earths: Rare earth exports fall (Example News)"
    assert mail.message["X-Monitor-Delivery"] == "msg_mail"
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    assert "Rare earth exports fall" in text and "https://news.example.org/2025/rare-earths" in text


def test_html_format_sends_the_html_body(receiver: WebhookReceiver) -> None:
    send(channel(json_url(receiver), format="html"))
    message = json.loads(receiver.requests[0].body)["message"]
    assert '<a href="https://news.example.org/2025/rare-earths">' in message


def test_a_digest_lists_every_alert(receiver: WebhookReceiver) -> None:
    alerts = (
        make_payload("alr_1"),
        make_payload("alr_2", title="Lithium prices rise", key="https://news.example.org/lithium"),
    )
    send(channel(json_url(receiver)), make_request(channel="ap", alerts=alerts, digest=True))
    message = json.loads(receiver.requests[0].body)["message"]
    assert "Rare earth exports fall" in message and "Lithium prices rise" in message


def test_a_feed_health_notice_is_sent_as_its_text(receiver: WebhookReceiver) -> None:
    notice = {
        "type": "notice",
        "condition": "failing",
        "detail": "the feed failed 7 times in a row",
        "feed": {"url": "https://news.example.org/feed.xml", "title": "Example News"},
    }
    request = dataclasses.replace(make_request(channel="ap"), alerts=(), notice=notice, kind="notice")
    send(channel(json_url(receiver)), request)
    body = json.loads(receiver.requests[0].body)
    assert "Example News" in body["title"]
    assert "the feed failed 7 times in a row" in body["message"]
    assert "https://news.example.org/feed.xml" in body["message"]


def test_a_partial_success_resends_only_to_the_url_that_failed() -> None:
    with WebhookReceiver() as good, WebhookReceiver([500]) as bad:
        ch = channel(json_url(good), json_url(bad))
        request = make_request("msg_part", channel="ap")
        with pytest.raises(DeliveryError) as caught:
            send(ch, request)
        assert caught.value.retryable and "1 of 2 URLs failed" in caught.value.message
        send(ch, request)  # the retry
        assert len(good.requests) == 1 and len(bad.requests) == 2


def test_a_private_address_is_refused_without_the_explicit_allow(receiver: WebhookReceiver) -> None:
    with pytest.raises(ConfigError, match="refused by the network policy"):
        channel(json_url(receiver), policy=PUBLIC_ONLY)
    with SMTPReceiver() as smtp, pytest.raises(ConfigError, match=r"127\.0\.0\.1"):
        channel(mailto_url(smtp), policy=PUBLIC_ONLY)
    assert receiver.requests == []


def test_a_name_resolving_to_loopback_is_refused_at_send_time() -> None:
    # localhost is judged without DNS at build time; a name only a lookup maps to loopback (the machine's own
    # name, in /etc/hosts) is caught before the send.
    name = socket.gethostname()
    if not name or "." in name or not ipaddress.ip_address(socket.gethostbyname(name)).is_loopback:
        pytest.skip(f"this machine's name {name!r} does not resolve to a loopback address")
    ch = channel(f"json://{name}:9/x", policy=NetworkPolicy.from_setting(["10.0.0.0/8"]))
    with pytest.raises(DeliveryError) as caught:
        send(ch)
    assert caught.value.retryable is False and "non-public" in caught.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("json://", "Apprise cannot load this URL"),
        ("mailto://user:pw-1234@example.org?smtp=smtp.example.org&to=a@example.org", "unencrypted SMTP"),
        ("gopher://example.org/x", "not supported by the apprise channel"),
        ("jsons://example.org/x?verify=no", "verify=no is refused"),
    ],
)
def test_an_unusable_url_is_a_config_error_naming_the_channel(tmp_path: Path, url: str, reason: str) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(f"channels:\n  pager:\n    type: apprise\n    urls:\n      - '{url}'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "channels.pager.urls" in str(caught.value) and reason in str(caught.value)
    assert "pw-1234" not in str(caught.value)


def test_without_apprise_installed_the_config_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise raises ImportError
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "channels:\n  pager:\n    type: apprise\n    urls: ['json://example.org/x']\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "channels.pager" in str(caught.value) and "pip install 'monitor[apprise]'" in str(caught.value)


def test_urls_are_secrets_masked_in_logs_and_checked_by_monitor_check(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "channels:\n  pager:\n    type: apprise\n    urls: ['json://user:pa55word-x@127.0.0.1:9/hook']\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert "pa55word-x" not in repr(config)
    assert logs.redact("failed: pa55word-x") == "failed: ***"
    (problem,) = refused_urls(config)
    assert problem.field == "channels.pager.urls.0" and "pa55word-x" not in str(problem)


def test_a_variable_inside_an_apprise_url_is_masked_as_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "channels:\n  pager:\n    type: apprise\n    urls: ['jsons://example.org/in?+X-Token=${AP_TOKEN}']\n",
        encoding="utf-8",
    )
    load_config(path, environ={"AP_TOKEN": "tok-9d81c2e4"})
    assert redact("sent with tok-9d81c2e4") == "sent with ${AP_TOKEN}"


def stored_alert_for(store: SQLiteStore, channel_name: str) -> None:
    match = Match("rare-earths", "Rare earths", (Hit("Rare earth", "title", 0, 10, "Rare earth"),))
    store.commit_fetch(
        FeedUpdate(FEED, T0, T0 + timedelta(minutes=10)),
        new_items=[NewItem(make_item("a"), (match,), "story-a", story_is_new=True)],
        alerts=[NewAlert("alr_1", "rare-earths", "story-a", "a", make_payload(), (channel_name,), T0)],
    )


def test_through_the_outbox_a_failing_receiver_is_retried_then_dead_and_a_recovered_one_is_sent(
    tmp_path: Path,
) -> None:
    retry = RetryPolicy(schedule=(timedelta(seconds=5), timedelta(minutes=5)), jitter=0.0)
    with WebhookReceiver(default_status=500) as receiver, SQLiteStore(tmp_path / "m.db") as store:
        store.sync_feeds([(FEED, timedelta(minutes=10))], T0)
        stored_alert_for(store, "ap")
        channels = build_channels({"ap": AppriseConfig(urls=(json_url(receiver),), timeout=5)}, policy=LOCAL)

        def run(at: timedelta) -> Any:
            return asyncio.run(deliver_due(store, channels, now=T0 + at, retry=retry, rng=random.Random(1)))

        first = run(timedelta(0))
        assert (first.sent, first.retried, first.dead) == (0, 1, 0)
        (row,) = store.list_deliveries(statuses=None)
        assert row.status == "pending" and "error=500" in (row.last_error or "")
        second = run(timedelta(seconds=6))
        assert (second.retried, second.dead) == (1, 0)
        third = run(timedelta(minutes=6))
        assert third.dead == 1 and len(receiver.requests) == 3
        (row,) = store.list_deliveries(statuses=None)
        assert row.status == "dead" and "gave up after 3 attempts" in (row.last_error or "")

        receiver.default_status = 200  # the receiver recovers; the operator re-drives the dead letter
        assert store.retry_deliveries(T0 + timedelta(minutes=7), all_dead=True) == 1
        fourth = run(timedelta(minutes=7))
        assert fourth.sent == 1 and len(receiver.requests) == 4
        (row,) = store.list_deliveries(statuses=None)
        assert row.status == "sent"
        body = json.loads(receiver.requests[-1].body)
        assert "Rare earth exports fall" in body["message"]
