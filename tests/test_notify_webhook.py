"""The webhook channel against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from support.alerts import make_payload, make_request
from support.connects import recorded_connects
from support.receivers import RecordedRequest, WebhookReceiver

from monitor.errors import DeliveryError, EndpointGoneError
from monitor.netpolicy import NetworkPolicy
from monitor.notify import WebhookChannel, WebhookConfig, build_channels

LOCAL = NetworkPolicy.from_setting(["127.0.0.1/32"])
SECRET = "whsec_" + base64.b64encode(b"a test secret of 24 bytes").decode()


def verify_standard_webhook(secret: str, request: RecordedRequest, *, tolerance: int = 300) -> bool:
    """An independent verifier, written from the Standard Webhooks spec (not using monitor's signing code):
    HMAC-SHA256 over "{id}.{timestamp}.{body}" with the base64-decoded part of "whsec_...", base64 output,
    header "v1,<sig>" (several space-separated signatures allowed), timestamp within a tolerance."""
    msg_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + request.body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for candidate in request.headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def send(config: dict[str, Any], request: Any = None, policy: NetworkPolicy = LOCAL) -> None:
    async def run() -> None:
        channel = WebhookChannel("hook", WebhookConfig(**config), policy=policy)
        try:
            await channel.send(request or make_request())
        finally:
            await channel.aclose()

    asyncio.run(run())


def test_posts_the_payload_with_standard_webhooks_headers_and_a_verifiable_signature(
    receiver: WebhookReceiver,
) -> None:
    send({"url": receiver.url, "secret": SECRET}, make_request("msg_abc"))
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_abc"
    assert verify_standard_webhook(SECRET, request)
    body = request.json()
    assert body["version"] == 2 and body["type"] == "alert" and body["rule"]["id"] == "rare-earths"


def test_signature_does_not_verify_with_another_secret_or_a_changed_body(receiver: WebhookReceiver) -> None:
    send({"url": receiver.url, "secret": SECRET})
    (request,) = receiver.requests
    other = "whsec_" + base64.b64encode(b"another secret").decode()
    assert not verify_standard_webhook(other, request)
    tampered = RecordedRequest(request.method, request.path, request.headers, request.body + b" ")
    assert not verify_standard_webhook(SECRET, tampered)


def test_raw_secret_signs_with_its_utf8_bytes(receiver: WebhookReceiver) -> None:
    send({"url": receiver.url, "secret": "plain shared secret"})
    (request,) = receiver.requests
    content = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    )
    expected = base64.b64encode(hmac.new(b"plain shared secret", content, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"


def test_no_secret_no_signature_and_same_id_on_retry(receiver: WebhookReceiver) -> None:
    send({"url": receiver.url}, make_request("msg_same", attempt=1))
    send({"url": receiver.url}, make_request("msg_same", attempt=2))
    first, second = receiver.requests
    assert "webhook-signature" not in first.headers
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_same"
    assert first.body == second.body


def test_digest_sends_one_envelope_with_every_alert(receiver: WebhookReceiver) -> None:
    alerts = (make_payload("alr_1"), make_payload("alr_2", title="Second"))
    send({"url": receiver.url}, make_request("msg_d", alerts=alerts, digest=True))
    (request,) = receiver.requests
    body = request.json()
    assert body["type"] == "digest" and body["id"] == "msg_d"
    assert [a["id"] for a in body["alerts"]] == ["alr_1", "alr_2"]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (429, True),
        (400, False),
        (401, False),
        (404, False),
        (422, False),
    ],
)
def test_status_classification(status: int, retryable: bool) -> None:
    with WebhookReceiver([status], retry_after="7") as hook, pytest.raises(DeliveryError) as caught:
        send({"url": hook.url})
    error = caught.value
    assert error.retryable is retryable
    assert error.status == status
    assert f"HTTP {status}" in str(error) and "'hook'" in str(error)
    assert not isinstance(error, EndpointGoneError)
    if retryable:
        assert error.retry_after == 7.0


def test_410_is_endpoint_gone() -> None:
    with WebhookReceiver([410]) as hook, pytest.raises(EndpointGoneError) as caught:
        send({"url": hook.url})
    assert caught.value.status == 410 and not caught.value.retryable


def test_redirect_is_not_followed() -> None:
    with WebhookReceiver([302], headers={"location": "http://127.0.0.1:1/elsewhere"}) as hook:
        with pytest.raises(DeliveryError, match="redirects are not followed") as caught:
            send({"url": hook.url})
        assert len(hook.requests) == 1
    assert not caught.value.retryable


def test_connection_refused_is_retryable() -> None:
    with WebhookReceiver() as hook:
        url = hook.url
    with pytest.raises(DeliveryError) as caught:
        send({"url": url})
    assert caught.value.retryable and caught.value.status is None


def test_network_policy_refuses_loopback_by_default(receiver: WebhookReceiver) -> None:
    with pytest.raises(DeliveryError, match="non-public") as caught:
        send({"url": receiver.url}, policy=NetworkPolicy())
    assert not caught.value.retryable
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::]:{port}/hook",  # 6to4 of 127.0.0.1
        "http://[64:ff9b::7f00:1]:{port}/hook",  # NAT64
        "http://[::127.0.0.1]:{port}/hook",  # IPv4-compatible
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
        "http://[fec0::1]/hook",  # site-local
        "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    ],
)
def test_webhook_to_an_ipv6_carrier_of_a_private_address_is_refused_before_connecting(
    receiver: WebhookReceiver, url: str
) -> None:
    with recorded_connects() as attempts, pytest.raises(DeliveryError, match="non-public") as caught:
        send(
            {"url": url.format(port=urlsplit(receiver.url).port)},
            policy=NetworkPolicy.from_setting(["127.0.0.2/32"]),
        )
    assert not caught.value.retryable
    assert attempts == []
    assert receiver.requests == []


def test_webhook_to_metadata_is_refused_even_with_allow_private_networks(receiver: WebhookReceiver) -> None:
    with recorded_connects() as attempts, pytest.raises(DeliveryError, match="non-public"):
        send({"url": "http://169.254.169.254/hook"}, policy=NetworkPolicy.from_setting(True))
    assert attempts == []


def expected_title_link(body: dict[str, Any]) -> None:
    text = json.dumps(body, ensure_ascii=False)
    assert "Rare earth exports fall" in text
    assert "https://news.example.org/2025/rare-earths" in text


def test_slack_preset(receiver: WebhookReceiver) -> None:
    send(
        {"url": receiver.url, "preset": "slack"}, make_request(alerts=(make_payload(title="Tom & <Jerry>"),))
    )
    body = receiver.requests[0].json()
    assert set(body) == {"text", "unfurl_links"}
    assert body["text"].startswith("*<https://news.example.org/2025/rare-earths|Tom &amp; &lt;Jerry&gt;>*")
    assert "Rare earths · Example News" in body["text"]


def test_discord_preset_disables_mentions_and_uses_embeds(receiver: WebhookReceiver) -> None:
    alerts = tuple(make_payload(f"alr_{n}", title=f"@everyone title {n}") for n in range(12))
    send({"url": receiver.url, "preset": "discord"}, make_request(alerts=alerts, digest=True))
    body = receiver.requests[0].json()
    assert body["allowed_mentions"] == {"parse": []}
    assert len(body["embeds"]) == 10
    assert body["content"] == "12 alerts (showing 10)"
    embed = body["embeds"][0]
    assert (
        embed["title"] == "@everyone title 0" and embed["url"] == "https://news.example.org/2025/rare-earths"
    )
    assert embed["footer"]["text"] == "Rare earths · Example News"
    assert embed["timestamp"] == "2025-03-01T11:30:00.000000Z"


def test_teams_preset_is_an_adaptive_card(receiver: WebhookReceiver) -> None:
    send({"url": receiver.url, "preset": "teams"})
    body = receiver.requests[0].json()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    expected_title_link(card)
    actions = card["body"][0]["items"][-1]["actions"]
    assert actions[0]["type"] == "Action.OpenUrl"


def test_mattermost_preset_escapes_markdown(receiver: WebhookReceiver) -> None:
    send(
        {"url": receiver.url, "preset": "mattermost"},
        make_request(alerts=(make_payload(title="a [b](c) *d*"),)),
    )
    body = receiver.requests[0].json()
    assert set(body) == {"text"}
    assert body["text"].startswith(r"**[a \[b\]\(c\) \*d\*](https://news.example.org/2025/rare-earths)**")


def test_ntfy_preset_publishes_json_to_the_root_with_the_topic(receiver: WebhookReceiver) -> None:
    topic_url = receiver.url.replace("/hook", "/alerts-topic")
    send({"url": topic_url, "preset": "ntfy"})
    request = receiver.requests[0]
    assert request.path == "/"
    body = request.json()
    assert body["topic"] == "alerts-topic"
    assert body["title"] == "Rare earths: Rare earth exports fall"
    assert body["click"] == "https://news.example.org/2025/rare-earths"
    assert body["tags"] == ["rare-earths"]


def test_custom_body_template(receiver: WebhookReceiver) -> None:
    template = '{"msg": {{ (alert.rule.title ~ ": " ~ alert.item.title) | tojson }}, "n": {{ count }}}'
    send(
        {"url": receiver.url, "body_template": template},
        make_request(alerts=(make_payload(title='say "hi" {{ 7*7 }}'),)),
    )
    assert receiver.requests[0].json() == {"msg": 'Rare earths: say "hi" {{ 7*7 }}', "n": 1}


def test_custom_template_that_is_not_json_fails_without_sending(receiver: WebhookReceiver) -> None:
    with pytest.raises(DeliveryError, match="valid JSON") as caught:
        send({"url": receiver.url, "body_template": "{{ alert.item.title }}"})
    assert not caught.value.retryable
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "ftp://x.example/"}, "http"),
        ({"url": "https://x.example/", "secret": "whsec_***"}, "base64"),
        ({"url": "https://x.example/", "preset": "slack", "body_template": "{}"}, "not both"),
        ({"url": "https://x.example/", "preset": "carrier-pigeon"}, "preset"),
        ({"url": "https://ntfy.sh/", "preset": "ntfy"}, "topic"),
        ({"url": "https://x.example/", "body_template": "{{ alert.nope }}"}, "body_template"),
        ({"url": "https://x.example/", "headers": {"webhook-id": "x"}}, "set by monitor"),
        ({"url": "https://x.example/", "headers": {"x-a": "1\r\nx-b: 2"}}, "line break"),
        ({"url": "https://x.example/", "rate": "lots"}, "rate"),
        ({"url": "https://x.example/", "bogus": 1}, "bogus"),
    ],
)
def test_config_errors_name_the_problem(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookConfig(**config)


def test_secret_never_appears_in_reprs() -> None:
    config = WebhookConfig(url="https://x.example/", secret=SECRET)
    assert SECRET not in repr(config) and SECRET not in str(config.model_dump())


def test_build_channels_makes_webhook_channels(receiver: WebhookReceiver) -> None:
    async def run() -> None:
        channels = build_channels(
            {"hook": WebhookConfig(url=receiver.url, headers={"x-team": "desk"})}, policy=LOCAL
        )
        try:
            await channels["hook"].send(make_request())
        finally:
            for channel in channels.values():
                await channel.aclose()

    asyncio.run(run())
    assert receiver.requests[0].headers["x-team"] == "desk"


def test_a_rejected_secret_is_not_echoed_in_the_error() -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookConfig(url="https://x.example/", secret="whsec_not*base64*secret")
    assert "not*base64*secret" not in str(caught.value)


@pytest.mark.parametrize("key", [b"a", b"ab", b"abc", b"a test secret of 25 bytes!"])
def test_an_unpadded_whsec_secret_signs_like_the_padded_one(receiver: WebhookReceiver, key: bytes) -> None:
    # The Standard Webhooks libraries accept whsec_ secrets with the trailing "=" left off.
    padded = "whsec_" + base64.b64encode(key).decode()
    unpadded = padded.rstrip("=")
    send({"url": receiver.url, "secret": unpadded}, make_request("msg_unpadded"))
    (request,) = receiver.requests
    assert verify_standard_webhook(padded, request)


def test_a_whsec_secret_with_a_wrong_length_is_still_refused() -> None:
    with pytest.raises(ValidationError, match="base64"):
        WebhookConfig(url="https://x.example/", secret="whsec_abcde")  # 5 chars: no base64 length
