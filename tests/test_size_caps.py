"""Size caps on what monitor emits and stores: alert payloads, webhook bodies, e-mails."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import jsonschema
import pytest
from support.alerts import NOW, make_item, make_request
from support.receivers import SMTPReceiver, WebhookReceiver

from monitor.netpolicy import NetworkPolicy
from monitor.notify import EmailConfig, WebhookChannel, WebhookConfig, build_channels
from monitor.notify.payload import MAX_HITS, MAX_PAYLOAD_BYTES, alert_payload, payload_schema
from monitor.types import Hit, Match

LOCAL = NetworkPolicy.from_setting(["127.0.0.1/32"])
WORDS = " ".join(f"word{n}" for n in range(200_000))  # 1.4 MB of words


def huge_payload() -> dict[str, Any]:
    item = make_item(title=WORDS, summary=WORDS, categories=tuple(f"cat{n}" for n in range(5000)))
    hits = tuple(Hit(term="word", field="title", start=n, end=n + 4, text="word" * 50) for n in range(20_000))
    match = Match(rule_id="r", rule_title="R", hits=hits)
    return alert_payload(alert_id="alr_big", match=match, item=item, created_at=NOW, story_id="sto_1")


def test_a_stored_alert_payload_is_capped_and_says_what_was_cut() -> None:
    payload = huge_payload()
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    assert size <= MAX_PAYLOAD_BYTES
    title = payload["item"]["title"]
    assert title.endswith("…") and title[:-1].split(" ")[-1].startswith("word")  # cut at a word
    assert len(payload["hits"]) == MAX_HITS
    cut = " ".join(payload["truncated"])
    assert "item.title" in cut and "hits" in cut and "item.categories" in cut
    jsonschema.validate(payload, payload_schema())


def test_a_small_payload_is_unchanged_and_has_no_truncated_note() -> None:
    payload = alert_payload(
        alert_id="a",
        match=Match(rule_id="r", rule_title="R", hits=(Hit("x", "title", 0, 1, "x"),)),
        item=make_item(),
        created_at=NOW,
    )
    assert "truncated" not in payload


@pytest.mark.parametrize("limit", [None, 64 * 1024])
def test_a_webhook_body_stays_within_max_body_bytes(limit: int | None) -> None:
    options: dict[str, Any] = {} if limit is None else {"max_body_bytes": limit}
    with WebhookReceiver() as hook:

        async def run() -> None:
            channel = WebhookChannel("hook", WebhookConfig(url=hook.url, **options), policy=LOCAL)
            try:
                await channel.send(make_request(alerts=(huge_payload(), huge_payload()), digest=True))
            finally:
                await channel.aclose()

        asyncio.run(run())
        (request,) = hook.requests
    assert len(request.body) <= (limit or 256 * 1024)
    assert all("truncated" in alert for alert in request.json()["alerts"])


def test_an_email_stays_within_max_body_bytes() -> None:
    with SMTPReceiver() as smtp:

        async def run() -> None:
            config = EmailConfig(
                host="127.0.0.1", port=smtp.port, sender="m@example.org", to=["a@example.org"],
                max_body_bytes=128 * 1024,
            )  # fmt: skip
            channel = build_channels({"mail": config}, policy=LOCAL)["mail"]
            try:
                await channel.send(make_request(channel="mail", alerts=(huge_payload(),)))
            finally:
                await channel.aclose()

        asyncio.run(run())
        (mail,) = smtp.mails
    assert len(mail.data) <= 128 * 1024


@pytest.mark.parametrize("limit", [None, 16 * 1024])
def test_a_story_notification_stays_within_max_body_bytes_and_names_every_cut(limit: int | None) -> None:
    """The caps hold on the grouped shape (issue 8): one notification carrying several huge alerts."""
    options: dict[str, Any] = {} if limit is None else {"max_body_bytes": limit}
    request = dataclasses.replace(
        make_request(alerts=(huge_payload(), huge_payload(), huge_payload())), kind="story"
    )
    with WebhookReceiver() as hook:

        async def run() -> None:
            channel = WebhookChannel("hook", WebhookConfig(url=hook.url, **options), policy=LOCAL)
            try:
                await channel.send(request)
            finally:
                await channel.aclose()

        asyncio.run(run())
        (received,) = hook.requests
    assert len(received.body) <= (limit or 256 * 1024)
    body = received.json()
    assert body["type"] == "notification" and len(body["alerts"]) == 3
    # The hits are named once, with their original count, however often they were cut (50, then 5 when tight).
    hits = [c for c in body["truncated"] if c.startswith("alerts.hits:")]
    assert hits == ["alerts.hits: 50 of 20000" if limit is None else "alerts.hits: 5 of 20000"]
    assert body["item"]["title"].endswith("…")
    jsonschema.validate(body, payload_schema())
